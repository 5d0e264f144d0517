"""The networks of a DCGAN-style GAN (Radford et al., ICLR 2016) on 28 x 28 images, and PacGAN's
packing (Lin et al., NeurIPS 2018).

    generator = gan_generator(latent_dim=64, channels=3, filters=(64, 128))
    discriminator = gan_discriminator(channels=3, pack=2, filters=(64, 128))
    logits = discriminator(pack_images(generator(z), 2))   # one verdict per pair of samples

Unlike the VAE families' colour models (one mono subnet on R, G and B), a GAN's networks see
all channels of an image together: the stacked-MNIST mode-collapse protocol asks whether one
generator covers the 1,000 combinations.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras

from .checks import check_count

layers = tf_keras.layers


def _checked(latent_dim: int, channels: int, filters, block_convs: int) -> tuple:
    """``(filters[0], filters[1], block_convs)`` once every size is checked."""
    check_count("latent_dim", latent_dim)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}.")
    if len(filters) != 2:
        raise ValueError(f"filters must be two positive integers, got {filters!r}.")
    return (*(check_count("filters", f) for f in filters),
            check_count("block_convs", block_convs, low=0))


def _blocks(h, maps: int, count: int, normalised: bool):
    """``count`` stride-1 3 x 3 convolutions of ``maps`` maps, each followed by batch norm
    and ReLU (``normalised``: the generator's; no bias, batch norm has one) or leaky ReLU."""
    for _ in range(count):
        h = layers.Conv2D(maps, 3, padding="same", use_bias=not normalised)(h)
        h = _normalised_relu(h) if normalised else _leaky_relu(h)
    return h


def _normalised_relu(h):
    return layers.ReLU()(layers.BatchNormalization()(h))


def _leaky_relu(h):
    return layers.LeakyReLU(0.2)(h)


def gan_generator(latent_dim: int, channels: int = 1, filters=(64, 128),
                  block_convs: int = 0, classes: int = 0) -> tf_keras.Model:
    """z (B, latent_dim) -> images (B, 28, 28, channels) in (0, 1): a dense layer into a 7 x 7
    grid of ``filters[1]`` maps, then two stride-2 transposed convolutions (batch norm and
    ReLU between), a sigmoid at the end; ``block_convs`` extra stride-1 convolutions (batch
    norm, ReLU) at 7 x 7 and at 14 x 14. ``classes`` > 0: a conditional generator, [z, one-hot
    labels (B, classes)] -> images, the labels concatenated to z."""
    f1, f2, block_convs = _checked(latent_dim, channels, filters, block_convs)
    classes = check_count("classes", classes, low=0)
    z = tf_keras.Input((latent_dim,), name="gan_latent")
    inputs = [z, tf_keras.Input((classes,), name="gan_label")] if classes else z
    h = layers.Concatenate()(inputs) if classes else z
    h = _normalised_relu(layers.Dense(7 * 7 * f2, use_bias=False)(h))
    h = _blocks(layers.Reshape((7, 7, f2))(h), f2, block_convs, normalised=True)
    h = layers.Conv2DTranspose(f1, 4, strides=2, padding="same", use_bias=False)(h)  # 14
    h = _blocks(_normalised_relu(h), f1, block_convs, normalised=True)
    out = layers.Conv2DTranspose(channels, 4, strides=2, padding="same",
                                 activation="sigmoid", name="gan_image")(h)  # 28
    return tf_keras.Model(inputs, out, name="gan_generator")


def gan_discriminator(channels: int = 1, pack: int = 1, filters=(64, 128),
                      block_convs: int = 0, classes: int = 0) -> tf_keras.Model:
    """Packed images (B, 28, 28, channels * pack) -> one logit each (B, 1): two stride-2
    convolutions with leaky ReLU (no batch norm: a batch of real images alone must not set
    the statistics fakes are judged by), ``block_convs`` extra stride-1 ones after each, a
    dense logit. ``classes`` > 0 (unpacked images only): an auxiliary classifier beside it,
    images -> [logit (B, 1), class logits (B, classes)] from the same features (AC-GAN)."""
    f1, f2, block_convs = _checked(1, channels, filters, block_convs)
    check_count("pack", pack)
    if check_count("classes", classes, low=0) and pack != 1:
        raise ValueError(f"an auxiliary classifier judges single images: pack must be 1, "
                         f"got {pack}.")
    x = tf_keras.Input((28, 28, channels * pack), name="gan_packed_images")
    h = _leaky_relu(layers.Conv2D(f1, 4, strides=2, padding="same")(x))  # 14
    h = _leaky_relu(layers.Conv2D(f2, 4, strides=2, padding="same")(
        _blocks(h, f1, block_convs, normalised=False)))  # 7
    h = _blocks(h, f2, block_convs, normalised=False)
    features = layers.Flatten()(h)
    out = layers.Dense(1, name="gan_logit")(features)
    if classes:
        out = [out, layers.Dense(classes, name="gan_class_logits")(features)]
    return tf_keras.Model(x, out, name="gan_discriminator")


def pack_images(images, pack: int):
    """(B, 28, 28, C) -> (B / pack, 28, 28, C * pack): each group of ``pack`` consecutive
    images side by side in the channel axis (image j of a group in channels j C .. j C + C - 1),
    so the discriminator judges them together (PacGAN). B must be a multiple of ``pack``."""
    check_count("pack", pack)
    images = tf.convert_to_tensor(images)
    batch, channels = tf.shape(images)[0], images.shape[-1]
    tf.debugging.assert_equal(batch % pack, 0,
                              message="the batch must be a multiple of the packing degree")
    grouped = tf.reshape(images, [batch // pack, pack, 28, 28, channels])
    return tf.reshape(tf.transpose(grouped, [0, 2, 3, 1, 4]),
                      [batch // pack, 28, 28, pack * channels])
