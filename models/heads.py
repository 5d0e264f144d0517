"""Output distributions p(x|z) over images, chosen by name.

Every head turns decoder parameters of shape (B, 28, 28, C, P) (P = ``params_per_pixel``) into a
``tfd.Independent`` distribution with event shape (28, 28, C), wrapped by a ``tfp.layers``
``DistributionLambda``, so ``-dist.log_prob(targets)`` is the reconstruction loss in nats per
image. ``targets(x)`` maps images in [0, 1] into the head's support (bins for the categorical
head, the open interval for the Beta head). ``image(dist, how)`` gives something to display or
judge: the mean, the mode, or a sample, always in [0, 1].
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from .config import ModelConfig

tfd = tfp.distributions
tfpl = tfp.layers

IMAGE_EVENT_NDIMS = 3  # (28, 28, C) is one event
IMAGE_KINDS = ("mean", "mode", "sample")


class Head:
    name = ""
    params_per_pixel = 1

    def __init__(self, config: ModelConfig):
        self.config = config

    def distribution(self, params):
        raise NotImplementedError

    def targets(self, x):
        """Images in [0, 1] -> values in the support of the pixel distribution."""
        return tf.convert_to_tensor(x, tf.float32)

    def mean(self, dist):
        return dist.distribution.mean()

    def mode(self, dist):
        return self.mean(dist)

    def sample(self, dist, seed=None):
        return dist.sample(seed=seed)

    def image(self, dist, how: str = "mean", seed=None):
        """A (B, 28, 28, C) float32 image in [0, 1]: how = mean | mode | sample."""
        if how not in IMAGE_KINDS:
            raise ValueError(f"image kind must be one of {IMAGE_KINDS}, got {how!r}.")
        picture = {"mean": self.mean, "mode": self.mode}.get(how)
        value = picture(dist) if picture else self.sample(dist, seed)
        return tf.clip_by_value(tf.cast(value, tf.float32), 0.0, 1.0)

    def layer(self, name="p_x_given_z"):
        return PixelDistribution(self.config.to_dict(), name=name)

    # Every head is an exponential family per pixel, so log p(x|z) is linear in fixed features
    # of x: log p(x | params_k) = features(x) . weights_k + constant_k. With the features of N
    # images and the weights of K decoder outputs, all N x K log-likelihoods are one matrix
    # product (see likelihood.py).
    def features(self, targets):
        """(B, 28, 28, C) targets -> (B, 28 * 28 * C * F)."""
        return tf.reshape(tf.cast(targets, tf.float32), [tf.shape(targets)[0], -1])

    def linear_form(self, params):
        """(B, 28, 28, C, P) params -> (weights (B, 28 * 28 * C * F), constants (B,))."""
        raise NotImplementedError


class BernoulliHead(Head):
    """Independent Bernoulli with logits l: log p(x|z) = x . l - sum softplus(l), which is also
    defined (as a cross-entropy) for float x in [0, 1]."""

    name = "bernoulli"

    def distribution(self, params):
        return tfd.Independent(
            tfd.Bernoulli(logits=params[..., 0], dtype=tf.float32), IMAGE_EVENT_NDIMS
        )

    def mode(self, dist):
        return tf.cast(dist.distribution.logits_parameter() >= 0.0, tf.float32)

    def linear_form(self, params):
        logits = _flatten(params[..., 0])
        return logits, -tf.reduce_sum(tf.nn.softplus(logits), axis=-1)


class ContinuousBernoulliHead(Head):
    """Independent continuous Bernoulli with logits l (Loaiza-Ganem & Cunningham, NeurIPS
    2019): p(x|l) = C(l) sigmoid(l)^x (1 - sigmoid(l))^(1 - x), a normalised density on [0, 1]
    for grey levels, where the Bernoulli's "likelihood" of a float x is a cross-entropy that
    no density matches. Its mean is not sigmoid(l): the images shown are the true mean."""

    name = "continuous_bernoulli"

    def distribution(self, params):
        return tfd.Independent(
            tfd.ContinuousBernoulli(logits=params[..., 0], dtype=tf.float32), IMAGE_EVENT_NDIMS
        )

    def mode(self, dist):
        return dist.distribution.mode()

    def linear_form(self, params):
        # log p(x|l) = x l + log p(0|l): the Bernoulli's form plus the normaliser log C(l).
        pixels = self.distribution(params).distribution
        return _flatten(params[..., 0]), tf.reduce_sum(
            _flatten(pixels.log_prob(tf.zeros_like(params[..., 0]))), axis=-1)


class BetaHead(Head):
    """Independent Beta. Pixels are squeezed into [eps, 1 - eps] before log_prob, since the
    Beta density is 0 or infinite at exact 0 and 1 and MNIST is full of both."""

    name = "beta"
    params_per_pixel = 2
    eps = 1.0 / 512  # a quarter of one 8-bit grey level from each end

    def distribution(self, params):
        concentration = tf.nn.softplus(params) + 1e-3
        return tfd.Independent(
            tfd.Beta(concentration[..., 0], concentration[..., 1]), IMAGE_EVENT_NDIMS
        )

    def targets(self, x):
        x = tf.convert_to_tensor(x, tf.float32)
        return self.eps + (1.0 - 2.0 * self.eps) * x

    def mode(self, dist):
        beta = dist.distribution
        a, b = beta.concentration1, beta.concentration0
        # Inside (0, 1) only for a, b > 1; otherwise the density peaks at an edge: at 0 when
        # a <= 1 < b, at 1 when b <= 1 < a; with a, b <= 1 (U-shaped) take the larger end.
        interior = (a - 1.0) / tf.maximum(a + b - 2.0, 1e-6)
        edge = tf.cast(a > b, tf.float32)
        return tf.where((a > 1.0) & (b > 1.0), interior, edge)

    def features(self, targets):
        targets = tf.cast(targets, tf.float32)
        return _flatten(tf.stack([tf.math.log(targets), tf.math.log1p(-targets)], axis=-1))

    def linear_form(self, params):
        concentration = tf.nn.softplus(params) + 1e-3
        a, b = concentration[..., 0], concentration[..., 1]
        log_beta_fn = tf.math.lgamma(a) + tf.math.lgamma(b) - tf.math.lgamma(a + b)
        return _flatten(concentration - 1.0), -tf.reduce_sum(_flatten(log_beta_fn), axis=-1)


class CategoricalHead(Head):
    """Pixel values discretised into k equal bins; a categorical over bins per pixel."""

    name = "categorical"

    def __init__(self, config):
        super().__init__(config)
        self.bins = int(config.categorical_bins)
        self.params_per_pixel = self.bins
        self.centers = (tf.range(self.bins, dtype=tf.float32) + 0.5) / self.bins

    def distribution(self, params):
        return tfd.Independent(tfd.Categorical(logits=params, dtype=tf.int32), IMAGE_EVENT_NDIMS)

    def targets(self, x):
        x = tf.convert_to_tensor(x, tf.float32)
        return tf.cast(tf.minimum(tf.floor(x * self.bins), self.bins - 1), tf.int32)

    def mean(self, dist):
        probs = tf.nn.softmax(dist.distribution.logits_parameter(), axis=-1)
        return tf.reduce_sum(probs * self.centers, axis=-1)

    def mode(self, dist):
        return tf.gather(self.centers, tf.argmax(dist.distribution.logits_parameter(), axis=-1))

    def sample(self, dist, seed=None):
        return tf.gather(self.centers, dist.sample(seed=seed))

    def features(self, targets):
        return _flatten(tf.one_hot(targets, self.bins, dtype=tf.float32))

    def linear_form(self, params):
        log_probs = tf.nn.log_softmax(params, axis=-1)
        return _flatten(log_probs), tf.zeros(tf.shape(params)[:1])


class NormalHead(Head):
    """Independent Normal; fixed scale (config.normal_scale) or a learned per-pixel scale."""

    name = "normal"

    def __init__(self, config):
        super().__init__(config)
        self.fixed_scale = config.normal_scale
        self.params_per_pixel = 1 if self.fixed_scale is not None else 2

    def distribution(self, params):
        loc = params[..., 0]
        if self.fixed_scale is not None:
            scale = tf.fill(tf.shape(loc), tf.constant(float(self.fixed_scale), tf.float32))
        else:
            # The floor keeps the density finite where the data has no spread (exact 0 pixels).
            scale = tf.nn.softplus(params[..., 1]) + 1e-3
        return tfd.Independent(tfd.Normal(loc, scale), IMAGE_EVENT_NDIMS)

    def features(self, targets):
        targets = tf.cast(targets, tf.float32)
        return _flatten(tf.stack([targets, tf.square(targets)], axis=-1))

    def linear_form(self, params):
        dist = self.distribution(params).distribution
        loc, precision = _flatten(dist.loc), _flatten(1.0 / tf.square(dist.scale))
        weights = tf.reshape(tf.stack([loc * precision, -0.5 * precision], axis=-1),
                             [tf.shape(loc)[0], -1])
        constant = -tf.reduce_sum(
            0.5 * tf.square(loc) * precision - 0.5 * tf.math.log(precision)
            + 0.5 * np.log(2.0 * np.pi), axis=-1)
        return weights, constant


def _flatten(t):
    """(B, ...) -> (B, prod(...)) in row-major order (features and weights must agree)."""
    return tf.reshape(t, [tf.shape(t)[0], -1])


HEAD_CLASSES = {cls.name: cls for cls in (BernoulliHead, ContinuousBernoulliHead, BetaHead,
                                          CategoricalHead, NormalHead)}


def make_head(config: ModelConfig) -> Head:
    return HEAD_CLASSES[config.head](config)


@tf_keras.saving.register_keras_serializable(package="models")
class PixelDistribution(tfpl.DistributionLambda):
    """The head as a layer: (B, 28, 28, C, P) parameters -> p(x|z).

    Its config is the model config as plain values, never the distribution function itself:
    ``DistributionLambda.get_config`` would pickle that function (a bound method here), and
    Keras' saving then recurses through the model that owns it.
    """

    def __init__(self, model_config: dict, **kwargs):
        self.head = make_head(ModelConfig.from_dict(model_config))
        # As a tensor: the mode, not an unseeded sample (see LatentNormal in vae.py).
        kwargs.setdefault("convert_to_tensor_fn", tfd.Distribution.mode)
        super().__init__(self.head.distribution, **kwargs)
        self.model_config = dict(model_config)

    def get_config(self):
        return {**tf_keras.layers.Layer.get_config(self), "model_config": self.model_config}
