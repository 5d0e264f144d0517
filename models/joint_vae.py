"""The joint-channel VAE: one encoder and one decoder that see every channel of an image
together, beside the factorised colour VAE (the mono subnet on R, G and B, whose channels are
independent by construction). The stacked-MNIST mode-collapse protocol asks whether one such
network covers the 1,000 digit triples.

    vae = build_model(ModelConfig(kind="joint_vae", channels=3, latent_dim=32, hidden_units=0))
    fit_model(vae, x_train, x_val, epochs=10)
    images = vae.generate_images(26_000, seed=0)     # (N, 28, 28, 3) in [0, 1]

q(z | x): a diagonal Normal over one latent of ``latent_dim`` for the whole image, from the
mono encoder's network reading all C channels; p(x | z): the config's head over (28, 28, C),
from the mono decoder's network emitting C times the head's parameters per pixel; p(z) =
N(0, I). Loss per image, in nats: -log p(x | z) + beta * KL(q(z | x) || N(0, I)) (the negative
ELBO at beta = 1), one reparameterised z per image drawn from the stateless step seed.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from .batching import in_seeded_batches
from .checks import check_images, check_seed
from .config import ModelConfig
from .heads import make_head
from .networks import mono_decoder, mono_encoder
from .vae import diagonal_normal
from .whole_image import WholeImageModel

tfd = tfp.distributions


@tf_keras.saving.register_keras_serializable(package="models")
class JointVAE(WholeImageModel):
    kind = "joint_vae"
    tracked = ("loss", "reconstruction", "kl")

    def __init__(self, config: ModelConfig, metadata: Optional[dict] = None, **kwargs):
        super().__init__(config, metadata=metadata, **kwargs)
        self.head = make_head(config)
        self.encoder = mono_encoder(config, 2, channels=config.channels)
        self.decoder = mono_decoder(config, config.channels * self.head.params_per_pixel)
        self.built = True

    def networks(self) -> list:
        return [self.encoder, self.decoder]

    def posterior(self, x, training: bool = False) -> tfd.Distribution:
        """q(z | x), event shape (latent_dim,), for images x (B, 28, 28, C)."""
        return diagonal_normal(self.encoder(x, training=training), self.config.latent_dim,
                               event_ndims=1)

    def pixel_distribution(self, z, training: bool = False) -> tfd.Distribution:
        """p(x | z), event shape (28, 28, C), for codes z (B, latent_dim)."""
        params = self.decoder(z, training=training)
        shape = tf.concat([tf.shape(params)[:3], [self.config.channels, -1]], 0)
        return self.head.distribution(tf.reshape(params, shape))

    def loss_terms(self, x, training: bool, seed):
        """``(reconstruction, kl)``, each (B,) nats: -log p(x | z) at one z ~ q(z | x)
        (drawn with the stateless ``seed``) and KL(q(z | x) || N(0, I))."""
        x = tf.convert_to_tensor(x, tf.float32)
        q = self.posterior(x, training)
        z = q.sample(seed=seed)
        reconstruction = -self.pixel_distribution(z, training).log_prob(self.head.targets(x))
        prior = tfd.Independent(tfd.Normal(tf.zeros_like(z), tf.ones_like(z)), 1)
        return reconstruction, tfd.kl_divergence(q, prior)

    def _record(self, reconstruction, kl):
        loss = reconstruction + self.config.beta * kl
        for name, value in (("loss", loss), ("reconstruction", reconstruction), ("kl", kl)):
            self.trackers[name].update_state(value)
        return tf.nn.compute_average_loss(loss)  # per replica: the global batch's mean

    def train_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        with tf.GradientTape() as tape:
            loss = self._record(*self.loss_terms(x, True, self._step_seed()))
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return self._reported()

    def test_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        self._record(*self.loss_terms(x, False, tf.constant([0, 0])))
        return self._reported()

    def call(self, x, training=False):
        return self.pixel_distribution(self.posterior(x, training).mean(), training)

    @tf.function(reduce_retracing=True)
    def _reconstructed(self, x, how: str, seed):
        return self.images_from_codes(self.posterior(x).mean(), how, seed)

    def reconstruct_images(self, x, how: str = "mean", seed: int = 0,
                           batch_size: int = 5000, labels=None) -> np.ndarray:
        """decode(encode(x)) with the posterior mean as code; (N, 28, 28, C) in [0, 1]."""
        self.check_labels(labels, len(x))
        x = check_images(x, self.config.channels, "x")
        return in_seeded_batches(self._reconstructed, x, how, check_seed(seed), batch_size)

    def images_from_codes(self, z, how: str = "mean", seed=None):
        """The decoded distribution's mean, mode or a sample (drawn with ``seed``)."""
        return self.head.image(self.pixel_distribution(z), how, seed)
