"""A class-conditional GAN with an auxiliary classifier (AC-GAN; Odena et al., "Conditional
image synthesis with auxiliary classifier GANs", ICML 2017) on mono images.

    gan = build_model(ModelConfig(kind="acgan", latent_dim=64), 2e-4)
    fit_model(gan, x_train, labels=y_train, epochs=30)
    images = gan.generate_images(100, seed=0, labels=np.repeat(np.arange(10), 10))

The GAN's networks (``gan_networks.py``) with the digit: the generator takes [z, one-hot y];
the discriminator's features feed its real / fake logit and ten class logits beside it.
Losses per batch, alpha = ``config.classifier_weight``:
  discriminator:  BCE(real called real) + BCE(fake called fake) + alpha CE(class of real | y)
  generator:      BCE(fake called real) + alpha CE(class of fake | its requested y)
The discriminator's classifier learns from real images only (Odena et al. train it on the
fakes as well, which lets it learn the generator's mistakes as digits): the generator must draw
digits a classifier of real digits recognises. A fake's label is drawn uniformly per step.
Without labels, generation draws balanced ones (every digit in turn, as the CVAE's).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras

from .batching import in_seeded_batches
from .checks import check_count
from .config import ModelConfig
from .cvae import balanced_labels, counted_labels
from .gan import GAN
from .networks import LABEL_CLASSES


@tf_keras.saving.register_keras_serializable(package="models")
class ACGAN(GAN):
    kind = "acgan"
    conditional = True
    tracked = GAN.tracked + ("real_class_cross_entropy", "fake_class_cross_entropy")

    def __init__(self, config: ModelConfig, metadata: Optional[dict] = None, **kwargs):
        if config.channels != 1 or config.pack != 1:
            raise ValueError("an acgan model judges single mono images: channels and pack must "
                             f"be 1, got channels={config.channels}, pack={config.pack}.")
        super().__init__(config, metadata=metadata, **kwargs)

    # -- labels: one digit per image -------------------------------------------------------------
    def check_labels(self, labels, count: int, channels: Optional[int] = None):
        if labels is None:
            raise ValueError("an acgan model is conditional: give the images' digit labels "
                             "(0..9), one each.")
        return counted_labels(labels, count, 1)

    check_fit_labels = check_labels

    def after_training(self, x_train, labels=None, seed: int = 0) -> None:
        self.check_labels(labels, len(x_train))

    # -- training ----------------------------------------------------------------------------
    def _labelled_losses(self, real, labels, z, fake_labels, training: bool):
        """``(discriminator loss, generator loss)`` of one batch (the module's formulas)."""
        fake = self.generator([z, tf.one_hot(fake_labels, LABEL_CLASSES)], training=training)
        real_logits, real_classes = self.discriminator(real, training=training)
        fake_logits, fake_classes = self.discriminator(fake, training=training)
        d_loss, g_loss = self._adversarial_losses(real_logits, fake_logits)
        class_entropy = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        real_ce = class_entropy(labels, real_classes)
        fake_ce = class_entropy(fake_labels, fake_classes)
        self.trackers["real_class_cross_entropy"].update_state(real_ce)
        self.trackers["fake_class_cross_entropy"].update_state(fake_ce)
        weight = self.config.classifier_weight
        return d_loss + weight * real_ce, g_loss + weight * fake_ce

    def _fake_labels(self, count, seed):
        return tf.random.stateless_uniform([count], seed, 0, LABEL_CLASSES, dtype=tf.int32)

    def train_step(self, data):
        real, labels = data
        count, seed = tf.shape(real)[0], self._step_seed()
        z = self._noise(count, seed)
        fake_labels = self._fake_labels(count, tf.stack([-seed[0] - 1, seed[1]]))
        with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
            d_loss, g_loss = self._labelled_losses(real, labels, z, fake_labels, True)
        self._step_both(d_tape, d_loss, g_tape, g_loss)
        return self._reported()

    def test_step(self, data):
        """The losses on held-out real images and as many fakes (fixed noise), no step."""
        real, labels = data
        z = self._noise(tf.shape(real)[0], tf.constant([0, 0]))
        self._labelled_losses(real, labels, z, labels, False)
        return self._reported()

    # -- generation --------------------------------------------------------------------------
    def call(self, inputs, training=False):
        """[z, one-hot labels] -> images."""
        return self.generator(inputs, training=training)

    @tf.function(reduce_retracing=True)
    def _labelled_images(self, z, how, seed, labels):
        return self.generator([z, tf.one_hot(labels, LABEL_CLASSES)], training=False)

    def generate_images(self, count: int, how: str = "mean", seed: int = 0, sampler=None,
                        labels=None, batch_size: int = 5000) -> np.ndarray:
        """``count`` images (count, 28, 28, 1) in [0, 1] of the requested digits (or balanced
        ones, a function of ``seed``), z from N(0, I) or ``sampler``."""
        count = check_count("count", count)
        labels = (balanced_labels(count, seed, LABEL_CLASSES) if labels is None
                  else self.check_labels(labels, count))
        return in_seeded_batches(self._labelled_images, self._codes(count, seed, sampler), how,
                                 seed, batch_size, labels=labels.astype(np.int32))

    def images_from_codes(self, z, how: str = "mean", seed=None):
        raise ValueError("an acgan model draws images of given digits: use generate_images("
                         "count, labels=...).")
