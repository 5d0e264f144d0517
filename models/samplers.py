"""Latent samplers: distributions over one channel's code z in R^d, used to generate.

One interface for all of them (pythae's samplers, TFP's prior-as-an-object):

    sampler = make_sampler("gmm", latent_dim=8).fit(codes)   # codes (N, d); VAE: + scales
    z = sampler.sample(10_000, seed=0)                       # (10000, d) float32
    sampler.log_prob(z)                                      # (10000,) nats
    models.save(sampler, "gmm.keras")                        # tf_keras.models.load_model reads it

standard  N(0, I): the VAE's prior (nothing to fit)
fitted    a Gaussian with the codes' mean and full covariance (the AE's default)
gmm       a Gaussian mixture fitted to the codes (scikit-learn, full covariances)
flow      a masked autoregressive flow fitted to the codes by maximum likelihood
diffusion a denoising diffusion model of the codes (no exact log_prob; samples only)

Fitting to a VAE's codes can take ``scales`` (the posterior standard deviations): the flow and
the diffusion model then redraw z ~ q(z|x) every epoch and fit the aggregate posterior, not
only its means; the Gaussian and the mixture fit one such draw. A colour model draws each
channel's latent from the sampler independently, like the channels of its N(0, I) prior.

Every sampler is a registered ``tf_keras.Model`` whose fitted state lives in variables and
whose settings and metadata are plain config values, so it is a ``.keras`` file like the models.
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from keras_files import check_limit
from stacked_mnist import finite_float32

from .batching import in_batches
from .checks import check_count, check_positive

tfd = tfp.distributions
tfb = tfp.bijectors


class LatentSampler(tf_keras.Model):
    """Base class: ``fit(codes, scales=None, seed=0)`` returns the sampler; ``sample(count,
    seed)`` gives (count, d) float32 codes; ``log_prob(z)`` (N,) nats; ``fitted`` tells
    whether it has been fitted (or needs no fitting)."""

    kind = ""
    description = ""  # in words, for figure titles and metrics ("the --latent choices")
    needs_fitting = True
    tempered = False  # whether a ``temperature`` setting scales its sampling noise

    def __init__(self, latent_dim: int, metadata: Optional[dict] = None, **kwargs):
        kwargs.setdefault("name", f"{self.kind}_sampler")
        settings = {key: kwargs.pop(key) for key in self.settings_names if key in kwargs}
        self.check_sizes(latent_dim, **settings)
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.metadata = dict(metadata or {})
        self.is_fitted = tf.Variable(not self.needs_fitting, trainable=False, name="is_fitted")
        self.built = True  # the state variables exist from the start

    settings_names = ()  # the constructor's keyword arguments besides latent_dim, metadata

    @classmethod
    def check_sizes(cls, latent_dim, **settings) -> None:
        """``ValueError`` naming the field unless ``latent_dim`` and the sizes in ``settings``
        are positive integers within ``keras_files.LIMITS``, and so is the parameter count
        they imply: run before any variable is made (a file's latent_dim of 40000 would make
        a 12.8 GB covariance)."""
        for name, value in (("latent_dim", latent_dim), *settings.items()):
            if name in ("latent_dim", "layers", "hidden_units", "components", "steps",
                        "blocks"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"{name} must be a positive integer, got {value!r}.")
                check_limit(name, value)
        check_limit("the parameter count the sampler's sizes imply",
                    cls.parameter_count(latent_dim, **settings), "parameters")

    @classmethod
    def parameter_count(cls, latent_dim: int, **settings) -> int:
        """How many numbers the sampler's state holds, from its sizes alone."""
        return 0

    @classmethod
    def min_codes(cls, latent_dim: int, **settings) -> int:
        """How many codes ``fit`` needs at least: what the sampler estimates must be
        determined by them (a full covariance of d dimensions needs d + 1 codes)."""
        return latent_dim + 1

    @property
    def fitted(self) -> bool:
        return bool(self.is_fitted.numpy())

    def settings(self) -> dict:
        """Constructor arguments besides latent_dim and metadata."""
        return {}

    def get_config(self):
        return {"latent_dim": self.latent_dim, "metadata": self.metadata, **self.settings()}

    def fit(self, codes, scales=None, seed: int = 0, **options) -> "LatentSampler":
        codes = self.check_codes(codes)
        if scales is not None:
            scales = self.check_codes(scales, "scales")
            if scales.shape != codes.shape:
                raise ValueError(f"scales must have the shape of codes {codes.shape}, got "
                                 f"{scales.shape}.")
        if self.needs_fitting:
            self._check_enough_codes(codes, scales)
        self._fit(codes, scales, seed, **options)
        self.is_fitted.assign(True)
        return self

    def _fit(self, codes, scales, seed: int, **options) -> None:
        raise NotImplementedError

    def sample(self, count: int, seed: int = 0) -> np.ndarray:
        self._check_fitted()
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"count must be an integer >= 0, got {count!r}.")
        return np.asarray(self._sample(int(count), np.random.default_rng(seed)), np.float32)

    def log_prob(self, z) -> np.ndarray:
        self._check_fitted()
        return np.asarray(self._log_prob(self.check_codes(z, "z")), np.float64)

    def _sample(self, count: int, rng) -> np.ndarray:
        raise NotImplementedError

    def _log_prob(self, z) -> np.ndarray:
        raise NotImplementedError

    def check_codes(self, z, name: str = "codes") -> np.ndarray:
        z = np.asarray(z)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"{name} must have shape (N, {self.latent_dim}), got {z.shape}.")
        return finite_float32(z, name, what="codes")

    def _check_enough_codes(self, codes: np.ndarray, scales) -> None:
        """``ValueError`` unless the codes determine what the sampler fits: at least
        ``min_codes`` of them, and not all one point (a density fitted to a point has
        log-densities of +-inf, or a ridge as large as the rounding error)."""
        needed = self.min_codes(self.latent_dim, **self.settings())
        if len(codes) < needed:
            raise ValueError(
                f"the {self.kind!r} sampler ({self.description}) needs at least {needed} "
                f"codes, got {len(codes)} (of {self.latent_dim} dimensions): fit it to more "
                "codes (a training set's), choose a smaller one (fewer mixture components, the "
                "'fitted' Gaussian), or use the 'standard' sampler, which needs none.")
        spread = np.ptp(codes, axis=0) if scales is None else np.ptp(codes, axis=0) + np.max(
            np.abs(scales), axis=0)
        if not np.any(spread > 0):
            raise ValueError(
                f"all {len(codes)} codes are the same point: the {self.kind!r} sampler has "
                "nothing to fit. Fit it to the codes of different images, or use the "
                "'standard' sampler.")

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise ValueError(f"the {self.kind!r} sampler has not been fitted: call "
                             ".fit(codes) first.")


def _draw(codes: np.ndarray, scales, rng) -> np.ndarray:
    """The codes themselves (scales None), or one z ~ N(codes, scales^2) per row."""
    if scales is None:
        return codes
    return (codes + scales * rng.standard_normal(codes.shape)).astype(np.float32)


def _held_out_draw(sampler, validation, seed: int) -> np.ndarray:
    """One fixed draw of held-out ``(codes, scales)`` (seeded), checked like the codes."""
    codes, scales = validation
    return _draw(sampler.check_codes(codes), scales, np.random.default_rng(seed))


def _fit_epochs(sampler, step, codes, scales, seed: int, validation, epochs: int,
                batch_size: int, verbose: int, schedule) -> dict:
    """The gradient fit of the flow and the diffusion model, rounded history returned.

    Sets ``sampler.code_mean`` / ``code_std`` from one draw of the codes; then every epoch
    calls ``schedule(epoch)`` (the learning rate), draws a fresh z ~ q(z|x) per image (with
    scales) and runs ``step(z_batch, rng)`` (the batch's loss) over it in a random order.
    ``history["loss"]`` gets each epoch's mean loss; ``validation``, held-out ``(codes,
    scales)``, adds their mean ``sampler._validation_loss`` beside that of N(0, I)
    ("val_standard_normal"), for one fixed draw so the epochs stay comparable. ``verbose``: 0
    silent, 1 a progress bar, 2 one line per epoch (for logs), as in Keras."""
    rng = np.random.default_rng(seed)
    spread = _draw(codes, scales, rng)
    sampler.code_mean.assign(spread.mean(axis=0))
    sampler.code_std.assign(np.maximum(spread.std(axis=0), 1e-6))
    history = {"loss": []}
    if validation is not None:
        history.update(val_loss=[], val_standard_normal=[])
        val_z = _held_out_draw(sampler, validation, seed)
        standard_loss = sampler._validation_loss(val_z, standard=True)
    progress = tf_keras.utils.Progbar(epochs, verbose=int(verbose == 1),
                                      stateful_metrics=list(history))
    for epoch in range(epochs):
        schedule(epoch)
        z = _draw(codes, scales, rng)
        order = rng.permutation(len(z))
        losses = [step(z[order[i:i + batch_size]], rng) for i in range(0, len(z), batch_size)]
        history["loss"].append(float(np.mean(losses)))
        if not np.isfinite(history["loss"][-1]):
            raise FloatingPointError(f"the {sampler.kind} sampler's loss became "
                                     f"{history['loss'][-1]} in epoch {epoch + 1}; fit again "
                                     "with a lower learning_rate.")
        if validation is not None:
            history["val_loss"].append(sampler._validation_loss(val_z))
            history["val_standard_normal"].append(standard_loss)
        progress.update(epoch + 1, [(k, v[-1]) for k, v in history.items()])
        if verbose == 2:
            print(f"{sampler.kind} epoch {epoch + 1}/{epochs}: "
                  + ", ".join(f"{k} {v[-1]:.4f}" for k, v in history.items()), flush=True)
    return {k: [round(v, 4) for v in values] for k, values in history.items()}


def _check_fit_options(epochs, batch_size, learning_rate) -> tuple:
    return (check_count("epochs", epochs), check_count("batch_size", batch_size),
            check_positive("learning_rate", learning_rate))


def _seeded_glorot(seed: int, index: int):
    """The initial kernel of a sampler's ``index``-th layer: seeded per layer, so the global
    random state is left alone and a sampler's ``init_seed`` fixes its starting weights."""
    return tf_keras.initializers.GlorotUniform(seed=seed * 1000 + index)


def _gaussian_log_prob(z, mean, covariance=None, cholesky=None) -> np.ndarray:
    """log N(z; mean, covariance) per row, via the covariance's Cholesky factor (given, or
    computed)."""
    from scipy.linalg import solve_triangular

    if cholesky is None:
        cholesky = np.linalg.cholesky(covariance)
    solved = solve_triangular(cholesky, (np.asarray(z, np.float64) - mean).T, lower=True)
    return (-0.5 * np.sum(solved ** 2, axis=0) - np.sum(np.log(np.diag(cholesky)))
            - 0.5 * len(mean) * np.log(2 * np.pi))


@tf_keras.saving.register_keras_serializable(package="models")
class StandardNormal(LatentSampler):
    kind = "standard"
    description = "standard normal N(0, I)"
    needs_fitting = False

    def _fit(self, codes, scales, seed, **options):
        pass  # nothing to fit: N(0, I) is fixed

    def _sample(self, count, rng):
        return rng.standard_normal((count, self.latent_dim))

    def _log_prob(self, z):
        z = np.asarray(z, np.float64)
        return -0.5 * np.sum(z ** 2, axis=1) - 0.5 * self.latent_dim * np.log(2 * np.pi)


@tf_keras.saving.register_keras_serializable(package="models")
class FittedGaussian(LatentSampler):
    """N(mean, covariance) with the codes' mean and full covariance."""

    kind = "fitted"
    description = "Gaussian fitted to the training codes (mean, full covariance)"

    @classmethod
    def parameter_count(cls, latent_dim, **settings):
        return latent_dim * (latent_dim + 1)

    def __init__(self, latent_dim: int, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.mean = tf.Variable(tf.zeros(latent_dim, tf.float64), trainable=False, name="mean")
        self.covariance = tf.Variable(tf.eye(latent_dim, dtype=tf.float64), trainable=False,
                                      name="covariance")

    def _fit(self, codes, scales, seed, **options):
        z = _draw(codes, scales, np.random.default_rng(seed))
        covariance = np.atleast_2d(np.cov(z, rowvar=False))
        try:
            np.linalg.cholesky(covariance)
        except np.linalg.LinAlgError:
            # Codes on a lower-dimensional subspace (a dead latent dimension, repeated codes):
            # the covariance is singular and log_prob would fail. A ridge of 1e-6 of the mean
            # variance keeps it a density; the file and a warning say so.
            ridge = 1e-6 * max(float(np.trace(covariance)) / self.latent_dim, 1e-12)
            covariance = covariance + ridge * np.eye(self.latent_dim)
            self.metadata["covariance_ridge"] = ridge
            warnings.warn(f"the codes' covariance is singular (they span fewer than "
                          f"{self.latent_dim} dimensions); added {ridge:.3g} to its diagonal.",
                          stacklevel=3)
        self.mean.assign(z.mean(axis=0).astype(np.float64))
        self.covariance.assign(covariance)

    def _sample(self, count, rng):
        return rng.multivariate_normal(self.mean.numpy(), self.covariance.numpy(), size=count)

    def _log_prob(self, z):
        return _gaussian_log_prob(z, self.mean.numpy(), self.covariance.numpy())


@tf_keras.saving.register_keras_serializable(package="models")
class GaussianMixture(LatentSampler):
    """A mixture of ``components`` full-covariance Gaussians (scikit-learn's EM).

    Kept as float32 weights, means and each covariance's Cholesky factor (its lower triangle
    packed, half a covariance's numbers); ``temperature`` scales every component's spread when
    sampling (1: the mixture; below 1 colder samples, nearer the means). ``log_prob`` is the
    mixture's own density, whatever the temperature."""

    kind = "gmm"
    description = "Gaussian mixture (full covariances)"
    tempered = True
    settings_names = ("components",)

    @classmethod
    def parameter_count(cls, latent_dim, components: int = 10, **settings):
        return components * (latent_dim * (latent_dim + 3) // 2 + 1)

    @classmethod
    def min_codes(cls, latent_dim, components: int = 10, **settings):
        """d + 1 codes per component (a full covariance each)."""
        return components * (latent_dim + 1)

    def __init__(self, latent_dim: int, components: int = 10, temperature: float = 1.0,
                 **kwargs):
        super().__init__(latent_dim, components=components, **kwargs)
        self.components = components
        self.temperature = check_positive("temperature", temperature)
        self.mixture_weights = tf.Variable(tf.fill([components], 1.0 / components),
                                           trainable=False, name="mixture_weights")
        self.means = tf.Variable(tf.zeros((components, latent_dim)), trainable=False,
                                 name="means")
        self._lower = np.tril_indices(latent_dim)
        self.packed_cholesky = tf.Variable(
            self._packed(np.tile(np.eye(latent_dim), (components, 1, 1))), trainable=False,
            name="packed_cholesky")
        self.history: dict = {}

    def settings(self):
        return {"components": self.components, "temperature": self.temperature}

    def _fit(self, codes, scales, seed, validation=None, verbose: int = 0, **options):
        """One z ~ q(z|x_i) per code (with scales), EM by scikit-learn with ``options``
        (``max_iter``, ``reg_covar``, ...); ``verbose`` 1 or 2: a line every 10 iterations.
        ``history``: EM's iterations, whether it converged, and the mean NLL of the codes
        (and of held-out ``(codes, scales)``, one draw)."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture as SklearnMixture

        z = _draw(codes, scales, np.random.default_rng(seed))
        with warnings.catch_warnings():  # said in the history instead
            warnings.simplefilter("ignore", ConvergenceWarning)
            mixture = SklearnMixture(self.components, covariance_type="full",
                                     random_state=seed, verbose=min(int(verbose), 1),
                                     verbose_interval=10, **options).fit(z)
        self.mixture_weights.assign(mixture.weights_.astype(np.float32))
        self.means.assign(mixture.means_.astype(np.float32))
        self.packed_cholesky.assign(self._packed(np.linalg.cholesky(mixture.covariances_)))
        history = {"iterations": int(mixture.n_iter_), "converged": bool(mixture.converged_),
                   "nll": round(float(-self._log_prob(z).mean()), 4)}
        if validation is not None:
            val_z = _held_out_draw(self, validation, seed)
            history["val_nll"] = round(float(-self._log_prob(val_z).mean()), 4)
        self.history = history

    def _cholesky(self) -> np.ndarray:
        """(components, d, d) lower-triangular factors of the covariances, float64."""
        factors = np.zeros((self.components, self.latent_dim, self.latent_dim))
        factors[:, self._lower[0], self._lower[1]] = self.packed_cholesky.numpy()
        return factors

    def _packed(self, factors) -> np.ndarray:
        return np.asarray(factors)[:, self._lower[0], self._lower[1]].astype(np.float32)

    def _sample(self, count, rng):
        weights = self.mixture_weights.numpy().astype(np.float64)
        which = rng.choice(self.components, size=count, p=weights / weights.sum())
        noise = self.temperature * rng.standard_normal((count, self.latent_dim))
        z = self.means.numpy().astype(np.float64)[which]
        for k, factor in enumerate(self._cholesky()):  # by component: no (count, d, d) copy
            rows = which == k
            z[rows] += noise[rows] @ factor.T
        return z

    def _log_prob(self, z):
        from scipy.special import logsumexp

        per_component = [np.log(w) + _gaussian_log_prob(z, m, cholesky=c) for w, m, c in zip(
            self.mixture_weights.numpy().astype(np.float64),
            self.means.numpy().astype(np.float64), self._cholesky())]
        return logsumexp(np.stack(per_component, axis=1), axis=1)


@tf_keras.saving.register_keras_serializable(package="models")
class MaskedAutoregressiveFlow(LatentSampler):
    """N(0, I) pushed through ``layers`` masked autoregressive bijectors
    (``tfb.MaskedAutoregressiveFlow``, each an affine autoregressive map by a MADE network),
    the coordinates reversed between them, then un-standardised to the codes' scale.

    An ex-post prior (Ghosh et al. 2020; Dai and Wipf 2019): a VAE trained towards N(0, I) does
    not fill it, and prior samples in the holes between the posterior clouds decode to images
    that are no digit; sampling from a density fitted to the codes avoids the holes.
    """

    kind = "flow"
    description = "masked autoregressive flow"

    settings_names = ("layers", "hidden_units")

    @classmethod
    def parameter_count(cls, latent_dim, layers: int = 6, hidden_units: int = 256, **settings):
        made = ((latent_dim + 1) * hidden_units + (hidden_units + 1) * hidden_units
                + (hidden_units + 1) * 2 * latent_dim)
        return layers * made + 2 * latent_dim

    def __init__(self, latent_dim: int, layers: int = 6, hidden_units: int = 256,
                 init_seed: int = 0, **kwargs):
        super().__init__(latent_dim, layers=layers, hidden_units=hidden_units, **kwargs)
        self.layers_count, self.hidden_units, self.init_seed = layers, hidden_units, init_seed
        # Seeded initial weights, one seed per network; global random states are left alone.
        self.networks = [
            tfb.AutoregressiveNetwork(
                params=2, hidden_units=[hidden_units] * 2, activation="relu",
                kernel_initializer=_seeded_glorot(init_seed, i))
            for i in range(layers)
        ]
        # The codes' mean and standard deviation, set by fit(): the networks then see
        # standardised codes whatever their scale (AE codes reach tens; unscaled, the loss
        # became NaN in the first epoch).
        self.code_mean = tf.Variable(tf.zeros(latent_dim), trainable=False, name="code_mean")
        self.code_std = tf.Variable(tf.ones(latent_dim), trainable=False, name="code_std")
        reverse = tfb.Permute(list(reversed(range(latent_dim))))
        bijectors = [tfb.Shift(self.code_mean), tfb.Scale(self.code_std)]  # applied last
        for network in self.networks:
            bijectors += [tfb.MaskedAutoregressiveFlow(network), reverse]
        self.distribution = tfd.TransformedDistribution(
            tfd.MultivariateNormalDiag(tf.zeros(latent_dim)), tfb.Chain(bijectors[:-1]))
        self._compiled_log_prob(tf.zeros((1, latent_dim)))  # builds the networks' weights
        self.history: dict = {}

    def settings(self):
        return {"layers": self.layers_count, "hidden_units": self.hidden_units,
                "init_seed": self.init_seed}

    @tf.function(reduce_retracing=True)
    def _compiled_log_prob(self, z):
        return self.distribution.log_prob(z)

    @tf.function(reduce_retracing=True)
    def _forward(self, u):
        return self.distribution.bijector.forward(u)

    def _log_prob(self, z):
        return in_batches(self._compiled_log_prob, z, 10_000)

    def _sample(self, count, rng):
        u = rng.standard_normal((count, self.latent_dim))
        return in_batches(self._forward, u, 10_000)

    def _fit(self, codes, scales, seed, validation=None, epochs: int = 20,
             batch_size: int = 256, learning_rate: float = 1e-3, verbose: int = 1):
        """Maximum likelihood; ``self.history`` gets the mean NLL per epoch (nats). With
        scales, every epoch draws a fresh z ~ q(z|x_i) per image. The learning rate drops to
        a third for the last 30 % of the epochs. ``validation``: held-out ``(codes, scales)``
        whose NLL is logged beside that of N(0, I) ("val_standard_normal")."""
        epochs, batch_size, learning_rate = _check_fit_options(epochs, batch_size,
                                                               learning_rate)
        optimizer = tf_keras.optimizers.Adam(learning_rate)
        variables = self.distribution.trainable_variables
        optimizer.build(variables)  # its state made here, the step is traced once

        @tf.function(reduce_retracing=True)
        def step(z):
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(self.distribution.log_prob(z))
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        self.history = _fit_epochs(
            self, lambda z, rng: step(tf.constant(z)).numpy(), codes, scales, seed, validation,
            epochs, batch_size, verbose, lambda epoch: optimizer.learning_rate.assign(
                learning_rate / 3 if epoch >= int(0.7 * epochs) else learning_rate))

    def _validation_loss(self, z, standard: bool = False) -> float:
        """Mean NLL of held-out codes (nats), or N(0, I)'s."""
        density = StandardNormal(self.latent_dim) if standard else self
        return float(-density._log_prob(z).mean())


@tf_keras.saving.register_keras_serializable(package="models")
class LatentDiffusion(LatentSampler):
    """A denoising diffusion model of the codes (Ho et al. 2020), in a VAE's latent space as
    latent diffusion (Rombach et al. 2022) is: the standardised code is noised over ``steps``
    steps of a cosine schedule (Nichol and Dhariwal 2021), z_t = sqrt(a_t) z + sqrt(1 - a_t) e,
    and a residual MLP (``blocks`` blocks of two ``hidden_units``-wide layers, swish before
    each, the step as sinusoidal features beside every block's input) learns to predict the
    noise e from (z_t, t). Sampling runs the chain backwards from N(0, I) by ancestral steps;
    ``temperature`` scales its every draw of noise (1: the model; below 1 colder samples).

    Where a flow must map N(0, I) onto the codes by one invertible function, the chain denoises
    a little at a time, so it follows the sharp, curved clouds of a VAE whose decoder keeps
    details (docs/fashion_mnist.md). It has no exact density: ``log_prob`` is refused.
    """

    kind = "diffusion"
    description = "denoising diffusion model"
    tempered = True
    settings_names = ("steps", "hidden_units", "blocks")
    time_features = 64  # sinusoidal features of the step

    @classmethod
    def parameter_count(cls, latent_dim, steps: int = 200, hidden_units: int = 256,
                        blocks: int = 3, **settings):
        width, extra = hidden_units, cls.time_features
        block = (width + extra + 1) * width + (width + 1) * width
        return ((latent_dim + extra + 1) * width + blocks * block + (width + 1) * latent_dim
                + 2 * latent_dim)

    def __init__(self, latent_dim: int, steps: int = 200, hidden_units: int = 256,
                 blocks: int = 3, temperature: float = 1.0, init_seed: int = 0, **kwargs):
        super().__init__(latent_dim, steps=steps, hidden_units=hidden_units, blocks=blocks,
                         **kwargs)
        self.steps, self.hidden_units, self.blocks = steps, hidden_units, blocks
        self.temperature = check_positive("temperature", temperature)
        self.init_seed = init_seed
        self.network = self._noise_network(init_seed)
        self.code_mean = tf.Variable(tf.zeros(latent_dim), trainable=False, name="code_mean")
        self.code_std = tf.Variable(tf.ones(latent_dim), trainable=False, name="code_std")
        # The cosine schedule: a_t, the share of the signal left after step t (t = 1..steps).
        ramp = (np.arange(steps + 1) / steps + 0.008) / 1.008
        signal = np.cos(ramp * np.pi / 2) ** 2
        self.betas = np.clip(1 - signal[1:] / signal[:-1], 0, 0.999)
        self.signal_left = np.cumprod(1 - self.betas)  # a_t, for t = 1..steps
        self.history: dict = {}

    def settings(self):
        return {"steps": self.steps, "hidden_units": self.hidden_units, "blocks": self.blocks,
                "temperature": self.temperature, "init_seed": self.init_seed}

    def _noise_network(self, seed: int) -> tf_keras.Model:
        layer_index = iter(range(10_000))

        def dense(units, **options):
            return tf_keras.layers.Dense(
                units, kernel_initializer=_seeded_glorot(seed, next(layer_index)), **options)

        z = tf_keras.Input((self.latent_dim,), name="noised_code")
        time = tf_keras.Input((self.time_features,), name="step_features")
        h = dense(self.hidden_units)(tf_keras.layers.Concatenate()([z, time]))
        for _ in range(self.blocks):
            u = tf_keras.layers.Concatenate()([tf_keras.activations.swish(h), time])
            u = dense(self.hidden_units, activation="swish")(u)
            h = h + dense(self.hidden_units)(u)
        # The last layer starts at zero: the first prediction of the noise is 0.
        noise = tf_keras.layers.Dense(self.latent_dim, kernel_initializer="zeros")(
            tf_keras.activations.swish(h))
        return tf_keras.Model([z, time], noise, name="noise_network")

    def _step_features(self, t: np.ndarray) -> np.ndarray:
        """Sinusoidal features of the steps t (integers 0..steps - 1), (N, time_features)."""
        half = self.time_features // 2
        frequencies = np.exp(-np.log(10_000.0) * np.arange(half) / half)
        angles = np.asarray(t, np.float64)[:, None] * frequencies[None, :]
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)

    @tf.function(reduce_retracing=True)
    def _predict_noise(self, z, time):
        return self.network([z, time], training=False)

    def _noised(self, z, rng):
        """(z_t, t features, noise) for a random step t per standardised code."""
        t = rng.integers(0, self.steps, size=len(z))
        noise = rng.standard_normal(z.shape).astype(np.float32)
        a = self.signal_left[t][:, None]
        noised = (np.sqrt(a) * z + np.sqrt(1 - a) * noise).astype(np.float32)
        return noised, self._step_features(t), noise

    def _fit(self, codes, scales, seed, validation=None, epochs: int = 150,
             batch_size: int = 256, learning_rate: float = 1e-3, verbose: int = 1):
        """The noise's mean squared error (per dimension, of standardised codes), Adam with the
        rate decaying along half a cosine to 0; with scales every epoch draws a fresh
        z ~ q(z|x_i). ``validation``: held-out ``(codes, scales)`` whose loss (at random
        steps, seeded) is logged beside that of predicting no noise at all
        ("val_standard_normal": the loss of a model that knows only N(0, I))."""
        epochs, batch_size, learning_rate = _check_fit_options(epochs, batch_size,
                                                               learning_rate)
        optimizer = tf_keras.optimizers.Adam(learning_rate)
        variables = self.network.trainable_variables
        optimizer.build(variables)

        @tf.function(reduce_retracing=True)
        def step(noised, time, noise):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(self.network([noised, time], training=True)
                                                - noise))
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        def batch_step(z, rng):
            return step(*map(tf.constant, self._noised(self._standardised(z), rng))).numpy()

        self.history = _fit_epochs(
            self, batch_step, codes, scales, seed, validation, epochs, batch_size, verbose,
            lambda epoch: optimizer.learning_rate.assign(
                learning_rate * 0.5 * (1 + np.cos(np.pi * epoch / epochs))))

    def _standardised(self, z):
        return (z - self.code_mean.numpy()) / self.code_std.numpy()

    def _validation_loss(self, z, standard: bool = False) -> float:
        noised, time, noise = self._noised(self._standardised(z), np.random.default_rng(0))
        predicted = 0.0 if standard else self._predicted_noise(noised, time)
        return float(np.mean((predicted - noise) ** 2))

    def _predicted_noise(self, noised, time) -> np.ndarray:
        return np.concatenate([np.asarray(self._predict_noise(
            tf.constant(noised[i:i + 10_000]), tf.constant(time[i:i + 10_000])))
            for i in range(0, len(noised), 10_000)] or [np.zeros_like(noised)])

    def _sample(self, count, rng):
        z = self.temperature * rng.standard_normal((count, self.latent_dim)).astype(np.float32)
        for t in reversed(range(self.steps)):
            noise = self._predicted_noise(
                z, np.repeat(self._step_features(np.array([t])), count, axis=0))
            beta, a = self.betas[t], self.signal_left[t]
            z = (z - beta / np.sqrt(1 - a) * noise) / np.sqrt(1 - beta)
            if t > 0:  # the posterior variance of the step, beta_t (1 - a_{t-1}) / (1 - a_t)
                spread = np.sqrt(beta * (1 - self.signal_left[t - 1]) / (1 - a))
                z = z + self.temperature * spread * rng.standard_normal(z.shape)
            z = z.astype(np.float32)
        return z * self.code_std.numpy() + self.code_mean.numpy()

    def _log_prob(self, z):
        raise NotImplementedError(
            "the diffusion sampler has no exact log-density (only a bound, over all its "
            "steps); use the 'flow' or 'gmm' sampler for log p(z).")


SAMPLERS = {cls.kind: cls for cls in (StandardNormal, FittedGaussian, GaussianMixture,
                                      MaskedAutoregressiveFlow, LatentDiffusion)}


def make_sampler(kind: str, latent_dim: int, **settings) -> LatentSampler:
    """A new (unfitted) sampler by name, one of ``SAMPLERS``."""
    if kind not in SAMPLERS:
        raise ValueError(f"unknown sampler {kind!r}; choose one of {tuple(SAMPLERS)}.")
    return SAMPLERS[kind](latent_dim, **settings)
