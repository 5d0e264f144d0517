"""Codes that keep the pixels' neighbourhoods: a k-nearest-neighbour graph of the training
images and the loss term that pulls each image's code toward a neighbour's.

    graph = neighbour_graph(x_train, k=10)       # (N, 10) indices, PCA-50 distances
    term = neighbour_term(codes, scale=0.3)      # (B,) nats; codes in pairs (0, 1), (2, 3), ...

A VAE (or AE) with ``config.neighbour_weight`` w > 0 trains on batches of pairs: each
training image beside one of its k nearest training images (``fit_model`` builds them from
the graph), and its loss gains w x the cross-entropy of finding each image's partner among the
batch's other codes under a Student-t kernel of width ``config.neighbour_scale``: parametric
t-SNE's attraction along the graph, with the rest of the batch as the repulsion (van der Maaten
2009; Graving and Couzin 2020, VAE-SNE). The neighbours come from the whole training set, not
the batch: among a batch's few hundred images a digit's nearest is often another digit.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .checks import check_count, check_images, check_positive

PCA_COMPONENTS = 50  # the distances' space: the leading principal components of the pixels
_ROWS_PER_BLOCK = 2048  # distance rows computed at once (2048 x N float32)


def neighbour_graph(x, k: int = 10, components: int = PCA_COMPONENTS) -> np.ndarray:
    """``(N, k)`` int64: each image's ``k`` nearest other images (Euclidean, in the first
    ``components`` principal components of the pixels), nearest first."""
    x = check_images(x, np.shape(x)[-1] if np.ndim(x) == 4 else 1, "x")
    k = check_count("k", k)
    if k >= len(x):
        raise ValueError(f"k must be below the number of images ({len(x)}), got {k}.")
    flat = x.reshape(len(x), -1).astype(np.float64)
    flat -= flat.mean(axis=0)
    components = min(check_count("components", components), flat.shape[1])
    _, vectors = np.linalg.eigh(flat.T @ flat)  # ascending eigenvalues
    points = (flat @ vectors[:, ::-1][:, :components]).astype(np.float32)
    squared = np.sum(points * points, axis=1)
    graph = np.empty((len(x), k), np.int64)
    for start in range(0, len(x), _ROWS_PER_BLOCK):
        rows = slice(start, start + _ROWS_PER_BLOCK)
        distances = squared[rows, None] + squared[None, :] - 2.0 * points[rows] @ points.T
        block = np.arange(len(distances))
        distances[block, block + start] = np.inf  # not its own neighbour
        nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(distances, nearest, axis=1), axis=1, kind="stable")
        graph[rows] = np.take_along_axis(nearest, order, axis=1)
    return graph


def paired_indices(anchors, graph, seed) -> tf.Tensor:
    """Indices ``(2 B,)``: each of the ``anchors`` (B,) followed by one of its neighbours in
    ``graph`` (a tensor (N, k)), drawn from the stateless ``seed`` (shape (2,))."""
    anchors = tf.cast(anchors, tf.int64)
    pick = tf.random.stateless_uniform(tf.shape(anchors), seed=seed, maxval=tf.shape(graph)[1],
                                       dtype=tf.int32)
    partners = tf.gather(tf.gather(graph, anchors), pick, batch_dims=1)
    return tf.reshape(tf.stack([anchors, partners], axis=1), [-1])


def partner_rows(count) -> tf.Tensor:
    """``(count,)`` int32: each row's partner in a batch laid out in pairs (rows 2i and 2i + 1,
    as ``fit_model`` batches a model with ``neighbour_weight``)."""
    return tf.bitwise.bitwise_xor(tf.range(count), 1)


def neighbour_term(codes, scale: float) -> tf.Tensor:
    """``(B,)`` nats for codes ``(B, d)`` laid out in pairs (rows 2i and 2i + 1 are
    neighbours; B even): -log of the probability that row j picks its partner among the other
    rows, with weights (1 + |z_j - z_i|^2 / scale^2)^-1 (a Student-t with one degree of
    freedom)."""
    scale = check_positive("neighbour_scale", scale)
    codes = tf.convert_to_tensor(codes, tf.float32)
    count = tf.shape(codes)[0]
    squared = tf.reduce_sum(codes * codes, axis=1)
    distances = tf.maximum(squared[:, None] + squared[None, :]
                           - 2.0 * tf.matmul(codes, codes, transpose_b=True), 0.0)
    logits = -tf.math.log1p(distances / scale ** 2) - 1e9 * tf.eye(count)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(partner_rows(count), logits)
