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
until fitted; a digit without training images keeps N(0, I)). ``zoo.train`` fits it through
the post-training hook, ``after_training``. The prior object (``ClassPrior``) holds both
priors: N(0, I) for the KL and for ``generate_images``, p(z | y) for ``class_codes``.

Generation without labels (``generate_images(count, seed=s)``) draws balanced labels from s.

Training for the Bayes rule. The generative classifier argmax_y log p(x | y) p(y) suffers when a
wrong label explains an image nearly as well as the right one (the code can carry the shape).
With ``config.bayes_weight`` w > 0 the loss of a mono image x of digit y is
    -ELBO(x, y) + w CE(softmax over y' of ELBO(x, y'), y),
the ELBO under all ten digits from one batched pass (one code each): the model is also trained
to rank its own labels (a hybrid of generative and discriminative training).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from stacked_mnist import channel_digits, fold_channels, validate_labels

from .checks import check_count, check_seed, check_values
from .networks import LABEL_CLASSES, FoldLabels, every_digit_rows
from .priors import StandardNormalPrior
from .trackers import trackers
from .vae import VAE

tfd = tfp.distributions


class ClassPrior(StandardNormalPrior):
    """The CVAE's prior object: N(0, I) for the KL and for codes drawn without a class (the
    training objective's prior), and the fitted class prior p(z | y), a Gaussian per digit
    (mean, Cholesky factor; N(0, I) until fitted), for ``class_codes`` and the classifier."""

    def __init__(self, latent_dim: int):
        super().__init__(latent_dim)
        self.means = tf.Variable(tf.zeros((LABEL_CLASSES, latent_dim)), trainable=False,
                                 name="class_means")
        self.scale_tril = tf.Variable(tf.eye(latent_dim, batch_shape=[LABEL_CLASSES]),
                                      trainable=False, name="class_scale_tril")

    def state_variables(self) -> list:
        return [self.means, self.scale_tril]

    def class_distribution(self, digits) -> tfd.Distribution:
        """p(z | y) of one channel for digits (B,): batch (B,), event (d,)."""
        digits = tf.cast(digits, tf.int32)
        return tfd.MultivariateNormalTriL(tf.gather(self.means, digits),
                                          tf.gather(self.scale_tril, digits))

    def class_codes(self, digits, noise) -> np.ndarray:
        """(B, d) float32: standard-normal ``noise`` (B, d) through the Gaussians of ``digits``."""
        means, trils = self.means.numpy(), self.scale_tril.numpy()
        return (means[digits] + np.einsum("nij,nj->ni", trils[digits], noise)).astype(np.float32)

    def fit(self, z, digits) -> list:
        """Fit each digit's Gaussian to its codes z (M, d) (digits (M,)); a digit with too few
        codes for a covariance keeps its Gaussian. Returns the digits fitted."""
        means, trils = self.means.numpy(), self.scale_tril.numpy()
        fitted = []
        for digit in range(LABEL_CLASSES):
            codes = z[digits == digit].astype(np.float64)
            if len(codes) <= z.shape[1]:  # too few for a covariance: keep N(0, I)
                continue
            covariance = np.cov(codes, rowvar=False) + 1e-6 * np.eye(z.shape[1])
            means[digit], trils[digit] = codes.mean(axis=0), np.linalg.cholesky(covariance)
            fitted.append(digit)
        self.means.assign(means)
        self.scale_tril.assign(trils)
        return fitted


def counted_labels(labels, count: int, channels: int) -> np.ndarray:
    """``labels`` as int64 class labels (``validate_labels``), one for each of ``count`` images,
    or ``ValueError``: the labels a conditional family's parts take."""
    labels = validate_labels(labels, channels)
    if len(labels) != count:
        raise ValueError(f"got {len(labels)} labels for {count} images; give one each.")
    return labels


def balanced_labels(count: int, seed: int, classes: int) -> np.ndarray:
    """``count`` labels (count,) int64: every class of ``classes`` in turn, each round in an order
    drawn from ``seed``, so class counts differ by at most one."""
    count = check_count("count", count)
    rng = np.random.default_rng([check_seed(seed), classes])  # apart from the codes' draw
    rounds = -(-count // classes)
    return np.concatenate([rng.permutation(classes) for _ in range(rounds)])[:count]


@tf_keras.saving.register_keras_serializable(package="models")
class CVAE(VAE):
    """The labels' plumbing lives here, in the base class's conditioning hooks; generation
    without labels draws balanced ones (``generation_labels``)."""

    kind = "cvae"
    conditional = True
    prior_description = "the class prior p(z|y) of the requested (or balanced) labels"

    def __init__(self, config, metadata=None, **kwargs):
        super().__init__(config, metadata=metadata, **kwargs)
        # The class prior's variables as the model's own too: model files store them there.
        self.class_means, self.class_scale_tril = self.z_prior.state_variables()
        if self.trains_bayes_rule:
            self.trackers.update(trackers(("bayes_cross_entropy",)))

    def make_prior(self):
        return ClassPrior(self.config.latent_dim)

    # -- conditioning: every part takes the labels, every subnet its digit ----------------------
    def part_inputs(self, first, folded):
        labels = tf_keras.Input((), dtype="int32", name="labels")
        return [first, labels], [folded, FoldLabels(self.config.channels)(labels)]

    def split_inputs(self, inputs):
        x, labels = inputs
        return x, labels

    def _batch(self, data):
        if not isinstance(data, (tuple, list)):
            return data, None  # refused by model_inputs: a conditional model needs labels
        return data[0], (data[1] if len(data) > 1 else None)

    def _require_labels(self, labels) -> None:
        if labels is None:
            raise ValueError(
                f"a conditional {self.kind!r} model needs labels: the class of every image "
                f"(0..{10 ** self.config.channels - 1}), e.g. labels=y of StackedMNISTData.")

    def model_inputs(self, first, labels=None):
        self._require_labels(labels)
        return [first, labels]

    def mono_inputs(self, first, digits=None):
        self._require_labels(digits)
        return [first, tf.one_hot(tf.cast(digits, tf.int32), LABEL_CLASSES)]

    def check_labels(self, labels, count: int, channels=None):
        self._require_labels(labels)
        return counted_labels(labels, count, channels or self.config.channels)

    def mono_digits(self, labels, count: int):
        return channel_digits(self.check_labels(labels, count), self.config.channels).reshape(-1)

    def distinct_mono_images(self, x, digits):
        # Every channel image runs: its digit is part of the input.
        mono_x, channels = fold_channels(x)
        return mono_x, np.arange(len(mono_x)), channels

    def generation_labels(self, count: int, seed: int, labels=None):
        """The given labels, else balanced ones: every class (0..9 mono, 0..999 colour) in
        turn, each round of classes in an order drawn from ``seed``, so class counts differ by
        at most one (and a colour model's first 1000 images are 1000 distinct numbers)."""
        if labels is not None:
            return self.check_labels(labels, check_count("count", count))
        return balanced_labels(count, seed, 10 ** self.config.channels)

    def generate_images(self, count: int, how: str = "mean", seed: int = 0, sampler=None,
                        labels=None) -> np.ndarray:
        """Codes from the class prior p(z | y) of the requested (or balanced) labels, unless a
        ``sampler`` is given: N(0, I), the prior the KL pulls towards, leaves holes in which a
        "1" decodes as a 7."""
        if sampler is not None:
            return super().generate_images(count, how, seed, sampler, labels)
        labels = self.generation_labels(check_count("count", count), seed, labels)
        return self.decode_images(self.class_codes(labels, seed=seed), how=how, seed=seed,
                                  labels=labels)

    def after_training(self, x_train, labels=None, seed: int = 0) -> None:
        """Record p(y) (how often each digit was seen) and fit the class prior p(z | y)."""
        digits = channel_digits(self.check_labels(labels, len(x_train)),
                                self.config.channels).ravel()
        self.metadata["digit_counts"] = np.bincount(digits, minlength=10).tolist()
        self.fit_class_prior(fold_channels(x_train)[0], digits, seed=seed)

    # -- training its own Bayes rule (config.bayes_weight) --------------------------------------
    @property
    def trains_bayes_rule(self) -> bool:
        """Whether the loss has the Bayes rule's term: ``bayes_weight`` > 0, on a mono model
        (a colour copy, ``with_channels(3)``, evaluates the conditional ELBO alone)."""
        return bool(self.config.bayes_weight) and self.config.channels == 1

    def check_fit_labels(self, labels, count: int):
        if self.config.bayes_weight and self.config.channels != 1:
            raise ValueError("a cvae with bayes_weight trains on mono images (its Bayes rule "
                             "is over ten digits); train it mono and use with_channels(3) for "
                             "colour.")
        return super().check_fit_labels(labels, count)

    def every_digit_terms(self, x, training: bool = False, seed=None):
        """``(reconstruction, kl)``, each (B, 10) nats, of mono images x (B, 28, 28, 1) under
        every digit y (column y), one code drawn from q(z | x, y) for each."""
        x = tf.convert_to_tensor(x, tf.float32)
        count = tf.shape(x)[0]
        images, digits = every_digit_rows(x)
        reconstruction, kl = self.loss_terms(images, training, seed, digits)
        return (tf.reshape(reconstruction, [count, LABEL_CLASSES]),
                tf.reshape(kl, [count, LABEL_CLASSES]))

    def batch_loss(self, x, labels, training: bool, seed=None):
        """With ``bayes_weight`` w: -ELBO(x, y) + w CE(softmax over y' of ELBO(x, y'), y), the
        ELBO under every digit from one pass of ten (beta weighs the KL of the first term
        only: the Bayes rule is the ELBO's). The true digit's terms are recorded as the
        reconstruction and KL, the cross-entropy as ``bayes_cross_entropy``."""
        if not self.trains_bayes_rule:
            return super().batch_loss(x, labels, training, seed)
        self._require_labels(labels)
        digits = tf.cast(labels, tf.int32)
        reconstruction, kl = self.every_digit_terms(x, training, seed)
        cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
            digits, -(reconstruction + kl))
        self.trackers["bayes_cross_entropy"].update_state(cross_entropy)
        return self._record(tf.gather(reconstruction, digits, batch_dims=1),
                            tf.gather(kl, digits, batch_dims=1),
                            self.config.bayes_weight * cross_entropy)

    # -- the class prior ------------------------------------------------------------------------
    def class_prior(self, digits) -> tfd.Distribution:
        """p(z | y) of one channel for digits (B,): batch (B,), event (d,)."""
        return self.z_prior.class_distribution(digits)

    def class_prior_weights(self) -> list:
        return [variable.numpy() for variable in self.z_prior.state_variables()]

    def fit_class_prior(self, mono_x, digits, seed: int = 0) -> "CVAE":
        """Fit p(z | y) to one draw z ~ q(z | x, y) per mono image (M, 28, 28, 1) of digit y."""
        mean, scale = self.mono_code_distribution(mono_x, digits=digits)
        digits = self.check_labels(digits, len(mono_x), channels=1)
        z = mean + scale * np.random.default_rng(check_seed(seed)).standard_normal(mean.shape)
        fitted = self.z_prior.fit(z, digits)
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
        else:
            noise = check_values(noise, "noise", what="standard-normal draws")
        return self.z_prior.class_codes(digits, noise).reshape(-1, channels, d)
