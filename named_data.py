"""Data sets by name: everything dataset-specific in one entry.

    import named_data
    mnist = named_data.get("mnist")
    x_train, y_train, x_test, y_test = mnist.load(missing=True, seed=0)   # no 8 in training
    judge, tolerance = mnist.judge(), mnist.tolerance                  # the course's 0.8

An entry knows where its images come from (a directory argument, then its own environment
variable, then the ``tf_keras.datasets`` download), its image shape and class names, the
shipped judge that scores it and at which tolerance, the class its anomaly rows hold out, and
the tag of its shipped models (``vae_mono_complete``). A stacked entry puts three independent
images of its mono entry in R, G and B (class = R + 10 G + 100 B) and shares the mono entry's
models and judge. Adding a data set is one ``Dataset(...)`` and one ``register`` line; the
scripts' ``--dataset`` then offer it and the generic tests run it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from stacked_mnist import MNIST_SOURCE, DataMode, IdxSource, StackedMNISTData

SAVED_MODELS = Path(__file__).resolve().parent / "saved_models"


@dataclass(frozen=True)
class Dataset:
    """One data set. ``channels`` 1: the images themselves; 3: stacks of the ``mono`` entry.

    tolerance: the least belief of the judge that counts as confident (the course's: 0.8 for
        one image, 0.5 for a stack of three, whose belief is the product of three).
    anomaly_class: the class the ``missing=True`` training sets drop and the anomaly rows look
        for (in any channel of a stack).
    model_tag: the middle of its shipped models' names, ``<family>_<tag>_complete``.
    """

    name: str
    title: str
    source: IdxSource
    channels: int
    class_names: Tuple[str, ...]  # of one channel
    judge_file: str  # under saved_models/
    tolerance: float
    anomaly_class: int
    model_tag: str
    anomaly_phrase: str  # the anomaly class with its article: "an 8"
    mono_name: str  # the one-channel entry (itself when channels == 1)
    stacked_name: Optional[str] = None  # the three-channel entry, if there is one
    judge_class: str = "VerificationNet"  # its architecture, in verification_net.JUDGE_CLASSES
    binary: bool = True  # its models train on images binarised at 0.5 (else grey levels)
    # Its models train on binary images drawn anew every epoch from the grey levels (pixel = 1
    # with probability its grey level; models.training.fit_model(binarise=True)); ``load``
    # gives the training images as grey levels and the test images drawn once, with
    # BINARISED_TEST_SEED (the literature's "dynamically binarised MNIST").
    dynamic_binarisation: bool = False
    # A stacked entry's training stacks (None: as many as its mono entry has training images).
    train_stacks: Optional[int] = None

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        return (28, 28, self.channels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names) ** self.channels

    @property
    def anomaly_text(self) -> str:
        """What an anomaly is, in words (metrics.json)."""
        return (f"test image contains {self.anomaly_phrase}"
                + (" in any channel" if self.channels > 1 else ""))

    def mono(self) -> "Dataset":
        return get(self.mono_name)

    def stacked(self) -> "Dataset":
        if self.channels == 3:
            return self
        if self.stacked_name is None:
            raise ValueError(f"data set {self.name!r} has no stacked version.")
        return get(self.stacked_name)

    def data_name(self, missing: bool = False) -> str:
        """The training data's name in model metadata: the course's DataMode names for the
        MNIST entries (``MONO_BINARY_MISSING``), else ``<NAME>_FLOAT_COMPLETE`` and the like."""
        if self.mono_name == "mnist":
            return self.data_mode(missing).name
        if self.dynamic_binarisation:
            return f"{self.name.upper()}_DYNAMIC_{'MISSING' if missing else 'COMPLETE'}"
        return (f"{self.name.upper()}_{'BINARY' if self.binary else 'FLOAT'}_"
                f"{'MISSING' if missing else 'COMPLETE'}")

    def data_mode(self, missing: bool = False, binary: Optional[bool] = None) -> DataMode:
        """The course's DataMode of this entry's images (by default as its models see them:
        binarised at 0.5 or not, ``binary``)."""
        binary = self.binary if binary is None else binary
        return DataMode[f"{'COLOR' if self.channels == 3 else 'MONO'}_"
                        f"{'BINARY' if binary else 'FLOAT'}_"
                        f"{'MISSING' if missing else 'COMPLETE'}"]

    def load(self, missing: bool = False, seed: int = 0, directory: Optional[str] = None,
             binary: Optional[bool] = None, max_train_images: Optional[int] = None):
        """``(x_train, y_train, x_test, y_test)``: images (N, 28, 28, C) in [0, 1], int64
        labels. ``missing``: no training image shows the anomaly class (the test set keeps
        them). ``seed`` draws the stacks; ``directory`` overrides the environment variable;
        ``binary``: binarised at 0.5 (default: as the entry's models see them; a dynamically
        binarised entry's test images are binary draws, see ``dynamic_binarisation``);
        ``max_train_images``: only the first that many training images (quick runs)."""
        data = StackedMNISTData(self.data_mode(missing, binary), seed=seed, mnist_dir=directory,
                                source=self.source, missing_class=self.anomaly_class,
                                train_stacks=self.train_stacks,
                                max_train_images=max_train_images)
        x_test, y_test = data.get_full_data_set(training=False)
        if self.dynamic_binarisation and binary is None:
            x_test = draw_binary(x_test, BINARISED_TEST_SEED)
        return (*data.get_full_data_set(training=True), x_test, y_test)

    def judge(self):
        """The shipped judge of this data set (loaded once per process); a ``VerificationNet``:
        ``predict``, ``check_predictability``, ``check_class_coverage``."""
        path = SAVED_MODELS / self.judge_file
        if path not in _JUDGES:
            from verification_net import JUDGE_CLASSES  # TensorFlow: only when judging

            net = JUDGE_CLASSES[self.judge_class](file_name=str(path))
            if not net.done_training:
                raise FileNotFoundError(
                    f"the judge of {self.name} ({path}) has no usable weights: restore it with "
                    f"`git checkout -- saved_models/{self.judge_file}` or train it "
                    f"(`python verification_net.py --dataset {self.mono_name}`).")
            _JUDGES[path] = net
        return _JUDGES[path]


BINARISED_TEST_SEED = 0  # the one draw of the dynamically binarised entries' test images


def draw_binary(images: np.ndarray, seed: int) -> np.ndarray:
    """Binary images drawn from grey levels: each pixel 1 with probability its grey level,
    a function of ``seed``."""
    rng = np.random.default_rng(seed)
    return (rng.random(images.shape, dtype=np.float32) < images).astype(np.float32)


_JUDGES: Dict[Path, object] = {}
DATASETS: Dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    DATASETS[dataset.name] = dataset
    return dataset


def get(name: str) -> Dataset:
    """The entry called ``name``; ``ValueError`` listing the known ones otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}.")
    return DATASETS[name]


DIGITS = tuple(str(d) for d in range(10))
_MNIST = dict(title="MNIST", source=MNIST_SOURCE, class_names=DIGITS,
              judge_file="verification_net.keras", anomaly_class=8, anomaly_phrase="an 8",
              model_tag="mono",
              mono_name="mnist", stacked_name="stacked_mnist")
register(Dataset(name="mnist", channels=1, tolerance=0.8, **_MNIST))
register(Dataset(name="stacked_mnist", channels=3, tolerance=0.5,
                 **{**_MNIST, "title": "stackedMNIST"}))

FASHION_SOURCE = IdxSource(title="Fashion-MNIST", env_var="FASHION_MNIST_DIR",
                           keras_name="fashion_mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
_FASHION = dict(title="Fashion-MNIST", source=FASHION_SOURCE, class_names=FASHION_CLASSES,
                judge_file="fashion_net.keras", judge_class="FashionNet", anomaly_class=8,
                anomaly_phrase="a bag", model_tag="fashion", mono_name="fashion_mnist",
                stacked_name="stacked_fashion_mnist", binary=False)
# Tolerances by the rule of verification_net.rule_tolerance (the least tolerance at which at
# most 2 % of the judge's confident answers on the real test images are wrong; `python
# verification_net.py --dataset fashion_mnist` prints the table); a stack's is the cube,
# rounded down to 0.05 (which turns the course's 0.8 into its 0.5).
register(Dataset(name="fashion_mnist", channels=1, tolerance=0.85, **_FASHION))
register(Dataset(name="stacked_fashion_mnist", channels=3, tolerance=0.6,
                 **{**_FASHION, "title": "stacked Fashion-MNIST"}))


# MNIST as the likelihood literature uses it (Burda et al. 2016 and after): binary images drawn
# from the grey levels, anew every epoch in training; the test set drawn once. The digit judge.
register(Dataset(name="binarised_mnist", channels=1, tolerance=0.8, binary=False,
                 dynamic_binarisation=True,
                 **{**_MNIST, "title": "binarised MNIST", "model_tag": "binarised",
                    "mono_name": "binarised_mnist", "stacked_name": None}))


def names(channels: Optional[int] = None) -> Tuple[str, ...]:
    """The registered names, optionally only those with ``channels`` channels (1 or 3: any
    other count has no data set, and an empty answer would look like "none registered")."""
    if channels is not None and channels not in (1, 3):
        raise ValueError(f"channels must be 1 (mono), 3 (stacked) or None, got {channels!r}.")
    return tuple(n for n, d in DATASETS.items() if channels in (None, d.channels))

