"""The conditional VAE family (Sohn et al. 2015): q(z | x, y), p(x | z, y) and the prior
p(z) = N(0, I), with y the image's digit, one-hot, at the encoder's dense layer and at the
decoder's input. The loss is the conditional ELBO, -E_q log p(x|z,y) + beta KL(q(z|x,y) || p(z)).

A colour model is the mono subnet on R, G and B with one set of weights, each channel
conditioned on its own digit: the class label n = R + 10 G + 100 B gives R the ones, G the tens
and B the hundreds, so any number 000-999 can be asked for. ``models.conditional`` has the
generative classifier and the anomaly score built on it.

The class prior. Trained towards N(0, I), the codes of one digit do not fill N(0, I): they
sit where that digit's styles are (the codes of the 1s, say, vary in slant but hardly in
width), and a z from N(0, I) decoded as a "1" is often a 7. ``fit_class_prior`` fits a
Gaussian p(z | y) (mean, full covariance) to one draw of q(z | x, y) per training image of each
digit; ``class_codes`` draws from it. It is part of the model file (N(0, I) for every digit
until fitted; a digit without training images keeps N(0, I)).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from stacked_mnist import channel_digits

from .checks import check_seed
from .networks import LABEL_CLASSES
from .vae import VAE

tfd = tfp.distributions


@tf_keras.saving.register_keras_serializable(package="models")
class CVAE(VAE):
    kind = "cvae"
    prior_description = "the class prior p(z|y) of balanced labels"
    conditional = True

    def __init__(self, config, metadata=None, **kwargs):
        super().__init__(config, metadata=metadata, **kwargs)
        d = config.latent_dim
        self.class_means = tf.Variable(tf.zeros((LABEL_CLASSES, d)), trainable=False,
                                       name="class_means")
        self.class_scale_tril = tf.Variable(tf.eye(d, batch_shape=[LABEL_CLASSES]),
                                            trainable=False, name="class_scale_tril")

    def class_prior(self, digits) -> tfd.Distribution:
        """p(z | y) of one channel for digits (B,): batch (B,), event (d,)."""
        digits = tf.cast(digits, tf.int32)
        return tfd.MultivariateNormalTriL(tf.gather(self.class_means, digits),
                                          tf.gather(self.class_scale_tril, digits))

    def class_prior_weights(self) -> list:
        return [self.class_means.numpy(), self.class_scale_tril.numpy()]

    def network_weights(self) -> list:
        return super().network_weights() + self.class_prior_weights()

    def set_network_weights(self, weights: list) -> None:
        super().set_network_weights(weights[:-2])
        self.class_means.assign(weights[-2])
        self.class_scale_tril.assign(weights[-1])

    def fit_class_prior(self, mono_x, digits, seed: int = 0) -> "CVAE":
        """Fit p(z | y) to one draw z ~ q(z | x, y) per mono image (M, 28, 28, 1) of digit y."""
        mean, scale = self.mono_code_distribution(mono_x, digits=digits)
        digits = self.check_labels(digits, len(mono_x), channels=1)
        z = mean + scale * np.random.default_rng(check_seed(seed)).standard_normal(mean.shape)
        means, trils = self.class_prior_weights()
        fitted = []
        for digit in range(LABEL_CLASSES):
            codes = z[digits == digit].astype(np.float64)
            if len(codes) <= z.shape[1]:  # too few for a covariance: keep N(0, I)
                continue
            covariance = np.cov(codes, rowvar=False) + 1e-6 * np.eye(z.shape[1])
            means[digit], trils[digit] = codes.mean(axis=0), np.linalg.cholesky(covariance)
            fitted.append(digit)
        self.class_means.assign(means)
        self.class_scale_tril.assign(trils)
        self.metadata["class_prior"] = {
            "fitted_to": "one z ~ q(z|x,y) per training image", "images": int(len(mono_x)),
            "digits_fitted": fitted, "seed": int(seed)}
        return self

    def class_codes(self, labels, seed: int = 0, noise=None) -> np.ndarray:
        """(N, C, d) codes for class labels (N,): each channel's z drawn from p(z | its
        digit), the class prior. ``noise`` (N * C, d), given, is the standard-normal draw
        pushed through each digit's Gaussian (one style for several digits)."""
        labels = self.check_labels(labels, len(np.asarray(labels)))
        channels, d = self.config.channels, self.config.latent_dim
        digits = channel_digits(labels, channels).reshape(-1)
        if noise is None:
            noise = np.random.default_rng(check_seed(seed)).standard_normal((len(digits), d))
        elif np.shape(noise) != (len(digits), d):
            raise ValueError(f"noise must have shape {(len(digits), d)}, got {np.shape(noise)}.")
        means, trils = self.class_prior_weights()
        z = means[digits] + np.einsum("nij,nj->ni", trils[digits], noise)
        return z.astype(np.float32).reshape(-1, channels, d)
