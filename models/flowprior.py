"""The VAE with a learned prior: p(z) = N(0, I) pushed through a masked autoregressive flow,
trained with the encoder and decoder on the ELBO (Xu et al. 2019; the flow-prior VAEs compared
by Tomczak and Welling 2018). One term changes: KL(q(z|x) || p(z)) has no closed form, so the
loss takes its one-sample Monte Carlo estimate log q(z|x) - log p(z) at the z the
reconstruction term draws (unbiased, as the reconstruction term is).

The flow evaluates log p(z) in one network pass per layer (the MADE direction, what training
needs); generation draws u ~ N(0, I) and inverts the autoregression, d passes per layer, for
the few thousand codes a figure needs. No encoder and no second fitting stage: the ex-post flow
(``samplers.MaskedAutoregressiveFlow``) fits a density to a finished model's codes, this prior
moves towards the codes while the codes move towards it.

A colour model's channels draw their latents independently from the same flow, like the VAE's.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from .batching import in_batches
from .priors import LatentPrior, standard_normal_codes
from .vae import VAE

tfd = tfp.distributions
tfb = tfp.bijectors

PRIOR_LAYERS = 4  # MADE bijectors, coordinates reversed between them
PRIOR_HIDDEN_UNITS = 64  # two hidden layers each
MAX_LOG_SCALE = 3.0  # each layer scales a coordinate by at most e^3 either way


def _bounded(network):
    """A MADE network's (shift, log scale), the log scale softly bounded by MAX_LOG_SCALE: the
    prior trains with the encoder, and one unbounded exp() can turn a step's loss into NaN."""

    def shift_and_log_scale(x):
        shift, log_scale = tf.unstack(network(x), axis=-1)
        return shift, MAX_LOG_SCALE * tf.tanh(log_scale / MAX_LOG_SCALE)

    return shift_and_log_scale


class FlowPrior(LatentPrior):
    """p(z) = N(0, I) pushed through ``PRIOR_LAYERS`` MADE bijectors (coordinates reversed
    between them); the KL is the Monte Carlo estimate at the drawn codes; ``sample`` draws
    u ~ N(0, I) (the generator of ``StandardNormal``) and pushes it through the flow."""

    def __init__(self, latent_dim: int):
        super().__init__(latent_dim)
        self.networks = [
            tfb.AutoregressiveNetwork(params=2, hidden_units=[PRIOR_HIDDEN_UNITS] * 2,
                                      activation="relu", name=f"prior_made_{i}")
            for i in range(PRIOR_LAYERS)]
        bijectors = []
        for network in self.networks:
            bijectors += [tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=_bounded(network)),
                          tfb.Permute(list(reversed(range(latent_dim))))]
        self.bijector = tfb.Chain(bijectors[:-1])
        self.bijector.inverse(tf.zeros((1, latent_dim)))  # builds the networks' weights

    def distribution(self, channels: int):
        base = tfd.MultivariateNormalDiag(tf.zeros((channels, self.latent_dim)))  # batch (C,)
        return tfd.Independent(tfd.TransformedDistribution(base, self.bijector), 1)

    def kl(self, latent, z):
        log_ratio = latent.log_prob(z) - self.distribution(latent.event_shape[0]).log_prob(z)
        # One value per image: z (N, C, d) gives (N,); samples (K, N, C, d) their mean (N,).
        return tf.reduce_mean(tf.reshape(log_ratio, [-1, tf.shape(log_ratio)[-1]]), axis=0)

    @tf.function(reduce_retracing=True)
    def _push_forward(self, u):
        return self.bijector.forward(u)

    def sample(self, count: int, seed: int = 0) -> np.ndarray:
        """(count, d): u ~ N(0, I) (the generator of ``StandardNormal``), through the flow."""
        u = standard_normal_codes(count, self.latent_dim, seed)
        if len(u) == 0:
            return u
        return in_batches(self._push_forward, u, 10_000)

    def state_variables(self) -> list:
        return [variable for network in self.networks for variable in network.weights]


@tf_keras.saving.register_keras_serializable(package="models")
class FlowPriorVAE(VAE):
    kind = "flowprior_vae"
    prior_description = "the flow prior learned with the model (u ~ N(0, I) pushed through it)"

    def __init__(self, config, metadata=None, **kwargs):
        super().__init__(config, metadata=metadata, **kwargs)
        # The flow's networks as the model's own attributes too: Keras trains them with the
        # encoder and decoder, and model files store their weights under this name.
        self.prior_networks = self.z_prior.networks
        self.prior_bijector = self.z_prior.bijector

    def make_prior(self):
        return FlowPrior(self.config.latent_dim)

    def prior_weights(self) -> list:
        """The flow's weights (the end of ``network_weights``)."""
        return [variable.numpy() for variable in self.extra_state_variables()]
