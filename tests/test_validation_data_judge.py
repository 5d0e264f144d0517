"""Anomaly labels for models/anomaly.py: evaluate_scores takes booleans (or 0/1) only, so digit
labels cannot silently make "not a 0" the anomaly; contains_digit checks its digit, channels
and labels. No model, no MNIST: runs in a second."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation import contains_digit, evaluate_scores, save_curves

RNG = np.random.default_rng(0)
SCORES = RNG.random(200)
DIGITS = RNG.integers(0, 10, 200)  # digit labels, not anomaly labels


@pytest.mark.parametrize(
    "labels, shown",
    [
        (DIGITS, "dtype int64"),
        (DIGITS.astype(np.float64), "dtype float64"),
        (np.where(DIGITS == 8, 1.0, 0.5), "0.5"),
        (np.where(DIGITS == 8, 1.0, np.nan), "nan"),
        (np.where(DIGITS == 8, "yes", "no"), "dtype <U3"),
        (np.where(DIGITS == 8, -1, 0), "-1"),
    ],
    ids=["digits", "float digits", "halves", "NaN", "strings", "minus one"],
)
def test_evaluate_scores_refuses_labels_that_are_not_anomaly_flags(labels, shown):
    """Digit labels 0-9 used to be read as "anomaly unless 0"."""
    with pytest.raises(ValueError, match=r"contains_digit\(labels, 8, channels\)") as info:
        evaluate_scores(SCORES, labels)
    message = str(info.value)
    assert "boolean" in message and shown in message, message
    with pytest.raises(ValueError, match=r"contains_digit\(labels, 8, channels\)"):
        save_curves({"s": SCORES}, labels, "never-written.png", "t")


def test_evaluate_scores_takes_booleans_and_0_1_alike():
    flags = contains_digit(DIGITS, 8, 1)
    expected = evaluate_scores(SCORES, flags)
    for same in (flags.astype(np.int64), flags.astype(np.uint8), flags.astype(np.float32),
                 flags.tolist(), flags.astype(int).tolist()):
        assert evaluate_scores(SCORES, same) == expected


def test_evaluate_scores_refuses_empty_input():
    with pytest.raises(ValueError, match="no scores"):
        evaluate_scores([], [])
    with pytest.raises(ValueError, match="no scores"):
        evaluate_scores(np.zeros(0), np.zeros(0, bool))


@pytest.mark.parametrize("digit", [10, -1, 8.5, 8.0, "8", True, None], ids=repr)
def test_contains_digit_refuses_a_digit_outside_0_9(digit):
    """digit=10 used to give all False (no anomalies at all)."""
    with pytest.raises(ValueError, match=r"digit must be an integer in 0\.\.9"):
        contains_digit(DIGITS, digit, 1)


@pytest.mark.parametrize("channels", [0, 2, 4, 1.0, True, "3"], ids=repr)
def test_contains_digit_refuses_channels_other_than_1_or_3(channels):
    """channels=2 used to look at two digits of a label without complaint."""
    with pytest.raises(ValueError, match=r"channels must be 1 \(mono\) or 3 \(colour\)"):
        contains_digit(DIGITS, 8, channels)


@pytest.mark.parametrize(
    "labels, message",
    [([], "no labels"), (np.zeros((0,), int), "no labels"), ([8.5, 3.0], "8.5"),
     ([-2, 3], "-2"), ([True, False], "dtype bool"), (["8"], "dtype <U1")],
    ids=["empty list", "empty array", "non-integral", "negative", "booleans", "strings"],
)
def test_contains_digit_refuses_empty_or_non_integer_labels(labels, message):
    with pytest.raises(ValueError, match="labels") as info:
        contains_digit(labels, 8, 1)
    assert message in str(info.value), str(info.value)


def test_contains_digit_accepts_integral_floats_and_numpy_integers():
    expected = contains_digit([8, 80, 800, 123, 888], 8, 3)
    np.testing.assert_array_equal(expected, [True, True, True, False, True])
    np.testing.assert_array_equal(
        contains_digit(np.array([8.0, 80.0, 800.0, 123.0, 888.0]), np.int64(8), np.int64(3)),
        expected)


@pytest.mark.parametrize("labels, channels", [([800, 80, 3], 1), ([18], 1), ([1000], 3)])
def test_contains_digit_refuses_labels_beyond_the_channels(labels, channels):
    """Colour labels with the mono default used to answer "no 8" for 800 and 80."""
    with pytest.raises(ValueError, match=f"0..{10 ** channels - 1}") as info:
        contains_digit(labels, 8, channels)
    assert ("need channels=3" in str(info.value)) == (channels == 1)


@pytest.mark.parametrize("counts", [[1, np.nan, 2], [1, np.inf], [-1, 2], [[1, 2]], []],
                         ids=["nan", "inf", "negative", "2-d", "empty"])
def test_kl_to_uniform_refuses_counts_that_are_no_counts(counts):
    from evaluation import kl_to_uniform

    with pytest.raises(ValueError, match="counts must be one finite count >= 0 per class"):
        kl_to_uniform(counts)


@pytest.mark.parametrize("predictions, beliefs, message", [
    ([1, 2], [np.nan, 0.9], "beliefs must be finite numbers in \\[0, 1\\]"),
    ([1, 2], [0.9, 1.5], "beliefs must be finite"),
    ([1, 10], [0.9, 0.9], "predictions must be integer class labels in 0..9"),
    ([1, 2], [0.9], "one value per prediction"),
    (np.array([], int), np.array([]), "there are no predictions"),
])
def test_generation_metrics_refuse_verdicts_that_are_no_verdicts(predictions, beliefs, message):
    """A NaN belief counted as not confident, a class 10 of mono images as an eleventh class
    (coverage 11/10 possible), and no samples at all was a ZeroDivisionError."""
    import named_data
    from evaluation import generation_metrics

    with pytest.raises(ValueError, match=message):
        generation_metrics(None, named_data.get("mnist"), np.asarray(predictions),
                           np.asarray(beliefs))


def test_judged_images_and_class_shares_check_their_input():
    from evaluation import class_shares, judged_images

    with pytest.raises(ValueError, match="NaN"):
        judged_images(np.full((1, 28, 28, 1), np.nan, np.float32))
    with pytest.raises(ValueError, match="predictions must be integer class labels in 0..9"):
        class_shares(np.array([1, 10]), 1)
    assert class_shares(np.array([], int), 1).shape == (1, 10)


def test_conditional_accuracy_of_a_digit_never_requested_is_none_not_nan(verifier):
    """Labels all 3 gave NaN (0 / 0) for the other nine digits' accuracies in metrics.json."""
    import named_data
    from evaluation import conditional_metrics

    x = np.zeros((4, 28, 28, 1), np.float32)
    per_digit = conditional_metrics(x, [3, 3, 3, 3], named_data.get("mnist"))[
        "conditional_accuracy_per_digit"]
    assert per_digit[3] == 0.0 and per_digit[:3] == [None] * 3 and None in per_digit[4:]
