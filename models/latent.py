"""Latent-space tools: paths through the latent space, 2-D grids, per-dimension statistics,
maps of the codes and how well they separate the digits.

They take codes and return codes (decode them with any model's ``decode_images``), so they
work for every family (disentanglement_lib's traversals take a generator function likewise):

    z = interpolate(z_a, z_b, steps=10, path="spherical")      # (10, ...) from z_a to z_b
    images = model.decode_images(z)
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from .checks import check_count, check_values

PATHS = ("linear", "spherical")


def interpolate(z_start, z_end, steps: int = 10, path: str = "linear") -> np.ndarray:
    """``steps`` codes from ``z_start`` to ``z_end`` (both included), any shape (...).

    linear: (1 - t) a + t b. spherical: along the great circle between the two directions,
    the norm interpolated linearly (a Gaussian's typical set is a shell: the straight line
    between two codes cuts through its low-norm inside; White 2016)."""
    a, b = check_values(z_start, "z_start", what="codes"), check_values(z_end, "z_end",
                                                                          what="codes")
    if a.shape != b.shape:
        raise ValueError(f"the two codes must have one shape, got {a.shape} and {b.shape}.")
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}.")
    t = np.linspace(0.0, 1.0, check_count("steps", steps, low=2)).reshape(
        (-1,) + (1,) * a.ndim)
    if path == "linear":
        return ((1 - t) * a + t * b).astype(np.float32)
    norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
    unit_a, unit_b = a / max(norm_a, 1e-12), b / max(norm_b, 1e-12)
    angle = np.arccos(np.clip(np.sum(unit_a * unit_b), -1.0, 1.0))
    if angle < 1e-6:  # (nearly) the same direction: the great circle is a point
        direction = unit_a * np.ones_like(t)
    else:
        direction = (np.sin((1 - t) * angle) * unit_a + np.sin(t * angle) * unit_b) / np.sin(
            angle)
    return (((1 - t) * norm_a + t * norm_b) * direction).astype(np.float32)


def traverse(z, values) -> np.ndarray:
    """For a code z (d,): (d, V, d) codes, row i with dimension i set to each of ``values``."""
    z = np.asarray(z)
    if z.ndim != 1:
        raise ValueError(f"traverse takes one code (d,), got shape {z.shape}.")
    z = check_values(z, "z", what="code values").astype(np.float32)
    values = check_values(values, "values", ndim=1, what="values of a dimension").astype(
        np.float32)
    codes = np.repeat(np.repeat(z[None, None, :], len(values), axis=1), len(z), axis=0)
    for i in range(len(z)):
        codes[i, :, i] = values
    return codes


def normal_grid(points: int = 20) -> np.ndarray:
    """(points, points, 2) codes: the unit square's cell centres through the inverse normal CDF
    (Kingma and Welling 2014): equal probability mass of N(0, I) between grid lines."""
    from scipy.stats import norm

    u = (np.arange(check_count("points", points, low=2)) + 0.5) / points
    rows, columns = np.meshgrid(norm.ppf(u[::-1]), norm.ppf(u), indexing="ij")
    return np.stack([columns, rows], axis=-1).astype(np.float32)  # x right, y up


def activity(means, threshold: float = 0.01) -> Tuple[np.ndarray, np.ndarray]:
    """``(Cov_x E_q[z_i] per dimension, active)``: a dimension is active when its posterior
    mean varies across the data by more than ``threshold`` (Burda et al. 2015)."""
    means = check_values(means, "means", ndim=2, what="posterior means (N, d)")
    if not (isinstance(threshold, (int, float, np.floating)) and np.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}.")
    variance = np.var(means, axis=0)
    return variance, variance > threshold


def kl_per_dimension(means, scales) -> np.ndarray:
    """Average KL(q(z_i|x) || N(0, 1)) per dimension over the codes, nats, (d,)."""
    mean = check_values(means, "means", ndim=2, what="posterior means (N, d)")
    scale = check_values(scales, "scales", ndim=2, what="posterior scales (N, d)")
    if scale.shape != mean.shape:
        raise ValueError(f"scales {scale.shape} must have the shape of means {mean.shape}.")
    if not np.all(scale > 0):
        raise ValueError("scales must be positive (posterior standard deviations); KL to "
                         "N(0, 1) of a zero or negative scale is no number.")
    return np.mean(0.5 * (scale ** 2 + mean ** 2 - 1.0) - np.log(scale), axis=0)


def probe_accuracies(train_codes, train_labels, test_codes, test_labels,
                     neighbours: int = 5, seed: int = 0) -> Dict[str, float]:
    """How well codes separate the digits: a linear probe (multinomial logistic regression on
    standardised codes) and ``neighbours``-nearest-neighbour accuracy, fitted on training
    codes and scored on test codes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = _flat(train_codes, "train_codes"), _flat(test_codes, "test_codes")
    for codes, labels, name in ((train, train_labels, "train_labels"),
                                (test, test_labels, "test_labels")):
        if np.shape(labels) != (len(codes),):
            raise ValueError(f"{name} must hold one label per code, ({len(codes)},); got "
                             f"shape {np.shape(labels)}.")
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000,
                                                                random_state=seed))
    linear.fit(train, train_labels)
    knn = KNeighborsClassifier(neighbours).fit(train, train_labels)
    return {"linear_probe_accuracy": float(linear.score(test, test_labels)),
            f"knn{neighbours}_accuracy": float(knn.score(test, test_labels))}


def pca_2d(train_codes, *others) -> Tuple[list, np.ndarray]:
    """A 2-component PCA fitted to ``train_codes``: ``([each input projected], explained
    variance ratio (2,))``."""
    from sklearn.decomposition import PCA

    pca = PCA(2, random_state=0).fit(_flat(train_codes, "train_codes", min_rows=2))
    projected = [pca.transform(_flat(c, "codes")) for c in (train_codes, *others)]
    return projected, pca.explained_variance_ratio_


def tsne_2d(codes, seed: int = 0, perplexity: Optional[float] = None) -> np.ndarray:
    """A 2-D t-SNE map of the codes (scikit-learn)."""
    from sklearn.manifold import TSNE

    codes = _flat(codes, "codes", min_rows=2)
    if not np.any(np.ptp(codes, axis=0) > 0):
        # scikit-learn's t-SNE divides by the spread of its PCA start: identical codes
        # crashed the interpreter (a segmentation fault), not just the call.
        raise ValueError(f"all {len(codes)} codes are the same point: a t-SNE map needs codes "
                         "that differ.")
    if perplexity is not None and not 0 < perplexity < len(codes):
        raise ValueError(f"perplexity must lie in (0, {len(codes)}) for {len(codes)} codes, "
                         f"got {perplexity!r}.")
    perplexity = perplexity or min(30.0, (len(codes) - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(codes)


def _flat(codes, name: str = "codes", min_rows: int = 1) -> np.ndarray:
    """Codes (N, ...) as a finite float32 (N, features) array, at least ``min_rows`` of them."""
    codes = np.asarray(codes)
    if codes.ndim < 2:
        raise ValueError(f"{name} must be codes (N, d) or (N, C, d); got shape {codes.shape}.")
    codes = check_values(codes, name, min_rows=min_rows, what="codes", dtype=np.float32)
    return codes.reshape(len(codes), -1)
