"""A family's prior as one object: p(z) for the loss's divergence and the codes generation
draws (TFP's ``examples/vae.py``: the prior is one object used by the KL and by sampling).

    prior = model.z_prior                        # made once by the family (``make_prior``)
    prior.distribution(channels=1)               # p(z), event shape (channels, d), or None
    prior.kl(latent, z)                          # (N,) nats, the term the loss weighs by beta
    prior.sample(count, seed=0)                  # (count, d) float32 codes of one channel
    prior.state_variables()                      # variables beyond the subnets (saved in files)

A colour model's channels draw their codes independently from the same prior. A family whose
prior learns (the flow prior, the CVAE's class prior) subclasses ``LatentPrior`` in its own
module; its variables stay attributes of the model too, under the names its files use.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .checks import check_count, check_seed

tfd = tfp.distributions


def standard_normal_codes(count: int, latent_dim: int, seed: int = 0) -> np.ndarray:
    """(count, d) float32 draws of N(0, I), the generator of ``samplers.StandardNormal``:
    ``np.random.default_rng(seed).standard_normal``."""
    count, seed = check_count("count", count, low=0), check_seed(seed)
    return np.random.default_rng(seed).standard_normal((count, latent_dim)).astype(np.float32)


class LatentPrior:
    """The interface, and the prior-less family's object (the AE): no p(z), no divergence, and
    generation's default codes from N(0, I) (an AE's codes rarely match it: give
    ``generate_images`` a sampler fitted to them)."""

    def __init__(self, latent_dim: int):
        self.latent_dim = int(latent_dim)

    def distribution(self, channels: int) -> Optional[tfd.Distribution]:
        """p(z) of one image of ``channels`` channels, event shape (channels, d); None when the
        family has no prior."""
        return None

    def kl(self, latent, z):
        """(N,) nats: the divergence from the prior of the encoder's output ``latent`` at the
        codes ``z`` drawn from it (N, C, d), or samples (K, N, C, d) for a Monte Carlo mean."""
        return tf.zeros(tf.shape(z)[-3:-2])

    def sample(self, count: int, seed: int = 0) -> np.ndarray:
        """(count, d) float32 codes of one channel, a function of ``seed``."""
        return standard_normal_codes(count, self.latent_dim, seed)

    def state_variables(self) -> list:
        """The variables the prior learns or fits (beyond the encoder and decoder subnets), in
        the order model files store them."""
        return []


class StandardNormalPrior(LatentPrior):
    """p(z) = N(0, I); the KL of a diagonal Gaussian q(z|x) from it is analytic (exact, and no
    Monte Carlo noise in the gradient or in the logged value)."""

    def distribution(self, channels: int) -> tfd.Distribution:
        shape = (channels, self.latent_dim)
        return tfd.Independent(tfd.Normal(tf.zeros(shape), tf.ones(shape)), 2)

    def kl(self, latent, z):
        return tfd.kl_divergence(latent, self.distribution(latent.event_shape[0]))
