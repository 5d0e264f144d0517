"""Output distributions p(x|z) over images, chosen by name.

Every head turns decoder parameters of shape (B, 28, 28, C, P) (P = ``params_per_pixel``) into a
``tfd.Independent`` distribution with event shape (28, 28, C), wrapped by a ``tfp.layers``
``DistributionLambda``, so ``-dist.log_prob(targets)`` is the reconstruction loss in nats per
image. ``targets(x)`` maps images in [0, 1] into the head's support (bins for the categorical
head, the open interval for the Beta head). ``image(dist, how)`` gives something to display or
judge: the mean, the mode, or a sample, always in [0, 1].
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

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
        return tfpl.DistributionLambda(self.distribution, name=name)


class BernoulliHead(Head):
    """Independent Bernoulli with logits; log p(x|z) = x.l - sum softplus(l), also for x in [0, 1]."""

    name = "bernoulli"

    def distribution(self, params):
        return tfd.Independent(
            tfd.Bernoulli(logits=params[..., 0], dtype=tf.float32), IMAGE_EVENT_NDIMS
        )

    def mode(self, dist):
        return tf.cast(dist.distribution.logits_parameter() >= 0.0, tf.float32)


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
        # Beta's mode exists only for a, b > 1; elsewhere it sits at an edge: use the mean.
        interior = (a - 1.0) / tf.maximum(a + b - 2.0, 1e-6)
        return tf.where((a > 1.0) & (b > 1.0), interior, beta.mean())


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


HEAD_CLASSES = {cls.name: cls for cls in (BernoulliHead, BetaHead, CategoricalHead, NormalHead)}


def make_head(config: ModelConfig) -> Head:
    return HEAD_CLASSES[config.head](config)
