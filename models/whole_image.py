"""The base of the families whose networks see every channel of an image together (the GAN,
the joint-channel VAE), unlike the families on ``generative.GenerativeModel``, whose colour
model is the mono subnet on R, G and B. What they share: no class labels, generation from
N(0, I) codes (or a fitted sampler's), the training metrics, and the file plumbing over a
list of networks. A family sets ``kind`` and ``tracked`` (its metric names) and gives
``networks()`` (every network whose weights the file holds, in file order) and
``images_from_codes(z, how, seed)``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from .batching import in_seeded_batches
from .checks import check_count, check_seed
from .config import ModelConfig
from .family_base import FamilyModel
from .trackers import trackers


class WholeImageModel(FamilyModel):
    # default_sampler stays "standard": no encoder, so no sampler can be fitted to its codes.
    tracked = ()  # the names of the metrics the training reports

    def __init__(self, config: ModelConfig, metadata: Optional[dict] = None, **kwargs):
        super().__init__(config, metadata, **kwargs)
        self.trackers = trackers(self.tracked)

    # -- what a family gives ---------------------------------------------------------------------
    def images_from_codes(self, z, how: str = "mean", seed=None):
        """Codes (B, latent_dim) -> images (B, 28, 28, C) in [0, 1]."""
        raise NotImplementedError

    # -- labels: none ----------------------------------------------------------------------------
    def check_labels(self, labels, count: int, channels: Optional[int] = None):
        """The family is not conditional: ``labels`` must be None."""
        if labels is not None:
            raise ValueError(f"labels were given to a {self.kind} model, which is not "
                             "conditional.")
        return None

    check_fit_labels = check_labels  # what fit_model asks (no labels in training either)

    def after_training(self, x_train, labels=None, seed: int = 0) -> None:
        self.check_labels(labels, len(x_train))

    @property
    def channels(self) -> int:
        return self.config.channels

    def _reported(self) -> dict:
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    # -- generation --------------------------------------------------------------------------
    @tf.function(reduce_retracing=True)
    def _images(self, z, how: str, seed):
        return self.images_from_codes(z, how, seed)

    def generate_images(self, count: int, how: str = "mean", seed: int = 0, sampler=None,
                        labels=None, batch_size: int = 5000) -> np.ndarray:
        """``count`` images (count, 28, 28, C) in [0, 1] from z ~ N(0, I) (or ``sampler``),
        a function of ``seed``; ``how``: the decoded distribution's mean, mode or a sample
        (a GAN's generator gives one image per code)."""
        self.check_labels(labels, count)
        z = self._codes(count, seed, sampler)
        return in_seeded_batches(self._images, z, how, seed, batch_size)

    def _codes(self, count: int, seed: int, sampler=None) -> np.ndarray:
        """``count`` codes (count, latent_dim) from N(0, I) or ``sampler``, a function of
        ``seed``."""
        count, seed = check_count("count", count), check_seed(seed)
        if sampler is not None:
            return sampler.sample(count, seed=seed).astype(np.float32)
        return np.random.default_rng(seed).standard_normal(
            (count, self.config.latent_dim)).astype(np.float32)
