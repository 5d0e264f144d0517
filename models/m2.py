"""The M2 semi-supervised VAE (Kingma et al., "Semi-supervised learning with deep generative
models", NeurIPS 2014): the conditional VAE p(x | y, z) p(z) p(y), its encoder q(z | x, y) and a
classifier q(y | x), trained together on labelled and unlabelled images.

    x, labels = semi_supervised_set(x_train, y_train, labelled=100, seed=0)  # -1: unlabelled
    model = build_model(ModelConfig(kind="m2", latent_dim=4, classifier_weight=70))
    fit_model(model, x, labels=labels, epochs=10)
    predicted = model.classify(x_test)                     # argmax q(y | x)

Loss per image, in nats (p(y) uniform):
  labelled (x, y):  -ELBO(x, y) + alpha * (-log q(y | x)),
                    -ELBO(x, y) = -E_q log p(x | y, z) + KL(q(z | x, y) || N(0, I)) + log 10
  unlabelled x:     sum_y q(y | x) (-ELBO(x, y)) - H(q(y | x)), a bound on -log p(x)
The unlabelled term decodes every image under all ten labels (ten decoder passes per image);
its gradient teaches the classifier which label's decoder explains the image. alpha is
``config.classifier_weight``. In training the classifier sees each image shifted by up to
``SHIFT_PIXELS`` pixels (a stateless draw per step), the rest of the model the image itself
(``fit_model(shift_pixels=n)`` would move the images for every part, the classifier's view
twice).
With ``config.consistency_weight`` = lambda > 0 an unlabelled image x adds
                    lambda * (-log q(y^ | x'))   if max_y q(y | x) >= 0.95,
y^ = argmax_y q(y | x) held fixed, x' = x shifted (its own draw), rotated by up to 30 degrees
and scaled by up to 25 % (``STRONG_DEGREES``, ``STRONG_SCALE``), with a 14 x 14 square cut out
(``CUTOUT_PIXELS``, clipped at the border): a pseudo-label term beyond Kingma et al.'s loss
(FixMatch's rule, Sohn et al. 2020: the image itself the weak view, x' the strong one).
With ``config.neighbour_weight`` = mu > 0 as well, the batches come in pairs of neighbours
(each image beside one of its ten nearest training images by the pixels' leading principal
components, ``models.neighbours``; ``fit_model`` pairs them), and an unlabelled x adds
                    mu * lambda * (-log q(y~ | x'))
with y~ its partner's label, given or sure (``partner_label_terms``): labels also spread along
the images' neighbourhoods, as in label propagation (Iscen et al., CVPR 2019).
Class labels of -1 (``UNLABELLED``) mark the unlabelled images of a training set;
``semi_supervised_set`` builds one with the labelled images repeated so that every batch
holds some.

Everything else is the CVAE's: the encoder and decoder take the label, the class prior
p(z | y) is fitted after training (to the labelled images and the classifier's labels for the
rest), generation by class, and ``models.conditional``'s generative classifier (the Bayes rule
on the importance-sampled p(x | y)) beside the trained classifier. Training is on mono images
(ten labels per image; a colour image would need a thousand).
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tf_keras

from stacked_mnist import validate_labels

from .augment import cut_out, shifted, warped
from .batching import in_batches
from .checks import check_count, check_images, check_seed
from .classifier import balanced_subset
from .cvae import CVAE
from .neighbours import partner_rows
from .networks import LABEL_CLASSES, mono_classifier
from .trackers import trackers

UNLABELLED = -1
SHIFT_PIXELS = 2  # the classifier sees its training images shifted by up to this many pixels
PSEUDO_LABEL_CONFIDENCE = 0.95  # q(y | x) an unlabelled image's pseudo-label needs
CUTOUT_PIXELS = 14  # the side of the square cut out of the pseudo-labelled view
STRONG_DEGREES = 30  # the pseudo-labelled view is also rotated by up to this many degrees
STRONG_SCALE = 0.25  # and scaled by a factor within 1 +- this


@tf_keras.saving.register_keras_serializable(package="models")
class M2(CVAE):
    kind = "m2"

    def __init__(self, config, metadata=None, **kwargs):
        super().__init__(config, metadata=metadata, **kwargs)
        self.mono_classifier = mono_classifier(config)
        # Cross-entropy and accuracy of the classifier on the labelled images of each batch,
        # and the share of the unlabelled ones that were given a pseudo-label.
        self.trackers.update(trackers(("cross_entropy", "accuracy", "pseudo_labelled")))

    def networks(self) -> list:
        return super().networks() + [self.mono_classifier]

    # -- labels: -1 marks an unlabelled training image ------------------------------------------
    def check_fit_labels(self, labels, count: int):
        """Training labels (N,): a class 0..9, or ``UNLABELLED`` (-1); None: all unlabelled."""
        if self.config.channels != 1:
            raise ValueError("an m2 model trains on mono images (ten labels per image); "
                             "train it mono and use with_channels(3) for colour.")
        if labels is None:
            return np.full(check_count("images", count), UNLABELLED, np.int64)
        labels = np.asarray(labels)
        if labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
            known = labels != UNLABELLED
            checked = labels.astype(np.int64)
            checked[known] = validate_labels(labels[known], 1)
            if len(checked) != count:
                raise ValueError(f"got {len(checked)} labels for {count} images; give one "
                                 f"each ({UNLABELLED} for an unlabelled image).")
            return checked
        return self.check_labels(labels, count)  # its error says what was expected

    # -- the loss -----------------------------------------------------------------------------
    def semi_supervised_terms(self, x, labels, training: bool = False, seed=None):
        """``(loss, reconstruction, kl, cross_entropy, correct, known, pseudo_labelled)``,
        each (B,), for mono images x (B, 28, 28, 1) and labels (B,) with -1 for the
        unlabelled: the loss of the module's docstring; reconstruction and KL as expected under
        the label (its one-hot for a labelled image, q(y | x) for the others); the
        cross-entropy and whether the classifier's argmax is right (0 for an unlabelled
        image); which images are labelled, and which were given a pseudo-label (1) in training."""
        x = tf.convert_to_tensor(x, tf.float32)
        labels = tf.cast(labels, tf.int32)
        count = tf.shape(x)[0]
        seen = x
        if training and seed is not None and SHIFT_PIXELS:
            seen = shifted(x, tf.stack([seed[0], -seed[1] - 1]), SHIFT_PIXELS)
        log_q = tf.nn.log_softmax(self.mono_classifier(seen, training=training))
        consistency, sure = tf.zeros([count]), tf.zeros([count], tf.bool)
        if training and seed is not None and self.config.consistency_weight:
            # Pseudo-labels (FixMatch's rule): where the classifier is sure of an unlabelled
            # image itself, its answer for a shifted, rotated and scaled copy with a square cut
            # out is trained towards that label.
            fixed = tf.stop_gradient(tf.nn.softmax(self.mono_classifier(x, training=training)))
            guess, confident = pseudo_labels(fixed)
            sure = (labels < 0) & confident
            pseudo = tf.one_hot(guess, LABEL_CLASSES)
            strong = warped(shifted(x, tf.stack([-seed[0] - 1, seed[1]]), SHIFT_PIXELS),
                            tf.stack([seed[1], seed[0]]), STRONG_DEGREES, STRONG_SCALE)
            strong = cut_out(strong, tf.stack([-seed[0] - 1, -seed[1] - 1]), CUTOUT_PIXELS)
            log_q_strong = tf.nn.log_softmax(self.mono_classifier(strong, training=training))
            consistency = tf.where(sure, -tf.reduce_sum(pseudo * log_q_strong, axis=-1), 0.0)
            if self.config.neighbour_weight:
                from_partner = partner_label_terms(labels, fixed, log_q_strong)
                self.trackers["neighbour"].update_state(from_partner)
                consistency += self.config.neighbour_weight * from_partner
        reconstruction, kl = self.every_digit_terms(x, training, seed)
        known = labels >= 0
        truth = tf.one_hot(tf.maximum(labels, 0), LABEL_CLASSES)
        q = tf.exp(log_q)
        weights = tf.where(known[:, tf.newaxis], truth, q)
        expected_reconstruction = tf.reduce_sum(weights * reconstruction, axis=-1)
        expected_kl = tf.reduce_sum(weights * kl, axis=-1)
        cross_entropy = -tf.reduce_sum(truth * log_q, axis=-1)
        entropy = -tf.reduce_sum(q * log_q, axis=-1)
        zero = tf.zeros_like(entropy)
        loss = (expected_reconstruction + self.config.beta * expected_kl
                + math.log(LABEL_CLASSES)
                + tf.where(known, self.config.classifier_weight * cross_entropy, -entropy)
                + self.config.consistency_weight * consistency)
        correct = tf.cast(tf.argmax(log_q, axis=-1, output_type=tf.int32) == labels, tf.float32)
        return (loss, expected_reconstruction, expected_kl, tf.where(known, cross_entropy, zero),
                correct, tf.cast(known, tf.float32), tf.cast(sure, tf.float32))

    def _record_semi_supervised(self, terms):
        loss, reconstruction, kl, cross_entropy, correct, known, pseudo_labelled = terms
        self.trackers["loss"].update_state(loss)
        self.trackers["reconstruction"].update_state(reconstruction)
        self.trackers["kl"].update_state(kl)
        self.trackers["cross_entropy"].update_state(cross_entropy, sample_weight=known)
        self.trackers["accuracy"].update_state(correct, sample_weight=known)
        self.trackers["pseudo_labelled"].update_state(pseudo_labelled, sample_weight=1 - known)
        return tf.nn.compute_average_loss(loss)

    def batch_loss(self, x, labels, training: bool, seed=None):
        return self._record_semi_supervised(self.semi_supervised_terms(
            x, labels, training=training, seed=seed))

    # -- the classifier -----------------------------------------------------------------------
    @tf.function(reduce_retracing=True)
    def _class_probabilities(self, mono_x):
        return tf.nn.softmax(self.mono_classifier(mono_x, training=False))

    def class_probabilities(self, x, batch_size: int = 2000) -> np.ndarray:
        """q(y | x), (N, 10), for mono images x (N, 28, 28, 1)."""
        x = check_images(x, 1, "mono images")
        return in_batches(self._class_probabilities, x, check_count("batch_size", batch_size))

    def classify(self, x, batch_size: int = 2000) -> np.ndarray:
        """The classifier's labels argmax q(y | x), (N,) int64, of mono images (N, 28, 28, 1)."""
        return np.argmax(self.class_probabilities(x, batch_size), axis=-1).astype(np.int64)

    def after_training(self, x_train, labels=None, seed: int = 0) -> None:
        """The CVAE's (p(y) counts, the class prior p(z | y)), with the classifier's labels for
        the unlabelled images (labels -1, or None: all)."""
        labels = np.full(len(x_train), UNLABELLED) if labels is None else np.asarray(labels)
        unknown = np.asarray(labels == UNLABELLED)
        if np.any(unknown):
            labels = self.check_fit_labels(labels, len(x_train)).copy()
            labels[unknown] = self.classify(x_train[unknown])
        super().after_training(x_train, labels, seed=seed)


def semi_supervised_set(x, y, labelled: int, seed: int = 0, labelled_share: float = 0.125):
    """``(images, labels)`` for training M2 on x (N, 28, 28, 1) with ``labelled`` of its
    labels y (N,), ``labelled / 10`` of each class drawn with ``seed`` (``balanced_subset``):
    every image once, the unlabelled ones with label -1, then the labelled images repeated
    until they are about ``labelled_share`` of the set (so every batch holds some; at least
    once). The order does not matter: ``fit_model`` shuffles every epoch."""
    x = check_images(x, 1, "x")
    y = validate_labels(y, 1, "y")
    if len(y) != len(x):
        raise ValueError(f"got {len(y)} labels for {len(x)} images.")
    if not 0 < labelled_share < 1:
        raise ValueError(f"labelled_share must lie in (0, 1), got {labelled_share!r}.")
    picked = balanced_subset(y, labelled, seed=check_seed(seed))
    labels = np.full(len(y), UNLABELLED, np.int64)
    labels[picked] = y[picked]
    unlabelled = len(y) - len(picked)
    repeats = max(1, round(labelled_share * unlabelled / ((1 - labelled_share) * len(picked))))
    extra = np.tile(picked, repeats - 1)
    return (np.concatenate([x, x[extra]]), np.concatenate([labels, y[extra]]))


def pseudo_labels(q_fixed):
    """``(guess, sure)``, each (B,), of the classifier's q(y | x) (B, 10) held fixed: its answer
    (int32) and whether it is sure enough for a pseudo-label (``PSEUDO_LABEL_CONFIDENCE``)."""
    return (tf.argmax(q_fixed, axis=-1, output_type=tf.int32),
            tf.reduce_max(q_fixed, axis=-1) >= PSEUDO_LABEL_CONFIDENCE)


def partner_label_terms(labels, q_fixed, log_q_strong):
    """(B,) nats of a batch in neighbour pairs (``neighbours.partner_rows``): an unlabelled
    image's strong view against its partner's label, the partner's own if it has one, else the
    partner's pseudo-label where ``q_fixed`` (the classifier's q(y | x), held fixed) is sure of
    it (``pseudo_labels``); 0 for the others."""
    labels = tf.cast(labels, tf.int32)
    partner = partner_rows(tf.shape(labels)[0])
    partner_labels = tf.gather(labels, partner)
    guess, sure = pseudo_labels(tf.gather(q_fixed, partner))
    given = partner_labels >= 0
    target = tf.where(given, partner_labels, guess)
    used = (labels < 0) & (given | sure)
    cross_entropy = -tf.reduce_sum(tf.one_hot(target, LABEL_CLASSES) * log_q_strong, axis=-1)
    return tf.where(used, cross_entropy, 0.0)
