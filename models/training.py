"""The training loop and the tf.distribute helpers.

    model = build_model(ModelConfig(kind="vae"), strategy=distribution_strategy("mirrored"))
    history = fit_model(model, x_train, x_val, epochs=10, backup_dir="runs/r/backup")

``fit_model`` trains any family (a conditional one with ``labels=``): each epoch's batch order
is a function of (seed, epoch), so a training resumed from its per-epoch checkpoint ends with
the weights of an uninterrupted one; a model built under a ``tf.distribute`` strategy trains
under it.
"""
from __future__ import annotations

import json
import numbers
import os
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras

from .augment import shifted
from .callbacks import DecayingRates, EpochCheckpoint, ImageSummaries
from .checks import check_count, check_images, check_seed
from .generative import GenerativeModel
from .neighbours import neighbour_graph, paired_indices


DISTRIBUTE = ("none", "mirrored", "multiworker")


def distribution_strategy(name: str):
    """None (the default device), MirroredStrategy (every local GPU, else the CPU) or
    MultiWorkerMirroredStrategy (the cluster from the TF_CONFIG environment variable)."""
    if name not in DISTRIBUTE:
        raise ValueError(f"distribute must be one of {DISTRIBUTE}, got {name!r}.")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy()
    return None


def check_tf_config(text: Optional[str]) -> dict:
    """The cluster of a multi-worker training, from the TF_CONFIG environment variable's
    ``text``: JSON with a "cluster" of named lists of host:port addresses and this process's
    "task" (type and index); ``ValueError`` saying what is wrong otherwise."""
    guide = "(docs/guide.md: Watch, resume, scale out)"
    if not text:
        raise ValueError("--distribute multiworker needs the cluster in the TF_CONFIG "
                         f"environment variable {guide}.")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}) {guide}.") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if (not isinstance(cluster, dict) or not cluster
            or not all(isinstance(v, list) and v and all(isinstance(a, str) for a in v)
                       for v in cluster.values())):
        raise ValueError('TF_CONFIG needs "cluster": {"worker": ["host:port", ...]} '
                         f"{guide}.")
    if (not isinstance(task, dict) or task.get("type") not in cluster
            or not isinstance(task.get("index"), int)
            or not 0 <= task["index"] < len(cluster[task["type"]])):
        raise ValueError('TF_CONFIG needs "task": {"type": "worker", "index": i} naming one '
                         f"of its cluster's addresses {guide}.")
    return config


def worker_suffix(strategy=None) -> str:
    """"" for the chief (or no cluster), ".worker<i>" for the other workers of a multi-worker
    strategy: their files (checkpoints, model copies) must not collide with the chief's."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return ""
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief" or (not has_chief and resolver.task_id == 0):
        return ""
    return f".{resolver.task_type}{resolver.task_id}"


def _epoch_batches(x: np.ndarray, batch_size: int, seed: int, first_epoch: int,
                   epochs: int, labels: Optional[np.ndarray] = None,
                   binarise: bool = False, shift_pixels: int = 0,
                   graph: Optional[np.ndarray] = None) -> tf.data.Dataset:
    """Batches of epochs first_epoch .. epochs - 1, each epoch in its own order, a function of
    (seed, epoch) alone: a resumed training sees the batches an uninterrupted one would.
    With ``labels``, a batch is (images, labels). ``binarise``: every batch is a binary draw
    from its grey levels (pixel = 1 with probability its grey level), a function of (seed,
    epoch, step) alone; ``shift_pixels``: every image then moved by whole pixels, up to that
    many each way (another stream of (seed, epoch, step)). ``graph`` (N, k), the neighbour
    term's: batch_size / 2 images in the epoch's order, each followed by one of its graph
    neighbours (a third stream of (seed, epoch, step)), so an epoch has twice the steps."""
    images = tf.constant(x)
    classes = None if labels is None else tf.constant(labels, tf.int32)
    seed = tf.cast(seed, tf.int64)
    neighbours = None if graph is None else tf.constant(graph)

    def paired(epoch, step, index):
        pick_seed = tf.stack([seed, 2 ** 41 + epoch * 2 ** 20 + step])
        return epoch, step, paired_indices(index, neighbours, pick_seed)

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(len(x)), seed=tf.stack([seed, epoch]))
        batches = (tf.data.Dataset.from_tensor_slices(order)
                   .batch(batch_size if graph is None else batch_size // 2).enumerate()
                   .map(lambda step, index: (epoch, step, index)))
        return batches if graph is None else batches.map(paired)

    def batch(epoch, step, index):
        picked = tf.gather(images, index)
        if binarise:  # a stream of its own: negative, unlike the shuffle's epochs
            draw_seed = tf.stack([seed, -(epoch * 2 ** 20 + step) - 1])
            uniform = tf.random.stateless_uniform(tf.shape(picked), seed=draw_seed)
            picked = tf.cast(uniform < picked, picked.dtype)
        if shift_pixels:  # beyond the shuffle's epochs and the binary draws' negative ones
            picked = shifted(picked, tf.stack([seed, 2 ** 40 + epoch * 2 ** 20 + step]),
                             shift_pixels)
        return picked if classes is None else (picked, tf.gather(classes, index))

    return (tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
            .map(batch).prefetch(2))


def _use_weight_average(model, decay) -> None:
    """Gives the model an optimizer that keeps a moving average of its weights with ``decay``
    (Keras's ``use_ema``, which ``Model.fit`` copies into the weights after its last epoch)."""
    if (isinstance(decay, bool) or not isinstance(decay, numbers.Real)
            or not 0 <= decay < 1):
        raise ValueError(f"average_weights must be 0 (off) or a decay in (0, 1), got "
                         f"{decay!r}.")
    optimizer = model.optimizer
    if bool(decay) == optimizer.use_ema and (not decay or optimizer.ema_momentum == decay):
        return
    if int(optimizer.iterations.numpy()):
        raise ValueError("average_weights must be chosen at a model's first training: its "
                         "optimizer has taken steps without it.")
    config = {**optimizer.get_config(), "use_ema": bool(decay),
              "ema_momentum": float(decay or 0.99), "ema_overwrite_frequency": None}
    kept = {name: value for name, value in (model.get_compile_config() or {}).items()
            if name in ("run_eagerly", "steps_per_execution", "jit_compile")}
    with model.distribute_strategy.scope():  # compiled again as the user had, but the optimizer
        model.compile(optimizer=type(optimizer).from_config(config), **kept)
    if model.optimizer.use_ema != bool(decay):  # a family that builds its own optimizers
        raise ValueError(f"a {model.config.kind!r} model cannot average its weights "
                         f"(average_weights={decay!r}).")


def _neighbour_pairs(model, x_train, batch_size: int, verbose: int) -> tuple:
    """``(graph, new training images per step)`` of a model with the neighbour term."""
    if batch_size < 4 or batch_size % 2:
        raise ValueError(f"a model with neighbour_weight trains on pairs of neighbours: "
                         f"batch_size must be an even number >= 4, got {batch_size}.")
    if model.distribute_strategy.num_replicas_in_sync > 1:
        raise ValueError("a model with neighbour_weight trains on one device: its pairs "
                         "must not be split between replicas.")
    if verbose:
        print(f"finding the {model.config.neighbours} nearest neighbours of "
              f"{len(x_train):,} training images", flush=True)
    return neighbour_graph(x_train, model.config.neighbours), batch_size // 2


def fit_model(model: GenerativeModel, x_train, x_val=None, epochs: int = 10,
              batch_size: int = 128, seed: int = 0, verbose: int = 1,
              decay_from: Optional[int] = None, decay: float = 0.8,
              backup_dir=None, tensorboard_dir=None, callbacks=(), labels=None,
              val_labels=None, binarise: bool = False, shift_pixels: int = 0,
              average_weights: float = 0.0):
    """Train with a progress bar; logs loss, reconstruction and KL (nats per image).
    A conditional model also takes the images' class ``labels`` (and ``val_labels``).

    From epoch ``decay_from`` on (counting from 0), the learning rate shrinks by ``decay`` per
    epoch (every optimizer's: a GAN's two). ``backup_dir``: a checkpoint after every epoch; a
    training that finds one there resumes after its epoch (and ends with the weights and rate
    schedule of an uninterrupted run). A model built under a ``tf.distribute`` strategy
    trains under it. ``tensorboard_dir``: the loss terms and image grids per epoch for
    TensorBoard. ``binarise``: the training images are grey
    levels and every batch is a binary draw from them (dynamic binarisation), a function of
    (seed, epoch, step). ``shift_pixels``: every training image is moved by whole pixels, up
    to that many each way (zeros move in; a fresh draw of (seed, epoch, step) every batch), an
    augmentation. ``average_weights`` = d in (0, 1): the model ends its training with the
    average of its weights over the steps, w_avg <- d w_avg + (1 - d) w after every step from
    the initial weights (the optimizer's moving average, kept in the checkpoints); the trained
    weights themselves are not kept (a GAN averages its generator; its discriminator keeps
    its trained weights). Set on a model's first training. A model with
    ``neighbour_weight`` (``models.neighbours``) steps through batch_size / 2 training images
    at a time, each beside one of its nearest training images (one device, batch_size even).
    Returns the history of every epoch trained.
    """
    x_train = check_images(x_train, model.config.channels, "x_train")
    labels = model.check_fit_labels(labels, len(x_train))
    if x_val is not None:
        x_val = check_images(x_val, model.config.channels, "x_val")
        val_labels = model.check_fit_labels(val_labels, len(x_val))
    elif val_labels is not None:
        raise ValueError("val_labels were given without x_val.")
    check_count("epochs", epochs)
    check_count("batch_size", batch_size)
    check_count("shift_pixels", shift_pixels, low=0, high=13)
    _use_weight_average(model, average_weights)
    with model.distribute_strategy.scope():
        model.build_optimizers()
    tf_keras.utils.set_random_seed(check_seed(seed))
    model.noise_seed = seed
    model.train_function = None  # traced again: the step's noise seed is part of the graph
    callbacks = [tf_keras.callbacks.TerminateOnNaN(), *callbacks]  # NaN weights refuse saving
    first_epoch, checkpoint = 0, None
    if decay_from is not None:  # the rates before a checkpoint restores decayed ones
        callbacks.append(DecayingRates(model.step_optimizers(), decay_from, decay))
    suffix = worker_suffix(model.distribute_strategy)
    if backup_dir is not None:
        checkpoint = EpochCheckpoint(model, str(backup_dir) + suffix)
        first_epoch = checkpoint.restore()
        if first_epoch:
            print(f"resuming from epoch {first_epoch} (checkpoint in {backup_dir})", flush=True)
            model.metadata["resumed_after_epoch"] = first_epoch
        callbacks.insert(0, checkpoint)  # saved before any later callback can stop the run
    if tensorboard_dir is not None and not suffix:  # the chief writes the summaries
        callbacks.append(tf_keras.callbacks.TensorBoard(str(tensorboard_dir), write_graph=False,
                                                        profile_batch=0))
        if x_val is not None:
            callbacks.append(ImageSummaries(tensorboard_dir, x_val, seed=seed,
                                            labels=val_labels))
    history = {}
    if first_epoch < epochs:
        val, graph, step_images = None, None, batch_size
        if x_val is not None:
            val = tf.data.Dataset.from_tensor_slices(
                x_val if val_labels is None else (x_val, val_labels.astype(np.int32))).batch(1000)
        if model.config.neighbour_weight:
            graph, step_images = _neighbour_pairs(model, x_train, batch_size, verbose)
        model.fit(_epoch_batches(x_train, batch_size, seed, first_epoch, epochs, labels,
                                 binarise, shift_pixels, graph),
                  steps_per_epoch=-(-len(x_train) // step_images), validation_data=val,
                  epochs=epochs, initial_epoch=first_epoch, verbose=verbose,
                  callbacks=callbacks)
        history = model.history.history
    elif average_weights:  # every epoch was done: the checkpoint's weights, then their average
        model.optimizer.finalize_variable_values(model.trainable_variables)
    if checkpoint is not None:
        history = checkpoint.trimmed_history(epochs)
    return history
