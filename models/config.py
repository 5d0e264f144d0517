"""ModelConfig: everything needed to rebuild a model; saved beside its weights."""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

from keras_files import check_limit

HEADS = ("bernoulli", "beta", "categorical", "normal", "continuous_bernoulli")
DENSE_ACTIVATIONS = ("relu", "elu")
NEIGHBOUR_KINDS = ("vae", "ae", "m2")  # the families that can train on neighbour pairs
NEIGHBOUR_SCALE = 0.3  # the neighbour term's default kernel width (ModelConfig.neighbour_scale)

# The family registry ``kind`` is checked against. It lives above this module (the families
# import the config), so ``models.families`` hands it down with ``register_families``.
_families: Mapping[str, type] = {}


def register_families(families: Mapping[str, type]) -> None:
    """Check every config's ``kind`` against ``families`` (the registry ``FAMILIES``, kept by
    reference: a family added to it later is known at once)."""
    global _families
    _families = families


@dataclass(frozen=True)
class ModelConfig:
    """One model of any family.

    kind: the model family, a key of ``models.families.FAMILIES``: "ae" (deterministic
        code), "vae" (Gaussian q(z|x), N(0, I) prior), "cvae" (the VAE conditioned on the
        digit labels), "flowprior_vae" (a prior learned with it), "m2" (the CVAE with a
        classifier q(y|x), trained semi-supervised), "gan" (a generator and a
        discriminator; it uses latent_dim, channels, filters, block_convs and pack only),
        "acgan" (the GAN conditioned on the digit, with an auxiliary classifier; mono) or
        "joint_vae" (a VAE whose one encoder and one decoder see all channels together).
    latent_dim: size of one channel's latent; a colour model's latent is (3, latent_dim)
        (a GAN's and a joint-channel VAE's: one latent for the whole image).
    channels: 1 (mono) or 3 (colour = the mono subnet applied to R, G and B, shared weights;
        a GAN's and a joint-channel VAE's networks see the channels together).
    head: output distribution p(x|z) per pixel: bernoulli | beta | categorical | normal |
        continuous_bernoulli.
    categorical_bins: pixel-value bins of the categorical head.
    normal_scale: fixed standard deviation of the normal head; None learns it per pixel.
    filters: channels of the two stride-2 convolutions (the decoder mirrors them).
    hidden_units: width of the dense layer between the convolutions and the latent, in the
        encoder and the decoder; 0 connects them directly (a much smaller model).
    block_convs: extra stride-1 3x3 convolutions at each resolution (14 x 14 and 28 x 28 in
        the decoder, their mirror in the encoder; a GAN's at 7 x 7 and 14 x 14 in both its
        networks); 0 is the plain two-convolution network.
    beta: weight of the KL term in the VAE loss (1 = the ELBO).
    dense_activation: activation of the dense layers (the hidden layers and the decoder's
        layer into the 7 x 7 grid): relu | elu. ELU has a gradient everywhere, so none of its
        units can die (a 2-d code decoded through ReLU units loses most of them).
    pack: the GAN's samples per discriminator verdict (PacGAN; 1 = a plain GAN).
    classifier_weight: the M2 loss's weight of the classifier's cross-entropy on a labelled
        image (Kingma et al.'s alpha, per labelled image in a batch); the AC-GAN's of its
        auxiliary classifier's (on real images for the discriminator, on fakes for the
        generator).
    consistency_weight: the M2 loss's weight of its pseudo-labels: an unlabelled image the
        classifier is sure of (``m2.PSEUDO_LABEL_CONFIDENCE``) trains its answer for a shifted,
        rotated and scaled copy with a square cut out towards that label (0: none).
    bayes_weight: the CVAE loss's weight of its own Bayes rule's cross-entropy: each training
        image's one-code ELBO under all ten digits, softmaxed (a uniform class prior), against
        its digit (the ELBO at beta 1, whatever ``beta``). A discriminative term for the
        generative classifier (``models.conditional``); a step decodes every image ten times.
        0: the conditional ELBO alone. Mono training only (a colour copy evaluates the ELBO).
    neighbour_weight: the weight of a VAE's or AE's neighbour term (``models.neighbours``):
        it trains on pairs of each image and one of its ``neighbours`` nearest training images,
        and its codes must find each image's partner among the batch's other codes (a
        Student-t kernel of width ``neighbour_scale``); 0: no pairs, no term. An M2 with
        pseudo-labels (``consistency_weight`` > 0) trains on the same pairs, and an unlabelled
        image's strong view also learns its partner's label, given or sure (``models.m2``).
    classifier_filters, classifier_hidden_units, classifier_block_convs: M2's classifier's
        network where it differs from the encoder's (None: the encoder's ``filters``,
        ``hidden_units`` and ``block_convs``).

    Every size is bounded by ``keras_files.LIMITS``, and so is the parameter count the sizes
    imply (``parameter_count``): a config read from a file is checked before anything is built.
    """

    kind: str = "vae"
    latent_dim: int = 16
    channels: int = 1
    head: str = "bernoulli"
    categorical_bins: int = 16
    normal_scale: Optional[float] = None
    filters: Tuple[int, int] = (32, 64)
    hidden_units: int = 256
    block_convs: int = 0
    beta: float = 1.0
    dense_activation: str = "relu"
    pack: int = 1
    classifier_weight: float = 1.0
    consistency_weight: float = 0.0
    bayes_weight: float = 0.0
    neighbour_weight: float = 0.0
    neighbour_scale: float = NEIGHBOUR_SCALE
    neighbours: int = 10
    classifier_filters: Optional[Tuple[int, int]] = None
    classifier_hidden_units: Optional[int] = None
    classifier_block_convs: Optional[int] = None

    def __post_init__(self):
        if self.kind not in _families:
            raise ValueError(f"kind must be one of {tuple(_families)}, got {self.kind!r}.")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}.")
        for name, low in (("latent_dim", 1), ("channels", 1), ("categorical_bins", 2),
                          ("hidden_units", 0), ("block_convs", 0), ("pack", 1),
                          ("neighbours", 1)):
            object.__setattr__(self, name, _checked_integer(name, getattr(self, name), low))
        if self.dense_activation not in DENSE_ACTIVATIONS:
            raise ValueError(f"dense_activation must be one of {DENSE_ACTIVATIONS}, got "
                             f"{self.dense_activation!r}.")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels!r}.")
        if self.normal_scale is not None and not _positive_number(self.normal_scale):
            raise ValueError(f"normal_scale must be positive or None, got {self.normal_scale!r}.")
        object.__setattr__(self, "filters", _checked_filters("filters", self.filters))
        if self.classifier_filters is not None:
            object.__setattr__(self, "classifier_filters",
                               _checked_filters("classifier_filters", self.classifier_filters))
        for name in ("classifier_hidden_units", "classifier_block_convs"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _checked_integer(name, getattr(self, name), 0))
        for name in ("beta", "classifier_weight", "consistency_weight", "bayes_weight",
                     "neighbour_weight"):
            value = getattr(self, name)
            if not (_positive_number(value) or (value == 0 and not isinstance(value, bool))):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
            object.__setattr__(self, name, float(value))
        if self.bayes_weight and self.kind != "cvae":
            raise ValueError(f"bayes_weight trains a cvae's Bayes rule; a {self.kind!r} model "
                             f"has none (set it to 0).")
        if self.neighbour_weight and self.kind not in NEIGHBOUR_KINDS:
            raise ValueError(f"neighbour_weight trains a {', '.join(NEIGHBOUR_KINDS)} model on "
                             f"pairs of neighbours; a {self.kind!r} model has its own "
                             f"objective (set it to 0).")
        if self.neighbour_weight and self.kind == "m2" and not self.consistency_weight:
            raise ValueError("an m2 model's neighbour_weight weighs its partners' pseudo-labels, "
                             "which need consistency_weight > 0 (set one, or neighbour_weight 0).")
        if not _positive_number(self.neighbour_scale):
            raise ValueError(f"neighbour_scale must be a positive number, got "
                             f"{self.neighbour_scale!r}.")
        object.__setattr__(self, "neighbour_scale", float(self.neighbour_scale))
        if self.neighbour_scale != NEIGHBOUR_SCALE and (self.kind == "m2"
                                                        or not self.neighbour_weight):
            why = ("an m2 model learns its partners' labels instead" if self.kind == "m2"
                   else "this config's neighbour_weight is 0")
            raise ValueError(f"neighbour_scale is the kernel width of a vae's or ae's neighbour "
                             f"term and {why}: {self.neighbour_scale:g} would change nothing "
                             f"(leave it at {NEIGHBOUR_SCALE:g}).")
        for name in ("latent_dim", "hidden_units", "block_convs", "categorical_bins", "pack",
                     "neighbours"):
            check_limit(name, getattr(self, name))
        for name in ("hidden_units", "block_convs"):
            if getattr(self, f"classifier_{name}") is not None:
                check_limit(f"classifier_{name}", getattr(self, f"classifier_{name}"), name)
        for name in ("filters", "classifier_filters"):
            for index, value in enumerate(getattr(self, name) or ()):
                check_limit(f"{name}[{index}]", value, "filters")
        check_limit("the parameter count the config implies", self.parameter_count(),
                    "parameters")

    def parameter_count(self) -> int:
        """An upper bound of the model's parameter count, from the sizes alone (nothing is
        built): the encoder and decoder subnets of ``networks.py`` with a conditional model's
        label input and two latent parameters per dimension, the head's most parameters per
        pixel, and the largest prior state (the CVAE's class Gaussians, 10 d (d + 1), plus a
        learned flow of four MADE networks with two 64-unit layers), and M2's classifier (a
        joint-channel VAE's first and last convolutions see every channel). A GAN's: its
        generator and discriminator (``gan_networks.py``)."""
        (f1, f2), d, h, blocks = self.filters, self.latent_dim, self.hidden_units, self.block_convs
        if self.kind in ("gan", "acgan"):
            c, classes = self.channels, 10 if self.kind == "acgan" else 0
            generator = ((d + classes) * 49 * f2 + 4 * 49 * f2 + 16 * f2 * f1 + 4 * f1
                         + 16 * f1 * c + c)
            discriminator = (16 * c * self.pack * f1 + f1 + 16 * f1 * f2 + f2
                             + (49 * f2 + 1) * (1 + classes))
            # an extra convolution per resolution: 9 maps^2 weights in each network, the
            # generator's batch norm (4 per map) and the discriminator's bias (1 per map)
            extra = blocks * (2 * 9 * (f1 * f1 + f2 * f2) + 5 * (f1 + f2))
            return generator + discriminator + extra
        per_pixel = self.categorical_bins if self.head == "categorical" else 2
        labels = 10

        def conv(inputs, outputs):
            return 9 * inputs * outputs + outputs

        def dense(inputs, outputs):
            return inputs * outputs + outputs

        seen = self.channels if self.kind == "joint_vae" else 1  # channels one network sees
        convolutions = (conv(seen, f1) + conv(f1, f2)
                        + 2 * blocks * (conv(f1, f1) + conv(f2, f2))
                        + conv(f2, f2) + conv(f2, f1) + conv(f1, seen * per_pixel))
        flat = 49 * f2 + labels
        encoder = dense(flat, h) + dense(h, 2 * d) if h else dense(flat, 2 * d)
        decoder = (dense(d + labels, h) + dense(h, 49 * f2) if h
                   else dense(d + labels, 49 * f2))
        prior = 10 * d * (d + 1) + 4 * (dense(d, 64) + dense(64, 64) + dense(64, 2 * d))
        classifier = 0
        if self.kind == "m2":
            (f1, f2), h, blocks = self.classifier_sizes()
            flat = 49 * f2
            classifier = (conv(1, f1) + conv(f1, f2) + blocks * (conv(f1, f1) + conv(f2, f2))
                          + (dense(flat, h) + dense(h, labels) if h else dense(flat, labels)))
        return convolutions + encoder + decoder + prior + classifier

    def classifier_sizes(self) -> Tuple[Tuple[int, int], int, int]:
        """``(filters, hidden_units, block_convs)`` of M2's classifier: its own where set,
        else the encoder's."""
        hidden, blocks = self.classifier_hidden_units, self.classifier_block_convs
        return (self.classifier_filters or self.filters,
                self.hidden_units if hidden is None else hidden,
                self.block_convs if blocks is None else blocks)

    def classifier_network(self) -> "ModelConfig":
        """The config whose encoder network M2's classifier has: this one with
        ``classifier_sizes()`` as the encoder's sizes."""
        own = ("classifier_filters", "classifier_hidden_units", "classifier_block_convs")
        if all(getattr(self, name) is None for name in own):
            return self
        filters, hidden_units, block_convs = self.classifier_sizes()
        return self.replace(filters=filters, hidden_units=hidden_units, block_convs=block_convs,
                            **dict.fromkeys(own))

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain JSON values (the filters as a list), as stored in model files."""
        values = dataclasses.asdict(self)
        for name in ("filters", "classifier_filters"):
            if values[name] is not None:
                values[name] = list(values[name])
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"Unknown ModelConfig fields {sorted(unknown)}; known: "
                             f"{sorted(known)}.")
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        return cls.from_dict(json.loads(text))

    def with_settings(self, settings: dict) -> "ModelConfig":
        """A copy with ``settings`` applied; values given as strings (``--set latent_dim=2``)
        are parsed as JSON where they can be (``2``, ``0.5``, ``[16, 32]``, ``null``)."""
        known = {f.name for f in dataclasses.fields(self)}
        changes = {}
        for key, value in settings.items():
            if key not in known:
                raise ValueError(f"unknown model setting {key!r}; known: {sorted(known)}.")
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    pass  # a plain word such as head=beta
            changes[key] = value
        return self.replace(**changes)


def _checked_integer(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    return int(value)


def _checked_filters(name: str, value) -> Tuple[int, int]:
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(f, numbers.Integral) and not isinstance(f, bool) and f >= 1
                       for f in value)):
        raise ValueError(f"{name} must be two positive integers, got {value!r}.")
    return tuple(int(f) for f in value)


def _positive_number(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)
