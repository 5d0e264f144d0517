"""VerificationNet: the shipped judge, accuracy, predictability and coverage on real, stacked and
nonsense images, input validation, the file formats (.keras, .weights.h5, legacy .h5, names
without a suffix), and the warnings for missing, damaged or unsafe files.

Tests that need the shipped saved_models/verification_net.keras use the ``verifier`` fixture
and skip without it. Input checks and the file handling run on a net with untrained or randomly
initialised weights; nothing here trains.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest

import verification_net
from stacked_mnist import DataMode
from verification_net import VerificationNet, validate_images

N_EVAL = 2000
RESTORE = "git checkout saved_models/verification_net.keras"


def _make_net(file_name):
    """VerificationNet for ``file_name``, collecting the warnings it gives."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = VerificationNet(file_name=str(file_name))
    return net, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def _tf_keras():
    import tf_keras

    return tf_keras


def _save_keras(weights, path):
    """A VerificationNet architecture with ``weights``, saved with plain ``model.save``."""
    model = VerificationNet._build(_tf_keras())
    model.set_weights(weights)
    model.save(str(path))
    return path


@pytest.fixture(scope="session")
def untrained_net(tmp_path_factory):
    """A net pointed at a model file that does not exist (warns, done_training False)."""
    net, messages = _make_net(tmp_path_factory.mktemp("noweights") / "absent.keras")
    assert not net.done_training
    return net, messages


@pytest.fixture(scope="session")
def random_keras_file(untrained_net, tmp_path_factory):
    """The untrained net's random initial weights as a .keras file, written by ``_save``."""
    source, _ = untrained_net
    path = tmp_path_factory.mktemp("randomweights") / "verification_model.keras"
    writer, messages = _make_net(path)
    assert any("not found" in m for m in messages)
    writer.model.set_weights(source.model.get_weights())
    writer._save()
    return path


@pytest.fixture(scope="session")
def random_net(random_keras_file):
    """A net that loaded the untrained net's random initial weights from a .keras file.

    Not trained: it only makes predict() run, to test the bookkeeping around the model.
    The file is named without the .keras suffix, which the constructor appends.
    """
    net, messages = _make_net(random_keras_file.with_suffix(""))
    assert messages == []
    return net


def _mono_test(data_for, n=N_EVAL):
    images, labels = data_for(DataMode.MONO_FLOAT_COMPLETE).get_full_data_set(training=False)
    return images[:n], labels[:n]


def _color_test(data_for, n=N_EVAL):
    images, labels = data_for(DataMode.COLOR_BINARY_COMPLETE).get_full_data_set(training=False)
    return images[:n], labels[:n]


# --------------------------------------------------------------------------------------------
# The shipped judge (skip until saved_models/verification_net.keras exists)
# --------------------------------------------------------------------------------------------
def test_shipped_weights_load(verifier, weights_path):
    assert verifier.done_training is True
    assert weights_path == verification_net.DEFAULT_FILE == verification_net.DEFAULT_WEIGHTS
    assert weights_path.name == "verification_net.keras"
    assert verifier.file_name == str(weights_path)


def test_shipped_file_is_an_uncompiled_keras_archive(verifier, weights_path):
    with zipfile.ZipFile(weights_path) as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(archive.read("config.json"))
    assert config["class_name"] == "Functional"
    assert not config.get("compile_config")  # no optimizer, loss or metrics
    assert weights_path.stat().st_size < 3_600_000  # float32 weights, no optimizer state
    for weights in verifier.model.get_weights():
        assert weights.dtype == np.float32 and np.all(np.isfinite(weights))


_PLAIN_LOAD = """
import sys
import numpy as np
import tf_keras

model = tf_keras.models.load_model(sys.argv[1], safe_mode=True)
np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
project = {"verification_net", "stacked_mnist", "atomic_io", "models", "experiments"}
print(sorted(name for name in sys.modules if name.split(".")[0] in project))
"""


@pytest.mark.slow
def test_shipped_file_loads_with_plain_tf_keras_in_a_fresh_process(
    verifier, weights_path, data_for, tmp_path
):
    images, labels = _mono_test(data_for, n=10)
    np.save(tmp_path / "digits.npy", images)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        [sys.executable, "-c", _PLAIN_LOAD, str(weights_path), "digits.npy", "probs.npy"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"  # no project code was imported
    probs = np.load(tmp_path / "probs.npy")
    assert probs.shape == (10, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(np.argmax(probs, axis=1), labels)
    np.testing.assert_allclose(probs, verifier.model(images, training=False).numpy(), atol=1e-6)


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


@pytest.mark.slow  # fits or trains for seconds
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
@pytest.mark.slow  # fits or trains for seconds
def test_keras_file_round_trip_and_suffix(random_net, untrained_net, random_keras_file):
    source, _ = untrained_net
    assert random_net.done_training is True
    assert random_net.file_name == str(random_keras_file)
    assert random_net.file_name.endswith("verification_model.keras")
    for a, b in zip(random_net.model.get_weights(), source.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    images = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)
    expected = source.model(images, training=False).numpy()
    np.testing.assert_array_equal(random_net.model(images, training=False).numpy(), expected)
    plain = _tf_keras().models.load_model(str(random_keras_file), safe_mode=True)
    assert plain.optimizer is None
    np.testing.assert_array_equal(  # like with like: predict() and a call differ in the last ulp
        plain.predict(images, verbose=0), source.model.predict(images, verbose=0)
    )


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
    for tolerance in (0.0, float(np.median(beliefs)), 1.0):
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


BAD_LABELS = {
    "strings": (np.array(["3"] * 8), 1, "dtype <U1"),
    "non-integral": (np.full(8, 3.3), 1, "3.3"),
    "NaN": (np.full(8, np.nan), 1, "nan"),
    "booleans": (np.zeros(8, bool), 1, "dtype bool"),
    "negative": (np.full(8, -1), 1, "-1"),
    "10 for mono": (np.full(8, 10), 1, "10"),
    "1000 for colour": (np.full(8, 1000), 3, "1000"),
    "objects": (np.array([None] * 8), 1, "dtype object"),
}


@pytest.mark.parametrize("case", list(BAD_LABELS))
def test_labels_that_are_no_class_indices_raise_value_error(random_net, case):
    """Such labels used to give accuracy 0.0 (or a wrong number) without complaint."""
    labels, channels, shown = BAD_LABELS[case]
    images = np.random.default_rng(6).random((8, 28, 28, channels), dtype=np.float32)
    top = 10**channels - 1
    expected = rf"correct_labels must be integer class labels in 0\.\.{top}"
    with pytest.raises(ValueError, match=expected) as info:
        random_net.check_predictability(images, labels, tolerance=0.5)
    assert shown in str(info.value), str(info.value)


def test_integral_float_labels_score_like_integer_labels(random_net):
    images = np.random.default_rng(7).random((40, 28, 28, 3), dtype=np.float32)
    predictions, _ = random_net.predict(images)
    labels = np.where(np.arange(40) % 2 == 0, predictions, (predictions + 1) % 1000)
    expected = random_net.check_predictability(images, labels, tolerance=0.0)
    assert expected[1] == 0.5
    for same in (labels.astype(np.float64), labels.astype(np.uint16), list(labels)):
        assert random_net.check_predictability(images, same, tolerance=0.0) == expected


BAD_TOLERANCES = [5, -1, 1.01, np.nan, np.inf, "0.8", None, True]


@pytest.mark.parametrize("tolerance", BAD_TOLERANCES, ids=repr)
def test_tolerance_outside_0_1_raises_value_error(random_net, tolerance):
    """tolerance=5 or NaN used to give 0.0, tolerance=-1 gave 1.0."""
    images = np.random.default_rng(8).random((4, 28, 28, 1), dtype=np.float32)
    with pytest.raises(ValueError, match=r"tolerance must be a number in \[0, 1\]"):
        random_net.check_predictability(images, tolerance=tolerance)
    with pytest.raises(ValueError, match=r"tolerance must be a number in \[0, 1\]"):
        random_net.check_class_coverage(images, tolerance=tolerance)


@pytest.mark.parametrize("tolerance", [0, 0.0, 1, 1.0, np.float32(0.5), np.float64(0.8)], ids=repr)
def test_tolerance_bounds_and_numpy_numbers_are_accepted(random_net, tolerance):
    images = np.random.default_rng(9).random((4, 28, 28, 1), dtype=np.float32)
    _, beliefs = random_net.predict(images)
    predictability, _ = random_net.check_predictability(images, tolerance=tolerance)
    assert predictability == np.mean(beliefs >= tolerance)
    random_net.check_class_coverage(images, tolerance=tolerance)


def test_non_finite_judge_outputs_raise_instead_of_scoring(random_keras_file):
    """A judge whose class probabilities are NaN used to give predictability 0.0."""
    net, messages = _make_net(random_keras_file)
    assert messages == [] and net.done_training
    weights = net.model.get_weights()
    weights[-1][0] = np.nan  # the output bias: every softmax output becomes NaN
    net.model.set_weights(weights)
    rng = np.random.default_rng(10)
    for images in (rng.random((6, 28, 28, 1), dtype=np.float32),
                   rng.random((6, 28, 28, 3), dtype=np.float32)):
        labels = np.zeros(len(images), int)
        for call in (lambda: net.predict(images),
                     lambda: net.check_class_coverage(images, tolerance=0.5),
                     lambda: net.check_predictability(images, labels, tolerance=0.5)):
            with pytest.raises(FloatingPointError, match="NaN or infinite class prob") as info:
                call()
            message = str(info.value)
            assert net.file_name in message and RESTORE in message, message


@pytest.mark.parametrize(
    "shape", [(4, 28, 28), (4, 28, 28, 1), (4, 28, 28, 3)], ids=["3-D", "mono", "colour"]
)
def test_validate_images_accepts_good_shapes(shape):
    data = validate_images(np.full(shape, 0.5, dtype=np.float64))
    assert data.dtype == np.float32
    assert data.shape == (shape if len(shape) == 4 else shape + (1,))


# --------------------------------------------------------------------------------------------
# File formats: .keras, .weights.h5, legacy .h5, names without a suffix
# --------------------------------------------------------------------------------------------
@pytest.mark.slow  # fits or trains for seconds
@pytest.mark.parametrize("name", ["net.keras", "net.weights.h5", "legacy.h5"])
def test_save_writes_the_format_of_the_name_and_it_loads_back(untrained_net, tmp_path, name):
    source, _ = untrained_net
    path = tmp_path / name
    writer, messages = _make_net(path)
    assert writer.file_name == str(path) and any("not found" in m for m in messages)
    writer.model.set_weights(source.model.get_weights())
    writer._save()  # what train() calls
    assert sorted(os.listdir(tmp_path)) == [name]  # written atomically: no temporary left over
    assert zipfile.is_zipfile(path) == name.endswith(".keras")
    if name.endswith(".keras"):
        with zipfile.ZipFile(path) as archive:
            assert not json.loads(archive.read("config.json")).get("compile_config")
    net, messages = _make_net(path)
    assert messages == [] and net.done_training and net.file_name == str(path)
    for a, b in zip(net.model.get_weights(), source.model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # fits or trains for seconds
def test_old_weights_file_still_loads_and_suffixless_names_find_it(untrained_net, tmp_path):
    source, _ = untrained_net
    source.model.save_weights(str(tmp_path / "verification_model.weights.h5"))
    for name in ("verification_model.weights.h5", "verification_model"):
        net, messages = _make_net(tmp_path / name)
        assert messages == [] and net.done_training
        assert net.file_name == str(tmp_path / "verification_model.weights.h5")
        for a, b in zip(net.model.get_weights(), source.model.get_weights()):
            np.testing.assert_array_equal(a, b)
    # Once the .keras exists, a name without suffix means it.
    _save_keras(source.model.get_weights(), tmp_path / "verification_model.keras")
    net, messages = _make_net(tmp_path / "verification_model")
    assert messages == [] and net.file_name == str(tmp_path / "verification_model.keras")


def test_suffixless_name_gets_keras_appended(tmp_path):
    net, messages = _make_net(tmp_path / "verification_model")
    assert net.file_name == str(tmp_path / "verification_model.keras")
    assert any("not found" in m and net.file_name in m for m in messages), messages


# --------------------------------------------------------------------------------------------
# Missing, damaged and unsafe files
# --------------------------------------------------------------------------------------------
def test_missing_weights_warn_and_predict_says_how_to_train(untrained_net):
    net, messages = untrained_net
    assert net.done_training is False
    assert any(
        "not found" in m and "python verification_net.py" in m and RESTORE in m
        for m in messages
    ), messages
    with pytest.raises(ValueError, match="python verification_net.py"):
        net.predict(np.zeros((2, 28, 28, 1), np.float32))
    with pytest.raises(ValueError, match="python verification_net.py"):
        net.check_class_coverage(np.zeros((2, 28, 28, 1), np.float32))


def test_missing_weights_warning_is_a_user_warning(tmp_path):
    with pytest.warns(UserWarning, match="not found"):
        net = VerificationNet(file_name=str(tmp_path / "none.keras"))
    assert net.done_training is False


def _assert_refused(path, reason):
    """``VerificationNet(file_name=path)`` warns that ``path`` could not be read, why
    (``reason``) and how to restore it, and does not use it."""
    with pytest.warns(UserWarning, match="could not be read") as record:
        net = VerificationNet(file_name=str(path))
    message = " ".join(str(w.message) for w in record)
    assert str(path) in message and reason in message, message
    assert RESTORE in message and "python verification_net.py --retrain" in message, message
    assert net.done_training is False
    assert all(np.all(np.isfinite(w)) for w in net.model.get_weights())
    with pytest.raises(ValueError, match="python verification_net.py"):
        net.predict(np.zeros((2, 28, 28, 1), np.float32))
    return net


def test_corrupt_weights_warn_and_are_not_used(tmp_path):
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"\x00garbage, not an HDF5 file\xff" * 64)
    _assert_refused(bad, "bad.weights.h5")


def _rewrite_archive(source, target, edit_config=None, extra_members=()):
    """Copy the .keras archive ``source`` to ``target``, editing its config.json in place."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        for name in archive.namelist():
            data = archive.read(name)
            if name == "config.json" and edit_config is not None:
                config = json.loads(data)
                edit_config(config)
                data = json.dumps(config).encode()
            out.writestr(name, data)
        for name in extra_members:
            out.writestr(name, b"x")
    return target


def _layers(config):
    return config["config"]["layers"]


def _rename_dense(config):
    next(layer for layer in _layers(config) if layer["class_name"] == "Dense")[
        "class_name"
    ] = "EvilDense"


def _dense(config):
    """The config of the first Dense layer (256 units, after the Flatten)."""
    return next(layer for layer in _layers(config) if layer["class_name"] == "Dense")["config"]


def _other_architecture(path):
    tf_keras = _tf_keras()
    inputs = tf_keras.Input((28, 28, 1))
    outputs = tf_keras.layers.Dense(10, activation="softmax")(tf_keras.layers.Flatten()(inputs))
    tf_keras.Model(inputs, outputs).save(str(path))
    return path


def _damaged(kind, source, weights, tmp_path):
    """A damaged copy of the good .keras file ``source`` (random ``weights``)."""
    target = tmp_path / f"{kind.replace(' ', '_')}.keras"
    data = source.read_bytes()
    if kind == "truncated":
        target.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        target.write_bytes(b"")
    elif kind == "not a zip":
        target.write_bytes(b"\x00garbage, not a zip archive\xff" * 64)
    elif kind == "flipped byte":
        middle = len(data) // 2  # inside the stored (uncompressed) model.weights.h5
        target.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
    elif kind == "unknown class":
        _rewrite_archive(source, target, _rename_dense)
    elif kind == "unknown activation":
        _rewrite_archive(
            source, target, lambda c: _layers(c)[-1]["config"].update(activation="exponential")
        )
    elif kind == "extra member":
        _rewrite_archive(source, target, extra_members=["assets/readme.txt"])
    elif kind == "other architecture":
        _other_architecture(target)
    elif kind == "huge dense layer":
        _rewrite_archive(source, target, lambda c: _dense(c).update(units=10 ** 6))
    elif kind == "huge input":
        _rewrite_archive(source, target, lambda c: _layers(c)[0]["config"].update(
            batch_input_shape=[None, 28000, 28000, 1]))
    elif kind in ("NaN weights", "inf weights"):
        weights = [w.copy() for w in weights]
        weights[20][0, 0] = np.nan if kind == "NaN weights" else np.inf  # the dense kernel
        _save_keras(weights, target)
    return target


DAMAGE = {
    "truncated": "not a .keras zip archive",
    "empty": "not a .keras zip archive",
    "not a zip": "not a .keras zip archive",
    "flipped byte": "checksum mismatch",
    "unknown class": "'EvilDense'",
    "unknown activation": "'exponential'",
    "extra member": "assets/readme.txt",
    "other architecture": "another architecture",
    "huge dense layer": "units = 1000000, the VerificationNet's architecture (the limit for a "
                        "judge file) 256",
    "huge input": "batch_input_shape = [None, 28000, 28000, 1]",
    "NaN weights": "NaN or infinite",
    "inf weights": "NaN or infinite",
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_keras_files_are_refused(random_keras_file, untrained_net, tmp_path, kind):
    source, _ = untrained_net
    path = _damaged(kind, random_keras_file, source.model.get_weights(), tmp_path)
    _assert_refused(path, DAMAGE[kind])


def test_each_judge_class_admits_its_own_sizes_and_refuses_larger_ones(tmp_path):
    """FashionNet's network is larger than the VerificationNet's (a third block of
    convolutions): each class holds a file to its own architecture."""
    fashion_file = tmp_path / "fashion_net.keras"
    writer = verification_net.FashionNet(force_learn=True, file_name=str(fashion_file))
    writer._save()
    assert verification_net.FashionNet(file_name=str(fashion_file)).done_training
    with pytest.warns(UserWarning, match="could not be read"):  # another network
        assert not VerificationNet(file_name=str(fashion_file)).done_training
    huge = _rewrite_archive(fashion_file, tmp_path / "huge.keras",
                            lambda c: _dense(c).update(units=10 ** 6))
    with pytest.warns(UserWarning, match="units = 1000000, the FashionNet's architecture"):
        assert not verification_net.FashionNet(file_name=str(huge)).done_training


def test_weights_file_with_nan_is_refused(untrained_net, tmp_path):
    source, _ = untrained_net
    model = VerificationNet._build(_tf_keras())
    weights = source.model.get_weights()
    weights[0] = np.full_like(weights[0], np.nan)
    model.set_weights(weights)
    model.save_weights(str(tmp_path / "nan.weights.h5"))
    _assert_refused(tmp_path / "nan.weights.h5", "NaN or infinite")


def test_restore_hint_names_the_file_unless_it_is_the_shipped_one(tmp_path, monkeypatch):
    other = tmp_path / "my net.keras"
    assert "--retrain --file '" + str(other) + "'`" in verification_net._restore_hint(other)
    monkeypatch.setattr(verification_net, "DEFAULT_FILE", other.resolve())
    assert "`python verification_net.py --retrain`" in verification_net._restore_hint(other)


# Files that would run code when loaded. Each writes ``marker`` if its code runs.
def _lambda_model(marker):
    tf_keras = _tf_keras()
    inputs = tf_keras.Input((28, 28, 1))
    write_marker = tf_keras.layers.Lambda(lambda x: (open(marker, "a").close(), x)[1])
    model = tf_keras.Model(inputs, VerificationNet._build(tf_keras)(write_marker(inputs)))
    assert os.path.exists(marker)  # the function does write it: building the model called it
    return model


def _unsafe(kind, source, tmp_path, monkeypatch):
    marker = str(tmp_path / "MARKER")
    target = tmp_path / "unsafe.keras"
    if kind == "Lambda layer":
        _lambda_model(marker).save(str(target))
    elif kind == "HDF5 model with a Lambda, named .keras":
        # tf_keras's load_model hands a .keras name that is no zip to its legacy loader, which
        # runs Lambda bytecode from HDF5 models even with safe_mode=True.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "HDF5 is a legacy format"
            _lambda_model(marker).save(str(tmp_path / "unsafe.h5"))
        os.replace(tmp_path / "unsafe.h5", target)
    elif kind == "module to import":
        # load_model imports the module a config names: its top-level code would run.
        (tmp_path / "vn_marker_module.py").write_text(f"open({marker!r}, 'a').close()\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        _rewrite_archive(source, target, lambda c: c.update(module="vn_marker_module"))
    if os.path.exists(marker):
        os.remove(marker)
    return target, marker


UNSAFE = {
    "Lambda layer": "'Lambda'",
    "HDF5 model with a Lambda, named .keras": "not a .keras zip archive",
    "module to import": "'vn_marker_module'",
}


@pytest.mark.parametrize("kind", list(UNSAFE))
def test_files_that_would_run_code_are_refused_unrun(
    random_keras_file, tmp_path, monkeypatch, kind
):
    path, marker = _unsafe(kind, random_keras_file, tmp_path, monkeypatch)
    assert not os.path.exists(marker)
    _assert_refused(path, UNSAFE[kind])
    assert not os.path.exists(marker), "loading ran code from the file"
    assert "vn_marker_module" not in sys.modules


def test_each_judge_class_saves_and_loads_its_own_architecture_only(tmp_path):
    """The Fashion judge is a VerificationNet with another network: its file round-trips,
    and neither class takes the other's file (the shapes differ)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no weights yet at these paths
        fashion = verification_net.FashionNet(file_name=str(tmp_path / "fashion.keras"))
        digits = VerificationNet(file_name=str(tmp_path / "digits.keras"))
    fashion._save()
    digits._save()
    again = verification_net.FashionNet(file_name=str(tmp_path / "fashion.keras"))
    assert again.done_training
    for mine, saved in zip(fashion.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(mine, saved)
    with pytest.warns(UserWarning, match="could not be read"):
        judge = verification_net.FashionNet(file_name=str(tmp_path / "digits.keras"))
        assert not judge.done_training
    with pytest.warns(UserWarning, match="could not be read"):
        assert not VerificationNet(file_name=str(tmp_path / "fashion.keras")).done_training
    assert verification_net.JUDGE_CLASSES["FashionNet"] is verification_net.FashionNet


def test_learning_rate_schedules():
    digits = [VerificationNet.learning_rate(e, 8) for e in range(8)]
    assert digits[:3] == [1e-3] * 3 and digits[3] == pytest.approx(6e-4)
    fashion = [verification_net.FashionNet.learning_rate(e, 30) for e in range(30)]
    assert fashion[0] == fashion[1] == pytest.approx(1e-3)
    assert fashion[-1] == pytest.approx(1e-5)
    assert all(a >= b for a, b in zip(fashion, fashion[1:]))  # never rises


def test_tolerance_rule_takes_the_least_tolerance_with_few_confident_errors():
    labels = np.zeros(100, int)
    beliefs = np.linspace(0.5, 0.99, 100)
    predictions = np.where(beliefs < 0.7, 1, 0)  # the unsure answers are the wrong ones
    # At 0.65 about a tenth of the confident answers are wrong, at 0.7 none.
    assert verification_net.rule_tolerance(predictions, beliefs, labels) == 0.7
    assert verification_net.rule_tolerance(predictions, beliefs, labels, max_error=0.5) == 0.5
    assert verification_net.rule_tolerance(np.ones(100, int), beliefs, labels) == 0.95


def test_fashion_judge_messages_name_its_own_class_and_file(tmp_path):
    """FashionNet's warnings and errors name FashionNet, fashion_net.keras and the
    --dataset fashion_mnist command, not the digit judge's."""
    with pytest.warns(UserWarning) as record:
        net = verification_net.FashionNet(file_name=str(tmp_path / "none.keras"))
    message = " ".join(str(w.message) for w in record)
    assert "FashionNet weights not found" in message and "fashion_net.keras" in message
    assert "VerificationNet" not in message and "verification_net.keras" not in message
    with pytest.raises(ValueError, match="FashionNet has no trained weights.*--dataset "
                                         "fashion_mnist"):
        net.predict(np.zeros((1, 28, 28, 1), np.float32))
    hint = verification_net._restore_hint(tmp_path / "x.keras", verification_net.FashionNet)
    assert "saved_models/fashion_net.keras" in hint and "--dataset fashion_mnist" in hint
    assert verification_net.FashionNet.shipped_path().name == "fashion_net.keras"


def test_each_data_set_names_the_file_its_judge_class_ships_in():
    """named_data's judge_file and the judge class's shipped_file say the same twice: keep
    them equal (the data set loads its judge from one, the judge's messages name the other)."""
    import named_data

    for name in named_data.names():
        entry = named_data.get(name)
        judge = verification_net.JUDGE_CLASSES[entry.judge_class]
        assert judge.shipped_path() == named_data.SAVED_MODELS / entry.judge_file, name
        assert named_data.get(judge.dataset).judge_file == entry.judge_file, name
