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


def contains_digit(labels, digit: int = 8, channels: int = 1) -> np.ndarray:
    """True where any of the ``channels`` decimal digits of the label equals ``digit``."""
    labels = np.asarray(labels)
    return np.any([(labels // 10 ** c) % 10 == digit for c in range(channels)], axis=0)


def evaluate_scores(scores, is_anomaly) -> Dict[str, float]:
    """ROC AUC, PR AUC (average precision) and the Youden-J threshold with its TPR / FPR."""
    scores = np.asarray(scores, np.float64)
    is_anomaly = np.asarray(is_anomaly, bool)
    if scores.shape != is_anomaly.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and labels {is_anomaly.shape} must be equal 1-D.")
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
