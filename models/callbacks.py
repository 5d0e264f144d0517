"""Training that users can watch and resume: TensorBoard summaries and epoch checkpoints.

    fit_model(model, x, epochs=30, backup_dir="runs/r/backup", tensorboard_dir="runs/r/tb")

``EpochCheckpoint`` saves the weights, the optimizer state, the finished epoch count and the
history (with each epoch's wall time, ``epoch_seconds``: a resumed training knows its whole
time) after every epoch (``tf.train.CheckpointManager``: the index file is written last, so a
kill leaves the previous checkpoint usable); ``fit_model`` restores the newest one and starts
at the next epoch. With the data order and the VAE's sampling noise fixed by (seed, epoch)
and (seed, step), a resumed training ends with the weights of an uninterrupted one.

``ImageSummaries`` writes a grid of generated images (fixed codes from N(0, I), decoded) and
of reconstructions of fixed held-out images per epoch; Keras' ``TensorBoard`` callback writes
the loss terms (loss, reconstruction, kl and their val_ versions).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras

from atomic_io import atomic_path


class EpochCheckpoint(tf_keras.callbacks.Callback):
    """Saves model, optimizer and epoch after every epoch into ``directory``; ``restore``
    returns the number of finished epochs (0 without a checkpoint) and the logged history."""

    def __init__(self, model, directory, keep: int = 2):
        super().__init__()
        self.directory = Path(directory)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                              epoch=self.epoch)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.directory), keep)
        self.history: dict = {}
        self._epoch_start = time.time()

    def restore(self) -> int:
        """Load the latest checkpoint; a damaged one (or history file) is refused with the fix:
        the model may hold some of its values by then, so it cannot start over by itself."""
        if self.manager.latest_checkpoint is None:
            return 0
        history_file = self.directory / "history.json"
        try:
            self.checkpoint.restore(self.manager.latest_checkpoint).expect_partial()
            if history_file.is_file():
                self.history = json.loads(history_file.read_text())
            if not isinstance(self.history, dict):
                raise ValueError("the history is not a JSON object")
        except Exception as err:  # OpError, IndexError (truncated data), ValueError (JSON) ...
            raise ValueError(
                f"the checkpoint of an interrupted training in {self.directory} is damaged "
                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                f"delete that folder to train from the start.") from None
        done = int(self.epoch.numpy())
        self.history = self.trimmed_history(done)  # a kill may have left one epoch more
        return done

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = {**(logs or {}), "epoch_seconds": round(time.time() - self._epoch_start, 2)}
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        self.epoch.assign(epoch + 1)
        # The history first: a kill between the two writes leaves a history one epoch ahead
        # of the checkpoint, which restore() trims.
        with atomic_path(self.directory / "history.json") as tmp:
            tmp.write_text(json.dumps(self.history))
        self.manager.save(checkpoint_number=epoch + 1)

    def trimmed_history(self, epochs_done: int) -> dict:
        return {k: v[:epochs_done] for k, v in self.history.items()}


class DecayingRates(tf_keras.callbacks.Callback):
    """From epoch ``decay_from`` on (counting from 0), each optimizer's learning rate shrinks
    by ``decay`` per epoch from the rate it has when this callback is made: make it before a
    checkpoint restores a decayed rate, so a resumed training keeps the schedule."""

    def __init__(self, optimizers, decay_from: int, decay: float):
        super().__init__()
        self.start = [(optimizer, float(tf_keras.backend.get_value(optimizer.learning_rate)))
                      for optimizer in optimizers]
        self.decay_from, self.decay = decay_from, decay

    def on_epoch_begin(self, epoch, logs=None):
        factor = self.decay ** max(0, epoch + 1 - self.decay_from)
        for optimizer, rate in self.start:
            tf_keras.backend.set_value(optimizer.learning_rate, rate * factor)


class ImageSummaries(tf_keras.callbacks.Callback):
    """Per epoch, one TensorBoard image of 16 generated images (the same codes from N(0, I)
    every epoch, so the images show the training) and one of 8 held-out images above their
    reconstructions."""

    def __init__(self, log_dir, x_val, seed: int = 0, count: int = 16, labels=None):
        super().__init__()
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "images"))
        self.x_val = np.asarray(x_val[:8], np.float32)
        self.count, self.seed = count, seed
        # A conditional model (given the held-out labels) draws 0, 1, ..., 9 (000, 111, ...).
        self.val_labels = None if labels is None else np.asarray(labels)[:8]
        channels = self.x_val.shape[-1]
        self.generated_labels = None if labels is None else (
            np.arange(count) % 10 * (111 if channels == 3 else 1))

    def on_epoch_end(self, epoch, logs=None):
        generated = self.model.generate_images(self.count, seed=self.seed,
                                               labels=self.generated_labels)
        with self.writer.as_default():
            tf.summary.image("generated", _grid(generated, columns=8)[None], step=epoch + 1)
            if hasattr(self.model, "reconstruct_images"):  # a GAN has no encoder
                reconstructed = self.model.reconstruct_images(self.x_val,
                                                              labels=self.val_labels)
                tf.summary.image("reconstructed",  # top row: the held-out images
                                 _grid(np.concatenate([self.x_val, reconstructed]),
                                       columns=len(self.x_val))[None], step=epoch + 1)
        self.writer.flush()


def _grid(images: np.ndarray, columns: int) -> np.ndarray:
    """(N, 28, 28, C) -> one (rows * 29 + 1, columns * 29 + 1, C) image with 1-pixel gaps."""
    count, _, _, channels = images.shape
    rows = -(-count // columns)
    grid = np.full((rows * 29 + 1, columns * 29 + 1, channels), 0.5, np.float32)
    for i, image in enumerate(images):
        top, left = 1 + (i // columns) * 29, 1 + (i % columns) * 29
        grid[top:top + 28, left:left + 28] = image
    return grid
