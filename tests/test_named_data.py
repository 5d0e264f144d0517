"""Every data set entry: names, shapes, classes, the course API underneath, its judge (real
images score high, noise low), anomaly labels; and the evaluation functions (closed forms,
brackets, a generator with no encoder)."""
import numpy as np
import pytest

import evaluation
import named_data
from stacked_mnist import DataMode, StackedMNISTData

ENTRIES = sorted(named_data.DATASETS)
# Real test images' least share judged confidently: digits are easy, and the Fashion judge is
# unsure of a sixth of the real garments (shirts, T-shirts, pullovers and coats look alike).
REAL_FLOOR = {"mnist": 0.9, "stacked_mnist": 0.9}


def real_floor(entry) -> float:
    return REAL_FLOOR.get(entry.name, 0.6)


@pytest.fixture(scope="module", params=ENTRIES)
def entry_and_data(request, mnist_dir):
    entry = named_data.get(request.param)
    return entry, entry.load(missing=True, seed=0)


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown data set 'emnist'; known: binarised_mnist, "
                                         "fashion_mnist, mnist"):
        named_data.get("emnist")


def test_names_refuses_a_channel_count_no_data_set_can_have():
    for channels in (0, 2, "3"):
        with pytest.raises(ValueError, match="channels must be 1"):
            named_data.names(channels=channels)
    assert set(named_data.names()) == set(named_data.names(1)) | set(named_data.names(3))


def test_each_entry_loads_its_shape_classes_and_drops_the_anomaly_class(entry_and_data):
    entry, (x_train, y_train, x_test, y_test) = entry_and_data
    assert x_train.shape[1:] == x_test.shape[1:] == entry.image_shape
    assert x_train.dtype == np.float32 and 0 <= x_train.min() and x_train.max() <= 1
    assert y_test.min() >= 0 and y_test.max() < entry.num_classes
    assert not evaluation.anomaly_labels(y_train, entry).any()  # missing=True
    share = evaluation.anomaly_labels(y_test, entry).mean()
    expected = 1 - (1 - 0.1) ** entry.channels  # about one class in ten per channel
    assert abs(share - expected) < 0.03
    assert entry.mono().channels == 1
    if entry.channels == 3 or entry.stacked_name is not None:
        assert entry.stacked().channels == 3 and entry.stacked().mono() == entry.mono()
    else:
        with pytest.raises(ValueError, match="has no stacked version"):
            entry.stacked()


@pytest.mark.slow  # fits or trains for seconds
def test_an_entry_is_the_course_api_underneath(mnist_dir):
    for name, mode in (("mnist", DataMode.MONO_BINARY_COMPLETE),
                       ("stacked_mnist", DataMode.COLOR_BINARY_MISSING)):
        entry = named_data.get(name)
        assert entry.data_mode(mode.missing) == mode and entry.data_name(mode.missing) == mode.name
        course = StackedMNISTData(mode, seed=3)
        ours = entry.load(missing=mode.missing, seed=3)
        for mine, theirs in zip(ours, (*course.get_full_data_set(True),
                                       *course.get_full_data_set(False))):
            np.testing.assert_array_equal(mine, theirs)


def test_the_binarised_entry_draws_its_test_set_once_and_keeps_training_grey(mnist_dir):
    entry = named_data.get("binarised_mnist")
    assert entry.data_name() == "BINARISED_MNIST_DYNAMIC_COMPLETE"
    x_train, y_train, x_test, y_test = entry.load(seed=5)
    grey = named_data.get("mnist").load(binary=False)
    np.testing.assert_array_equal(x_train, grey[0])  # the trainer draws from these
    np.testing.assert_array_equal(y_test, grey[3])
    assert set(np.unique(x_test)) == {0.0, 1.0}
    np.testing.assert_array_equal(x_test, entry.load(seed=9)[2])  # one draw, whatever the seed
    np.testing.assert_array_equal(
        x_test, named_data.draw_binary(grey[2], named_data.BINARISED_TEST_SEED))
    # a draw, not the threshold: mid-grey pixels go either way, in proportion
    mid = (grey[2] > 0.4) & (grey[2] < 0.6)
    assert 0.4 < x_test[mid].mean() < 0.6
    assert not np.array_equal(x_test, named_data.get("mnist").load()[2])


def test_each_judge_scores_real_images_high_and_noise_low(entry_and_data):
    entry, (_, _, x_test, y_test) = entry_and_data
    real = evaluation.generation_metrics(x_test[:2000], entry)
    assert real["quality_predictability"] > real_floor(entry)
    assert real["coverage"] > (0.99 if entry.channels == 1 else 0.8)
    noise = np.random.default_rng(0).random((500,) + entry.image_shape).astype(np.float32)
    judged_noise = evaluation.generation_metrics(noise, entry)
    assert judged_noise["quality_predictability"] < 0.1
    one_image = evaluation.generation_metrics(np.repeat(x_test[:1], 200, axis=0), entry)
    assert one_image["classes_covered"] == 1
    assert one_image["kl_class_frequencies_to_uniform_nats"] == pytest.approx(
        np.log(entry.num_classes))
    reconstructed = evaluation.reconstruction_metrics(x_test[:500], x_test[:500], y_test[:500],
                                                      entry)
    assert reconstructed["reconstruction_accuracy"] == reconstructed[
        "original_test_images_accuracy"] > real_floor(entry) - 0.1
    if entry.channels == 1:  # per class too: the classes' shares weigh them to the whole
        per_class, counts = reconstructed["per_class_accuracy"], np.bincount(y_test[:500])
        assert list(per_class) == [n for c, n in enumerate(entry.class_names) if counts[c]]
        whole = sum(counts[c] * per_class[n]["reconstructions"]
                    for c, n in enumerate(entry.class_names) if counts[c]) / 500
        assert whole == pytest.approx(reconstructed["reconstruction_accuracy"])


def test_kl_to_uniform_closed_forms():
    assert evaluation.kl_to_uniform(np.array([5, 5, 5, 5])) == 0.0
    assert evaluation.kl_to_uniform(np.array([0, 7, 0, 0])) == pytest.approx(np.log(4))
    assert evaluation.kl_to_uniform(np.array([1, 3])) == pytest.approx(
        0.25 * np.log(0.5) + 0.75 * np.log(1.5))
    assert evaluation.kl_to_uniform(np.zeros(10, int)) is None


def test_judged_images_are_8_bit_and_leave_binary_images_alone():
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype(np.float32)
    judged = evaluation.judged_images(x)
    np.testing.assert_allclose(judged * 255, np.round(judged * 255), atol=1e-4)
    assert np.abs(judged - x).max() <= 0.5 / 255 + 1e-7
    binary = (x > 0.5).astype(np.float32)
    np.testing.assert_array_equal(evaluation.judged_images(binary), binary)


class ReplayGenerator:
    """No encoder, no ELBO, no model family: only ``generate_images`` (a GAN's interface)."""

    def __init__(self, images):
        self.images = images

    def generate_images(self, count, seed=0, labels=None):
        pick = np.random.default_rng(seed).integers(0, len(self.images), count)
        return self.images[pick]


def test_a_generator_without_an_encoder_goes_through_the_evaluation(entry_and_data):
    entry, (_, _, x_test, _) = entry_and_data
    images, metrics = evaluation.generate_and_judge(ReplayGenerator(x_test), 300, entry, seed=1)
    assert images.shape == (300,) + entry.image_shape
    assert metrics["samples"] == 300
    assert metrics["quality_predictability"] > real_floor(entry) - 0.05
    again, same = evaluation.generate_and_judge(ReplayGenerator(x_test), 300, entry, seed=1)
    np.testing.assert_array_equal(images, again)
    assert same == metrics  # one seed, one table
