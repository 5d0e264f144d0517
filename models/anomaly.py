"""Anomaly evaluation: AUCs, curves, a Youden threshold and figures for one or more scores.

A score is higher for more anomalous images (e.g. reconstruction NLL, or -log p(x)); the
positives are the anomalies (test images that show an 8).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from sklearn.metrics import roc_curve


def _is_integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def contains_digit(labels, digit: int = 8, channels: int = 1) -> np.ndarray:
    """True where any of the ``channels`` decimal digits of the label equals ``digit``.

    A digit outside 0..9, other channels than 1 or 3, or labels that are no non-negative
    integers would give an answer (often all False) that looks like a real one, so they raise.
    """
    if not _is_integer(digit) or not 0 <= digit <= 9:
        raise ValueError(f"digit must be an integer in 0..9, got {digit!r}.")
    if not _is_integer(channels) or channels not in (1, 3):
        raise ValueError(f"channels must be 1 (mono) or 3 (colour), got {channels!r}.")
    labels = np.asarray(labels)
    if labels.size == 0:
        raise ValueError(f"there are no labels (shape {labels.shape}); pass the class labels.")
    expected = "labels must be non-negative integer class labels (R + 10 G + 100 B for colour)"
    is_integer = np.issubdtype(labels.dtype, np.integer)
    if not (is_integer or np.issubdtype(labels.dtype, np.floating)):
        raise ValueError(f"{expected}; got dtype {labels.dtype}.")
    bad = labels < 0
    if not is_integer:
        bad |= ~np.isfinite(labels) | (labels != np.round(labels))
    if np.any(bad):
        raise ValueError(f"{expected}; got {labels[bad].flat[0].item()!r}.")
    return np.any([(labels // 10 ** c) % 10 == digit for c in range(channels)], axis=0)


def _anomaly_flags(is_anomaly) -> np.ndarray:
    """``is_anomaly`` as a bool array. Only booleans or 0/1 are accepted: digit labels 0-9
    would otherwise make every image that is not a 0 an anomaly."""
    flags = np.asarray(is_anomaly)
    if flags.dtype == bool:
        return flags
    fix = ("pass contains_digit(labels, 8, channels) or a boolean array (True for an anomaly), "
           "not the class labels")
    if not (np.issubdtype(flags.dtype, np.integer) or np.issubdtype(flags.dtype, np.floating)):
        raise ValueError(f"anomaly labels must be booleans or 0/1; got dtype {flags.dtype}: {fix}.")
    bad = np.unique(flags[(flags != 0) & (flags != 1)])
    if bad.size:
        shown = ", ".join(repr(v) for v in bad[:4].tolist()) + (", ..." if bad.size > 4 else "")
        raise ValueError(
            f"anomaly labels must be booleans or 0/1; got {shown} (dtype {flags.dtype}): {fix}."
        )
    return flags.astype(bool)


def evaluate_scores(scores, is_anomaly) -> Dict[str, float]:
    """ROC AUC, PR AUC (average precision) and the Youden-J threshold with its TPR / FPR.

    ``is_anomaly``: booleans or 0/1, e.g. ``contains_digit(labels, 8, channels)``.
    """
    scores = np.asarray(scores, np.float64)
    is_anomaly = _anomaly_flags(is_anomaly)
    if scores.shape != is_anomaly.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and labels {is_anomaly.shape} must be equal 1-D.")
    if scores.size == 0:
        raise ValueError("there are no scores (empty input); AUCs need scored test images.")
    if not np.all(np.isfinite(scores)):
        raise ValueError("anomaly scores contain NaN or infinite values.")
    if is_anomaly.all() or not is_anomaly.any():
        raise ValueError("AUCs need both anomalies and normal images among the labels.")
    fpr, tpr, thresholds = roc_curve(is_anomaly, scores)
    # thresholds[0] is +inf (nothing flagged, J = 0); skip it so the threshold is a real score.
    best = 1 + int(np.argmax(tpr[1:] - fpr[1:]))
    return {
        "roc_auc": float(roc_auc_score(is_anomaly, scores)),
        "pr_auc": float(average_precision_score(is_anomaly, scores)),
        "anomaly_rate": float(is_anomaly.mean()),
        "youden_threshold": float(thresholds[best]),
        "youden_tpr": float(tpr[best]),
        "youden_fpr": float(fpr[best]),
    }


def save_curves(score_sets: Dict[str, np.ndarray], is_anomaly, path, title: str) -> Path:
    """ROC (left) and precision-recall (right) curves of several scores in one PNG."""
    from matplotlib.figure import Figure

    from atomic_io import save_figure

    is_anomaly = _anomaly_flags(is_anomaly)
    fig = Figure(figsize=(10, 4.5))
    roc_ax, pr_ax = fig.subplots(1, 2)
    for name, scores in score_sets.items():
        fpr, tpr, _ = roc_curve(is_anomaly, scores)
        precision, recall, _ = precision_recall_curve(is_anomaly, scores)
        roc_ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(is_anomaly, scores):.3f})")
        pr_ax.plot(recall, precision,
                   label=f"{name} (AP {average_precision_score(is_anomaly, scores):.3f})")
    roc_ax.plot([0, 1], [0, 1], "k:", lw=1)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr_ax.axhline(np.mean(is_anomaly), color="k", ls=":", lw=1)
    pr_ax.set(xlabel="recall", ylabel="precision", title="precision-recall")
    for ax in (roc_ax, pr_ax):
        ax.legend(fontsize=8, loc="lower right" if ax is roc_ax else "upper right")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
