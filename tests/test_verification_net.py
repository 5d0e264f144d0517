"""VerificationNet: shipped weights, accuracy, predictability and coverage on real, stacked and
nonsense images, input validation, and the warnings for missing or corrupt weight files.

Tests that need the shipped weights use the ``verifier`` fixture and skip without them. Input
checks and the weight-file paths run on a net with untrained or randomly initialised weights.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from stacked_mnist import DataMode
from verification_net import VerificationNet, validate_images

N_EVAL = 2000


def _make_net(file_name):
    """VerificationNet for ``file_name``, collecting the warnings it gives."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = VerificationNet(file_name=str(file_name))
    return net, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


@pytest.fixture(scope="session")
def untrained_net(tmp_path_factory):
    """A net pointed at a weights file that does not exist (warns, done_training False)."""
    net, messages = _make_net(tmp_path_factory.mktemp("noweights") / "absent.weights.h5")
    assert not net.done_training
    return net, messages


@pytest.fixture(scope="session")
def random_net(untrained_net, tmp_path_factory):
    """A net that loaded the untrained net's random initial weights from a file.

    Not trained: it only makes predict() run, to test the bookkeeping around the model.
    The file is named without the .weights.h5 suffix, which the constructor appends.
    """
    source, _ = untrained_net
    directory = tmp_path_factory.mktemp("randomweights")
    source.model.save_weights(str(directory / "verification_model.weights.h5"))
    net, messages = _make_net(directory / "verification_model")
    assert messages == []
    return net


def _mono_test(data_for, n=N_EVAL):
    images, labels = data_for(DataMode.MONO_FLOAT_COMPLETE).get_full_data_set(training=False)
    return images[:n], labels[:n]


def _color_test(data_for, n=N_EVAL):
    images, labels = data_for(DataMode.COLOR_BINARY_COMPLETE).get_full_data_set(training=False)
    return images[:n], labels[:n]


# --------------------------------------------------------------------------------------------
# Shipped weights (skip until saved_models/verification_net.weights.h5 exists)
# --------------------------------------------------------------------------------------------
def test_shipped_weights_load(verifier, weights_path):
    assert verifier.done_training is True
    assert verifier.file_name == str(weights_path)


def test_accuracy_on_real_mnist_test_images(verifier, data_for):
    images, labels = _mono_test(data_for)
    predictions, beliefs = verifier.predict(images)
    assert predictions.shape == (N_EVAL,) and beliefs.shape == (N_EVAL,)
    assert np.all((beliefs > 0) & (beliefs <= 1))
    accuracy = float(np.mean(predictions == labels))
    assert accuracy >= 0.98, f"accuracy {accuracy:.4f} on {N_EVAL} MNIST test images"


def test_binary_mnist_is_judged_as_well(verifier, data_for):
    images, labels = data_for(DataMode.MONO_BINARY_COMPLETE).get_full_data_set(training=False)
    predictions, _ = verifier.predict(images[:N_EVAL])
    assert float(np.mean(predictions == labels[:N_EVAL])) >= 0.97


def test_predictability_and_coverage_of_real_mono_images(verifier, data_for):
    images, labels = _mono_test(data_for)
    predictability, accuracy = verifier.check_predictability(images, labels, tolerance=0.8)
    assert predictability > 0.9, predictability
    assert accuracy > 0.9, accuracy
    assert accuracy <= predictability
    assert verifier.check_predictability(images, tolerance=0.8) == (predictability, None)
    assert verifier.check_class_coverage(images, tolerance=0.8) == 1.0


def test_predictability_and_coverage_of_stacked_images(verifier, data_for):
    images, labels = _color_test(data_for)
    predictability, accuracy = verifier.check_predictability(images, labels, tolerance=0.5)
    assert predictability > 0.85, predictability
    assert accuracy > 0.85, accuracy
    # 2000 uniform draws over 1000 classes show ~865 distinct classes on average.
    expected_distinct = 1000 * (1 - (1 - 1 / 1000) ** N_EVAL)
    assert 860 < expected_distinct < 870
    coverage = verifier.check_class_coverage(images, tolerance=0.5)
    assert coverage > 0.7, coverage
    assert coverage <= len(np.unique(labels)) / 1000 + 0.02


def test_colour_prediction_is_per_channel_prediction(verifier, data_for):
    images, _ = _color_test(data_for, n=200)
    predictions, beliefs = verifier.predict(images)
    digits, channel_beliefs = [], []
    for c in range(3):
        p, b = verifier.predict(images[..., c : c + 1])
        digits.append(p)
        channel_beliefs.append(b)
    np.testing.assert_array_equal(predictions, digits[0] + 10 * digits[1] + 100 * digits[2])
    np.testing.assert_allclose(beliefs, np.prod(channel_beliefs, axis=0), rtol=1e-5)


def test_uniform_noise_covers_few_classes(verifier):
    rng = np.random.default_rng(0)
    mono_noise = rng.random((1000, 28, 28, 1), dtype=np.float32)
    assert verifier.check_class_coverage(mono_noise, tolerance=0.8) < 0.5
    color_noise = rng.random((1000, 28, 28, 3), dtype=np.float32)
    assert verifier.check_class_coverage(color_noise, tolerance=0.5) < 0.1


def _nonsense_images(kind: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    if kind == "uniform noise":
        return rng.random((1000, 28, 28, 1), dtype=np.float32)
    if kind == "binary noise":
        return (rng.random((1000, 28, 28, 1)) < 0.5).astype(np.float32)
    if kind == "constant 0.5":
        return np.full((10, 28, 28, 1), 0.5, np.float32)
    return np.zeros((10, 28, 28, 1), np.float32)  # blank


@pytest.mark.parametrize("kind", ["uniform noise", "binary noise", "blank", "constant 0.5"])
def test_nonsense_images_are_not_predictable(verifier, kind):
    predictability, _ = verifier.check_predictability(_nonsense_images(kind), tolerance=0.8)
    assert predictability < 0.2, f"{kind}: predictability {predictability}"


def test_constant_images_cover_at_most_one_class(verifier):
    constant = np.full((1000, 28, 28, 1), 0.5, dtype=np.float32)
    assert verifier.check_class_coverage(constant, tolerance=0.8) <= 0.1
    predictions, _ = verifier.predict(constant)
    assert len(np.unique(predictions)) == 1


# --------------------------------------------------------------------------------------------
# Bookkeeping with random (untrained) weights: runs without the shipped file
# --------------------------------------------------------------------------------------------
def test_weights_file_round_trip_and_suffix(random_net, untrained_net):
    source, _ = untrained_net
    assert random_net.done_training is True
    assert random_net.file_name.endswith("verification_model.weights.h5")
    for a, b in zip(random_net.model.get_weights(), source.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_predict_outputs_and_channel_arithmetic(random_net):
    rng = np.random.default_rng(1)
    images = rng.random((20, 28, 28, 3), dtype=np.float32)
    predictions, beliefs = random_net.predict(images)
    assert predictions.shape == (20,) and beliefs.shape == (20,)
    assert np.issubdtype(predictions.dtype, np.integer)
    assert predictions.min() >= 0 and predictions.max() <= 999
    assert np.all((beliefs > 0) & (beliefs <= 1))
    per_channel = [random_net.predict(images[..., c]) for c in range(3)]  # 3-D input
    np.testing.assert_array_equal(
        predictions, sum(10**c * per_channel[c][0] for c in range(3))
    )
    np.testing.assert_allclose(
        beliefs, np.prod([per_channel[c][1] for c in range(3)], axis=0), rtol=1e-5
    )


def test_repeated_channel_images_are_judged_like_distinct_ones(random_net):
    images = np.random.default_rng(2).random((6, 28, 28, 3), dtype=np.float32)
    images[3:] = images[:3]  # the predictions are computed once per distinct channel image
    images[0, ..., 2] = images[1, ..., 0]
    predictions, beliefs = random_net.predict(images)
    mono = np.transpose(images, (0, 3, 1, 2)).reshape(18, 28, 28, 1)
    probs = random_net.model(mono, training=False).numpy().reshape(6, 3, 10)
    np.testing.assert_array_equal(predictions, np.argmax(probs, -1) @ [1, 10, 100])
    np.testing.assert_allclose(beliefs, np.prod(probs.max(-1), -1), rtol=1e-5)


def test_three_dimensional_input_is_accepted(random_net):
    rng = np.random.default_rng(2)
    images = rng.random((10, 28, 28), dtype=np.float32)
    p3, b3 = random_net.predict(images)
    p4, b4 = random_net.predict(images[..., np.newaxis])
    np.testing.assert_array_equal(p3, p4)
    np.testing.assert_allclose(b3, b4)
    assert p3.max() <= 9
    predictability, accuracy = random_net.check_predictability(images, np.zeros(10), 0.0)
    assert predictability == 1.0 and 0.0 <= accuracy <= 1.0
    assert 0.0 < random_net.check_class_coverage(images, tolerance=0.0) <= 1.0


def test_coverage_and_predictability_definitions(random_net):
    rng = np.random.default_rng(3)
    images = rng.random((30, 28, 28, 1), dtype=np.float32)
    predictions, beliefs = random_net.predict(images)
    for tolerance in (0.0, float(np.median(beliefs)), 1.01):
        confident = beliefs >= tolerance
        coverage = random_net.check_class_coverage(images, tolerance=tolerance)
        assert coverage == len(np.unique(predictions[confident])) / 10
        predictability, accuracy = random_net.check_predictability(
            images, predictions, tolerance=tolerance
        )
        assert predictability == pytest.approx(confident.mean())
        assert accuracy == pytest.approx(confident.mean())  # labels == predictions


# --------------------------------------------------------------------------------------------
# Input validation (raised before any prediction: no weights needed)
# --------------------------------------------------------------------------------------------
_RNG = np.random.default_rng(4)
BAD_INPUTS = {
    "two channels": (np.zeros((4, 28, 28, 2), np.float32), "must have shape"),
    "32x32": (np.zeros((4, 32, 32, 1), np.float32), "must have shape"),
    "2-D image": (np.zeros((28, 28), np.float32), "must have shape"),
    "5-D": (np.zeros((1, 4, 28, 28, 1), np.float32), "must have shape"),
    "NaN": (np.where(_RNG.random((4, 28, 28, 1)) < 0.01, np.nan, 0.5), "NaN or infinite"),
    "inf": (np.full((4, 28, 28, 3), np.inf), "NaN or infinite"),
    "above 1": (np.full((4, 28, 28, 1), 1.5), r"must lie in \[0, 1\]"),
    "uint8 0..255": (np.full((4, 28, 28, 1), 255, np.uint8), r"must lie in \[0, 1\]"),
    "below 0": (np.full((4, 28, 28, 3), -0.1), r"must lie in \[0, 1\]"),
    "empty": (np.zeros((0, 28, 28, 1), np.float32), "holds no images"),
    "strings": (np.full((4, 28, 28, 1), "a"), "real numbers"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_images_raise_value_error(untrained_net, case):
    net, _ = untrained_net
    data, message = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=message):
        validate_images(data)
    with pytest.raises(ValueError, match=message):
        net.predict(data)
    with pytest.raises(ValueError, match=message):
        net.check_class_coverage(data)
    with pytest.raises(ValueError, match=message):
        net.check_predictability(data, tolerance=0.8)


@pytest.mark.parametrize("n_labels", [3, 5, 0])
def test_correct_labels_of_wrong_length_raise_value_error(untrained_net, n_labels):
    net, _ = untrained_net
    images = np.zeros((4, 28, 28, 1), np.float32)
    with pytest.raises(ValueError, match="correct_labels has"):
        net.check_predictability(images, np.zeros(n_labels, dtype=int), tolerance=0.8)


@pytest.mark.parametrize(
    "shape", [(4, 28, 28), (4, 28, 28, 1), (4, 28, 28, 3)], ids=["3-D", "mono", "colour"]
)
def test_validate_images_accepts_good_shapes(shape):
    data = validate_images(np.full(shape, 0.5, dtype=np.float64))
    assert data.dtype == np.float32
    assert data.shape == (shape if len(shape) == 4 else shape + (1,))


# --------------------------------------------------------------------------------------------
# Missing and corrupt weight files
# --------------------------------------------------------------------------------------------
def test_missing_weights_warn_and_predict_says_how_to_train(untrained_net):
    net, messages = untrained_net
    assert net.done_training is False
    assert any("not found" in m and "python verification_net.py" in m for m in messages), messages
    with pytest.raises(ValueError, match="python verification_net.py"):
        net.predict(np.zeros((2, 28, 28, 1), np.float32))
    with pytest.raises(ValueError, match="python verification_net.py"):
        net.check_class_coverage(np.zeros((2, 28, 28, 1), np.float32))


def test_missing_weights_warning_is_a_user_warning(tmp_path):
    with pytest.warns(UserWarning, match="not found"):
        net = VerificationNet(file_name=str(tmp_path / "none.weights.h5"))
    assert net.done_training is False


def test_corrupt_weights_warn_and_are_not_used(tmp_path):
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"\x00garbage, not an HDF5 file\xff" * 64)
    with pytest.warns(UserWarning, match="could not be read"):
        net = VerificationNet(file_name=str(bad))
    assert net.done_training is False
    with pytest.raises(ValueError, match="python verification_net.py"):
        net.predict(np.zeros((2, 28, 28, 1), np.float32))
