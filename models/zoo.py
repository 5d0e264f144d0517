"""The shipped models by name, their training recipes, and run folders.

    model = zoo.load("vae_mono_complete")               # saved_models/vae_mono_complete.keras
    colour = zoo.load("vae_mono_complete", channels=3)  # the same weights on R, G and B
    flow = zoo.load_flow("vae_mono_complete")           # its ex-post latent prior
    model = zoo.train("vae_mono_complete", x_train, x_val, settings={"latent_dim": 2})

A recipe is a model config plus how it is trained (data, epochs, learning-rate schedule).
``saved_models/`` changes only when someone ships a model explicitly; models trained with other
settings or again belong in a run folder (``runs/<name>/``, see ``run_folder``).
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import named_data
from atomic_io import atomic_path

from .config import ModelConfig
from .families import build_model
from .io import load_model, load_sampler, read_metadata, save
from .m2 import semi_supervised_set
from .samplers import make_sampler
from .training import fit_model

REPO_ROOT = Path(__file__).resolve().parents[1]
SAVED_MODELS = REPO_ROOT / "saved_models"
RUNS = REPO_ROOT / "runs"


TRAINING_OPTIONS = ("shift_pixels", "average_weights")  # Recipe's fields that fit_model takes


@dataclass(frozen=True)
class Recipe:
    """How a model is trained: the learning rate is constant until epoch ``decay_from``
    (counting from 0), then shrinks by ``decay`` per epoch."""

    config: ModelConfig
    data: str  # its training data's name (named_data's data_name); COLOR_ twin for colour
    epochs: int
    decay_from: int
    learning_rate: float = 1e-3
    decay: float = 0.8
    batch_size: int = 128
    flow: bool = False  # an ex-post flow prior is fitted to its codes and ships beside it
    flow_hidden_units: int = 256  # the width of that flow's MADE networks
    flow_epochs: int = 20  # and its epochs over the codes (20: about 2 minutes on 60,000)
    gmm: bool = False  # a Gaussian mixture is fitted to its codes too and ships beside it
    gmm_components: int = 10  # that mixture's components (a full covariance each)
    dataset: str = "mnist"  # the named_data entry it trains on
    held_out: Optional[int] = None  # the class its training data lacks (None: complete)
    binary: Optional[bool] = None  # images binarised at 0.5 or grey (None: as the data set's)
    labelled: Optional[int] = None  # semi-supervised (m2): labels kept, 1/10 of them per class
    label_seed: int = 0  # which labels are kept (models.m2.semi_supervised_set)
    train_stacks: Optional[int] = None  # a stacked data set's training stacks (None: 60,000)
    shift_pixels: int = 0  # training images moved by up to this many pixels (fit_model)
    average_weights: float = 0.0  # the weights' moving average's decay (fit_model; 0: none)
    seed: int = 0  # the run seed of the shipped file (train_all's default for this recipe)

    @property
    def missing(self) -> bool:
        """Whether its training data lacks a class (``held_out``)."""
        return self.held_out is not None

    @property
    def ex_post_samplers(self) -> tuple:
        """The kinds of ex-post sampler fitted after training and shipped beside the model
        ("flow", "gmm"), from ``flow`` and ``gmm``."""
        return tuple(kind for kind in ("flow", "gmm") if getattr(self, kind))

    def training_options(self) -> dict:
        """The training options set away from their defaults (``shift_pixels``,
        ``average_weights``): recorded in the model's metadata and its checkpoints' identity."""
        return {name: getattr(self, name) for name in TRAINING_OPTIONS if getattr(self, name)}

    def describe_schedule(self, epochs: int) -> str:
        return (f"{self.learning_rate:g}, x{self.decay:g} per epoch from epoch "
                f"{min(self.decay_from, epochs) + 1}")


# The VAE's latent size trades reconstruction against generation and anomaly detection
# (docs/experiments.md): 8 dimensions; one extra convolution per resolution (block_convs=1)
# improves every measure of the complete-data model at 2.5x the training time. The model
# trained without 8s keeps the plain network: in every comparison the better density model
# found the 8s worse. The AE has no prior to match, so it gets a wider code; its 128-unit
# dense layer keeps the file small.
_AE = ModelConfig(kind="ae", latent_dim=32, head="bernoulli", hidden_units=128)
_VAE = ModelConfig(kind="vae", latent_dim=8, head="bernoulli")
SHIPPED = {
    "ae_mono_complete": Recipe(_AE, "MONO_BINARY_COMPLETE", epochs=15, decay_from=8,
                               flow=True),
    "ae_mono_missing": Recipe(_AE, "MONO_BINARY_MISSING", epochs=15, decay_from=8, held_out=8),
    "vae_mono_complete": Recipe(_VAE.replace(block_convs=1), "MONO_BINARY_COMPLETE",
                                epochs=30, decay_from=15, flow=True),
    "vae_mono_missing": Recipe(_VAE, "MONO_BINARY_MISSING", epochs=30, decay_from=15,
                               held_out=8),
}

# A 2-dimensional latent, to be seen whole (experiments/vae_latent.py: latent maps and the
# decoded manifold), for the VAE and the AE on each data set. A dense layer on each side of
# the code, and ELU for the dense layers: through ReLU units more than half of the decoder's
# 7 x 7 grid died early in training (ReLU inputs are never negative) and its dead centre cells
# decoded a constant grey square into every image; without the dense layer the decoder is too
# weak to separate the classes. The beta sweep's filters and 32 units: 0.56 MB a file instead
# of 6.8 (a 2-d code needs no wide layer). Batches of 32: at equal CPU time a lower loss and
# better separated classes than 128.
DATA_OF_TAG = {"mono": ("mnist", "MONO_BINARY"),  # a model tag's data set and data name
               "fashion": ("fashion_mnist", "FASHION_MNIST_FLOAT")}
for _tag, (_dataset, _prefix) in DATA_OF_TAG.items():
    for _kind in ("vae", "ae"):
        SHIPPED[f"{_kind}2d_{_tag}_complete"] = Recipe(
            ModelConfig(kind=_kind, latent_dim=2, head="bernoulli", filters=(16, 32),
                        hidden_units=32, dense_activation="elu"),
            f"{_prefix}_COMPLETE", epochs=30, decay_from=15, batch_size=32, dataset=_dataset)

# The 2-d MNIST VAE keeps the pixels' neighbourhoods (models/neighbours.py): it trains on pairs
# of each image and one of its 10 nearest training images (PCA-50 of the pixels; 95.6 % of them
# the same digit), its loss with 120 x the cross-entropy of finding each image's partner among
# the batch's other posterior means (a Student-t of width 0.1), and 128-unit dense layers (1.8
# MB). 15 epochs in batches of 64 pairs: the 5-NN probe 87.5 % (without the term, 32 units, 30
# epochs in batches of 32: 71.1 %), reconstruction 85.4 % (64.5 %), samples 84.5 % (85.6 %).
# With 32 units the weight gained little (30: 79.5 %, 10: 78.3 %); with 128 it did (30: 81.0 %,
# 60: 84.0 %); 256 units at weight 30: 80.2 %.
SHIPPED["vae2d_mono_complete"] = dataclasses.replace(
    SHIPPED["vae2d_mono_complete"], epochs=15, decay_from=7, batch_size=128,
    config=SHIPPED["vae2d_mono_complete"].config.replace(
        hidden_units=128, neighbour_weight=120.0, neighbour_scale=0.1))

# The conditional VAE (experiments/cvae.py): the plain network with a 64-unit dense layer (a
# file of 2 MB); the label carries the class, the 8-dimensional latent the style.
_CVAE = ModelConfig(kind="cvae", latent_dim=8, head="bernoulli", hidden_units=64)
SHIPPED["cvae_mono_complete"] = Recipe(_CVAE, "MONO_BINARY_COMPLETE", epochs=20, decay_from=10)
SHIPPED["cvae_mono_missing"] = Recipe(_CVAE, "MONO_BINARY_MISSING", epochs=20, decay_from=10,
                                      held_out=8)

# The generative classifier's CVAE (issue 27): trained for its own Bayes rule as well
# (``bayes_weight`` 10: -ELBO(x, y) + 10 CE(softmax over y' of ELBO(x, y'), y)), every training
# image decoded under all ten labels. The beta sweep's filters with one extra convolution per
# resolution and no dense layer (0.5 MB).
SHIPPED["cvae_bayes_mono_complete"] = Recipe(
    ModelConfig(kind="cvae", latent_dim=8, head="bernoulli", filters=(16, 32), hidden_units=0,
                block_convs=1, bayes_weight=10), "MONO_BINARY_COMPLETE", epochs=20,
    decay_from=10)
# The same recipe trained from run seed 1: with the first, a mixture model and an ensemble of
# two generative classifiers (experiments/cvae.py, section classify_position).
SHIPPED["cvae_bayes_mono_complete_seed1"] = dataclasses.replace(
    SHIPPED["cvae_bayes_mono_complete"], seed=1)

# The VAE with a learned (flow) prior: the CVAE's network, so both fit the weights budget.
_FLOWPRIOR = ModelConfig(kind="flowprior_vae", latent_dim=8, head="bernoulli", hidden_units=64)
SHIPPED["flowprior_vae_mono_complete"] = Recipe(_FLOWPRIOR, "MONO_BINARY_COMPLETE", epochs=20,
                                                decay_from=10)
SHIPPED["flowprior_vae_mono_missing"] = Recipe(_FLOWPRIOR, "MONO_BINARY_MISSING", epochs=20,
                                               decay_from=10, held_out=8)

# The beta sweep (experiments/vae_beta.py): one small recipe for every KL weight, so that all
# twelve models (complete data and without 8s) fit the weights budget and train in two hours.
# No dense layer between the convolutions and a 16-dimensional latent: at beta 4 and 8 some
# dimensions can switch off, which a small latent would hide.
BETAS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
_BETA_VAE = ModelConfig(kind="vae", latent_dim=16, head="bernoulli", filters=(16, 32),
                        hidden_units=0)


def beta_name(beta: float, missing: bool) -> str:
    """The shipped beta-sweep model for one KL weight: ``vae_beta4_mono_missing``."""
    return f"vae_beta{beta:g}_mono_{'missing' if missing else 'complete'}"


SHIPPED.update({
    beta_name(beta, missing): Recipe(
        _BETA_VAE.replace(beta=beta),
        "MONO_BINARY_MISSING" if missing else "MONO_BINARY_COMPLETE", epochs=12, decay_from=8,
        held_out=8 if missing else None)
    for beta in BETAS for missing in (False, True)})

# Leave one class out (experiments/anomaly_loo.py): for every class of MNIST and of
# Fashion-MNIST a VAE trained without it, which then scores the test set with that class as the
# anomaly. The beta sweep's small network at beta 1 (0.45 MB a file), 10 epochs.


def loo_name(held_out: int, tag: str = "mono") -> str:
    """The leave-one-class-out model without class ``held_out``: ``vae_loo3_fashion``."""
    return f"vae_loo{held_out}_{tag}"


SHIPPED.update({
    loo_name(held_out, tag): Recipe(_BETA_VAE, f"{prefix}_WITHOUT_{held_out}", epochs=10,
                                    decay_from=6, dataset=dataset, held_out=held_out)
    for tag, (dataset, prefix) in DATA_OF_TAG.items() for held_out in range(10)})

# Fashion-MNIST (``--dataset fashion_mnist``): grey-level images, so the Bernoulli head is the
# cross-entropy of the grey levels. One plain network without a dense layer between the
# convolutions for both families (0.8 MB a file, about half a minute an epoch); the VAE's
# 16-dimensional latent (the KL term switches off what it does not need), the AE's 32 as on
# MNIST. The AE's flow has 128-unit networks (0.8 MB instead of 2.3 for its 32-d codes: the
# weights budget). The flows fit 100 epochs (5 minutes): the VAE's samples 77.3 % confident
# against 74.7 % after the usual 20.
_FASHION_NET = dict(filters=(32, 64), hidden_units=0, head="bernoulli")
_dataset, _prefix = DATA_OF_TAG["fashion"]
for _kind, _latent in (("ae", 32), ("vae", 16)):
    SHIPPED[f"{_kind}_fashion_complete"] = Recipe(
        ModelConfig(kind=_kind, latent_dim=_latent, **_FASHION_NET), f"{_prefix}_COMPLETE",
        epochs=20, decay_from=10, dataset=_dataset, flow=True,
        flow_hidden_units=128 if _kind == "ae" else 256, flow_epochs=100)

# The anomaly rows' models, trained without bags (8), are the leave-one-out table's small
# network: the VAE is that table's model without bags (``ROW_ALIASES``), the AE the same
# network with the AE row's 32-d code (until 2026-12-07 both were the plain network above,
# 2.16 MB together; now 0.55 MB, the VAE being a file shipped anyway: issue 24's weights budget).
SHIPPED["ae_fashion_missing"] = Recipe(
    _BETA_VAE.replace(kind="ae", latent_dim=32), f"{_prefix}_MISSING", epochs=20,
    decay_from=10, dataset=_dataset, held_out=8)
ROW_ALIASES = {"vae_fashion_missing": loo_name(8, "fashion")}

# The rows' complete-data VAE keeps more of each garment: a Normal head of fixed scale 0.1 prices
# a detail at its squared error / (2 x 0.01), where the Bernoulli cross-entropy of grey levels
# paid little for it, and its code fills 32 dimensions (76 nats instead of 16): reconstruction
# 77.8 % instead of 71.1. Its N(0, I) samples suffer (33 % instead of 56: the codes leave
# N(0, I) far behind), and a flow follows its sharp codes badly; a mixture of 100 Gaussians
# is its sampler (79.8 %, 0.23 MB; the 256-unit flow 76.6 %, a 7 MB diffusion model 79.9 %),
# fitted after training beside a flow of 128-unit networks (the weights budget).
_BERNOULLI_VAE = SHIPPED["vae_fashion_complete"]
SHIPPED["vae_fashion_complete"] = dataclasses.replace(
    _BERNOULLI_VAE, gmm=True, gmm_components=100, flow_hidden_units=128,
    config=_BERNOULLI_VAE.config.replace(head="normal", normal_scale=0.1, latent_dim=32))

# The encoder that experiments/finetune.py turns into a Fashion-MNIST classifier: the VAE's
# recipe with one extra convolution per resolution (block_convs=1), no flow. The plain network
# is too small a classifier (86.98 % with all labels); this trunk from scratch reached 92.7 %.
SHIPPED["vae_fashion_blocks_complete"] = dataclasses.replace(
    _BERNOULLI_VAE, flow=False, config=_BERNOULLI_VAE.config.replace(block_convs=1))


# The mono GAN (issue 25): the AC-GAN (models/acgan.py), DCGAN-style networks of 64 and 128
# filters given the digit, the discriminator with an auxiliary classifier of real digits (3.4
# MB); a 64-dimensional noise, Adam at 2e-4 (beta_1 = 0.5) for both networks, 30 epochs, both
# rates x0.8 an epoch over the last 10 (1,892 s): quality 99.6 %, Frechet distance 4.63, recall
# 0.35. It trains on grey levels: binary real images beside grey samples let the discriminator
# win on the pixel values alone. The unconditional GAN (kind "gan") with these networks and
# schedule reached quality 81.1 %, Frechet distance 8.31, recall 0.81 (2.8 MB; shipped until
# the AC-GAN replaced it within the GANs' 6 MB); with 32 and 64 filters (1.2 MB, 20 epochs)
# 77.1 %, 13.5; trained on binary images 61.8 %, 34.
SHIPPED["acgan_mono_complete"] = Recipe(
    ModelConfig(kind="acgan", latent_dim=64, filters=(64, 128)), "MONO_FLOAT_COMPLETE",
    epochs=30, decay_from=20, learning_rate=2e-4, batch_size=64, binary=False)


# The stacked-MNIST mode-collapse protocol (VEEGAN's, as in PacGAN; experiments/mode_collapse.py):
# the GAN's networks see the three channels together, trained on 128,000 stacks, without and
# with packing (two samples per discriminator verdict). Networks of 32 and 64 filters with one
# extra convolution at 7 x 7 and at 14 x 14 in each (block_convs=1), a 40-dimensional noise
# (1.3 MB); the AC-GAN's schedule: 30 epochs of 2,000 batches, the rates x0.8 an epoch over the
# last 10 (packed: 2,858 s, 1000 modes, KL 0.13, quality 80 %). Packed, without the extra
# convolutions and with 64-d noise (1.2 MB): 998, 0.25, 66 %; those trained 10 epochs at a
# constant rate, 966, 0.60, 41 %.
SHIPPED["gan_stacked_complete"] = Recipe(
    ModelConfig(kind="gan", latent_dim=40, filters=(32, 64), block_convs=1, channels=3),
    "COLOR_FLOAT_COMPLETE", epochs=30, decay_from=20, learning_rate=2e-4, batch_size=64,
    binary=False, dataset="stacked_mnist", train_stacks=128_000)
# The packed GAN trains 15 epochs longer and ends with its generator's weights averaged over
# the steps (decay 0.999), run seed 1: 1000 modes, KL 0.094, quality 85 %, the best of three
# seeds (0: KL 0.108, 2: 0.116). The trainings that led here are in docs/results.md.
SHIPPED["gan_stacked_pack2_complete"] = dataclasses.replace(
    SHIPPED["gan_stacked_complete"],
    config=SHIPPED["gan_stacked_complete"].config.replace(pack=2), epochs=45, decay_from=35,
    average_weights=0.999, seed=1)

# The VAE of the same protocol whose one encoder and decoder see the three channels together
# (models/joint_vae.py): a 32-dimensional latent for the three digits, no dense layer.
SHIPPED["joint_vae_stacked_complete"] = Recipe(
    ModelConfig(kind="joint_vae", latent_dim=32, filters=(32, 64), hidden_units=0, channels=3),
    "COLOR_BINARY_COMPLETE", epochs=10, decay_from=5, dataset="stacked_mnist",
    train_stacks=128_000)

# The M2 semi-supervised VAE (experiments/semisupervised.py): all 60,000 training images with
# 100 of their labels (three draws), 1,000 and 3,000 (one draw each). The beta sweep's small
# filters (each image is decoded under all ten labels; 95 s an epoch here). A 4-dimensional
# latent: the label must carry the class, which the classifier learns from (3 epochs with 100
# labels: 92.9 % test accuracy, 89.9 % with 16 dimensions). alpha = 70: the labelled images
# are an eighth of every batch, so their cross-entropy weighs ten times the unlabelled bound in
# all, as Kingma et al.'s alpha = 0.1 N does.
_M2 = ModelConfig(kind="m2", latent_dim=4, filters=(16, 32), hidden_units=0,
                  classifier_weight=70)


# M2 with pseudo-labels (models/m2.py, ``consistency_weight``): an unlabelled image the
# classifier is sure of teaches it that label for a shifted, rotated and scaled copy with a
# square cut out. Development probes, 3 epochs with 100 labels, test accuracy: 92.9 % without
# pseudo-labels; 93.6 % with (the copy only shifted; 93.5 % at weight 30); 94.3 / 94.6 % with a
# 10 / 14-pixel square cut out; 95.6 % with a classifier of its own, wider (32 and 64 filters,
# a 128-unit layer; 1.6 MB more a file); with the copy rotated and scaled as well, by up to 20
# degrees and 15 % 96.3 %, by up to 30 degrees and 25 % (m2.STRONG_*) 96.5 %. (16 epochs
# instead of 8 gained nothing: 95.5 % without the rotation.) On the second label draw, which
# lags, 3-epoch probes: this recipe 95.8 %; an extra convolution per resolution in the
# classifier (classifier_block_convs=1) 96.4 %, yet trained the whole 8 epochs 96.48 and
# 96.20 % on draws 0 and 1 (this recipe 97.32 and 96.25 %); a stronger copy (45 degrees,
# 35 %), the labelled images trained on their strong copy too, or the classifier's own view
# rotated as well: 95.7 to 95.9 %.
_M2_PSEUDO = _M2.replace(consistency_weight=10, classifier_filters=(32, 64),
                         classifier_hidden_units=128)
# ... and the partners' labels (``neighbour_weight``, models/m2.py): batches of neighbour pairs,
# each unlabelled image's strong copy also taught its partner's label, given or sure. 4 epochs
# of pairs are the 8 epochs' steps. Per label draw 96.93 / 96.64 / 97.59 % (mean 97.05 %),
# 97.32 / 96.25 / 96.55 % without them (96.71 %).
_M2_PARTNERS = _M2_PSEUDO.replace(neighbour_weight=1.0)


def m2_name(labelled: int, draw: int = 0, pseudo_labels: bool = False) -> str:
    """The M2 model trained with ``labelled`` labels of label draw ``draw`` (with
    ``pseudo_labels``: its pseudo-labelling variant)."""
    return f"m2{'_pseudo' if pseudo_labels else ''}_{labelled}labels_draw{draw}"


SHIPPED.update({m2_name(labelled, draw): Recipe(
    _M2, "MONO_BINARY_COMPLETE", epochs=8, decay_from=4, labelled=labelled, label_seed=draw)
    for labelled, draws in ((100, 3), (1000, 1), (3000, 1)) for draw in range(draws)})
SHIPPED.update({m2_name(100, draw, pseudo_labels=True): Recipe(
    _M2_PARTNERS, "MONO_BINARY_COMPLETE", epochs=4, decay_from=2, labelled=100,
    label_seed=draw) for draw in range(3)})

# Binarised MNIST (``--dataset binarised_mnist``), the likelihood literature's data: binary
# pixels drawn from the grey levels anew every batch. A 32-dimensional latent (the test NLL
# gains from latent dimensions the generation rows cannot use), one extra convolution per
# resolution, no dense layer between the convolutions (1.9 MB). 80 epochs, the rate decaying
# over the last 15 (30 epochs, decaying from 15: test NLL 83.65 nats on the first 1,000 test
# images, 81.96 now; docs/results.md).
SHIPPED["vae_binarised_complete"] = Recipe(
    ModelConfig(kind="vae", latent_dim=32, head="bernoulli", hidden_units=0, block_convs=1),
    "BINARISED_MNIST_DYNAMIC_COMPLETE", epochs=80, decay_from=65, dataset="binarised_mnist")
# The same network with the learned (flow) prior: the likelihood literature's second row.
# 60 epochs, the rate decaying over the last 15 (30 epochs, decaying from 15: test ELBO 85.52
# nats; fresh binary pixels every batch leave nothing to overfit).
SHIPPED["flowprior_vae_binarised_complete"] = Recipe(
    ModelConfig(kind="flowprior_vae", latent_dim=32, head="bernoulli", hidden_units=0,
                block_convs=1),
    "BINARISED_MNIST_DYNAMIC_COMPLETE", epochs=60, decay_from=45, dataset="binarised_mnist")


def training_set(plan: Recipe) -> named_data.Dataset:
    """The data set entry a recipe trains on: its ``missing=True`` training set lacks the
    recipe's held-out class, its images are binarised or grey as the recipe says, and a
    stacked one has the recipe's number of training stacks."""
    dataset = named_data.get(plan.dataset)
    changes = {}
    if plan.held_out is not None and plan.held_out != dataset.anomaly_class:
        changes["anomaly_class"] = plan.held_out
    if plan.binary is not None and plan.binary != dataset.binary:
        changes["binary"] = plan.binary
    if plan.train_stacks is not None:
        changes["train_stacks"] = plan.train_stacks
    return dataclasses.replace(dataset, **changes) if changes else dataset


def _row_name(kind: str, missing: bool, tag: str) -> str:
    name = f"{kind}_{tag}_{'missing' if missing else 'complete'}"
    return ROW_ALIASES.get(name, name)


def shipped_name(kind: str, missing: bool, tag: str = "mono") -> str:
    """The shipped (mono) model of a family for complete data or data without the anomaly
    class (8s); ``tag``: the data set's (``named_data``'s ``model_tag``; MNIST's is mono)."""
    name = _row_name(kind, missing, tag)
    if name not in SHIPPED:
        raise ValueError(f"no shipped model {name!r}; shipped: {sorted(SHIPPED)}.")
    return name


def has_recipe(kind: str, missing: bool, tag: str = "mono") -> bool:
    """Whether ``shipped_name(kind, missing, tag)`` exists."""
    return _row_name(kind, missing, tag) in SHIPPED


def names(dataset: Optional[str] = None) -> Tuple[str, ...]:
    """The shipped models' names, optionally only those trained on ``dataset``."""
    return tuple(n for n, r in SHIPPED.items() if dataset in (None, r.dataset))


def recipe(name: str) -> Recipe:
    if name not in SHIPPED:
        raise ValueError(f"unknown model {name!r}; shipped: {sorted(SHIPPED)}.")
    return SHIPPED[name]


def path(name: str) -> Path:
    recipe(name)
    return SAVED_MODELS / f"{name}.keras"


def backup_folder(model_path) -> Path:
    """Where a training towards ``model_path`` keeps its per-epoch checkpoints: beside it,
    except for shipped files (saved_models/ holds finished models only): runs/ship/."""
    model_path = Path(model_path).resolve()
    folder = RUNS / "ship" if model_path.parent == SAVED_MODELS.resolve() else model_path.parent
    return folder / f"{model_path.stem}.backup"


def sampler_path(model_path, kind: str = "flow") -> Path:
    """Where an ex-post sampler (``kind`` "flow", "diffusion" or "gmm") fitted to a model
    file's codes lives: beside it, ``<model>.<kind>.keras``."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}.{kind}.keras")


def restore_hint(name: str) -> str:
    return (f"Restore the shipped file with `git checkout -- saved_models/{name}.keras`, or "
            f"train it again with `python experiments/train_all.py --only {name} --ship`.")


def load(name: str, channels: Optional[int] = None):
    """The shipped model ``name``, mono or (``channels=3``) colour."""
    return load_model(path(name), channels=channels, hint=restore_hint(name))


def load_flow(name: str):
    """The shipped ex-post flow of the model ``name`` (shipped for the complete-data ones)."""
    return load_sampler(sampler_path(path(name)), hint=restore_hint(name))


def train(name: str, x_train, x_val=None, settings: Optional[dict] = None,
          epochs: Optional[int] = None, seed: int = 0, channels: Optional[int] = None,
          verbose: int = 1,
          data: Optional[str] = None, backup_dir=None, tensorboard_dir=None, strategy=None,
          labels=None, val_labels=None):
    """Train the recipe ``name`` again, optionally with config ``settings`` changed (e.g.
    ``{"latent_dim": 2}``); returns the model with its training metadata. Saving is the
    caller's choice (``models.save``): a run folder, or ``saved_models/`` when shipping.

    x_train, x_val: (N, 28, 28, channels) in [0, 1]. The seed fixes the initial weights,
    the data order and the sampling. ``backup_dir``: checkpoints per epoch, and resuming from
    them (only a checkpoint of this very training: same recipe, settings, seed, epochs and
    data size; another one is discarded). ``tensorboard_dir``: summaries for TensorBoard.
    ``strategy``: a ``tf.distribute`` strategy (``training.distribution_strategy``).
    ``labels``, ``val_labels``: the images' class labels, for a conditional recipe (cvae).
    A recipe of a dynamically binarised data set (``binarised_mnist``) takes its training
    images as grey levels and draws binary batches from them. A semi-supervised recipe
    (``labelled``) keeps that many of the labels (drawn with its ``label_seed``) and trains on
    ``models.m2.semi_supervised_set``.
    """
    plan = recipe(name)
    if plan.labelled is not None:
        if labels is None:
            raise ValueError(f"{name} learns from {plan.labelled} of the training labels: "
                             "give labels= (all of them; the recipe keeps its share).")
        x_train, labels = semi_supervised_set(x_train, labels, plan.labelled, plan.label_seed)
    config = plan.config.with_settings(settings or {})
    channels = config.channels if channels is None else channels
    config = config.replace(channels=channels)
    epochs = plan.epochs if epochs is None else epochs
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
    model = build_model(config, plan.learning_rate, seed=seed, strategy=strategy)
    if backup_dir is not None:
        identity = {"recipe": name, "config": config.to_dict(), "seed": seed, "epochs": epochs,
                    "train_images": int(len(x_train)),
                    "schedule": {"batch_size": plan.batch_size,
                                 "learning_rate": plan.describe_schedule(epochs)}}
        identity.update(plan.training_options())
        _claim_backup(Path(backup_dir), identity)
    start = time.time()
    decay_from = min(plan.decay_from, epochs)
    history = fit_model(model, x_train, x_val, epochs=epochs, batch_size=plan.batch_size,
                        seed=seed, decay_from=decay_from, decay=plan.decay, verbose=verbose,
                        backup_dir=backup_dir, tensorboard_dir=tensorboard_dir,
                        labels=labels, val_labels=val_labels,
                        binarise=named_data.get(plan.dataset).dynamic_binarisation,
                        shift_pixels=plan.shift_pixels, average_weights=plan.average_weights)
    # The epochs' own times where the checkpoint kept all of them (a resumed training's
    # earlier epochs ran in another process); else the wall time of this call.
    epoch_times = history.get("epoch_seconds", [])
    seconds = sum(epoch_times) if len(epoch_times) == epochs else time.time() - start
    model.metadata.update({
        "recipe": name, "settings": dict(settings or {}),
        "trained_on": data or (plan.data if channels == 1 else plan.data.replace("MONO",
                                                                                "COLOR")),
        "epochs": epochs, "seed": seed, "learning_rate": plan.describe_schedule(epochs),
        "train_images": int(len(x_train)), "train_seconds": round(seconds, 1),
        "seconds_per_epoch": round(seconds / epochs, 1),
        "history": {k: [round(float(v), 3) for v in vals] for k, vals in history.items()},
    })
    model.metadata.update(plan.training_options())
    if plan.labelled is not None:
        model.metadata.update({"labels_kept": plan.labelled, "label_seed": plan.label_seed})
    model.after_training(x_train, labels, seed=seed)  # e.g. the CVAE's class prior p(z|y)
    return model


def _claim_backup(directory: Path, identity: dict) -> None:
    """Keep a checkpoint folder only for the training it belongs to: the same recipe, config,
    seed, epochs, training images, batch size and learning-rate schedule, and training options
    (an unreadable record of whose it is counts as another training's)."""
    key = directory / "training.json"
    if directory.exists() and _backup_owner(key, identity) != identity:
        print(f"discarding the checkpoints in {directory}: another training's, or no readable "
              "record of whose", flush=True)
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not key.is_file():
        with atomic_path(key) as tmp:
            tmp.write_text(json.dumps(identity))


def _backup_owner(key: Path, identity: dict) -> Optional[dict]:
    """The identity of the training recorded in ``key``, as today's code writes one (None if
    there is no readable record). A record from before a field was added lacks the field, and
    its training used what ``identity`` holds there: the config's defaults, the schedule."""
    try:
        owner = json.loads(key.read_text())
        if not isinstance(owner, dict):
            return None
        if isinstance(owner.get("config"), dict):
            owner["config"] = ModelConfig.from_dict(owner["config"]).to_dict()
        if "schedule" in identity:
            owner.setdefault("schedule", identity["schedule"])
        return owner
    except (OSError, ValueError, TypeError):  # missing, unreadable, truncated, not a config
        return None


EX_POST_KINDS = ("flow", "diffusion", "gmm")  # samplers fitted once, kept in a file (fit_sampler)
QUICK_SAMPLER_EPOCHS = 2  # a --quick run's ex-post sampler: it only has to exist and load
QUICK_GMM_COMPONENTS = 2  # its mixture: 512 quick codes are too few for 100 of 32 dimensions

# The diffusion sampler (models/samplers.py, LatentDiffusion; --latent diffusion): 200 steps,
# three residual blocks of 512 units (1.7 M parameters, 7 MB), 150 epochs over fresh draws of
# the codes (about 20 minutes for 60,000). On the Fashion VAE's codes 256 units gave samples
# 77.8 % confident, 512 79.9 % (its bound, decoded training codes: 82.9 %).
DIFFUSION_SETTINGS = {"steps": 200, "hidden_units": 512, "blocks": 3}
DIFFUSION_EPOCHS = 150
# The mixture's EM: at most 200 iterations (its epochs), a ridge of 1e-4 on every covariance
# (the codes are of order 1); one draw z ~ q(z|x) of every training image.
GMM_ITERATIONS = 200
GMM_RIDGE = 1e-4


def sampler_settings(recipe_name: Optional[str]):
    """What sets the ex-post samplers of a model trained by ``recipe_name``: that recipe, or
    for a model of no shipped recipe the ``Recipe`` class, whose ``flow_hidden_units``,
    ``flow_epochs`` and ``gmm_components`` are the defaults."""
    return SHIPPED.get(recipe_name, Recipe)


def fit_sampler(model, x_train, x_val=None, seed: int = 0, epochs: Optional[int] = None,
                verbose: int = 1, kind: str = "flow", quick: bool = False):
    """An ex-post sampler fitted to ``model``'s codes of mono images x_train (for a VAE
    z ~ q(z|x): the flow and the diffusion model redraw it every epoch, the mixture fits one
    draw); held-out codes of x_val are logged beside the fit.
    ``kind`` "flow": a masked autoregressive flow of the model's recipe's width and (unless
    ``epochs`` is given) epochs (``flow_hidden_units``, ``flow_epochs``); "diffusion": the
    diffusion sampler of ``DIFFUSION_SETTINGS``, ``DIFFUSION_EPOCHS``; "gmm": a Gaussian
    mixture of the recipe's ``gmm_components``, EM for up to ``GMM_ITERATIONS`` (its epochs).
    ``quick``: ``QUICK_SAMPLER_EPOCHS`` and a mixture of ``QUICK_GMM_COMPONENTS``, for --quick
    runs. Fitting metadata goes into ``sampler.metadata``."""
    start = time.time()
    settings = sampler_settings(model.metadata.get("recipe"))
    if kind == "flow":
        sizes, default_epochs = ({"hidden_units": settings.flow_hidden_units, "init_seed": seed},
                                 settings.flow_epochs)
    elif kind == "diffusion":
        sizes, default_epochs = {**DIFFUSION_SETTINGS, "init_seed": seed}, DIFFUSION_EPOCHS
    elif kind == "gmm":
        sizes = {"components": QUICK_GMM_COMPONENTS if quick else settings.gmm_components}
        default_epochs = GMM_ITERATIONS
    else:
        raise ValueError(f"kind must be one of {EX_POST_KINDS}, got {kind!r}.")
    epochs = QUICK_SAMPLER_EPOCHS if quick else default_epochs if epochs is None else epochs
    sampler = make_sampler(kind, model.config.latent_dim, **sizes)
    options = ({"max_iter": epochs, "reg_covar": GMM_RIDGE} if kind == "gmm"
               else {"epochs": epochs})
    mean, scale = model.mono_code_distribution(x_train)
    validation = None if x_val is None else model.mono_code_distribution(x_val)
    sampler.fit(mean, scale, seed=seed, validation=validation, verbose=verbose, **options)
    redrawn = "redrawn every epoch" if kind != "gmm" else "one draw"
    sampler.metadata.update({
        "codes": f"z ~ q(z|x), {redrawn}" if scale is not None else "the codes",
        "train_images": int(len(x_train)), "epochs": epochs, "seed": seed, **sampler.settings(),
        "fit_seconds": round(time.time() - start, 1), "history": sampler.history,
    })
    return sampler


def fit_beside(model, model_path, x_train, x_val, fitted_on: str, kind: str = "flow",
               seed: int = 0, verbose: int = 1, quick: bool = False, path=None):
    """``(sampler, path)``: ``fit_sampler``'s sampler, the name of the data it was fitted on
    recorded (``fitted_on``), saved beside the model file or at ``path`` (``save_beside``)."""
    sampler = fit_sampler(model, x_train, x_val, seed=seed, verbose=verbose, kind=kind,
                          quick=quick)
    sampler.metadata["fitted_on"] = fitted_on
    return sampler, save_beside(sampler, model_path, path)


def _shipped(path) -> bool:
    """Whether ``path`` is in saved_models/ (which only ``train_all.py --ship`` writes)."""
    return Path(path).parent.resolve() == SAVED_MODELS.resolve()


def run_sampler_path(model_path, kind: str = "flow") -> Path:
    """Where a run keeps an ex-post sampler it fits itself: beside the model file
    (``sampler_path``), but for a shipped model in runs/samplers/."""
    path = sampler_path(model_path, kind)
    return RUNS / "samplers" / path.name if _shipped(path) else path


def find_sampler(model_path, kind: str = "flow"):
    """``(sampler, status, path)``: the ex-post sampler of ``kind`` fitted to exactly this
    model file, beside it or (a shipped model's, fitted by a run) at ``run_sampler_path``;
    else sampler None, the status of the last place looked at (``sampler_for_file``) and the
    path where a new fit belongs."""
    beside, path = sampler_path(model_path, kind), run_sampler_path(model_path, kind)
    sampler, status = sampler_for_file(model_path, kind, beside)
    if sampler is not None:
        return sampler, status, beside
    if path != beside:
        sampler, status = sampler_for_file(model_path, kind, path)
    return sampler, status, path


def sampler_for_file(model_path, kind: str = "flow", path=None):
    """``(sampler, status)`` for the ex-post sampler file of ``kind`` beside a model file (or
    at ``path``): status "loaded" when it was fitted to exactly this file (its recorded
    SHA-256), else the sampler is None and status says why ("missing" or "stale": fitted to
    other weights, e.g. after retraining). A damaged file raises ModelFileError."""
    path = sampler_path(model_path, kind) if path is None else Path(path)
    if not path.is_file():
        return None, "missing"
    sampler = load_sampler(path, hint=f"Delete it to fit the {kind} sampler again" + (
        ", or restore the shipped copy with `git checkout -- saved_models/`."
        if _shipped(path) else "."))
    if sampler.metadata.get("model_sha256") != file_digest(model_path):
        return None, "stale"
    return sampler, "loaded"


def save_beside(sampler, model_path, path=None) -> Path:
    """Save an ex-post sampler beside the model file it was fitted to (or at ``path``), tied
    to it by SHA-256 (``sampler_path``)."""
    sampler.metadata.update(model_file=shown_path(model_path),
                            model_sha256=file_digest(model_path))
    return save(sampler, sampler_path(model_path, sampler.kind) if path is None else path)


def run_name(base: str, settings: Optional[dict] = None, seed: int = 0) -> str:
    """A run folder's name from what distinguishes it: ``vae-latent_dim=2-beta=4``."""
    parts = [base] + [f"{k}={v}" for k, v in sorted((settings or {}).items())]
    if seed:
        parts.append(f"seed={seed}")
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", "-".join(parts))


RUN_NAME = re.compile(r"[A-Za-z0-9_=,+-][A-Za-z0-9_.=,+-]*")


def check_run_name(name: str) -> str:
    """``name`` if it is one plain folder name (letters, digits, _ . = , + -, not starting
    with a dot): run folders stay under runs/; ``ValueError`` otherwise."""
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name) or len(name) > 200:
        raise ValueError(f"a run is a folder name under runs/ (letters, digits, _ . = , + -, "
                         f"not starting with a dot, at most 200 characters), got {name!r}")
    return name


def run_folder(name: str) -> Path:
    """runs/<name>/ for a plain folder name (``check_run_name``)."""
    return RUNS / check_run_name(name)


def file_config(model_path) -> Optional[ModelConfig]:
    """The config saved in a model file, or None when there is no readable file."""
    try:
        values, _ = read_metadata(model_path)
        return ModelConfig.from_dict(values)
    except (OSError, ValueError, TypeError):
        return None


def shown_path(path) -> str:
    """A path as printed and recorded: relative to the repository when inside it."""
    path = Path(path)
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def file_digest(path) -> str:
    """SHA-256 of a file: ties a fitted sampler to the exact model file whose codes it fits."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
