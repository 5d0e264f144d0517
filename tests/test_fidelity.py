"""Frechet distance and manifold precision / recall (evaluation): closed forms on Gaussians,
the behaviour the definitions promise on made-up sets, and a bracket on real digits (real
test against real training features close, noise far). Seconds."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation import frechet_distance, judge_features, manifold_precision_recall



def test_frechet_distance_of_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20_000, 3))
    assert frechet_distance(a, rng.normal(size=(20_000, 3))) < 0.01
    shifted = rng.normal(size=(20_000, 3)) + np.array([1.0, 2.0, 0.0])
    assert frechet_distance(a, shifted) == pytest.approx(5.0, abs=0.05)
    # N(0, I) against N(0, 4 I) in 3-d: Tr(I + 4 I - 2 * 2 I) = 3
    assert frechet_distance(a, 2 * rng.normal(size=(20_000, 3))) == pytest.approx(3.0, abs=0.1)
    with pytest.raises(ValueError, match="differ in width"):
        frechet_distance(a, a[:, :2])
    with pytest.raises(ValueError, match="finite feature vectors"):
        frechet_distance(a[:1], a)


def test_precision_and_recall_tell_fidelity_from_diversity():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(2000, 2))
    same = manifold_precision_recall(real, rng.normal(size=(2000, 2)))
    assert same["precision"] > 0.9 and same["recall"] > 0.9
    far = manifold_precision_recall(real, rng.normal(size=(2000, 2)) + 50)
    assert far == {"precision": 0.0, "recall": 0.0}
    # a collapsed generator: every sample near one real mode -> faithful but not diverse
    collapsed = manifold_precision_recall(real, 0.01 * rng.normal(size=(2000, 2)))
    assert collapsed["precision"] > 0.95 and collapsed["recall"] < 0.2
    with pytest.raises(ValueError, match="k must be an integer"):
        manifold_precision_recall(real, real, k=0)


@pytest.mark.slow  # the judge over 6,000 images
def test_real_digits_are_close_to_real_digits_and_noise_is_far(mnist_dir):
    import named_data

    mnist = named_data.get("mnist")
    x_train, _, x_test, _ = mnist.load()
    train, test = judge_features(x_train[:2000], mnist), judge_features(x_test[:2000], mnist)
    noise = judge_features(np.random.default_rng(2).random((2000, 28, 28, 1)).astype(np.float32),
                           mnist)
    assert train.shape == (2000, 256)
    floor, far = frechet_distance(train, test), frechet_distance(train, noise)
    assert far > 20 * floor, (floor, far)
    real = manifold_precision_recall(train, test)
    assert real["precision"] > 0.8 and real["recall"] > 0.8
    # Noise switches every unit of the judge's last hidden layer off: all of it sits at the
    # origin, which some real digits' neighbourhoods reach, so precision cannot see it;
    # recall (and the distance) can.
    assert np.linalg.norm(noise, axis=1).mean() < 0.01 * np.linalg.norm(train, axis=1).mean()
    assert manifold_precision_recall(train, noise)["recall"] < 0.05
