"""The mono subnets and the channel folding that turns them into colour models.

A colour image is three independent digits, so the colour model is the mono subnet applied to
R, G and B with one set of weights: fold the channel axis into the batch axis, run the mono
network, unfold. The fold layers have no weights, so mono and colour parameter counts are equal.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras

from .config import ModelConfig

layers = tf_keras.layers

LABEL_CLASSES = 10  # a conditional subnet's label: one digit, one-hot


def every_digit_rows(mono_x):
    """``(images, digits)`` for mono images (B, 28, 28, 1) paired with every digit: row
    b * 10 + y holds image b and digit y ((10 B, 28, 28, 1) and (10 B,) int32)."""
    images = tf.repeat(mono_x, LABEL_CLASSES, axis=0)
    return images, tf.tile(tf.range(LABEL_CLASSES), [tf.shape(mono_x)[0]])


FEW_MAPS = 2  # up to this many output maps a depthwise convolution per map is faster here


def few_maps_convolution(layer: layers.Conv2D) -> layers.Conv2D:
    """``layer`` (a stride-1 "same" 2-d convolution into a head's parameters per pixel) with
    each of its output maps computed, where it has at most ``FEW_MAPS``, as a depthwise
    convolution summed over the input channels: the same result up to rounding, from the same
    weights, and on the CPU two to three times faster than the general convolution, which
    vectorises over the output channels (``benchmarks/decode_rate.py``). The layer stays a
    ``Conv2D``: model files name its weights after its class."""

    def convolution_op(inputs, kernel):
        return tf.stack([
            tf.reduce_sum(tf.nn.depthwise_conv2d(inputs, kernel[..., m:m + 1],
                                                 strides=[1, 1, 1, 1], padding="SAME"), -1)
            for m in range(layer.filters)], axis=-1)

    if layer.filters <= FEW_MAPS:
        layer.convolution_op = convolution_op
    return layer


class FoldImages(layers.Layer):
    """(N, 28, 28, C) -> (N * C, 28, 28, 1); image n's channel c lands at row n * C + c."""

    def call(self, x):
        shape = tf.shape(x)
        x = tf.transpose(x, [0, 3, 1, 2])
        return tf.reshape(x, [shape[0] * shape[3], shape[1], shape[2], 1])


class FoldLatent(layers.Layer):
    """(N, C, d) -> (N * C, d)."""

    def call(self, z):
        shape = tf.shape(z)
        return tf.reshape(z, [shape[0] * shape[1], shape[2]])


class FoldLabels(layers.Layer):
    """Class labels (N,) -> one-hot channel digits (N * C, 10), row n * C + c holding the
    digit of 10**c (R ones, G tens, B hundreds): the rows of ``FoldImages``."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels

    def call(self, labels):
        labels = tf.cast(tf.reshape(labels, [-1, 1]), tf.int32)
        digits = (labels // 10 ** tf.range(self.channels)) % 10  # (N, C)
        return tf.one_hot(tf.reshape(digits, [-1]), LABEL_CLASSES)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


class UnfoldRows(layers.Layer):
    """(N * C, ...) -> (N, C, ...): the per-channel results of one image side by side."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels

    def call(self, x):
        shape = tf.shape(x)
        return tf.reshape(x, tf.concat([[shape[0] // self.channels, self.channels], shape[1:]], 0))

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


class UnfoldParams(UnfoldRows):
    """(N * C, 28, 28, P) -> (N, 28, 28, C, P): per-pixel parameters in image layout."""

    def call(self, x):
        return tf.transpose(super().call(x), [0, 2, 3, 1, 4])


def set_weights_in_order(nets, weights: list) -> list:
    """Give each network of ``nets`` its share of the flat list ``weights``, in order (the
    order of a model file); returns what is left over."""
    start = 0
    for net in nets:
        size = len(net.weights)
        net.set_weights(weights[start:start + size])
        start += size
    return weights[start:]


def _block_convs(h, filters: int, config: ModelConfig):
    """``config.block_convs`` stride-1 convolutions that keep the resolution."""
    for _ in range(config.block_convs):
        h = layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
    return h


def _image_features(x_in, config: ModelConfig):
    """The encoder's convolutions: (B, 28, 28, C) -> flat features (B, 7 * 7 * filters[1])."""
    f1, f2 = config.filters
    h = layers.Conv2D(f1, 3, strides=2, padding="same", activation="relu")(x_in)  # 14 x 14
    h = _block_convs(h, f1, config)
    h = layers.Conv2D(f2, 3, strides=2, padding="same", activation="relu")(h)  # 7 x 7
    h = _block_convs(h, f2, config)
    return layers.Flatten()(h)


def mono_classifier(config: ModelConfig, classes: int = LABEL_CLASSES) -> tf_keras.Model:
    """(B, 28, 28, 1) -> class logits (B, classes): the encoder's convolutions and dense layer
    (weights of its own; the sizes of ``config.classifier_network()``), then a linear layer."""
    config = config.classifier_network()
    x_in = tf_keras.Input((28, 28, 1), name="mono_image")
    h = _image_features(x_in, config)
    if config.hidden_units:
        h = layers.Dense(config.hidden_units, activation=config.dense_activation)(h)
    out = layers.Dense(classes, name="class_logits")(h)
    return tf_keras.Model(x_in, out, name="mono_classifier")


def mono_encoder(config: ModelConfig, outputs_per_latent: int,
                 conditional: bool = False, channels: int = 1) -> tf_keras.Model:
    """(B, 28, 28, channels) -> (B, latent_dim * outputs_per_latent): two stride-2
    convolutions. ``conditional``: a second input, the one-hot digit (B, 10), joins the
    flattened features. ``channels``: the image channels it reads (1; a joint-channel model's
    encoder reads all)."""
    x_in = tf_keras.Input((28, 28, channels), name="mono_image")
    h = _image_features(x_in, config)
    inputs = x_in
    if conditional:
        y_in = tf_keras.Input((LABEL_CLASSES,), name="mono_label")
        h, inputs = layers.Concatenate()([h, y_in]), [x_in, y_in]
    if config.hidden_units:
        h = layers.Dense(config.hidden_units, activation=config.dense_activation)(h)
    out = layers.Dense(config.latent_dim * outputs_per_latent, name="latent_params")(h)
    return tf_keras.Model(inputs, out, name="mono_encoder")


def mono_decoder(config: ModelConfig, params_per_pixel: int,
                 conditional: bool = False) -> tf_keras.Model:
    """(B, latent_dim) -> (B, 28, 28, params_per_pixel): transposed stride-2 convolutions.
    ``conditional``: a second input, the one-hot digit (B, 10), joins the code."""
    f1, f2 = config.filters
    z_in = tf_keras.Input((config.latent_dim,), name="mono_latent")
    h, inputs = z_in, z_in
    if conditional:
        y_in = tf_keras.Input((LABEL_CLASSES,), name="mono_label")
        h, inputs = layers.Concatenate()([z_in, y_in]), [z_in, y_in]
    if config.hidden_units:
        h = layers.Dense(config.hidden_units, activation=config.dense_activation)(h)
    h = layers.Dense(7 * 7 * f2, activation=config.dense_activation)(h)
    h = layers.Reshape((7, 7, f2))(h)
    h = layers.Conv2DTranspose(f2, 3, strides=2, padding="same", activation="relu")(h)  # 14
    h = _block_convs(h, f2, config)
    h = layers.Conv2DTranspose(f1, 3, strides=2, padding="same", activation="relu")(h)  # 28
    h = _block_convs(h, f1, config)
    out = few_maps_convolution(
        layers.Conv2D(params_per_pixel, 3, padding="same", name="pixel_params"))(h)
    return tf_keras.Model(inputs, out, name="mono_decoder")
