"""models.classifier: the encoder of a generative model as a classifier, fine-tuned or from
scratch. Tiny models and a slice of real MNIST: seconds."""
from __future__ import annotations

import numpy as np
import pytest

from models import ModelConfig, build_model
from models.classifier import (balanced_subset, classifier_accuracy, encoder_classifier,
                               encoder_trunk, fit_classifier)
from stacked_mnist import DataMode

TINY = dict(latent_dim=3, filters=(8, 16), hidden_units=32)


def tiny(kind="vae"):
    return build_model(ModelConfig(kind=kind, **TINY), seed=0)


def test_the_trunk_is_the_encoder_without_its_latent_layer():
    model = tiny()
    trunk = encoder_trunk(model)
    images = np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32)
    assert trunk(images).shape == (5, 32)  # the dense layer's units, not 2 x latent_dim
    # fine-tuned: the model's own weights; from scratch: new ones of the same shapes
    assert trunk.weights[0] is model.mono_encoder.weights[0]
    fresh = encoder_trunk(model, pretrained=False)
    assert [w.shape for w in fresh.weights] == [w.shape for w in trunk.weights]
    assert not any(w is v for w in fresh.weights for v in model.mono_encoder.weights)


def test_a_conditional_encoder_is_refused():
    cvae = build_model(ModelConfig(kind="cvae", **TINY), seed=0)
    with pytest.raises(ValueError, match="conditional model's encoder needs the labels"):
        encoder_classifier(cvae)


def test_the_head_may_mirror_and_add_a_hidden_layer():
    plain = encoder_classifier(tiny(), seed=0)
    wide = encoder_classifier(tiny(), seed=0, mirror=True, hidden_units=24)
    assert wide.get_layer("hidden").units == 24
    assert wide.count_params() == plain.count_params() + 32 * 24 + 24 + (24 - 32) * 10
    flips = [type(layer).__name__ == "RandomFlip" for layer in wide.layers]
    assert sum(flips) == 1 and not any(
        type(layer).__name__ == "RandomFlip" for layer in plain.layers)
    images = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    probabilities = wide(images, training=False).numpy()
    assert probabilities.shape == (4, 10) and np.allclose(probabilities.sum(axis=1), 1)
    with pytest.raises(ValueError, match="hidden_units must be an integer >= 0"):
        encoder_classifier(tiny(), hidden_units=-1)


def test_balanced_subset_takes_as_many_of_every_class_seeded():
    labels = np.repeat(np.arange(10), 30)
    picked = balanced_subset(labels, 50, seed=1)
    assert np.array_equal(np.bincount(labels[picked]), np.full(10, 5))
    assert np.array_equal(picked, balanced_subset(labels, 50, seed=1))
    assert not np.array_equal(picked, balanced_subset(labels, 50, seed=2))
    with pytest.raises(ValueError, match="multiple of 10"):
        balanced_subset(labels, 55)
    with pytest.raises(ValueError, match="class 3 has 29 images, fewer than the 30"):
        balanced_subset(np.delete(labels, 90), 300)


def test_fit_classifier_learns_real_digits_and_refuses_bad_labels(data_for):
    x, y = data_for(DataMode.MONO_BINARY_COMPLETE).get_full_data_set(training=True)
    x, y = x[:600], y[:600]
    net = encoder_classifier(tiny(), seed=0)
    before = classifier_accuracy(net, x[500:], y[500:])
    history = fit_classifier(net, x[:500], y[:500], steps=195, batch_size=50, seed=0)
    assert len(history["loss"]) == 20  # whole passes of 10 batches, at least 195 steps
    after = classifier_accuracy(net, x[500:], y[500:])
    assert after > max(0.5, before + 0.3), (before, after)
    with pytest.raises(ValueError, match="one class label in 0..9 per image"):
        fit_classifier(net, x[:10], np.full(10, 10), steps=1)
    with pytest.raises(ValueError, match="one class label"):
        fit_classifier(net, x[:10], y[:9], steps=1)
