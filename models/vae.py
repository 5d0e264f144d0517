"""The variational auto-encoder family: a diagonal Gaussian q(z|x), the prior N(0, I), and the
loss -ELBO = -E_q log p(x|z) + beta KL(q(z|x) || N(0, I)).

The KL is analytic (``tfd.kl_divergence`` of two diagonal Gaussians, in
``priors.StandardNormalPrior``, which also draws generation's codes): exact, and no Monte Carlo
noise in the gradient or in the logged value. The reconstruction term uses one sample of q.
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from .generative import GenerativeModel
from .priors import StandardNormalPrior

tfd = tfp.distributions
tfpl = tfp.layers

POSTERIOR_MIN_SCALE = 1e-4


def diagonal_normal(params, latent_dim: int, event_ndims: int = 2) -> tfd.Distribution:
    """q(z|x) from latent parameters (..., C, 2 d): loc, softplus scale; event shape (C, d)
    (``event_ndims`` = 1: parameters (..., 2 d), event shape (d,))."""
    scale = tf.nn.softplus(params[..., latent_dim:]) + POSTERIOR_MIN_SCALE
    return tfd.Independent(tfd.Normal(params[..., :latent_dim], scale), event_ndims)


@tf_keras.saving.register_keras_serializable(package="models")
class LatentNormal(tfpl.DistributionLambda):
    """(N, C, 2 d) parameters -> q(z|x), a layer whose config is ``latent_dim`` only (a
    ``DistributionLambda`` config would pickle its function)."""

    def __init__(self, latent_dim: int, **kwargs):
        # As a tensor (Keras' view of the layer's output) it is the mean: the default, a sample
        # without a seed, would add a stateful random op to every graph, which a training
        # under tf.distribute warns about; the model draws its own seeded samples.
        kwargs.setdefault("convert_to_tensor_fn", tfd.Distribution.mean)
        super().__init__(lambda params: diagonal_normal(params, latent_dim), **kwargs)
        self.latent_dim = int(latent_dim)

    def get_config(self):
        return {**tf_keras.layers.Layer.get_config(self), "latent_dim": self.latent_dim}


@tf_keras.saving.register_keras_serializable(package="models")
class VAE(GenerativeModel):
    kind = "vae"
    prior_description = "standard normal N(0, I) (the prior)"
    latent_params_per_dim = 2  # loc and scale per latent dimension
    default_sampler = "standard"  # the prior N(0, I)

    def latent_layer(self):
        return LatentNormal(self.config.latent_dim, name="q_z_given_x")

    def draw_code(self, latent, seed=None):
        return latent.sample(seed=seed)

    def code_means(self, latent):
        return latent.mean()

    def make_prior(self):
        return StandardNormalPrior(self.config.latent_dim)

    def posterior(self, params) -> tfd.Distribution:
        """q(z|x) from latent parameters (..., C, 2 d)."""
        return diagonal_normal(params, self.config.latent_dim)

    def code_distribution_from_params(self, params):
        posterior = diagonal_normal(params[..., tf.newaxis, :], self.config.latent_dim)
        return posterior.mean()[..., 0, :], posterior.stddev()[..., 0, :]
