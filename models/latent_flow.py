"""An ex-post latent prior: a masked autoregressive flow fitted to a trained model's codes.

A VAE trained towards N(0, I) does not fill N(0, I): its aggregate posterior q(z) = mean_i
q(z | x_i) leaves low-density "holes", and prior samples that land there decode to images that
are no digit. Fitting a density to the codes after training (ex-post density estimation, as in
Ghosh et al. 2020's regularised autoencoders and Dai & Wipf 2019's two-stage VAE) and sampling
from it instead is the standard repair; the same works for an AE, which has no prior at all.

    flow = LatentFlow(latent_dim=8)
    flow.fit(mean, scale)              # VAE: q(z|x) of the training images; AE: scale=None
    z = flow.sample(10_000, seed=0)    # u ~ N(0, I), pushed through the flow: (10000, 8)
    flow.log_prob(z)                   # exact log density, nats

The flow is a ``tfp.distributions.TransformedDistribution``: N(0, I) pushed through
``layers`` masked autoregressive bijectors (``tfp.bijectors.MaskedAutoregressiveFlow``, each an
affine autoregressive map by a MADE network), with the coordinates reversed between them. It
models one mono latent; a colour model draws each channel's latent from it independently,
like the channels of its N(0, I) prior. Generation stays encoder-free: the encoder only
provides the codes the flow is fitted to, once.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from .generative import in_batches
from .io import read_archive, write_archive

tfd = tfp.distributions
tfb = tfp.bijectors

FLOW_FORMAT_VERSION = 1


class FlowFileError(RuntimeError):
    """A flow file is missing, corrupt or does not fit its settings."""


class LatentFlow:
    """A density on R^latent_dim: N(0, I) pushed through masked autoregressive bijectors."""

    def __init__(self, latent_dim: int, layers: int = 6, hidden_units: int = 256, seed: int = 0):
        if int(latent_dim) < 1 or int(layers) < 1 or int(hidden_units) < 1:
            raise ValueError("latent_dim, layers and hidden_units must be positive integers, "
                             f"got {latent_dim!r}, {layers!r}, {hidden_units!r}.")
        self.latent_dim = int(latent_dim)
        self.layers = int(layers)
        self.hidden_units = int(hidden_units)
        # Seeded initial weights, one seed per network; global random states are left alone.
        self.networks = [
            tfb.AutoregressiveNetwork(
                params=2, hidden_units=[self.hidden_units] * 2, activation="relu",
                kernel_initializer=tf_keras.initializers.GlorotUniform(seed=seed * 1000 + i))
            for i in range(self.layers)
        ]
        # The codes' mean and standard deviation, set by fit(): the networks then see
        # standardised codes whatever their scale (AE codes reach tens; unscaled, the loss
        # became NaN in the first epoch).
        self.code_mean = tf.Variable(tf.zeros(self.latent_dim), trainable=False)
        self.code_std = tf.Variable(tf.ones(self.latent_dim), trainable=False)
        reverse = tfb.Permute(list(reversed(range(self.latent_dim))))
        bijectors = [tfb.Shift(self.code_mean), tfb.Scale(self.code_std)]  # applied last
        for network in self.networks:
            bijectors += [tfb.MaskedAutoregressiveFlow(network), reverse]
        self.distribution = tfd.TransformedDistribution(
            tfd.MultivariateNormalDiag(tf.zeros(self.latent_dim)), tfb.Chain(bijectors[:-1]))
        self._log_prob(tf.zeros((1, self.latent_dim)))  # builds the networks' weights
        self.history: dict = {}

    @tf.function(reduce_retracing=True)
    def _log_prob(self, z):
        return self.distribution.log_prob(z)

    @tf.function(reduce_retracing=True)
    def _forward(self, u):
        return self.distribution.bijector.forward(u)

    def log_prob(self, z, batch_size: int = 10_000) -> np.ndarray:
        """log q(z) in nats, (N,) for codes (N, latent_dim)."""
        return in_batches(self._log_prob, self._check(z), batch_size)

    def sample(self, count: int, seed: int = 0, batch_size: int = 10_000) -> np.ndarray:
        """(count, latent_dim) codes: u ~ N(0, I) (numpy, from ``seed``) pushed through."""
        u = np.random.default_rng(seed).standard_normal((count, self.latent_dim))
        return in_batches(self._forward, u, batch_size)

    def _check(self, z) -> np.ndarray:
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected codes of shape (N, {self.latent_dim}), got {z.shape}.")
        if not np.all(np.isfinite(z)):
            raise ValueError("codes contain NaN or infinite values.")
        return z

    def fit(self, mean, scale=None, val_mean=None, val_scale=None, epochs: int = 20,
            batch_size: int = 256, learning_rate: float = 1e-3, seed: int = 0,
            verbose: int = 1) -> dict:
        """Maximum likelihood on codes; returns the history (mean NLL per epoch, nats).

        mean (N, latent_dim): the AE codes, or the VAE posterior means. scale (same shape):
        the VAE posterior standard deviations; then every epoch draws a fresh z ~ q(z|x_i)
        per image, so the flow fits the aggregate posterior, not just its means. The learning
        rate drops to a third for the last 30 % of the epochs. ``val_*``: held-out codes whose
        NLL is logged beside that of N(0, I) ("val_standard_normal").
        """
        mean = self._check(mean)
        if scale is not None and np.shape(scale) != mean.shape:
            raise ValueError(f"scale must have the shape of mean {mean.shape}, got "
                             f"{np.shape(scale)}.")
        optimizer = tf_keras.optimizers.Adam(learning_rate)

        @tf.function(reduce_retracing=True)
        def step(z):
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(self.distribution.log_prob(z))
            variables = self.distribution.trainable_variables
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        rng = np.random.default_rng(seed)
        spread = _draw(mean, scale, rng)
        self.code_mean.assign(spread.mean(axis=0))
        self.code_std.assign(np.maximum(spread.std(axis=0), 1e-6))
        history = {"loss": []}
        if val_mean is not None:
            history.update(val_loss=[], val_standard_normal=[])
            # One fixed draw of held-out codes: the epochs' NLLs stay comparable, and N(0, I)'s
            # NLL of it (the reference) is computed once.
            val_z = _draw(self._check(val_mean), val_scale, np.random.default_rng(seed))
            standard = tfd.MultivariateNormalDiag(tf.zeros(self.latent_dim))
            standard_nll = float(-standard.log_prob(val_z).numpy().mean())
        # verbose: 0 silent, 1 a progress bar, 2 one line per epoch (for logs), as in Keras.
        progress = tf_keras.utils.Progbar(epochs, verbose=int(verbose == 1),
                                          stateful_metrics=list(history))
        for epoch in range(epochs):
            if epoch == int(0.7 * epochs):
                optimizer.learning_rate.assign(learning_rate / 3)
            z = _draw(mean, scale, rng)
            order = rng.permutation(len(z))
            losses = [step(tf.constant(z[order[i:i + batch_size]])).numpy()
                      for i in range(0, len(z), batch_size)]
            history["loss"].append(float(np.mean(losses)))
            if not np.isfinite(history["loss"][-1]):
                raise FloatingPointError(f"the flow's loss became {history['loss'][-1]} in "
                                         f"epoch {epoch + 1}; fit again with a lower "
                                         f"learning_rate (was {learning_rate}).")
            if val_mean is not None:
                history["val_loss"].append(float(-self.log_prob(val_z).mean()))
                history["val_standard_normal"].append(standard_nll)
            progress.update(epoch + 1, [(k, v[-1]) for k, v in history.items()])
            if verbose == 2:
                print(f"flow epoch {epoch + 1}/{epochs}: "
                      + ", ".join(f"{k} {v[-1]:.4f}" for k, v in history.items()), flush=True)
        self.history = {k: [round(v, 4) for v in values] for k, values in history.items()}
        return self.history

    # -----------------------------------------------------------------------------------------
    # Files: settings and metadata as JSON, weights as arrays; never pickled, written atomically
    # -----------------------------------------------------------------------------------------
    def weights(self) -> list:
        standardisation = [self.code_mean.numpy(), self.code_std.numpy()]
        return standardisation + [w for network in self.networks for w in network.get_weights()]

    def save(self, path, metadata: Optional[dict] = None) -> Path:
        settings = {"latent_dim": self.latent_dim, "layers": self.layers,
                    "hidden_units": self.hidden_units}
        return write_archive(path, self.weights(), FLOW_FORMAT_VERSION,
                             settings=json.dumps(settings),
                             metadata=json.dumps(metadata or {}, sort_keys=True))

    @classmethod
    def load(cls, path) -> tuple:
        """``(flow, metadata)`` from a file written by ``save``."""
        (flow, settings, metadata), weights = read_archive(
            path, FLOW_FORMAT_VERSION, "Flow file", FlowFileError, parse=cls._from_texts)
        if [w.shape for w in weights] != [w.shape for w in flow.weights()]:
            raise FlowFileError(f"Flow file {path} holds weights that do not fit its settings "
                                f"{settings}; the file is corrupt or was written by other code.")
        flow.code_mean.assign(weights[0])
        flow.code_std.assign(weights[1])
        position = 2
        for network in flow.networks:
            count = len(network.get_weights())
            network.set_weights(weights[position:position + count])
            position += count
        return flow, metadata

    @classmethod
    def _from_texts(cls, texts: dict) -> tuple:
        settings = json.loads(texts["settings"])
        return cls(**settings), settings, json.loads(texts["metadata"])


def _draw(mean: np.ndarray, scale, rng) -> np.ndarray:
    """The codes themselves (scale None), or one z ~ N(mean, scale^2) per row."""
    if scale is None:
        return mean
    return (mean + np.asarray(scale, np.float32) * rng.standard_normal(mean.shape)).astype(
        np.float32)


def file_digest(path) -> str:
    """SHA-256 of a file: ties a flow to the exact model file whose codes it was fitted to."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
