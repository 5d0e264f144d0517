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
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf
import tf_keras

from .config import ModelConfig
from .gan_networks import gan_discriminator, gan_generator, pack_images
from .networks import LABEL_CLASSES
from .whole_image import WholeImageModel


class _GeneratorAdam(tf_keras.optimizers.Adam):
    """The generator's Adam. ``Model.fit`` ends by asking the model's optimizer to replace every
    trainable variable by its moving average (where it keeps one); the discriminator's
    variables are not this optimizer's, and keep their trained values."""

    def finalize_variable_values(self, var_list):
        super().finalize_variable_values(
            [v for v in var_list if self._var_key(v) in self._index_dict])


@tf_keras.saving.register_keras_serializable(package="models")
class GAN(WholeImageModel):
    kind = "gan"
    tracked = ("discriminator_loss", "generator_loss", "real_scored_real")

    def __init__(self, config: ModelConfig, metadata: Optional[dict] = None, **kwargs):
        super().__init__(config, metadata=metadata, **kwargs)
        classes = LABEL_CLASSES if self.conditional else 0  # the AC-GAN's networks take labels
        self.generator = gan_generator(config.latent_dim, config.channels, config.filters,
                                       config.block_convs, classes)
        self.discriminator = gan_discriminator(config.channels, config.pack, config.filters,
                                               config.block_convs, classes)
        self.built = True

    def compile(self, optimizer=None, **kwargs):
        """Adam with beta_1 = 0.5 for each network (the generator's is ``optimizer``), at the
        learning rate of ``optimizer`` (default 2e-4). Where ``optimizer`` keeps a moving
        average of the weights (``fit_model(average_weights=...)``), the generator's does: the
        training ends with the generator's average and the discriminator's last weights."""
        rate, average = 2e-4, {}
        if optimizer is not None:
            rate = float(tf_keras.backend.get_value(optimizer.learning_rate))
            if optimizer.use_ema:
                average = {"use_ema": True, "ema_momentum": optimizer.ema_momentum}
        super().compile(optimizer=_GeneratorAdam(rate, beta_1=0.5, **average), **kwargs)
        self.discriminator_optimizer = tf_keras.optimizers.Adam(rate, beta_1=0.5)

    def networks(self) -> list:
        """The generator, then the discriminator."""
        return [self.generator, self.discriminator]

    def step_optimizers(self) -> list:
        """The generator's, then the discriminator's."""
        return [self.optimizer, self.discriminator_optimizer]

    def build_optimizers(self) -> None:
        self.optimizer.build(self.generator.trainable_variables)
        self.discriminator_optimizer.build(self.discriminator.trainable_variables)

    def _noise(self, count, seed):
        return tf.random.stateless_normal(tf.stack([count, self.config.latent_dim]), seed=seed)

    def _whole_packs(self, data):
        """The real images of a Keras batch, cut to a multiple of ``pack``."""
        real = data[0] if isinstance(data, (tuple, list)) else data
        return real[:tf.shape(real)[0] // self.config.pack * self.config.pack]

    def _adversarial_losses(self, real_logits, fake_logits):
        """``(discriminator loss, generator loss)``: cross-entropy of the discriminator's
        verdicts (real = 1, fake = 0; the generator wants its samples called real); the share
        of real inputs called real is recorded."""
        cross_entropy = tf_keras.losses.BinaryCrossentropy(from_logits=True)
        d_loss = (cross_entropy(tf.ones_like(real_logits), real_logits)
                  + cross_entropy(tf.zeros_like(fake_logits), fake_logits))
        g_loss = cross_entropy(tf.ones_like(fake_logits), fake_logits)
        self.trackers["discriminator_loss"].update_state(d_loss)
        self.trackers["generator_loss"].update_state(g_loss)
        self.trackers["real_scored_real"].update_state(tf.cast(real_logits > 0, tf.float32))
        return d_loss, g_loss

    def _pack_losses(self, real, fake, training: bool):
        """The adversarial losses on packs of the real and the generated images."""
        pack = self.config.pack
        return self._adversarial_losses(
            self.discriminator(pack_images(real, pack), training=training),
            self.discriminator(pack_images(fake, pack), training=training))

    def _step_both(self, d_tape, d_loss, g_tape, g_loss) -> None:
        """One optimizer step of each network on its loss."""
        d_variables = self.discriminator.trainable_variables
        g_variables = self.generator.trainable_variables
        self.discriminator_optimizer.apply_gradients(
            zip(d_tape.gradient(d_loss, d_variables), d_variables))
        self.optimizer.apply_gradients(zip(g_tape.gradient(g_loss, g_variables), g_variables))

    def train_step(self, data):
        real = self._whole_packs(data)
        z = self._noise(tf.shape(real)[0], self._step_seed())
        with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
            d_loss, g_loss = self._pack_losses(real, self.generator(z, training=True), True)
        self._step_both(d_tape, d_loss, g_tape, g_loss)
        return self._reported()

    def test_step(self, data):
        """The two losses on held-out real images and as many fakes (fixed noise), no step."""
        real = self._whole_packs(data)
        fake = self.generator(self._noise(tf.shape(real)[0], tf.constant([0, 0])),
                              training=False)
        self._pack_losses(real, fake, False)
        return self._reported()

    def call(self, z, training=False):
        return self.generator(z, training=training)

    def images_from_codes(self, z, how: str = "mean", seed=None):
        """The generator's images (one per code, whatever ``how``)."""
        return self.generator(z, training=False)
