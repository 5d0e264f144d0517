"""Anomaly thresholds (evaluation.choose_thresholds and friends): each rule on scores where
the answer is known by hand, the measures of a threshold, the split and the synthetic
anomalies. No model, no data: runs in a second."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation import (THRESHOLD_RULES, choose_thresholds, flag_anomalies,
                        synthetic_anomalies, threshold_metrics, validation_split)

# Normal images score 0..99, anomalies 90..109: scores 90..99 are ambiguous.
NORMAL = np.arange(100.0)
ANOMALIES = np.arange(90.0, 110.0)
SCORES = np.concatenate([NORMAL, ANOMALIES])
IS_ANOMALY = np.arange(120) >= 100


def test_each_rule_picks_the_threshold_worked_out_by_hand():
    chosen = choose_thresholds(SCORES, IS_ANOMALY)
    assert set(chosen) == set(THRESHOLD_RULES)
    # At t = 95: FPR 5/100, TPR 15/20; distance to (0, 1) 0.25. At t = 96: FPR 0.04, TPR 0.7
    # (0.303); at t = 94: FPR 0.06, TPR 0.8 (0.209); ... the least distance lies at t = 90:
    # FPR 0.10, TPR 1.0 (0.10).
    assert chosen["roc_corner"] == 90.0
    # F1 at t: precision (110 - t) / (110 - t + 100 - t), recall min(1, (110 - t) / 20);
    # t = 90: 20 / 30 -> F1 0.8; t = 91: 19 / 28, 0.95 -> 0.792; so 90.
    assert chosen["best_f1"] == 90.0
    assert chosen["normal_q95"] == 95.0  # the 95th percentile of 0..99 (the higher value)
    assert chosen["normal_band"] == (2.0, 97.0)


def test_threshold_metrics_count_flags_by_hand():
    result = threshold_metrics(SCORES, IS_ANOMALY, 95.0)
    # flagged: normal 95..99 (5), anomalies 95..109 (15); missed anomalies 90..94 (5)
    assert result == pytest.approx({"accuracy": 110 / 120, "precision": 15 / 20,
                                    "recall": 15 / 20, "false_positive_rate": 5 / 100})
    band = threshold_metrics(SCORES, IS_ANOMALY, (2.0, 97.0))
    # flagged: normal 0, 1, 98, 99 (4), anomalies 98..109 (12)
    assert band == pytest.approx({"accuracy": (96 + 12) / 120, "precision": 12 / 16,
                                  "recall": 12 / 20, "false_positive_rate": 4 / 100})
    only_anomalies = threshold_metrics(ANOMALIES, np.ones(20, bool), 95.0)
    assert only_anomalies["recall"] == only_anomalies["accuracy"] == 0.75
    assert np.isnan(only_anomalies["false_positive_rate"])
    assert np.isnan(threshold_metrics(NORMAL, np.zeros(100, bool), 1e9)["precision"])


@pytest.mark.parametrize("threshold", [np.nan, np.inf, (5.0, 1.0), (1.0, 2.0, 3.0), "high"],
                         ids=repr)
def test_a_threshold_that_is_no_score_or_band_is_refused(threshold):
    with pytest.raises(ValueError, match="threshold is one finite score or a band"):
        flag_anomalies(SCORES, threshold)


def test_thresholds_refuse_scores_that_cannot_choose():
    with pytest.raises(ValueError, match="both anomalies and normal images"):
        choose_thresholds(NORMAL, np.zeros(100, bool))
    with pytest.raises(ValueError, match="NaN or infinite"):
        choose_thresholds(np.where(IS_ANOMALY, np.nan, SCORES), IS_ANOMALY)
    with pytest.raises(ValueError, match="not the class labels"):
        threshold_metrics(SCORES, np.arange(120) % 10, 95.0)


def test_validation_split_keeps_the_anomaly_share_and_depends_on_the_seed_only():
    validation, test = validation_split(IS_ANOMALY, seed=3)
    assert len(validation) == len(test) == 60 and not set(validation) & set(test)
    assert IS_ANOMALY[validation].sum() == IS_ANOMALY[test].sum() == 10
    again, _ = validation_split(IS_ANOMALY, seed=3)
    other, _ = validation_split(IS_ANOMALY, seed=4)
    assert np.array_equal(validation, again) and not np.array_equal(validation, other)
    with pytest.raises(ValueError, match="cannot be split"):
        validation_split(np.arange(120) >= 119)  # one anomaly cannot go to both sides
    with pytest.raises(ValueError, match="fraction"):
        validation_split(IS_ANOMALY, fraction=1.0)


def test_synthetic_anomalies_are_what_they_say():
    images = np.random.default_rng(0).random((10, 28, 28, 1), dtype=np.float32)
    made = synthetic_anomalies(images, 4, seed=1)
    assert list(made) == ["uniform noise", "blank", "inverted"]
    assert all(x.shape == (4, 28, 28, 1) for x in made.values())
    assert not made["blank"].any() and np.array_equal(made["inverted"], 1 - images[:4])
    assert 0.45 < made["uniform noise"].mean() < 0.55
    binary = synthetic_anomalies(images, 4, seed=1, binary=True)["uniform noise"]
    assert set(np.unique(binary)) == {0.0, 1.0}
    assert np.array_equal(synthetic_anomalies(images, 4, seed=1)["uniform noise"],
                          made["uniform noise"])
    with pytest.raises(ValueError, match="count must be an integer in 1..10"):
        synthetic_anomalies(images, 11)
