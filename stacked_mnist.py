"""MNIST and stackedMNIST data, API-compatible with the course support code.

    from stacked_mnist import DataMode, StackedMNISTData
    gen = StackedMNISTData(mode=DataMode.COLOR_BINARY_MISSING, default_batch_size=2048)
    images, labels = gen.get_full_data_set(training=True)   # (N, 28, 28, 3) in [0, 1], int

Where MNIST comes from, first match wins:
  1. the ``mnist_dir`` argument,
  2. the ``MNIST_DIR`` environment variable,
  3. ``tf_keras.datasets.mnist.load_data()`` (downloads once, then uses its cache).
A local directory holds the four canonical IDX files (optionally gzip-compressed):
train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte.
If it holds a ``SHA256SUMS`` (``sha256sum`` output) too, every file read must be listed there
and match.

Differences from the original, all additive: a ``seed`` makes the stacked sets reproducible,
``plot_example(..., save_to=path)`` writes a PNG instead of opening a window, and bad input gives
a ``ValueError`` or ``MNISTNotFoundError`` that says what to do.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Iterator, Optional, Tuple

import numpy as np

__all__ = ["DataMode", "StackedMNISTData", "MNISTNotFoundError", "load_mnist"]

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# (IDX magic number, expected item count) per file; the image files are 28 x 28 per item.
_IDX_EXPECTED = {
    "train_images": (2051, 60000),
    "train_labels": (2049, 60000),
    "test_images": (2051, 10000),
    "test_labels": (2049, 10000),
}
@dataclass(frozen=True)
class IdxSource:
    """Where a 28 x 28 IDX data set comes from: its title in messages, the environment
    variable naming its directory, and the ``tf_keras.datasets`` loader that downloads it.
    MNIST and Fashion-MNIST share the four file names."""

    title: str = "MNIST"
    env_var: str = "MNIST_DIR"
    keras_name: str = "mnist"

    def not_found(self, message: str) -> DataNotFoundError:
        """The error to raise: ``MNISTNotFoundError`` for MNIST (the course API's)."""
        return (MNISTNotFoundError if self.keras_name == "mnist" else DataNotFoundError)(message)

    @property
    def fix_hint(self) -> str:
        folder = self.keras_name.replace("_", "-")
        return (
            f"Point the loader at a directory holding the four {self.title} IDX files "
            "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
            "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]): pass --data-dir DIR "
            "to a script (mnist_dir=DIR in Python) or set the environment variable "
            f"{self.env_var}=/path/to/{folder}. Without a local copy the loader downloads "
            f"{self.title} through tf_keras.datasets.{self.keras_name}.load_data(), which needs "
            "internet access once."
        )


MNIST_SOURCE = IdxSource()
_FIX_HINT = MNIST_SOURCE.fix_hint


class DataNotFoundError(RuntimeError):
    """A data set could be found neither locally nor through the keras download."""


class MNISTNotFoundError(DataNotFoundError):
    """MNIST could be found neither locally nor through the keras download."""


def finite_float32(data: np.ndarray, name: str, what: str, values: str = "values"):
    """``data`` as float32 after checking it holds at least one of ``what`` (its first axis),
    real numbers and no NaN or infinity; ``ValueError`` naming ``name`` otherwise."""
    if len(data) == 0:
        raise ValueError(f"{name} holds no {what} (shape {data.shape}).")
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real numbers ({values}); got dtype {data.dtype}.")
    data = data.astype(np.float32, copy=False)
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{name} contains NaN or infinite values; expected finite {values}.")
    return data


def validate_images(data, name: str = "data", channels: Optional[int] = None) -> np.ndarray:
    """Check and return images as float32 ``(N, 28, 28, C)``, ``C`` in {1, 3} (or exactly
    ``channels`` when given).

    Accepts ``(N, 28, 28)`` (mono, channel axis added). Raises ``ValueError`` that says what
    was expected for any other shape, non-finite values or values outside [0, 1]. The judge,
    the models and the likelihood estimators all check their images with it.
    """
    data = np.asarray(data)
    if data.ndim == 3:
        data = data[..., np.newaxis]
    allowed = (1, 3) if channels is None else (channels,)
    if data.ndim != 4 or data.shape[1:3] != (28, 28) or data.shape[3] not in allowed:
        shapes = {1: "(N, 28, 28) or (N, 28, 28, 1)", 3: "(N, 28, 28, 3)"}
        expected = " or ".join(shapes[c] for c in allowed)
        raise ValueError(f"{name} must have shape {expected}; got {data.shape}.")
    data = finite_float32(data, name, what="images", values="values in [0, 1]")
    low, high = float(data.min()), float(data.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"{name} values must lie in [0, 1]; got range [{low:g}, {high:g}]. "
            "Scale uint8 images by 1/255."
        )
    return data


class DataMode(Enum):
    """The eight data modes: MONO|COLOR x BINARY|FLOAT x COMPLETE|MISSING.

    MISSING drops every training image that shows an 8 (in colour mode: in any channel);
    the test set always keeps the 8s, so they can serve as anomalies.
    """

    MONO_FLOAT_COMPLETE = 0
    MONO_FLOAT_MISSING = 1
    MONO_BINARY_COMPLETE = 2
    MONO_BINARY_MISSING = 3
    COLOR_FLOAT_COMPLETE = 4
    COLOR_FLOAT_MISSING = 5
    COLOR_BINARY_COMPLETE = 6
    COLOR_BINARY_MISSING = 7

    @property
    def channels(self) -> int:
        return 3 if self.name.startswith("COLOR") else 1

    @property
    def binary(self) -> bool:
        return "_BINARY_" in self.name

    @property
    def missing(self) -> bool:
        return self.name.endswith("MISSING")


# --------------------------------------------------------------------------------------------
# Loading raw MNIST
# --------------------------------------------------------------------------------------------
def _find_idx_file(directory: Path, base_name: str, source: IdxSource) -> Path:
    for candidate in (directory / base_name, directory / (base_name + ".gz")):
        if candidate.is_file():
            return candidate
    raise source.not_found(
        f"{source.title} file {base_name}[.gz] is missing from {directory}. {source.fix_hint}"
    )


def _read_checksums(directory: Path) -> Optional[dict]:
    """``{file name: sha256}`` from the directory's SHA256SUMS, None if it has none.

    Lines are ``sha256sum`` output, ``<hash>  <name>`` or ``<hash> *<name>`` (binary mode);
    a name may start with ``./``. Other lines (comments, files elsewhere) are skipped.
    """
    sums_file = directory / "SHA256SUMS"
    if not sums_file.is_file():
        return None
    sums = {}
    for line in sums_file.read_text().splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            continue
        name = parts[1].strip()
        name = name[1:] if name.startswith("*") else name
        while name.startswith("./"):
            name = name[2:]
        if name and "/" not in name:
            sums[name] = parts[0].lower()
    return sums


def _parse_idx(path: Path, key: str, checksums: Optional[dict], source: IdxSource) -> np.ndarray:
    raw = path.read_bytes()
    if checksums is not None:
        # With a SHA256SUMS every file read is verified: an unlisted plain file next to a
        # listed .gz would be read instead of it, unchecked.
        expected_sum = checksums.get(path.name)
        if expected_sum is None:
            gz_beside = path.with_name(path.name + ".gz")
            then = f" (then {gz_beside.name} is read)" if gz_beside.is_file() else ""
            raise source.not_found(
                f"{source.title} file {path} is not listed in the SHA256SUMS beside it, so it "
                f"cannot be verified. Add its line if it is a good copy (`sha256sum {path.name} >> "
                f"SHA256SUMS` in {path.parent}), or remove it{then}."
            )
        if hashlib.sha256(raw).hexdigest() != expected_sum:
            raise source.not_found(
                f"{source.title} file {path} does not match its SHA256SUMS entry (corrupt or "
                f"truncated copy). Replace it with a fresh copy. {source.fix_hint}"
            )
    try:
        data = gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error) as err:
        raise source.not_found(
            f"{source.title} file {path} is not a valid gzip file ({err}). Replace it. "
            f"{source.fix_hint}"
        ) from err
    magic, count = _IDX_EXPECTED[key]
    header_len = 16 if magic == 2051 else 8
    if len(data) < header_len:
        raise source.not_found(f"{source.title} file {path} is truncated (no IDX header). "
                               f"{source.fix_hint}")
    header = np.frombuffer(data[:header_len], dtype=">u4")
    if header[0] != magic or header[1] != count:
        raise source.not_found(
            f"{source.title} file {path} has IDX header (magic {header[0]}, {header[1]} items); "
            f"expected magic {magic} with {count} items. Is it the right file? {source.fix_hint}"
        )
    item_shape = (28, 28) if magic == 2051 else ()
    expected_bytes = header_len + count * int(np.prod(item_shape, dtype=int))
    wrong_image_size = magic == 2051 and tuple(header[2:4]) != (28, 28)
    if wrong_image_size or len(data) != expected_bytes:
        raise source.not_found(
            f"{source.title} file {path} holds {len(data)} bytes after decompression; expected "
            f"{expected_bytes} for {count} items. It is corrupt or truncated. {source.fix_hint}"
        )
    items = np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape((count,) + item_shape)
    if magic == 2049 and items.max() > 9:
        # A label byte > 9 is no digit; stacked, it would give colour labels above 999.
        bad = np.flatnonzero(items > 9)
        raise source.not_found(
            f"{source.title} file {path} holds label {items[bad[0]]} at item {bad[0]} ({len(bad)} "
            f"labels outside 0..9); {source.title} labels are the classes 0..9. The file is "
            f"corrupt or no {source.title} label file: replace it with a fresh copy "
            f"(`sha256sum -c SHA256SUMS` finds changed files). {source.fix_hint}"
        )
    return items


def _load_from_directory(directory: Path, source: IdxSource = MNIST_SOURCE):
    if not directory.is_dir():
        raise source.not_found(f"{source.title} directory {directory} does not exist. "
                               f"{source.fix_hint}")
    checksums = _read_checksums(directory)
    arrays = {
        key: _parse_idx(_find_idx_file(directory, name, source), key, checksums, source)
        for key, name in MNIST_FILES.items()
    }
    return (arrays["train_images"], arrays["train_labels"]), (
        arrays["test_images"],
        arrays["test_labels"],
    )


def load_idx_dataset(directory: Optional[str] = None, source: IdxSource = MNIST_SOURCE):
    """Raw ``((x_train, y_train), (x_test, y_test))`` uint8 arrays of an IDX data set.

    Looks in ``directory``, then the source's environment variable, then falls back to the
    keras download.
    """
    directory = directory or os.environ.get(source.env_var)
    if directory:
        return _load_from_directory(Path(directory).expanduser(), source)
    try:
        import tf_keras

        return getattr(tf_keras.datasets, source.keras_name).load_data()
    except Exception as err:  # no network, SSL, proxy, ... all mean the same to the user
        raise source.not_found(
            f"No local {source.title} directory was given and the keras download failed "
            f"({err}). {source.fix_hint}"
        ) from None  # the message says it all: no chain of download tracebacks


def load_mnist(mnist_dir: Optional[str] = None):
    """Raw MNIST as ``((x_train, y_train), (x_test, y_test))``, uint8 arrays.

    Looks in ``mnist_dir``, then ``$MNIST_DIR``, then falls back to the keras download.
    """
    return load_idx_dataset(mnist_dir, MNIST_SOURCE)


def validate_labels(labels, channels: int, name: str = "labels") -> np.ndarray:
    """``labels`` (N,) as int64 class labels: 0..9 (mono) or 0..999 = R + 10 G + 100 B
    (colour), or ``ValueError`` saying what was expected. Labels that are no class index
    (strings, 3.3, 10 for mono) would never equal a prediction and give accuracy 0 without
    complaint. Floats that are exactly integral are accepted."""
    labels = np.asarray(labels)
    top = 10**channels - 1
    expected = (f"{name} must be integer class labels in 0..{top}"
                f"{' (R + 10 G + 100 B)' if channels == 3 else ''}")
    is_integer = np.issubdtype(labels.dtype, np.integer) and labels.dtype != bool
    if not (is_integer or np.issubdtype(labels.dtype, np.floating)):
        raise ValueError(f"{expected}; got dtype {labels.dtype}.")
    if labels.ndim != 1:
        raise ValueError(f"{expected}, one per image (shape (N,)); got shape {labels.shape}.")
    bad = (labels < 0) | (labels > top)
    if not is_integer:
        bad |= ~np.isfinite(labels) | (labels != np.round(labels))
    if np.any(bad):
        first = int(np.argmax(bad))
        raise ValueError(
            f"{expected}; got {labels[first].item()!r} at index {first} "
            f"({int(np.sum(bad))} of {len(labels)} labels are no class)."
        )
    return labels.astype(np.int64)


def channel_digits(labels, channels: int) -> np.ndarray:
    """Class labels (N,) -> the digit of each channel (N, C): channel c holds the digit of
    10**c (R ones, G tens, B hundreds), the order in which ``StackedMNISTData`` builds them."""
    labels = np.asarray(labels, np.int64)
    return (labels[:, np.newaxis] // 10 ** np.arange(channels)) % 10


# --------------------------------------------------------------------------------------------
# The data set
# --------------------------------------------------------------------------------------------
def fold_channels(x):
    """(N, 28, 28, C) -> ((N * C, 28, 28, 1), C), image n's channel c at row n * C + c: each
    stacked image's digits as mono images, for per-channel models and classifiers."""
    x = np.asarray(x, np.float32)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    n, channels = x.shape[0], x.shape[-1]
    return np.transpose(x, (0, 3, 1, 2)).reshape(n * channels, 28, 28, 1), channels


def unfold_channels(mono_x, channels: int) -> np.ndarray:
    """(N * C, 28, 28, 1) -> (N, 28, 28, C): the inverse of fold_channels."""
    return np.asarray(mono_x).reshape(-1, channels, 28, 28).transpose(0, 2, 3, 1)


def distinct_channel_images(x):
    """``(distinct (M, 28, 28, 1), inverse (N * C,), C)``: the folded channel images of x
    (see fold_channels), each distinct one once; channel image i is ``distinct[inverse[i]]``.

    A stacked test set draws its 3 N channels from N MNIST test digits, so it holds about N
    distinct channel images: per-channel work done once per distinct image costs a third.
    """
    mono_x, channels = fold_channels(x)
    rows = mono_x.reshape(len(mono_x), -1)
    # Group by one random projection per image (cheap to sort), then check that each group
    # really holds one image; if two different images ever shared a projection, fall back to
    # comparing whole images byte by byte.
    projection = rows @ np.random.default_rng(0).standard_normal(rows.shape[1], np.float32)
    _, first, inverse = np.unique(projection, return_index=True, return_inverse=True)
    if not np.array_equal(rows[first][inverse], rows):
        keys = np.ascontiguousarray(rows).view(np.dtype((np.void, rows[0].nbytes))).ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return mono_x[first], inverse.reshape(-1), channels


class StackedMNISTData:
    """MNIST (mono) or stackedMNIST (colour) images in [0, 1], with integer labels.

    Colour images stack three independently drawn MNIST digits in R, G and B; the label is
    R + 10 G + 100 B, so there are 1000 classes. The stacked sets have as many images as the
    underlying mono set and are drawn from ``seed`` (the same seed gives the same sets).

    Beyond the course API: ``source`` reads another 28 x 28 IDX data set (Fashion-MNIST), and
    ``missing_class`` is the class the MISSING modes drop (8), and ``train_stacks`` how many
    stacked training images a colour mode draws (default: as many as the mono set holds; the
    VEEGAN protocol's 128,000); ``max_train_images`` keeps only the first that many training
    images (a colour mode then draws only those stacks, the same as the whole set's first ones),
    for quick runs that need a few hundred.
    """

    def __init__(
        self,
        mode: DataMode,
        default_batch_size: int = 256,
        seed: Optional[int] = 0,
        mnist_dir: Optional[str] = None,
        source: IdxSource = MNIST_SOURCE,
        missing_class: int = 8,
        train_stacks: Optional[int] = None,
        max_train_images: Optional[int] = None,
    ) -> None:
        if not isinstance(mode, DataMode):
            raise ValueError(
                f"Unknown data mode {mode!r}; use one of "
                f"{', '.join('DataMode.' + m.name for m in DataMode)}."
            )
        self.mode = mode
        self.default_batch_size = self._check_count("default_batch_size", default_batch_size)
        self.channels = mode.channels
        self.seed = self._check_seed(seed)
        self.missing_class = missing_class
        self.train_stacks = self._check_count("train_stacks", train_stacks, optional=True)
        if train_stacks is not None and mode.channels == 1:
            raise ValueError("train_stacks is the number of stacked training images: give it "
                             "with a COLOR mode only.")
        self.max_train_images = self._check_count("max_train_images", max_train_images,
                                                  optional=True)
        (x_train, y_train), (x_test, y_test) = (
            load_mnist(mnist_dir) if source == MNIST_SOURCE else load_idx_dataset(mnist_dir,
                                                                                  source))
        # Separate streams: the stacked test set depends on the seed only, not on how many
        # training images the mode keeps, so COMPLETE and MISSING share one test set.
        train_rng, test_rng = np.random.default_rng(seed).spawn(2)
        self.train_images, self.train_labels = self._prepare(x_train, y_train, True, train_rng)
        self.test_images, self.test_labels = self._prepare(x_test, y_test, False, test_rng)

    @staticmethod
    def _check_count(name: str, value, optional: bool = False):
        """``value`` as an int once it is a positive integer (or None, if ``optional``)."""
        if optional and value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer{' or None' if optional else ''}"
                             f", got {value!r}.")
        return int(value)

    @staticmethod
    def _check_seed(seed):
        """Refuse a seed numpy would reject only after MNIST is loaded (or never: 3.0)."""
        if seed is None:
            return seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(
                f"seed must be a non-negative integer or None (fresh randomness), got {seed!r}."
            )
        return seed

    def _prepare(self, images: np.ndarray, labels: np.ndarray, training: bool, rng):
        labels = labels.astype(np.int64)
        if training and self.mode.missing:
            keep = labels != self.missing_class
            images, labels = images[keep], labels[keep]
        kept = self.max_train_images if training else None  # None: all of them
        if self.channels == 3:
            # Each colour image takes three independent draws from the (filtered) mono set, so
            # in MISSING mode no channel of a training image can be an 8. Stacked as bytes:
            # a quarter of the memory traffic of stacking floats, the same values. A generator
            # fills its draws in order, so fewer stacks are the whole set's first ones.
            stacks = self.train_stacks if training and self.train_stacks else len(images)
            picks = rng.integers(0, len(images), size=(min(stacks, kept or stacks), 3))
            images = np.stack([images[picks[:, c]] for c in range(3)], axis=-1)
            labels = labels[picks] @ np.array([1, 10, 100], dtype=np.int64)
        else:
            images, labels = images[:kept, ..., np.newaxis], labels[:kept]
        # Bytes to [0, 1] (then to {0, 1}) through a table of the 256 values: one pass.
        levels = np.arange(256, dtype=np.float32) / 255.0
        if self.mode.binary:
            levels = (levels >= 0.5).astype(np.float32)
        return levels[images], labels

    def get_full_data_set(self, training: bool = True) -> Tuple[np.ndarray, np.ndarray]:
        """``(images (N, 28, 28, C) float32 in [0, 1], labels (N,) int64)``."""
        if training:
            return self.train_images, self.train_labels
        return self.test_images, self.test_labels

    def get_random_batch(
        self, training: bool = True, batch_size: Optional[int] = None
    ) -> Tuple[np.ndarray, np.ndarray]:
        """A batch drawn without replacement (numpy's global generator, as the original)."""
        batch_size = self._check_count(
            "batch_size", self.default_batch_size if batch_size is None else batch_size)
        images, labels = self.get_full_data_set(training)
        index = np.random.choice(len(images), size=min(batch_size, len(images)), replace=False)
        return images[index], labels[index]

    def batch_generator(
        self, training: bool = True, batch_size: Optional[int] = None
    ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        """One pass over the set in order, in batches of ``batch_size`` (last may be smaller)."""
        batch_size = self._check_count(
            "batch_size", self.default_batch_size if batch_size is None else batch_size)
        images, labels = self.get_full_data_set(training)
        # Validated above, at the call; the batches come from this inner generator.
        return (
            (images[start : start + batch_size], labels[start : start + batch_size])
            for start in range(0, len(images), batch_size)
        )

    def plot_example(
        self,
        images: Optional[np.ndarray] = None,
        labels: Optional[np.ndarray] = None,
        save_to: Optional[str] = None,
    ) -> None:
        """Plot 16 images in a 4 x 4 grid: random training images when ``images`` is None.

        With ``save_to`` the figure is written there as PNG (nothing opens a window);
        without it the figure is shown, as in the original.
        """
        if images is None:
            images, labels = self.get_random_batch(training=True, batch_size=16)
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., np.newaxis]
        count = min(16, len(images))
        if save_to is None:
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=(6, 6))
        else:  # a bare Figure: saving needs no GUI backend and leaves pyplot's state alone
            from matplotlib.figure import Figure

            fig = Figure(figsize=(6, 6))
        for i in range(count):
            ax = fig.add_subplot(4, 4, i + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if images.shape[-1] == 1:
                ax.imshow(images[i, :, :, 0], cmap="binary", vmin=0, vmax=1)
            else:
                ax.imshow(np.clip(images[i], 0, 1))
            if labels is not None:
                ax.set_xlabel(f"{int(np.asarray(labels)[i])}")
        fig.tight_layout()
        if save_to is None:
            plt.show()
            plt.close(fig)
        else:
            from atomic_io import save_figure

            save_figure(fig, save_to)


def _example(argv=None) -> None:
    """``python stacked_mnist.py``: a grid of colour training stacks, results/stacked_mnist_
    example.png (under the current folder). A known error is one line on stderr, exit status
    2, as in every script (``--debug`` shows the traceback)."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if [a for a in argv if a != "--debug"]:
        print(f"error: stacked_mnist.py takes no arguments but --debug, got {argv}",
              file=sys.stderr)
        raise SystemExit(2)
    try:
        gen = StackedMNISTData(mode=DataMode.COLOR_BINARY_MISSING, default_batch_size=9)
        out = Path("results") / "stacked_mnist_example.png"
        gen.plot_example(save_to=str(out))
    except (DataNotFoundError, OSError, ValueError) as err:
        if "--debug" in argv:
            raise
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        raise SystemExit(2)
    print(f"wrote {out}")


if __name__ == "__main__":
    _example()
