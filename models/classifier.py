"""A generative model's encoder as a classifier: fine-tuned from the trained weights, or the
same network from scratch.

    model = zoo.load("vae_mono_complete")
    picked = balanced_subset(y_train, 100, seed=0)             # 10 labelled images per class
    net = encoder_classifier(model, pretrained=True, seed=0)   # the trained encoder + a head
    fit_classifier(net, x_train[picked], y_train[picked], steps=300, seed=0)
    accuracy = classifier_accuracy(net, x_test, y_test)

The classifier is the mono encoder's trunk (its convolutions and dense layer, everything
before the layer that emits the latent parameters), optionally a hidden layer, dropout, and a
softmax layer over the classes; random shifts (and, for classes a mirror keeps, such as
garments, mirror images) of the images in training. ``pretrained=False`` builds the same
network with fresh weights, the baseline that says what the generative training bought.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras

from .checks import check_count, check_images, check_seed
from .networks import mono_encoder

CLASSES = 10


def encoder_trunk(model, pretrained: bool = True) -> tf_keras.Model:
    """(B, 28, 28, 1) -> features: ``model``'s mono encoder without its last layer (the
    latent parameters); its trained weights (shared with ``model``) or, ``pretrained=False``,
    a fresh copy of the architecture."""
    if getattr(model, "conditional", False):
        raise ValueError("a conditional model's encoder needs the labels it would predict; "
                         "take an unconditional model (vae, ae, flowprior_vae).")
    encoder = model.mono_encoder if pretrained else mono_encoder(
        model.config, model.latent_params_per_dim)
    return tf_keras.Model(encoder.inputs, encoder.get_layer("latent_params").input,
                          name="encoder_trunk")


def encoder_classifier(model, pretrained: bool = True, seed: int = 0, dropout: float = 0.5,
                       shift: float = 0.1, mirror: bool = False,
                       hidden_units: int = 0) -> tf_keras.Model:
    """The classifier on ``model``'s encoder (see the module's docstring): in training, random
    shifts of up to ``shift`` of the image size and, with ``mirror``, left-right mirror images;
    the trunk; with ``hidden_units``, dropout and a ReLU layer of that width; ``dropout``;
    softmax. The seed fixes the new weights (the head, and the trunk when not ``pretrained``)."""
    tf_keras.utils.set_random_seed(check_seed(seed))
    if not 0 <= dropout < 1 or not 0 <= shift < 0.5:
        raise ValueError(f"dropout must lie in [0, 1) and shift in [0, 0.5); got {dropout!r}, "
                         f"{shift!r}.")
    hidden_units = check_count("hidden_units", hidden_units, low=0)
    layers = tf_keras.layers
    inputs = tf_keras.Input((28, 28, 1), name="image")
    x = inputs
    if mirror:
        x = layers.RandomFlip("horizontal", seed=seed)(x)
    x = layers.RandomTranslation(shift, shift, fill_mode="constant", seed=seed)(x)
    x = encoder_trunk(model, pretrained)(x)
    if hidden_units:
        x = layers.Dropout(dropout, seed=seed)(x)
        x = layers.Dense(hidden_units, activation="relu", name="hidden")(x)
    x = layers.Dropout(dropout, seed=seed)(x)
    outputs = layers.Dense(CLASSES, activation="softmax", name="classes")(x)
    return tf_keras.Model(inputs, outputs, name="encoder_classifier")


def balanced_subset(labels, count: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``count`` labelled images, count / 10 of every class (``count`` a
    multiple of 10), drawn with ``seed``."""
    labels = np.asarray(labels)
    check_count("count", count)
    if count % CLASSES:
        raise ValueError(f"count must be a multiple of {CLASSES} (as many of each class), "
                         f"got {count}.")
    rng = np.random.default_rng(check_seed(seed))
    picked = []
    for c in range(CLASSES):
        members = np.flatnonzero(labels == c)
        if len(members) < count // CLASSES:
            raise ValueError(f"class {c} has {len(members)} images, fewer than the "
                             f"{count // CLASSES} asked for.")
        picked.append(rng.choice(members, count // CLASSES, replace=False))
    return np.sort(np.concatenate(picked))


def fit_classifier(classifier: tf_keras.Model, x, y, steps: int, batch_size: int = 128,
                   learning_rate: float = 1e-3, seed: int = 0, verbose: int = 0) -> dict:
    """Adam on the cross-entropy in whole passes over the images (reshuffled every pass)
    until at least ``steps`` batches are done, the step size decaying by a half cosine to 0.
    Returns the history of the passes."""
    x = check_images(x, 1, "x")
    y = np.asarray(y)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or (
            y.min() < 0 or y.max() >= CLASSES):
        raise ValueError(f"y must hold one class label in 0..{CLASSES - 1} per image; got "
                         f"shape {y.shape}, dtype {y.dtype}.")
    check_count("steps", steps)
    check_count("batch_size", batch_size)
    tf_keras.utils.set_random_seed(check_seed(seed))
    batch_size = min(batch_size, len(x))
    per_pass = -(-len(x) // batch_size)
    passes = -(-steps // per_pass)
    schedule = tf_keras.optimizers.schedules.CosineDecay(learning_rate, passes * per_pass)
    classifier.compile(optimizer=tf_keras.optimizers.Adam(schedule),
                       loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    classifier.optimizer.build(classifier.trainable_variables)  # the step is traced once
    data = (tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
            .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size).repeat().prefetch(2))
    history = classifier.fit(data, epochs=passes, steps_per_epoch=per_pass, verbose=verbose)
    return history.history


def classifier_accuracy(classifier: tf_keras.Model, x, y, batch_size: int = 1000) -> float:
    """The share of images whose most probable class is their label."""
    x = check_images(x, 1, "x")
    predictions = np.argmax(classifier.predict(x, batch_size=batch_size, verbose=0), axis=1)
    return float(np.mean(predictions == np.asarray(y)))
