"""ModelConfig: everything needed to rebuild a model; saved beside its weights."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Optional, Tuple

KINDS = ("ae", "vae")
HEADS = ("bernoulli", "beta", "categorical", "normal")


@dataclass(frozen=True)
class ModelConfig:
    """One AE or VAE.

    kind: "ae" (deterministic code) or "vae" (Gaussian q(z|x), N(0, I) prior).
    latent_dim: size of one channel's latent; a colour model's latent is (3, latent_dim).
    channels: 1 (mono) or 3 (colour = the mono subnet applied to R, G and B, shared weights).
    head: output distribution p(x|z) per pixel: bernoulli | beta | categorical | normal.
    categorical_bins: pixel-value bins of the categorical head.
    normal_scale: fixed standard deviation of the normal head; None learns it per pixel.
    filters: channels of the two stride-2 convolutions (the decoder mirrors them).
    hidden_units: width of the dense layer between the convolutions and the latent, in the
        encoder and the decoder; 0 connects them directly (a much smaller model).
    block_convs: extra stride-1 3x3 convolutions at each resolution (14 x 14 and 28 x 28 in
        the decoder, their mirror in the encoder); 0 is the plain two-convolution network.
    beta: weight of the KL term in the VAE loss (1 = the ELBO).
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

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}.")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}.")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels!r}.")
        if int(self.latent_dim) < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {self.latent_dim!r}.")
        if int(self.categorical_bins) < 2:
            raise ValueError(f"categorical_bins must be >= 2, got {self.categorical_bins!r}.")
        if self.normal_scale is not None and not float(self.normal_scale) > 0:
            raise ValueError(f"normal_scale must be positive or None, got {self.normal_scale!r}.")
        if len(self.filters) != 2 or min(self.filters) < 1:
            raise ValueError(f"filters must be two positive integers, got {self.filters!r}.")
        if int(self.hidden_units) < 0:
            raise ValueError(f"hidden_units must be >= 0, got {self.hidden_units!r}.")
        if int(self.block_convs) < 0:
            raise ValueError(f"block_convs must be >= 0, got {self.block_convs!r}.")
        if not float(self.beta) >= 0:
            raise ValueError(f"beta must be >= 0, got {self.beta!r}.")
        object.__setattr__(self, "filters", tuple(int(f) for f in self.filters))

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        values = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"Unknown ModelConfig fields {sorted(unknown)}.")
        return cls(**values)
