"""A GAN: a DCGAN-style generator and discriminator trained against each other, with
PacGAN's packing (``pack`` samples per discriminator verdict).

    gan = build_model(ModelConfig(kind="gan", latent_dim=64, channels=3, pack=2), 2e-4)
    fit_model(gan, x_train, epochs=20)
    images = gan.generate_images(26_000, seed=0)     # (N, 28, 28, 3) in [0, 1]

It has no encoder and no likelihood: it answers only ``generate_images(count, seed,
labels=None)``, the interface the generation rows and ``evaluation`` take. Losses: the
discriminator's binary cross-entropy on real (1) and generated (0) packs, the generator's
non-saturating loss (its packs called real); both networks step together on every batch,
with Adam (beta_1 = 0.5) each. The generator's noise is a function of (``noise_seed``, step).
With ``config.generator_average`` = decay > 0 a third network, the exponential moving average
of the generator's weights (decay per step; Yazici et al., "The unusual effectiveness of
averaging in GAN training", ICLR 2019), follows the training and generates the images.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras

from .checks import check_count, check_seed, family_model_name
from .config import ModelConfig
from .gan_networks import gan_discriminator, gan_generator, pack_images


@tf_keras.saving.register_keras_serializable(package="models")
class GAN(tf_keras.Model):
    kind = "gan"
    conditional = False

    def __init__(self, config: ModelConfig, metadata: Optional[dict] = None, **kwargs):
        kwargs.setdefault("name", family_model_name(type(self), config))
        super().__init__(**kwargs)
        self.config = config
        self.metadata = dict(metadata or {})
        self.generator = gan_generator(config.latent_dim, config.channels, config.filters)
        self.discriminator = gan_discriminator(config.channels, config.pack, config.filters)
        self.average_generator = None
        if config.generator_average:
            self.average_generator = gan_generator(config.latent_dim, config.channels,
                                                   config.filters)
            self.average_generator.set_weights(self.generator.get_weights())
        self.trackers = {name: tf_keras.metrics.Mean(name=name)
                         for name in ("discriminator_loss", "generator_loss",
                                      "real_scored_real")}
        self.noise_seed = 0
        self.built = True

    def compile(self, optimizer=None, **kwargs):
        """Adam with beta_1 = 0.5 for each network (the generator's is ``optimizer``), at the
        learning rate of ``optimizer`` (default 2e-4)."""
        rate = 2e-4 if optimizer is None else float(
            tf_keras.backend.get_value(optimizer.learning_rate))
        super().compile(optimizer=tf_keras.optimizers.Adam(rate, beta_1=0.5), **kwargs)
        self.discriminator_optimizer = tf_keras.optimizers.Adam(rate, beta_1=0.5)

    def check_labels(self, labels, count: int, channels: Optional[int] = None):
        """A GAN is not conditional: ``labels`` must be None."""
        if labels is not None:
            raise ValueError("labels were given to a GAN, which is not conditional.")
        return None

    check_fit_labels = check_labels  # what fit_model asks (no labels in training either)

    def after_training(self, x_train, labels=None, seed: int = 0) -> None:
        self.check_labels(labels, len(x_train))

    @property
    def channels(self) -> int:
        return self.config.channels

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _noise(self, count, seed):
        return tf.random.stateless_normal(tf.stack([count, self.config.latent_dim]), seed=seed)

    def _whole_packs(self, data):
        """The real images of a Keras batch, cut to a multiple of ``pack``."""
        real = data[0] if isinstance(data, (tuple, list)) else data
        return real[:tf.shape(real)[0] // self.config.pack * self.config.pack]

    def _pack_losses(self, real, fake, training: bool):
        """``(discriminator loss, generator loss)``: cross-entropy of the discriminator's
        verdicts on the packs (real = 1, fake = 0; the generator wants its packs called real);
        the share of real packs called real is recorded."""
        cross_entropy = tf_keras.losses.BinaryCrossentropy(from_logits=True)
        real_logits = self.discriminator(pack_images(real, self.config.pack), training=training)
        fake_logits = self.discriminator(pack_images(fake, self.config.pack), training=training)
        d_loss = (cross_entropy(tf.ones_like(real_logits), real_logits)
                  + cross_entropy(tf.zeros_like(fake_logits), fake_logits))
        g_loss = cross_entropy(tf.ones_like(fake_logits), fake_logits)
        self.trackers["discriminator_loss"].update_state(d_loss)
        self.trackers["generator_loss"].update_state(g_loss)
        self.trackers["real_scored_real"].update_state(tf.cast(real_logits > 0, tf.float32))
        return d_loss, g_loss

    def train_step(self, data):
        real = self._whole_packs(data)
        seed = tf.stack([tf.cast(self.noise_seed, tf.int32),
                         tf.cast(self.optimizer.iterations, tf.int32)])
        z = self._noise(tf.shape(real)[0], seed)
        with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
            d_loss, g_loss = self._pack_losses(real, self.generator(z, training=True), True)
        d_variables = self.discriminator.trainable_variables
        g_variables = self.generator.trainable_variables
        self.discriminator_optimizer.apply_gradients(
            zip(d_tape.gradient(d_loss, d_variables), d_variables))
        self.optimizer.apply_gradients(zip(g_tape.gradient(g_loss, g_variables), g_variables))
        if self.average_generator is not None:
            decay = self.config.generator_average
            for average, current in zip(self.average_generator.weights, self.generator.weights):
                average.assign(decay * average + (1.0 - decay) * current)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def test_step(self, data):
        """The two losses on held-out real images and as many fakes (fixed noise), no step."""
        real = self._whole_packs(data)
        fake = self.generator(self._noise(tf.shape(real)[0], tf.constant([0, 0])),
                              training=False)
        self._pack_losses(real, fake, False)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def call(self, z, training=False):
        return self.generator(z, training=training)

    @property
    def generating_network(self) -> tf_keras.Model:
        """The network that generates: the averaged generator where there is one."""
        return self.average_generator or self.generator

    @tf.function(reduce_retracing=True)
    def _images(self, z):
        return self.generating_network(z, training=False)

    def generate_images(self, count: int, how: str = "mean", seed: int = 0, sampler=None,
                        labels=None, batch_size: int = 5000) -> np.ndarray:
        """``count`` images (count, 28, 28, C) in [0, 1] from z ~ N(0, I) (or ``sampler``),
        a function of ``seed``. ``how`` is accepted for the generators' common signature:
        a GAN's generator gives one image per code."""
        self.check_labels(labels, count)
        count, seed = check_count("count", count), check_seed(seed)
        if sampler is not None:
            z = sampler.sample(count, seed=seed).astype(np.float32)
        else:
            z = np.random.default_rng(seed).standard_normal(
                (count, self.config.latent_dim)).astype(np.float32)
        return np.concatenate([self._images(tf.constant(z[i:i + batch_size])).numpy()
                               for i in range(0, count, batch_size)])

    def get_config(self):
        return {"config": self.config.to_dict(), "metadata": self.metadata}

    @classmethod
    def from_config(cls, config):
        return cls(ModelConfig.from_dict(config["config"]), metadata=config.get("metadata"))

    def _networks(self) -> list:
        return [net for net in (self.generator, self.discriminator, self.average_generator)
                if net is not None]

    def network_weights(self) -> list:
        """The generator's weights, the discriminator's, then the averaged generator's."""
        return [w for net in self._networks() for w in net.get_weights()]

    def set_network_weights(self, weights: list) -> None:
        sizes = [len(net.weights) for net in self._networks()]
        if len(weights) != sum(sizes):
            raise ValueError(f"a GAN holds {sum(sizes)} weight arrays, got {len(weights)}.")
        start = 0
        for net, size in zip(self._networks(), sizes):
            net.set_weights(weights[start:start + size])
            start += size
