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
from .checks import check_count, check_seed
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


@tf_keras.saving.register_keras_serializable(package="models")
class FlowPriorVAE(VAE):
    kind = "flowprior_vae"
    prior_description = "the flow prior learned with the model (u ~ N(0, I) pushed through it)"

    def __init__(self, config, metadata=None, **kwargs):
        super().__init__(config, metadata=metadata, **kwargs)
        d = config.latent_dim
        self.prior_networks = [
            tfb.AutoregressiveNetwork(params=2, hidden_units=[PRIOR_HIDDEN_UNITS] * 2,
                                      activation="relu", name=f"prior_made_{i}")
            for i in range(PRIOR_LAYERS)]
        bijectors = []
        for network in self.prior_networks:
            bijectors += [tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=_bounded(network)),
                          tfb.Permute(list(reversed(range(d))))]
        self.prior_bijector = tfb.Chain(bijectors[:-1])
        self.prior_bijector.inverse(tf.zeros((1, d)))  # builds the networks' weights

    def latent_prior(self, channels=None):
        shape = (channels or self.config.channels, self.config.latent_dim)
        base = tfd.MultivariateNormalDiag(tf.zeros(shape))  # batch (C,), event (d,)
        return tfd.Independent(tfd.TransformedDistribution(base, self.prior_bijector), 1)

    def kl_divergence(self, latent, z):
        log_ratio = latent.log_prob(z) - self.latent_prior(latent.event_shape[0]).log_prob(z)
        # One value per image: z (N, C, d) gives (N,); samples (K, N, C, d) their mean (N,).
        return tf.reduce_mean(tf.reshape(log_ratio, [-1, tf.shape(log_ratio)[-1]]), axis=0)

    def prior_weights(self) -> list:
        return [w for network in self.prior_networks for w in network.get_weights()]

    def network_weights(self) -> list:
        return super().network_weights() + self.prior_weights()

    def set_network_weights(self, weights: list) -> None:
        split = len(weights) - len(self.prior_weights())
        super().set_network_weights(weights[:split])
        for network in self.prior_networks:
            count = len(network.weights)
            network.set_weights(weights[split:split + count])
            split += count

    @tf.function(reduce_retracing=True)
    def _push_forward(self, u):
        return self.prior_bijector.forward(u)

    def prior_codes(self, count: int, seed: int = 0) -> np.ndarray:
        """(count, d): u ~ N(0, I) (the generator of ``StandardNormal``), through the flow."""
        count, seed = check_count("count", count, low=0), check_seed(seed)
        u = np.random.default_rng(seed).standard_normal((count, self.config.latent_dim))
        if count == 0:
            return u.astype(np.float32)
        return in_batches(self._push_forward, u, 10_000)
