"""Numpy in, numpy out: compiled TensorFlow functions over arrays in batches."""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf


def _labels_of(labels, start: int, batch_size: int) -> tuple:
    """The extra argument of a conditional model's function: its batch of labels, or none."""
    return () if labels is None else (tf.constant(labels[start:start + batch_size], tf.int32),)


def in_batches(fn, x, batch_size: int, labels: Optional[np.ndarray] = None) -> np.ndarray:
    """``fn`` (a compiled TensorFlow function) over float32 ``x`` in batches, as one array;
    ``labels`` (one per row of x) are batched alongside and passed as a second argument."""
    x = np.asarray(x, np.float32)
    return np.concatenate(
        [np.asarray(fn(tf.constant(x[i : i + batch_size]), *_labels_of(labels, i, batch_size)))
         for i in range(0, len(x), batch_size)]
    )


def in_seeded_batches(fn, x, how: str, seed: Optional[int], batch_size: int,
                      labels: Optional[np.ndarray] = None):
    """``fn(batch, how, batch_seed)`` over ``x`` in batches, the outputs concatenated (a tuple
    of arrays when ``fn`` returns a tuple). Batch i gets the stateless seed (seed, i): the same
    (seed, batch_size) gives the same images, and different batches get different noise.
    ``labels``, batched alongside, become a fourth argument."""
    base_seed = 0 if seed is None else int(seed)
    outputs = [fn(tf.constant(x[start:start + batch_size]), how,
                  tf.constant([base_seed, index], tf.int32),
                  *_labels_of(labels, start, batch_size))
               for index, start in enumerate(range(0, len(x), batch_size))]
    if outputs and isinstance(outputs[0], tuple):
        return tuple(np.concatenate([part.numpy() for part in parts]) for parts in zip(*outputs))
    return np.concatenate([output.numpy() for output in outputs])


def step_seed(noise_seed: int, step):
    """The stateless seed of a training step on this replica (a tf.distribute replica draws
    its own noise): (noise_seed * 1009 + replica id, step)."""
    replica = tf.distribute.get_replica_context()
    replica_id = 0 if replica is None else replica.replica_id_in_sync_group
    return tf.stack([tf.cast(noise_seed * 1009 + replica_id, tf.int32), tf.cast(step, tf.int32)])
