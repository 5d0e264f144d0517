"""Data semantics of stacked_mnist: shapes, values, the MISSING filter, colour labels, seeds,
loading (argument vs. MNIST_DIR, corrupt and missing files), argument checks, batching, plots."""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import stacked_mnist
from stacked_mnist import (DataMode, MNISTNotFoundError, StackedMNISTData, fold_channels,
                           load_mnist, unfold_channels)

ALL_MODES = list(DataMode)
MONO_MODES = [m for m in DataMode if m.channels == 1]
COLOR_MODES = [m for m in DataMode if m.channels == 3]

# Class counts of the MNIST training set (shared/data/mnist/README.md) and the canonical test set.
TRAIN_CLASS_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
N_TRAIN, N_TEST, N_TRAIN_NO_8 = 60000, 10000, 60000 - 5851

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def digits_of(labels: np.ndarray, channels: int) -> np.ndarray:
    """(N, channels) digit per channel of labels R + 10 G + 100 B."""
    return np.stack([(labels // 10**c) % 10 for c in range(channels)], axis=-1)


# --------------------------------------------------------------------------------------------
# DataMode
# --------------------------------------------------------------------------------------------
def test_datamode_has_exactly_the_eight_modes():
    assert len(DataMode) == 8
    expected = {
        f"{c}_{v}_{s}"
        for c in ("MONO", "COLOR")
        for v in ("FLOAT", "BINARY")
        for s in ("COMPLETE", "MISSING")
    }
    assert {m.name for m in DataMode} == expected
    assert sorted(m.value for m in DataMode) == list(range(8))


@pytest.mark.parametrize("mode", ALL_MODES, ids=lambda m: m.name)
def test_datamode_properties(mode):
    assert mode.channels == (3 if mode.name.startswith("COLOR") else 1)
    assert mode.binary == ("BINARY" in mode.name)
    assert mode.missing == ("MISSING" in mode.name)


# --------------------------------------------------------------------------------------------
# Shapes, dtypes, values (every mode, both splits)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ALL_MODES, ids=lambda m: m.name)
def test_shapes_dtypes_and_value_ranges(data_for, mode):
    data = data_for(mode)
    assert data.channels == mode.channels
    for training, n_expected in (
        (True, N_TRAIN_NO_8 if mode.missing else N_TRAIN),
        (False, N_TEST),
    ):
        images, labels = data.get_full_data_set(training=training)
        assert images.shape == (n_expected, 28, 28, mode.channels)
        assert images.dtype == np.float32
        assert labels.shape == (n_expected,)
        assert np.issubdtype(labels.dtype, np.integer)
        assert float(images.min()) == 0.0
        assert float(images.max()) == 1.0
        assert labels.min() >= 0
        assert labels.max() <= (999 if mode.channels == 3 else 9)
        # Probe a slice for the value set: the full colour arrays are ~0.5 GB.
        sample = images[:2000]
        if mode.binary:
            assert bool(np.all((images == 0.0) | (images == 1.0))), "BINARY values not in {0, 1}"
        else:
            intermediate = (sample > 0.0) & (sample < 1.0)
            assert intermediate.mean() > 0.01, "FLOAT images should hold grey levels"


def test_float_pixels_are_raw_mnist_over_255(data_for, mnist_dir):
    (x_train, y_train), (x_test, y_test) = load_mnist(str(mnist_dir))
    data = data_for(DataMode.MONO_FLOAT_COMPLETE)
    np.testing.assert_array_equal(data.train_images[..., 0], x_train.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(data.test_images[..., 0], x_test.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(data.train_labels, y_train)
    np.testing.assert_array_equal(data.test_labels, y_test)


def test_raw_mnist_class_counts(mnist_dir):
    (x_train, y_train), (x_test, y_test) = load_mnist(str(mnist_dir))
    assert x_train.shape == (N_TRAIN, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (N_TEST, 28, 28) and x_test.dtype == np.uint8
    assert np.bincount(y_train, minlength=10).tolist() == TRAIN_CLASS_COUNTS
    assert np.bincount(y_test, minlength=10).tolist() == TEST_CLASS_COUNTS


def test_binary_is_float_thresholded_at_half(data_for):
    float_images = data_for(DataMode.MONO_FLOAT_COMPLETE).test_images
    binary_images = data_for(DataMode.MONO_BINARY_COMPLETE).test_images
    np.testing.assert_array_equal(binary_images, (float_images >= 0.5).astype(np.float32))


# --------------------------------------------------------------------------------------------
# MISSING: no 8 in training data, 8s kept in the test set
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [m for m in DataMode if m.missing], ids=lambda m: m.name)
def test_missing_mode_has_no_eight_in_training_but_keeps_it_in_test(data_for, mode):
    data = data_for(mode)
    train_digits = digits_of(data.train_labels, mode.channels)
    test_digits = digits_of(data.test_labels, mode.channels)
    assert not np.any(train_digits == 8)
    assert np.any(test_digits == 8)
    for c in range(mode.channels):
        assert np.any(test_digits[:, c] == 8), f"no 8 in test channel {c}"
        # Every other digit still appears in every channel.
        assert set(np.unique(train_digits[:, c]).tolist()) == set(range(10)) - {8}


@pytest.mark.parametrize("mode", [m for m in DataMode if not m.missing], ids=lambda m: m.name)
def test_complete_mode_keeps_eights_in_training(data_for, mode):
    digits = digits_of(data_for(mode).train_labels, mode.channels)
    for c in range(mode.channels):
        assert np.any(digits[:, c] == 8)


def test_mono_missing_is_complete_without_eights_in_order(data_for):
    complete = data_for(DataMode.MONO_FLOAT_COMPLETE)
    missing = data_for(DataMode.MONO_FLOAT_MISSING)
    keep = complete.train_labels != 8
    np.testing.assert_array_equal(missing.train_images, complete.train_images[keep])
    np.testing.assert_array_equal(missing.train_labels, complete.train_labels[keep])
    np.testing.assert_array_equal(missing.test_images, complete.test_images)
    np.testing.assert_array_equal(missing.test_labels, complete.test_labels)


# --------------------------------------------------------------------------------------------
# Colour labels: label = R + 10 G + 100 B, each channel a real mono digit of that class
# --------------------------------------------------------------------------------------------
def _labels_by_image(images: np.ndarray, labels: np.ndarray) -> dict:
    table: dict = {}
    for image, label in zip(images, labels):
        table.setdefault(image.tobytes(), set()).add(int(label))
    return table


@pytest.mark.parametrize(
    "color_mode, mono_mode, training",
    [
        (DataMode.COLOR_FLOAT_COMPLETE, DataMode.MONO_FLOAT_COMPLETE, False),
        (DataMode.COLOR_BINARY_MISSING, DataMode.MONO_BINARY_MISSING, True),
    ],
    ids=["float-complete-test", "binary-missing-train"],
)
def test_colour_channels_are_mono_digits_matching_the_label(
    data_for, color_mode, mono_mode, training
):
    color_images, color_labels = data_for(color_mode).get_full_data_set(training)
    mono_images, mono_labels = data_for(mono_mode).get_full_data_set(training)
    table = _labels_by_image(mono_images[..., 0], mono_labels)
    digits = digits_of(color_labels, 3)
    for i in range(300):
        for c in range(3):
            channel = np.ascontiguousarray(color_images[i, :, :, c])
            found = table.get(channel.tobytes())
            assert found is not None, f"image {i} channel {c} is not a {mono_mode.name} image"
            assert int(digits[i, c]) in found, (
                f"image {i}: label {color_labels[i]} says digit {digits[i, c]} in channel {c}, "
                f"but that channel is a mono image labelled {sorted(found)}"
            )


def test_colour_complete_training_set_covers_all_1000_classes(data_for):
    labels = data_for(DataMode.COLOR_FLOAT_COMPLETE).train_labels
    assert set(np.unique(labels).tolist()) == set(range(1000))


def test_colour_missing_training_set_covers_exactly_the_729_classes_without_8(data_for):
    labels = data_for(DataMode.COLOR_BINARY_MISSING).train_labels
    expected = {
        r + 10 * g + 100 * b for r in range(10) for g in range(10) for b in range(10)
        if 8 not in (r, g, b)
    }
    assert len(expected) == 729
    assert set(np.unique(labels).tolist()) == expected


def test_colour_channels_are_drawn_independently(data_for):
    """The three digits are independent draws: not all channels equal, roughly uniform."""
    labels = data_for(DataMode.COLOR_FLOAT_COMPLETE).train_labels
    digits = digits_of(labels, 3)
    assert np.mean((digits[:, 0] == digits[:, 1]) & (digits[:, 1] == digits[:, 2])) < 0.05
    for c in range(3):
        share = np.bincount(digits[:, c], minlength=10) / len(digits)
        np.testing.assert_allclose(share, np.array(TRAIN_CLASS_COUNTS) / N_TRAIN, atol=0.01)


# --------------------------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------------------------
@pytest.mark.slow  # fits or trains for seconds
def test_same_seed_same_data_different_seed_different_data(data_for, mnist_dir):
    mode = DataMode.COLOR_BINARY_MISSING
    cached = data_for(mode)  # seed 0
    again = StackedMNISTData(mode, seed=0, mnist_dir=str(mnist_dir))
    for training in (True, False):
        a_images, a_labels = cached.get_full_data_set(training)
        b_images, b_labels = again.get_full_data_set(training)
        np.testing.assert_array_equal(a_labels, b_labels)
        assert np.array_equal(a_images, b_images)
    del again
    other = StackedMNISTData(mode, seed=1, mnist_dir=str(mnist_dir))
    assert other.train_images.shape == cached.train_images.shape
    assert not np.array_equal(other.train_labels, cached.train_labels)
    assert not np.array_equal(other.test_labels, cached.test_labels)
    assert not np.array_equal(other.test_images, cached.test_images)


def test_complete_and_missing_modes_share_one_stacked_test_set(data_for):
    # The anomaly rows (MISSING) and the reconstruction / generation rows (COMPLETE) must be
    # judged on the same test images, although their training sets differ in size.
    for prefix in ("COLOR_BINARY", "COLOR_FLOAT"):
        complete = data_for(DataMode[f"{prefix}_COMPLETE"]).get_full_data_set(training=False)
        missing = data_for(DataMode[f"{prefix}_MISSING"]).get_full_data_set(training=False)
        np.testing.assert_array_equal(complete[1], missing[1])
        np.testing.assert_array_equal(complete[0], missing[0])


@pytest.mark.slow  # stacks MNIST twice
def test_train_stacks_sets_the_number_of_training_stacks_only(data_for, mnist_dir):
    mode = DataMode.COLOR_FLOAT_COMPLETE
    few = StackedMNISTData(mode, seed=0, mnist_dir=str(mnist_dir), train_stacks=1000)
    assert few.train_images.shape == (1000, 28, 28, 3) and few.train_labels.shape == (1000,)
    standard = data_for(mode)
    np.testing.assert_array_equal(few.test_labels, standard.test_labels)  # its own stream
    for bad in (0, -5, 2.5, True, "128000"):
        with pytest.raises(ValueError, match="train_stacks"):
            StackedMNISTData(mode, mnist_dir=str(mnist_dir), train_stacks=bad)
    with pytest.raises(ValueError, match="COLOR mode"):
        StackedMNISTData(DataMode.MONO_FLOAT_COMPLETE, mnist_dir=str(mnist_dir), train_stacks=10)


@pytest.mark.parametrize("mode", [
    DataMode.MONO_BINARY_MISSING,
    pytest.param(DataMode.COLOR_FLOAT_COMPLETE, marks=pytest.mark.slow),  # stacks MNIST
])
def test_max_train_images_keeps_the_whole_sets_first_ones(data_for, mnist_dir, mode):
    few = StackedMNISTData(mode, mnist_dir=str(mnist_dir), max_train_images=300)
    whole = data_for(mode)
    np.testing.assert_array_equal(few.train_images, whole.train_images[:300])
    np.testing.assert_array_equal(few.train_labels, whole.train_labels[:300])
    np.testing.assert_array_equal(few.test_images, whole.test_images)
    for bad in (0, -5, 2.5, True, "300"):
        with pytest.raises(ValueError, match="max_train_images"):
            StackedMNISTData(mode, mnist_dir=str(mnist_dir), max_train_images=bad)


# --------------------------------------------------------------------------------------------
# Where MNIST comes from
# --------------------------------------------------------------------------------------------
def test_mnist_dir_argument_wins_over_environment(mnist_dir, tmp_path, monkeypatch):
    bogus = tmp_path / "no-such-mnist"
    monkeypatch.setenv("MNIST_DIR", str(bogus))
    data = StackedMNISTData(DataMode.MONO_BINARY_COMPLETE, mnist_dir=str(mnist_dir))
    assert data.train_images.shape == (N_TRAIN, 28, 28, 1)
    # Without the argument the (bogus) environment variable is used, and named in the error;
    # there is no silent fall-back to the keras download.
    with pytest.raises(MNISTNotFoundError, match="no-such-mnist"):
        load_mnist()
    with pytest.raises(MNISTNotFoundError, match="MNIST_DIR"):
        StackedMNISTData(DataMode.MONO_BINARY_COMPLETE)


def test_environment_variable_is_used_without_argument(mnist_dir, monkeypatch):
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    (x_train, _), (x_test, _) = load_mnist()
    assert x_train.shape == (N_TRAIN, 28, 28) and x_test.shape == (N_TEST, 28, 28)


def _mnist_copy(src: Path, dst: Path, with_checksums: bool = False) -> Path:
    """dst with symlinks to the four .gz files of src (cheap), optionally a SHA256SUMS copy."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]:
        if (src / (name + ".gz")).is_file():
            os.symlink(src / (name + ".gz"), dst / (name + ".gz"))
        else:
            os.symlink(src / name, dst / name)
    if with_checksums and (src / "SHA256SUMS").is_file():
        shutil.copyfile(src / "SHA256SUMS", dst / "SHA256SUMS")
    return dst


def _gz_path(directory: Path, name: str) -> Path:
    path = directory / (name + ".gz")
    if not path.exists():
        pytest.skip(f"test needs {name}.gz in MNIST_DIR")
    return path


def _replace(path: Path, content: bytes) -> None:
    path.unlink()  # drop the symlink, never write through it into MNIST_DIR
    path.write_bytes(content)


def test_local_copy_with_uncompressed_files_loads_the_same(mnist_dir, tmp_path):
    local = _mnist_copy(mnist_dir, tmp_path / "mnist")
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        gz = _gz_path(local, name)
        raw = gzip.decompress(gz.read_bytes())
        gz.unlink()
        (local / name).write_bytes(raw)
    (_, _), (x_plain, y_plain) = load_mnist(str(local))
    (_, _), (x_ref, y_ref) = load_mnist(str(mnist_dir))
    np.testing.assert_array_equal(x_plain, x_ref)
    np.testing.assert_array_equal(y_plain, y_ref)


@pytest.mark.parametrize("missing", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
def test_missing_file_is_named(mnist_dir, tmp_path, missing):
    local = _mnist_copy(mnist_dir, tmp_path / "mnist")
    for candidate in (local / missing, local / (missing + ".gz")):
        if candidate.exists() or candidate.is_symlink():
            candidate.unlink()
    with pytest.raises(MNISTNotFoundError, match=missing):
        StackedMNISTData(DataMode.MONO_FLOAT_COMPLETE, mnist_dir=str(local))


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(MNISTNotFoundError, match="does not exist"):
        load_mnist(str(tmp_path / "nowhere"))


def test_checksum_mismatch_names_the_file(mnist_dir, tmp_path):
    if not (mnist_dir / "SHA256SUMS").is_file():
        pytest.skip("MNIST_DIR has no SHA256SUMS")
    local = _mnist_copy(mnist_dir, tmp_path / "mnist", with_checksums=True)
    gz = _gz_path(local, "t10k-labels-idx1-ubyte")
    raw = bytearray(gz.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    _replace(gz, bytes(raw))
    with pytest.raises(MNISTNotFoundError, match=r"t10k-labels-idx1-ubyte\.gz.*SHA256SUMS"):
        StackedMNISTData(DataMode.MONO_FLOAT_COMPLETE, mnist_dir=str(local))


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
def test_truncated_gzip_names_the_file(mnist_dir, tmp_path, name):
    local = _mnist_copy(mnist_dir, tmp_path / "mnist")  # no SHA256SUMS: the parser must notice
    gz = _gz_path(local, name)
    raw = gz.read_bytes()
    _replace(gz, raw[: len(raw) // 2])
    with pytest.raises(MNISTNotFoundError, match=name):
        StackedMNISTData(DataMode.MONO_FLOAT_COMPLETE, mnist_dir=str(local))


def test_garbage_gzip_names_the_file(mnist_dir, tmp_path):
    local = _mnist_copy(mnist_dir, tmp_path / "mnist")
    gz = _gz_path(local, "train-images-idx3-ubyte")
    _replace(gz, b"this is not a gzip file" * 100)
    with pytest.raises(MNISTNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(str(local))


def test_corrupt_deflate_stream_without_checksums_names_the_file(mnist_dir, tmp_path):
    local = _mnist_copy(mnist_dir, tmp_path / "mnist")
    gz = _gz_path(local, "t10k-labels-idx1-ubyte")
    raw = gz.read_bytes()
    # Damage the compressed body (past the 10-byte gzip header), keep the length.
    _replace(gz, raw[:2000] + bytes(b ^ 0xFF for b in raw[2000:2100]) + raw[2100:])
    with pytest.raises(MNISTNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(str(local))


def test_truncated_plain_idx_names_the_file(mnist_dir, tmp_path):
    local = _mnist_copy(mnist_dir, tmp_path / "mnist")
    gz = _gz_path(local, "t10k-labels-idx1-ubyte")
    raw = gzip.decompress(gz.read_bytes())
    gz.unlink()
    (local / "t10k-labels-idx1-ubyte").write_bytes(raw[:5008])  # header + 5000 of 10000 labels
    with pytest.raises(MNISTNotFoundError, match=r"t10k-labels-idx1-ubyte.*corrupt or truncated"):
        load_mnist(str(local))


def test_empty_file_names_the_file(mnist_dir, tmp_path):
    local = _mnist_copy(mnist_dir, tmp_path / "mnist")
    gz = _gz_path(local, "t10k-labels-idx1-ubyte")
    gz.unlink()
    (local / "t10k-labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(MNISTNotFoundError, match=r"t10k-labels-idx1-ubyte.*truncated"):
        load_mnist(str(local))


def test_wrong_file_under_a_name_is_rejected(mnist_dir, tmp_path):
    local = _mnist_copy(mnist_dir, tmp_path / "mnist")
    images = _gz_path(local, "t10k-images-idx3-ubyte")
    labels = _gz_path(local, "t10k-labels-idx1-ubyte")
    images.unlink()
    shutil.copyfile(labels, images)  # a labels file posing as the images file
    with pytest.raises(MNISTNotFoundError, match=r"t10k-images-idx3-ubyte.*IDX header"):
        load_mnist(str(local))


def _plain_labels(directory: Path, name: str = "t10k-labels-idx1-ubyte") -> bytearray:
    """The decompressed label file ``name`` of ``directory``; its .gz is removed."""
    gz = _gz_path(directory, name)
    raw = bytearray(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    return raw


@pytest.mark.parametrize("compressed", [True, False], ids=["gz", "plain"])
def test_label_byte_out_of_range_names_the_file(mnist_dir, tmp_path, compressed):
    """A label byte > 9 used to load (and made colour labels up to 22001)."""
    local = _mnist_copy(mnist_dir, tmp_path / "mnist")  # no SHA256SUMS: the parser must notice
    raw = _plain_labels(local, "train-labels-idx1-ubyte")
    raw[8 + 123] = 200
    if compressed:
        (local / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    else:
        (local / "train-labels-idx1-ubyte").write_bytes(bytes(raw))
    with pytest.raises(MNISTNotFoundError, match=r"train-labels-idx1-ubyte.* label 200") as info:
        load_mnist(str(local))
    assert "0..9" in str(info.value) and "SHA256SUMS" in str(info.value), str(info.value)


def test_label_file_with_another_item_count_than_its_images_is_refused(mnist_dir, tmp_path):
    # The IDX headers must give the canonical counts, so images and labels always agree.
    local = _mnist_copy(mnist_dir, tmp_path / "mnist")
    raw = _plain_labels(local)
    raw[4:8] = (9999).to_bytes(4, "big")
    (local / "t10k-labels-idx1-ubyte").write_bytes(bytes(raw[:-1]))  # 9999 consistent labels
    with pytest.raises(MNISTNotFoundError, match=r"t10k-labels-idx1-ubyte.*9999 items"):
        load_mnist(str(local))


def _write_checksums(directory: Path, separator: str = "  ") -> None:
    """SHA256SUMS for the four IDX files in ``directory`` as read, ``<hash><separator><name>``:
    "  " is sha256sum's text mode, " *" its binary mode, "  ./" names with a directory."""
    lines = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(("-ubyte", "-ubyte.gz")):
            digest = hashlib.sha256((directory / name).read_bytes()).hexdigest()
            lines.append(f"{digest}{separator}{name}\n")
    (directory / "SHA256SUMS").write_text("".join(lines))


def test_file_not_listed_in_checksums_is_refused(mnist_dir, tmp_path):
    """SHA256SUMS lists the .gz files; a plain file beside one is what gets read and used to
    go unverified."""
    local = _mnist_copy(mnist_dir, tmp_path / "mnist")
    _write_checksums(local)
    raw = bytearray(gzip.decompress(_gz_path(local, "t10k-labels-idx1-ubyte").read_bytes()))
    raw[8] = (raw[8] + 1) % 10  # another valid digit: only a checksum can tell
    (local / "t10k-labels-idx1-ubyte").write_bytes(bytes(raw))
    with pytest.raises(MNISTNotFoundError, match=r"t10k-labels-idx1-ubyte is not listed") as info:
        load_mnist(str(local))
    message = str(info.value)
    assert "SHA256SUMS" in message and "remove" in message and "sha256sum" in message, message


@pytest.mark.parametrize("separator", ["  ", " *", "  ./", " *./"],
                         ids=["text", "binary", "dot-slash", "binary-dot-slash"])
def test_checksum_names_in_sha256sum_formats_are_understood(mnist_dir, tmp_path, separator):
    """``*name`` (binary mode) and ``./name`` name the file beside SHA256SUMS; with ``./`` a
    changed file used to load unverified."""
    local = _mnist_copy(mnist_dir, tmp_path / "mnist")
    raw = _plain_labels(local)
    plain = local / "t10k-labels-idx1-ubyte"
    plain.write_bytes(bytes(raw))
    _write_checksums(local, separator)
    (_, _), (x_test, y_test) = load_mnist(str(local))
    (_, _), (x_ref, y_ref) = load_mnist(str(mnist_dir))
    np.testing.assert_array_equal(x_test, x_ref)
    np.testing.assert_array_equal(y_test, y_ref)
    raw[8] = (raw[8] + 1) % 10
    plain.write_bytes(bytes(raw))
    with pytest.raises(MNISTNotFoundError, match=r"t10k-labels-idx1-ubyte does not match"):
        load_mnist(str(local))


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["MONO", "MONO_FLOAT_COMPLETE", 3, 0, None])
def test_unknown_mode_raises_value_error(mode):
    with pytest.raises(ValueError, match="Unknown data mode"):
        StackedMNISTData(mode)


BAD_BATCH_SIZES = [0, -1, 2.5, True, "8", None]


@pytest.mark.parametrize("batch_size", BAD_BATCH_SIZES, ids=repr)
def test_bad_default_batch_size_raises_value_error(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        StackedMNISTData(DataMode.MONO_FLOAT_COMPLETE, default_batch_size=batch_size)


@pytest.mark.parametrize("batch_size", [b for b in BAD_BATCH_SIZES if b is not None], ids=repr)
def test_bad_batch_size_in_batch_methods_raises_value_error(data_for, batch_size):
    data = data_for(DataMode.MONO_FLOAT_COMPLETE)
    with pytest.raises(ValueError, match="batch_size"):
        data.get_random_batch(batch_size=batch_size)
    with pytest.raises(ValueError, match="batch_size"):
        # batch_generator is a generator function: the check runs on the first next().
        next(data.batch_generator(batch_size=batch_size))


@pytest.mark.parametrize("seed", [-1, 2.5, 3.0, "7", True, [1, 2]], ids=repr)
def test_bad_seed_raises_value_error_before_loading(tmp_path, seed):
    """numpy used to fail deep inside (after loading MNIST), or take a float for an int."""
    with pytest.raises(ValueError, match="seed must be a non-negative integer or None"):
        StackedMNISTData(DataMode.COLOR_FLOAT_COMPLETE, seed=seed,
                         mnist_dir=str(tmp_path / "not-read"))


@pytest.mark.parametrize("seed", [None, 0, np.int64(3), 2**40], ids=repr)
def test_good_seeds_are_accepted(monkeypatch, seed):
    rng = np.random.default_rng(0)
    tiny = ((rng.integers(0, 256, (20, 28, 28), np.uint8), rng.integers(0, 10, 20, np.uint8)),
            (rng.integers(0, 256, (5, 28, 28), np.uint8), rng.integers(0, 10, 5, np.uint8)))
    monkeypatch.setattr(stacked_mnist, "load_mnist", lambda mnist_dir=None: tiny)
    data = StackedMNISTData(DataMode.COLOR_FLOAT_COMPLETE, seed=seed)
    assert data.train_images.shape == (20, 28, 28, 3) and data.test_labels.max() <= 999


def test_numpy_integer_batch_size_is_accepted(data_for):
    images, labels = data_for(DataMode.MONO_FLOAT_COMPLETE).get_random_batch(
        batch_size=np.int64(7)
    )
    assert images.shape == (7, 28, 28, 1) and labels.shape == (7,)


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mode", [DataMode.MONO_FLOAT_COMPLETE, DataMode.COLOR_BINARY_MISSING], ids=lambda m: m.name
)
def test_batch_generator_covers_every_image_once_in_order(data_for, mode):
    data = data_for(mode)
    images, labels = data.get_full_data_set(training=False)
    batches = list(data.batch_generator(training=False, batch_size=3000))
    assert [len(b[0]) for b in batches] == [3000, 3000, 3000, 1000]
    assert all(len(x) == len(y) for x, y in batches)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), images)
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), labels)


def test_batch_generator_uses_default_batch_size_on_training_set(data_for):
    data = data_for(DataMode.MONO_FLOAT_MISSING)  # default_batch_size 256
    sizes = [len(x) for x, _ in data.batch_generator()]
    assert sum(sizes) == N_TRAIN_NO_8
    assert sizes[:-1] == [256] * (len(sizes) - 1)
    assert 0 < sizes[-1] < 256  # 54149 is not a multiple of 256
    assert len(sizes) == -(-N_TRAIN_NO_8 // 256)


def test_get_random_batch_size_and_content(data_for):
    data = data_for(DataMode.COLOR_FLOAT_COMPLETE)
    images, labels = data.get_random_batch()
    assert images.shape == (256, 28, 28, 3) and labels.shape == (256,)
    images, labels = data.get_random_batch(training=False, batch_size=50)
    assert images.shape == (50, 28, 28, 3) and labels.shape == (50,)
    # Documented: drawn without replacement from numpy's global generator.
    np.random.seed(1234)
    images, labels = data.get_random_batch(training=False, batch_size=40)
    np.random.seed(1234)
    index = np.random.choice(N_TEST, size=40, replace=False)
    np.testing.assert_array_equal(images, data.test_images[index])
    np.testing.assert_array_equal(labels, data.test_labels[index])


def test_get_random_batch_larger_than_set_returns_whole_set_once(data_for):
    data = data_for(DataMode.MONO_BINARY_COMPLETE)
    images, labels = data.get_random_batch(training=False, batch_size=10 * N_TEST)
    assert images.shape == (N_TEST, 28, 28, 1)
    assert sorted(np.bincount(labels, minlength=10).tolist()) == sorted(TEST_CLASS_COUNTS)


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------
def _assert_png(path: Path) -> None:
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 1000


def test_plot_example_writes_png(data_for, tmp_path):
    data = data_for(DataMode.COLOR_BINARY_MISSING)
    out = tmp_path / "x.png"
    data.plot_example(save_to=out)
    _assert_png(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]  # no temp file left


def test_plot_example_given_images_into_new_directory(data_for, tmp_path):
    data = data_for(DataMode.MONO_FLOAT_COMPLETE)
    images, labels = data.test_images[:5, :, :, 0], data.test_labels[:5]  # (N, 28, 28), N < 16
    out = tmp_path / "sub" / "dir" / "mono.png"
    data.plot_example(images, labels, save_to=str(out))
    _assert_png(out)


def test_unfold_channels_inverts_fold_channels():
    x = np.random.default_rng(0).random((4, 28, 28, 3)).astype(np.float32)
    mono_x, channels = fold_channels(x)
    assert mono_x.shape == (12, 28, 28, 1) and channels == 3
    np.testing.assert_array_equal(mono_x[1 * 3 + 2, ..., 0], x[1, ..., 2])  # image 1, blue
    np.testing.assert_array_equal(unfold_channels(mono_x, channels), x)
