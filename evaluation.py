"""Evaluation as functions of arrays, a data set entry and its judge (no flags, no files
but the figures asked for): what every script and notebook computes the same way.

    import named_data, evaluation
    mnist = named_data.get("mnist")
    images = evaluation.judged_images(model.generate_images(10_000, seed=0))
    metrics = evaluation.generation_metrics(images, mnist)       # quality, coverage, KL ...
    evaluation.evaluate_scores(scores, evaluation.anomaly_labels(y_test, mnist))  # AUCs

Generated images are judged as 8-bit grey levels (``judged_images``), like MNIST's own float
images: the judge cannot tell (quality moved by 0.004 points on 26,000 colour means) and saved
samples deflate to a fifth. The tolerance is the data set entry's. Anomaly scores are higher
for more anomalous images; the positives are the test images that show the entry's anomaly
class (in any channel of a stack).
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from sklearn.metrics import roc_curve

from atomic_io import save_figure
from named_data import Dataset
from stacked_mnist import channel_digits, validate_images, validate_labels

JUDGED_IMAGE_PRECISION = "8-bit grey levels (k / 255)"


# ---------------------------------------------------------------------------------------------
# The judge's verdicts
# ---------------------------------------------------------------------------------------------
def judged_images(images) -> np.ndarray:
    """The one judged-image rule: images (N, 28, 28, C) in [0, 1] as 8-bit grey levels k / 255
    (binary images are unchanged)."""
    return np.round(validate_images(images, "images") * 255) / 255


def verdicts(images, dataset: Dataset) -> Tuple[np.ndarray, np.ndarray]:
    """``(predictions (N,) int, beliefs (N,))`` of the data set's judge; a stack's prediction
    is R + 10 G + 100 B and its belief the product of the channels' beliefs."""
    predictions, beliefs = dataset.judge().predict(images)
    return predictions.astype(int), beliefs


def kl_to_uniform(counts) -> Optional[float]:
    """KL(class frequencies || uniform) in nats; None when there is nothing to count."""
    counts = np.asarray(counts)
    if (not np.issubdtype(counts.dtype, np.number) or counts.ndim != 1 or len(counts) == 0
            or not np.all(np.isfinite(counts)) or np.any(counts < 0)):
        raise ValueError(f"counts must be one finite count >= 0 per class; got {counts!r}.")
    if counts.sum() == 0:
        return None
    frequencies = counts[counts > 0] / counts.sum()
    return float(np.sum(frequencies * np.log(frequencies * len(counts))))


def class_shares(predictions, channels: int) -> np.ndarray:
    """(channels, 10): how often each class is predicted in each channel."""
    predictions = np.asarray(predictions)
    if predictions.size:  # none at all: every share is 0
        predictions = validate_labels(predictions, channels, "predictions")
    per_channel = channel_digits(predictions.astype(np.int64), channels).T
    return np.array([np.bincount(c, minlength=10) / max(1, len(c)) for c in per_channel])


def generation_metrics(images, dataset: Dataset, predictions=None, beliefs=None) -> dict:
    """How a generator's samples fare with the judge: quality (the share judged confidently),
    coverage of the classes, the class frequencies' KL to uniform (every sample counted with
    its most likely class, as in the GAN literature; and only the confident ones), and what a
    perfectly uniform generator would score with as many samples (the finite-sample bias).

    images: (N, 28, 28, C) judged images (``judged_images``); ``predictions``, ``beliefs``:
    the judge's verdicts when already computed (then ``images`` may be None).
    """
    if predictions is None:
        predictions, beliefs = verdicts(images, dataset)
    predictions, beliefs = _checked_verdicts(predictions, beliefs, dataset.channels)
    confident = beliefs >= dataset.tolerance
    classes = dataset.num_classes
    confident_counts = np.bincount(predictions[confident], minlength=classes)
    shares = class_shares(predictions[confident], dataset.channels)
    return {
        "judged_image_precision": JUDGED_IMAGE_PRECISION,
        "tolerance": dataset.tolerance,
        "samples": int(len(predictions)),
        "quality_predictability": float(np.mean(confident)),
        "coverage": float(np.count_nonzero(confident_counts)) / classes,
        "classes_covered": int(np.count_nonzero(confident_counts)),
        "kl_class_frequencies_to_uniform_nats": kl_to_uniform(
            np.bincount(predictions, minlength=classes)),
        "kl_confident_samples_to_uniform_nats": kl_to_uniform(confident_counts),
        "kl_of_a_uniform_generator_expected_nats": (classes - 1) / (2 * len(predictions)),
        "digit_frequencies_per_channel": {f"channel_{c}": np.round(shares[c], 4).tolist()
                                          for c in range(dataset.channels)},
    }


def _checked_verdicts(predictions, beliefs, channels: int) -> Tuple[np.ndarray, np.ndarray]:
    """The judge's ``(predictions, beliefs)`` given by a caller: at least one, one belief per
    prediction, classes of ``channels`` channels, beliefs finite in [0, 1] (a NaN belief
    would silently count as not confident, a class 10 of mono images as an eleventh class)."""
    predictions = validate_labels(np.asarray(predictions), channels, "predictions")
    beliefs = np.asarray(beliefs)
    if beliefs.shape != predictions.shape:
        raise ValueError(f"beliefs must hold one value per prediction, {predictions.shape}; "
                         f"got shape {beliefs.shape}.")
    if len(predictions) == 0:
        raise ValueError("there are no predictions: generation metrics need samples.")
    if (not np.issubdtype(beliefs.dtype, np.floating) or not np.all(np.isfinite(beliefs))
            or np.any((beliefs < 0) | (beliefs > 1))):
        raise ValueError("beliefs must be finite numbers in [0, 1] (the judge's).")
    return predictions.astype(int), beliefs


def real_images_reference(x, dataset: Dataset) -> dict:
    """What the judge makes of real test images ``x`` as if they were samples: the ceiling
    of a generator's quality, coverage and class KL."""
    metrics = generation_metrics(judged_images(x), dataset)
    return {f"real_test_images_{key}": metrics[key]
            for key in ("quality_predictability", "coverage",
                        "kl_class_frequencies_to_uniform_nats")}


def generate_and_judge(generator, count: int, dataset: Dataset, seed: int = 0,
                       labels=None) -> Tuple[np.ndarray, dict]:
    """``(judged images, generation_metrics)`` of ``count`` images from anything with
    ``generate_images(count, seed=, labels=)`` (a model, ``models.Generator``, a GAN)."""
    kwargs = {} if labels is None else {"labels": labels}
    images = judged_images(generator.generate_images(count, seed=seed, **kwargs))
    return images, generation_metrics(images, dataset)


def conditional_metrics(images, labels, dataset: Dataset) -> dict:
    """Samples drawn for requested ``labels`` (N,): conditional accuracy (confident and the
    requested class), quality, coverage, and how many labels got a correct sample."""
    labels = validate_labels(labels, dataset.channels)
    predictions, beliefs = verdicts(images, dataset)
    confident = beliefs >= dataset.tolerance
    correct = confident & (predictions == labels)
    classes = dataset.num_classes
    hits = np.bincount(labels[correct], minlength=classes)
    return {
        "conditional_accuracy": float(correct.mean()),
        "quality_predictability": float(confident.mean()),
        "coverage": float(len(np.unique(predictions[confident])) / classes),
        "labels_with_a_correct_sample": int(np.sum(hits > 0)),
        "fewest_correct_samples_of_a_label": int(hits.min()),
        # A digit never requested has no accuracy (None, null in JSON), not NaN.
        **({"conditional_accuracy_per_digit": [
            None if requested == 0 else round(float(hit / requested), 4)
            for hit, requested in zip(hits, np.bincount(labels, minlength=10))]}
           if dataset.channels == 1 else {}),
    }


def reconstruction_metrics(reconstructions, x, labels, dataset: Dataset) -> dict:
    """The judge on reconstructions of ``x`` (N, 28, 28, C) with labels (N,): predictability,
    accuracy (confident and right), and the accuracy on ``x`` itself (the ceiling); for a
    mono data set both accuracies per class too (which classes the reconstructions lose).
    One judge pass per array; the measures are ``check_predictability``'s."""
    labels = validate_labels(labels, dataset.channels)
    if not len(labels) == len(reconstructions) == len(x):
        raise ValueError(f"{len(labels)} labels for {len(reconstructions)} reconstructions of "
                         f"{len(x)} images; give one label per image.")
    confident, right = {}, {}
    for name, images in (("reconstructions", reconstructions), ("test_images", x)):
        predictions, beliefs = verdicts(images, dataset)
        confident[name] = beliefs >= dataset.tolerance
        right[name] = confident[name] & (predictions == labels)
    results = {"tolerance": dataset.tolerance,
               "reconstruction_predictability": float(confident["reconstructions"].mean()),
               "reconstruction_accuracy": float(right["reconstructions"].mean()),
               "original_test_images_accuracy": float(right["test_images"].mean())}
    if dataset.channels == 1:
        results["per_class_accuracy"] = {
            class_name: {name: float(right[name][labels == c].mean()) for name in right}
            for c, class_name in enumerate(dataset.class_names) if np.any(labels == c)}
    return results


# ---------------------------------------------------------------------------------------------
# Fidelity and diversity in the judge's feature space
# ---------------------------------------------------------------------------------------------
def judge_features(images, dataset: Dataset) -> np.ndarray:
    """(N, 256 C): the data set's judge's penultimate activations of judged ``images``."""
    return dataset.judge().features(judged_images(images))


def _checked_features(features, name: str) -> np.ndarray:
    values = np.asarray(features, np.float64)
    if values.ndim != 2 or len(values) < 2 or not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite feature vectors (N >= 2, D); got shape "
                         f"{values.shape}.")
    return values


def frechet_distance(features_a, features_b) -> float:
    """The Frechet distance between Gaussians fitted to two sets of feature vectors,
    |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (Heusel et al., NeurIPS 2017, in the
    judge's features instead of Inception's): 0 for one distribution, larger the further the
    means and covariances differ."""
    a, b = _checked_features(features_a, "features_a"), _checked_features(features_b,
                                                                            "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the feature sets differ in width: {a.shape[1]} and {b.shape[1]}.")
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr (S_a S_b)^(1/2) = sum of the square roots of the eigenvalues of the symmetric
    # S_a^(1/2) S_b S_a^(1/2): stable where a covariance is singular (a collapsed generator).
    values, vectors = np.linalg.eigh(cov_a)
    half_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    trace_root = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(half_a @ cov_b @ half_a), 0, None)))
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2)
                 + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def _squared_distances(queries: np.ndarray, points: np.ndarray, chunk: int = 2000):
    """``(start, block of squared distances)`` from every ``chunk`` queries to all points."""
    squared = np.sum(points ** 2, axis=1)
    for start in range(0, len(queries), chunk):
        block = queries[start:start + chunk]
        yield start, np.sum(block ** 2, axis=1)[:, None] + squared[None] - 2 * block @ points.T


def _kth_neighbour_radii(points: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest other point of the same set."""
    radii = np.empty(len(points))
    for start, distances in _squared_distances(points, points):
        # [:, 0] is the point itself
        radii[start:start + len(distances)] = np.sqrt(np.maximum(
            np.partition(distances, k, axis=1)[:, k], 0))
    return radii


def _inside_any_ball(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    inside = np.empty(len(queries), bool)
    for start, distances in _squared_distances(queries, centres):
        inside[start:start + len(distances)] = np.any(distances <= radii[None] ** 2, axis=1)
    return inside


def manifold_precision_recall(real_features, fake_features, k: int = 3) -> Dict[str, float]:
    """Precision and recall of generated images (Kynkaanniemi et al., NeurIPS 2019): each
    set's manifold is the union of balls around its points reaching their k-th nearest
    neighbour; precision is the share of generated points inside the real manifold (fidelity),
    recall the share of real points inside the generated one (diversity: a generator that
    drops modes loses recall, not precision)."""
    real = _checked_features(real_features, "real_features")
    fake = _checked_features(fake_features, "fake_features")
    if not _is_integer(k) or not 1 <= k < min(len(real), len(fake)):
        raise ValueError(f"k must be an integer in 1..{min(len(real), len(fake)) - 1}, "
                         f"got {k!r}.")
    return {
        "precision": float(np.mean(_inside_any_ball(fake, real,
                                                    _kth_neighbour_radii(real, k)))),
        "recall": float(np.mean(_inside_any_ball(real, fake, _kth_neighbour_radii(fake, k)))),
    }


# ---------------------------------------------------------------------------------------------
# Anomalies
# ---------------------------------------------------------------------------------------------
def anomaly_labels(labels, dataset: Dataset) -> np.ndarray:
    """True for the test images that show the data set's anomaly class (in any channel)."""
    return contains_digit(labels, dataset.anomaly_class, dataset.channels)


def _is_integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def contains_digit(labels, digit: int = 8, channels: int = 1) -> np.ndarray:
    """True where any of the ``channels`` decimal digits of the label equals ``digit``.

    A digit outside 0..9, other channels than 1 or 3, labels that are no non-negative
    integers, or labels above 10 ** channels - 1 (colour labels with channels=1) would give
    an answer (often all False) that looks like a real one, so they raise.
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
    too_large = labels >= 10 ** channels
    if np.any(too_large):
        # A colour label such as 800 read as mono would answer "no 8" for its hundreds digit.
        raise ValueError(
            f"labels of {channels}-channel images lie in 0..{10 ** channels - 1}; got "
            f"{labels[too_large].flat[0].item()!r}"
            + (": colour labels (R + 10 G + 100 B) need channels=3." if channels == 1 else "."))
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


def _checked_scores(scores, is_anomaly, both: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """``(scores, is_anomaly)`` as float64 and bool 1-D arrays of one length, the scores
    finite; ``both``: anomalies and normal images must both be among them."""
    scores = np.asarray(scores, np.float64)
    is_anomaly = _anomaly_flags(is_anomaly)
    if scores.shape != is_anomaly.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and labels {is_anomaly.shape} must be equal 1-D.")
    if scores.size == 0:
        raise ValueError("there are no scores (empty input); pass the scored images.")
    if not np.all(np.isfinite(scores)):
        raise ValueError("anomaly scores contain NaN or infinite values.")
    if both and (is_anomaly.all() or not is_anomaly.any()):
        raise ValueError("AUCs and thresholds need both anomalies and normal images among the "
                         "labels.")
    return scores, is_anomaly


def evaluate_scores(scores, is_anomaly) -> Dict[str, float]:
    """ROC AUC, PR AUC (average precision) and the Youden-J threshold with its TPR / FPR.

    ``is_anomaly``: booleans or 0/1, e.g. ``contains_digit(labels, 8, channels)``.
    """
    scores, is_anomaly = _checked_scores(scores, is_anomaly)
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


# Thresholds: an image is flagged when its score is at least the threshold, or, for a band
# (a pair low, high), when its score lies outside the band. Each rule sees only a validation
# split; how well its threshold holds is measured on other images.
THRESHOLD_RULES = {
    "roc_corner": "the validation ROC point closest to (FPR 0, TPR 1)",
    "best_f1": "the highest F1 on the validation split",
    "normal_q95": "the 95th percentile of the normal validation scores (no anomaly needed)",
    "normal_band": "the central 95 % of the normal validation scores: images scored outside "
                   "it either way are flagged (no anomaly needed)",
}


def choose_thresholds(scores, is_anomaly) -> Dict[str, object]:
    """The threshold of each rule of ``THRESHOLD_RULES`` on validation ``scores``: a score,
    or ``(low, high)`` for a band."""
    scores, is_anomaly = _checked_scores(scores, is_anomaly)
    fpr, tpr, roc_thresholds = roc_curve(is_anomaly, scores)
    corner = 1 + int(np.argmin(np.hypot(fpr[1:], 1 - tpr[1:])))  # [0] flags nothing (+inf)
    precision, recall, pr_thresholds = precision_recall_curve(is_anomaly, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    normal = scores[~is_anomaly]
    return {
        "roc_corner": float(roc_thresholds[corner]),
        "best_f1": float(pr_thresholds[int(np.argmax(f1))]),
        "normal_q95": float(np.quantile(normal, 0.95, method="higher")),
        "normal_band": (float(np.quantile(normal, 0.025, method="lower")),
                        float(np.quantile(normal, 0.975, method="higher"))),
    }


def flag_anomalies(scores, threshold) -> np.ndarray:
    """True where ``scores`` reach the ``threshold`` (a score), or fall outside it (a band
    ``(low, high)``: below low or above high)."""
    scores = np.asarray(scores, np.float64)
    try:
        bounds = np.asarray(threshold, np.float64)
    except (TypeError, ValueError):
        bounds = np.full(3, np.nan)  # refused below
    if bounds.shape not in ((), (2,)) or not np.all(np.isfinite(bounds)) or (
            bounds.shape == (2,) and bounds[0] > bounds[1]):
        raise ValueError("a threshold is one finite score or a band (low, high) of finite "
                         f"scores with low <= high; got {threshold!r}.")
    if bounds.shape == ():
        return scores >= bounds
    return (scores < bounds[0]) | (scores > bounds[1])


def threshold_metrics(scores, is_anomaly, threshold) -> Dict[str, float]:
    """Accuracy, precision, recall (the share of anomalies flagged) and false positive rate
    (the share of normal images flagged) of ``flag_anomalies(scores, threshold)``. A measure
    without images to count (recall with no anomalies, precision with nothing flagged) is
    NaN."""
    scores, is_anomaly = _checked_scores(scores, is_anomaly, both=False)
    flagged = flag_anomalies(scores, threshold)

    def share(hits, of) -> float:
        return float(np.sum(hits & of) / np.sum(of)) if np.any(of) else float("nan")

    return {
        "accuracy": float(np.mean(flagged == is_anomaly)),
        "precision": share(is_anomaly, flagged),
        "recall": share(flagged, is_anomaly),
        "false_positive_rate": share(flagged, ~is_anomaly),
    }


def compressed_bits(images) -> np.ndarray:
    """Per image, the length in bits of its 8-bit grey levels compressed by zlib (level 9): a
    generic compressor's measure of how complex the image is."""
    images = validate_images(images, "images")
    levels = np.round(images * 255).astype(np.uint8)
    return np.array([8.0 * len(zlib.compress(image.tobytes(), 9)) for image in levels])


def complexity_corrected(nll_nats, images) -> np.ndarray:
    """The input-complexity score of Serra et al. (ICLR 2020): -log2 p(x) minus the bits a
    generic compressor needs (``compressed_bits``). A likelihood model finds simple images
    (blank ones, digits beside clothes) likely whatever it was trained on; the difference
    asks how much better than a generic compressor the model explains the image."""
    nll = np.asarray(nll_nats, np.float64)
    bits = compressed_bits(images)
    if nll.shape != bits.shape:
        raise ValueError(f"one score per image: {nll.shape} scores for {len(bits)} images.")
    return nll / np.log(2) - bits


def validation_split(is_anomaly, seed: int = 0, fraction: float = 0.5):
    """``(validation, test)`` index arrays: a seeded split of the images that keeps the share
    of anomalies in both (``fraction`` of each kind in validation)."""
    is_anomaly = _anomaly_flags(is_anomaly)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction!r}.")
    rng = np.random.default_rng(seed)
    validation, test = [], []
    for kind in (False, True):
        members = rng.permutation(np.flatnonzero(is_anomaly == kind))
        cut = int(round(fraction * len(members)))
        if len(members) and cut in (0, len(members)):
            raise ValueError(f"{len(members)} {'anomalies' if kind else 'normal images'} "
                             f"cannot be split {fraction:g} : {1 - fraction:g}; pass more.")
        validation.append(members[:cut])
        test.append(members[cut:])
    return np.sort(np.concatenate(validation)), np.sort(np.concatenate(test))


def synthetic_anomalies(images, count: int, seed: int = 0,
                        binary: bool = False) -> Dict[str, np.ndarray]:
    """``count`` images of each kind no model of ``images`` has seen: uniform noise, blank
    (all 0) images and ``images`` inverted (1 - x, the first ``count``), shaped like
    ``images``; ``binary``: the noise binarised at 0.5, as binary data sets present images."""
    images = validate_images(images, "images")
    if not _is_integer(count) or not 0 < count <= len(images):
        raise ValueError(f"count must be an integer in 1..{len(images)} (the images given), "
                         f"got {count!r}.")
    shape = (count, *images.shape[1:])
    noise = np.random.default_rng(seed).random(shape, dtype=np.float32)
    return {
        "uniform noise": (noise >= 0.5).astype(np.float32) if binary else noise,
        "blank": np.zeros(shape, np.float32),
        "inverted": 1 - images[:count],
    }


def save_curves(score_sets: Dict[str, np.ndarray], is_anomaly, path, title: str) -> Path:
    """ROC (left) and precision-recall (right) curves of several scores in one PNG."""
    from matplotlib.figure import Figure


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
