"""The generator interface: everything that makes images answers

    generate_images(count, seed=0, labels=None) -> (count, 28, 28, C) in [0, 1]

A model family does so itself (its own prior; a conditional family draws balanced labels when
none are asked for); ``Generator`` pairs a model's decoder with another latent sampler (a
Gaussian or a flow fitted to the codes) and an image kind. A family whose networks see every
channel together (a GAN, the joint-channel VAE; ``models.whole_image``) only needs the method
and a ``channels`` attribute: ``evaluation.generate_and_judge`` and the generation rows take
any of them.
"""
from __future__ import annotations

from typing import Optional


class Generator:
    """``model``'s decoder fed by ``sampler`` (None: the family's own prior); ``how``: the
    image of p(x|z) returned (mean | mode | sample)."""

    def __init__(self, model, sampler=None, how: str = "mean"):
        self.model, self.sampler, self.how = model, sampler, how

    @property
    def channels(self) -> int:
        return self.model.config.channels

    def generate_images(self, count: int, seed: int = 0, labels: Optional[list] = None):
        return self.model.generate_images(count, how=self.how, seed=seed,
                                          sampler=self.sampler, labels=labels)
