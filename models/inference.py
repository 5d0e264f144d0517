"""Inference without (or after) the encoder: a diagonal Gaussian q(z | psi_n) fitted per image
to a frozen decoder, masked ELBOs, image completion, and IWAE under any diagonal proposal.

    from models.inference import fit_posteriors, complete, make_mask, proposal_estimates
    fit = fit_posteriors(vae, x, steps=300)              # encoder-free: q(z|psi_n) per image
    fit = fit_posteriors(vae, x, init="encoder")         # refine the encoder's q(z|x)
    mask = make_mask("left_half", len(x))                # 1 = observed pixel
    filled, fit = complete(vae, x, mask)                 # missing pixels from the fitted code
    estimates = proposal_estimates(vae, x, fit.mean, fit.scale, num_samples=1000)

The ELBO of image x under q = N(mean, diag scale^2) (per image, nats; a colour image sums its
channels, which the colour model treats as independent digits):

    ELBO = E_q sum_pixels mask * log p(x_pixel | z) - KL(q || p(z))

with the model's prior p(z) (``model.latent_prior``), the KL analytic where a closed form
exists (N(0, I)) and otherwise (the learned flow prior of "flowprior_vae") the Monte Carlo
mean of log q(z) - log p(z) over the same samples, and the expectation by reparameterised
samples z = mean + scale * eps. A conditional model (the CVAE) is refused, with or without
``labels=``: its decoder needs each image's digit (``models.likelihood.iwae_log_likelihood``
with labels and ``models.conditional`` have its log p(x | y)). Pixels with mask 0 do not enter
it, so it is the ELBO of the observed pixels alone. ``fit_posteriors`` maximises it by Adam
over the means and log-scales of all images at once: one compiled step updates a (N, C, d)
variable (each image's parameters get their own Adam moments, so an image's fit does not
depend on the others). The noise of step t is drawn for all images with the stateless seed
(seed, t), so a fit does not depend on ``batch_size`` (images per compiled step, a memory
bound only).

Inits: "random" means drawn from N(0, I) (seeded) with scale 1, so the encoder is never used;
"encoder" the encoder's q(z|x), applied to the image with its missing pixels set to 0;
"prior" mean 0 and scale 1 (the prior itself); "search" the best of ``search_samples`` codes
drawn from the prior, scored by log p(x_observed | z) + log p(z) with one decoder pass shared
by all images (the heads' linear form, as in likelihood.prior_log_likelihood), scale 0.1.
From a random start many images end in a worse local optimum than the encoder's; from the
search start the fit passes the encoder's mean ELBO (see experiments/vae_inference.py).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from stacked_mnist import fold_channels, validate_images

from .checks import check_count, check_images, check_latents, check_seed, check_values
from .checks import check_positive as _check_positive
from .generative import GenerativeModel
from .heads import IMAGE_KINDS

tfd = tfp.distributions

INITS = ("random", "encoder", "prior", "search")
MASKS = ("left_half", "top_half", "random_50", "centre_square")
MASK_DESCRIPTIONS = {
    "left_half": "left half observed (columns 0-13)",
    "top_half": "top half observed (rows 0-13)",
    "random_50": "a random half of the pixels observed (392 of 784, per image)",
    "centre_square": "all but the centre 12 x 12 square observed",
}
SEARCH_SCALE = 0.1  # q's initial scale around the best prior sample (a typical posterior's)
# Adam's initial step per init (decayed along a cosine to a tenth): far starts need long steps,
# the encoder's q is close and a long step would overshoot it.
LEARNING_RATES = {"random": 0.5, "prior": 0.5, "search": 0.1, "encoder": 0.01}
COMPLETION_LEARNING_RATE = 0.2  # complete()'s short fits from the search start
_ADAM = (0.9, 0.999, 1e-8)


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------
def make_mask(name: str, count: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """``count`` masks (count, 28, 28, channels) float32, 1 = observed, 0 = missing, the same
    on every channel. "random_50" draws its own 392 observed pixels for each image from
    ``seed``; the others are the same for every image (see ``MASK_DESCRIPTIONS``)."""
    if name not in MASKS:
        raise ValueError(f"mask must be one of {MASKS}, got {name!r}.")
    count, seed = check_count("count", count), check_seed(seed)
    check_count("channels", channels)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}.")
    mask = np.zeros((count, 28, 28), np.float32)
    if name == "left_half":
        mask[:, :, :14] = 1.0
    elif name == "top_half":
        mask[:, :14, :] = 1.0
    elif name == "centre_square":
        mask[:] = 1.0
        mask[:, 8:20, 8:20] = 0.0
    else:
        order = np.random.default_rng(seed).random((count, 28 * 28)).argsort(axis=1)
        flat = mask.reshape(count, -1)
        np.put_along_axis(flat, order[:, : 28 * 14], 1.0, axis=1)
    return np.repeat(mask[..., np.newaxis], channels, axis=-1)


def check_mask(mask, shape, name: str = "mask") -> np.ndarray:
    """A mask for images of ``shape`` (N, 28, 28, C) as float32 0/1 of that shape. Accepts
    booleans or 0/1 numbers of shape (28, 28), (28, 28, 1 or C), (N, 28, 28) or anything
    broadcastable to (N, 28, 28, C)."""
    mask = np.asarray(mask)
    if mask.dtype != bool and (not np.issubdtype(mask.dtype, np.number)
                               or np.issubdtype(mask.dtype, np.complexfloating)):
        raise ValueError(f"{name} must hold booleans or 0/1 numbers; got dtype {mask.dtype}.")
    if mask.ndim == 2 or (mask.ndim == 3 and mask.shape[-1] != 28):
        mask = mask[np.newaxis]  # (28, 28) or (28, 28, C): one mask for every image
    if mask.ndim == 3:
        mask = mask[..., np.newaxis]  # (N, 28, 28): the same on every channel
    try:
        if mask.ndim != 4:
            raise ValueError
        mask = np.broadcast_to(mask, shape)
    except ValueError:
        raise ValueError(f"{name} must have shape (28, 28), (N, 28, 28) or be broadcastable to "
                         f"the images' {tuple(shape)}; got {np.shape(mask)}.") from None
    if mask.dtype != bool:
        if not np.all(np.isfinite(mask)) or not np.all((mask == 0) | (mask == 1)):
            raise ValueError(f"{name} values must be 0 (missing) or 1 (observed), or "
                             "booleans.")
    return mask.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Checks and folding: every computation runs on channel images (N * C, 28, 28, 1)
# --------------------------------------------------------------------------------------------
def _check_model(model, what: str, labels=None) -> None:
    """Refuse a model the function cannot serve, naming what to use instead. ``labels``: the
    class labels a caller passed (a conditional model is refused with or without them; an
    unconditional one refuses them)."""
    if not isinstance(model, GenerativeModel):
        raise ValueError(f"{what} needs a models.GenerativeModel; got {type(model).__name__}.")
    if model.latent_prior(1) is None:
        raise ValueError(f"{what} needs a model with a latent prior (a VAE); got a "
                         f"{model.config.kind!r} model.")
    if model.conditional:
        raise ValueError(
            f"{what} works with unconditional models only; a conditional "
            f"{model.config.kind!r} model is refused"
            f"{' even with labels=' if labels is not None else ''} (its decoder needs each "
            "image's digit, which these fits do not thread through). "
            "Use an unconditional VAE for inference and completion (e.g. models.zoo.load("
            "'vae_mono_complete') or 'flowprior_vae_mono_complete'); for the CVAE's log p(x | "
            "y) use models.likelihood.iwae_log_likelihood(model, x, labels=y) or "
            "models.conditional.class_log_likelihoods, for its reconstructions "
            "model.reconstruct(x, labels=y).")
    model.check_labels(labels, 0)  # an unconditional model refuses labels


def _inputs(model, x, mask):
    """``(x (N, 28, 28, C), mono_x (N*C, 28, 28, 1), mono_mask (N*C, 28, 28, 1))``."""
    x = check_images(x, model.config.channels)
    mask = np.ones_like(x) if mask is None else check_mask(mask, x.shape)
    return x, fold_channels(x)[0], fold_channels(mask)[0]


def _check_q(model, mean, scale, count: int):
    """Mean and scale (N, C, d) of q as folded (N * C, d) float32 arrays."""
    channels, d = model.config.channels, model.config.latent_dim
    mean = check_latents(mean, channels, d, "mean")
    scale = check_latents(scale, channels, d, "scale")
    if len(mean) != count or len(scale) != count:
        raise ValueError(f"mean and scale must hold one row per image: {count} images, got "
                         f"{len(mean)} means and {len(scale)} scales.")
    if not np.all(scale > 0):
        raise ValueError("scale must be positive everywhere.")
    return mean.reshape(-1, d), scale.reshape(-1, d)


def _per_image(values, channels: int, per_channel: bool) -> np.ndarray:
    values = np.asarray(values, np.float64).reshape(-1, channels)
    return values if per_channel else values.sum(axis=1)


def _q(loc, scale):
    """N(loc, scale^2) per channel image: batch (B,), event (1, d); loc, scale (B, d)."""
    return tfd.Independent(tfd.Normal(loc[:, tf.newaxis, :], scale[:, tf.newaxis, :]), 2)


def _closed_form_kl(model, loc, scale):
    """KL(N(loc, scale^2) || p(z)) per channel image (B,), analytic; None when the prior has
    no closed form (the learned flow prior of "flowprior_vae")."""
    try:
        return tfd.kl_divergence(_q(loc, scale), model.latent_prior(1))
    except NotImplementedError:
        return None


def _kl(model, loc, scale, z):
    """KL(N(loc, scale^2) || p(z)) per channel image (B,): analytic where a closed form exists,
    else the Monte Carlo mean of log q(z) - log p(z) over the samples z (S, B, d) drawn from q
    (unbiased, and reparameterised: its gradient is the ELBO's)."""
    kl = _closed_form_kl(model, loc, scale)
    if kl is not None:
        return kl
    z = z[..., tf.newaxis, :]  # (S, B, 1, d): the event (1, d) of q and of p(z)
    return tf.reduce_mean(_q(loc, scale).log_prob(z) - model.latent_prior(1).log_prob(z), axis=0)


def _masked_log_likelihood(model, z, targets, mask):
    """sum_pixels mask * log p(x | z): z (S, B, d), targets and mask (B, 28, 28, 1) -> (S, B)."""
    samples, rows = tf.shape(z)[0], tf.shape(z)[1]
    params = model.mono_pixel_params(tf.reshape(z, [-1, model.config.latent_dim]))
    params = tf.reshape(params, tf.concat([[samples, rows], tf.shape(params)[1:]], 0))
    per_pixel = model.head.distribution(params).distribution.log_prob(targets)
    return tf.reduce_sum(per_pixel * mask, axis=[2, 3, 4])


# --------------------------------------------------------------------------------------------
# Fitting q(z | psi_n)
# --------------------------------------------------------------------------------------------
@dataclass
class PosteriorFit:
    """The fitted diagonal Gaussians and how the fit went.

    mean, scale         (N, C, d): q(z | psi_n) per image (and channel)
    elbo                (N,) nats: the final ELBO of the observed pixels per image, estimated
                        with ``eval_samples`` samples (None when eval_samples = 0)
    initial_elbo        (N,) nats: the same estimate (same noise) at the initial q, or None
    reverted            (N, C) bool with keep_better: where the fitted q was no better than
                        the initial one and the initial q was kept; else None
    trace               (steps + 1,): the mean over images of the one-step ELBO estimate that
                        the optimiser follows, before each step and after the last
    steps_to_converge   the first step after which the mean ELBO over the last ``window``
                        steps differs by less than ``tolerance`` nats from the window before;
                        None if that never happened
    """

    mean: np.ndarray
    scale: np.ndarray
    elbo: Optional[np.ndarray]
    initial_elbo: Optional[np.ndarray]
    reverted: Optional[np.ndarray]
    trace: np.ndarray
    steps_to_converge: Optional[int]
    init: str
    steps: int
    learning_rate: float
    samples: int
    seconds: float
    settings: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Plain values for metrics files."""
        out = {"init": self.init, "steps": self.steps, "learning_rate": self.learning_rate,
               "samples_per_step": self.samples, "steps_to_converge": self.steps_to_converge,
               "seconds": round(self.seconds, 2), "images": int(len(self.mean)),
               "steps_to_95_percent_of_gain": steps_to_fraction(self.trace, 0.95),
               "initial_mean_elbo_trace_nats": float(self.trace[0]),
               "final_mean_elbo_trace_nats": float(self.trace[-1]), **self.settings}
        if self.elbo is not None:
            out["mean_elbo_nats"] = float(np.mean(self.elbo))
            out["mean_initial_elbo_nats"] = float(np.mean(self.initial_elbo))
        if self.reverted is not None:
            out["reverted_to_initial"] = int(np.sum(self.reverted))
        return out


def steps_to_converge(trace, tolerance: float = 0.2, window: int = 10) -> Optional[int]:
    """The first step t >= 2 window at which |mean(trace[t-w+1 .. t]) - mean(trace[t-2w+1 ..
    t-w])| < tolerance; None if none. ``trace`` is a mean ELBO per step (nats)."""
    trace = check_values(trace, "trace", ndim=1, what="mean ELBOs, one per step")
    window, tolerance = check_count("window", window), _check_positive("tolerance", tolerance)
    if len(trace) < 2 * window:
        return None
    means = np.convolve(trace, np.ones(window) / window, mode="valid")  # means[i]: i..i+w-1
    change = np.abs(means[window:] - means[:-window])
    hits = np.flatnonzero(change < tolerance)
    return None if len(hits) == 0 else int(hits[0] + 2 * window - 1)


def steps_to_fraction(trace, fraction: float = 0.95) -> int:
    """The first step at which the mean ELBO has made ``fraction`` of its total gain."""
    trace = check_values(trace, "trace", ndim=1, what="mean ELBOs, one per step")
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}.")
    target = trace[0] + fraction * (trace[-1] - trace[0])
    return int(np.flatnonzero(trace >= target)[0]) if trace[-1] > trace[0] else 0


def _adam(value, gradient, m, v, learning_rate, step):
    """Adam's update of one parameter tensor: ``(value, m, v)`` after the step."""
    beta1, beta2, epsilon = _ADAM
    m = beta1 * m + (1.0 - beta1) * gradient
    v = beta2 * v + (1.0 - beta2) * tf.square(gradient)
    m_hat = m / (1.0 - beta1 ** step)
    v_hat = v / (1.0 - beta2 ** step)
    return value - learning_rate * m_hat / (tf.sqrt(v_hat) + epsilon), m, v


def _elbo_estimate(model, loc, log_scale, targets, mask, eps):
    """(B,): mean over the S samples eps (S, B, d) of log p(x_obs | z) - KL, z reparameterised."""
    scale = tf.exp(log_scale)
    z = loc[tf.newaxis] + scale[tf.newaxis] * eps
    log_px = tf.reduce_mean(_masked_log_likelihood(model, z, targets, mask), axis=0)
    return log_px - _kl(model, loc, scale, z)


# The step takes and returns tensors, never variables: a tf.function given variables as
# arguments may keep using the first call's variables after its shapes were relaxed.
@tf.function(reduce_retracing=True)
def _fit_step(model, params, moments, targets, mask, eps, learning_rate, step):
    """One Adam step on a block of channel images. params: (means, log-scales), each (B, d);
    moments: Adam's (m, v) of each. Returns ``(ELBO estimate (B,) before the step, params,
    moments)``."""
    loc, log_scale = params
    with tf.GradientTape() as tape:
        tape.watch([loc, log_scale])
        elbo = _elbo_estimate(model, loc, log_scale, targets, mask, eps)
        loss = -tf.reduce_sum(elbo)  # a sum: each image's gradient is its own
    gradients = tape.gradient(loss, [loc, log_scale])
    updated = [_adam(value, gradient, m, v, learning_rate, step)
               for value, gradient, (m, v) in zip((loc, log_scale), gradients, moments)]
    return elbo, tuple(u[0] for u in updated), tuple((u[1], u[2]) for u in updated)


@tf.function(reduce_retracing=True)
def _fit_value(model, params, targets, mask, eps):
    return _elbo_estimate(model, params[0], params[1], targets, mask, eps)


def _initial_q(model, init, mono_x, mono_mask, seed, search_samples):
    """Initial (loc, scale), each (N * C, d) float32."""
    rows, d = len(mono_x), model.config.latent_dim
    if init == "random":
        loc = np.random.default_rng([seed, 2]).standard_normal((rows, d)).astype(np.float32)
        return loc, np.ones((rows, d), np.float32)
    if init == "prior":
        return np.zeros((rows, d), np.float32), np.ones((rows, d), np.float32)
    if init == "encoder":
        mean, scale = model.mono_code_distribution(mono_x * mono_mask)
        if scale is None:
            raise ValueError("init='encoder' needs an encoder with a distribution q(z|x).")
        return mean.astype(np.float32), scale.astype(np.float32)
    return (_prior_search(model, mono_x, mono_mask, search_samples, seed),
            np.full((rows, d), SEARCH_SCALE, np.float32))


def fit_posteriors(model: GenerativeModel, x, mask=None, steps: int = 100,
                   learning_rate: Optional[float] = None, init: str = "random",
                   samples: int = 1, seed: int = 0, final_learning_rate: Optional[float] = None,
                   eval_samples: int = 100, tolerance: float = 0.2, window: int = 10,
                   batch_size: int = 2000, search_samples: int = 20_000,
                   keep_better: bool = False, labels=None) -> PosteriorFit:
    """Fit a diagonal Gaussian q(z | psi_n) per image to the frozen decoder by maximising the
    ELBO of its observed pixels (module docstring), all images at once.

    x: (N, 28, 28, C) in [0, 1]; mask: None (every pixel observed) or booleans / 0-1 of shape
    (28, 28), (N, 28, 28) or broadcastable to x, 1 = observed. init: "random" | "encoder" |
    "prior" | "search" (module docstring). Adam, ``steps`` steps of ``samples``
    reparameterised samples per image, its step size decayed along a cosine from
    ``learning_rate`` (default ``LEARNING_RATES[init]``) to ``final_learning_rate`` (default a
    tenth of it). The final ELBO per image is estimated with ``eval_samples`` samples (0: not
    estimated), with the same noise for the initial q, so ``fit.elbo - fit.initial_elbo``
    compares the two nearly free of sampling noise. ``keep_better``: where that estimate finds
    the fitted q worse than the initial one (a channel image the start was already optimal
    for, and the noisy steps moved off), keep the initial q (``fit.reverted``): a refinement
    of the encoder's q then never returns a worse one. ``batch_size``: channel images per
    compiled step (memory; the result does not depend on it). ``search_samples``: prior draws
    of init "search". ``tolerance``, ``window``: the convergence criterion
    (``steps_to_converge``).
    """
    _check_model(model, "fit_posteriors", labels)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}.")
    steps = check_count("steps", steps, low=0)
    samples, seed = check_count("samples", samples), check_seed(seed)
    eval_samples = check_count("eval_samples", eval_samples, low=0)
    batch_size = check_count("batch_size", batch_size)
    search_samples = check_count("search_samples", search_samples)
    window = check_count("window", window)
    learning_rate = _check_positive("learning_rate", LEARNING_RATES[init] if learning_rate is None
                                    else learning_rate)
    final_learning_rate = (learning_rate / 10 if final_learning_rate is None
                           else _check_positive("final_learning_rate", final_learning_rate))
    tolerance = _check_positive("tolerance", tolerance)
    if keep_better and not eval_samples:
        raise ValueError("keep_better compares the fitted q with the initial one by an ELBO "
                         "estimate: it needs eval_samples >= 1.")
    x, mono_x, mono_mask = _inputs(model, x, mask)
    channels, d = model.config.channels, model.config.latent_dim
    start = time.perf_counter()
    loc0, scale0 = _initial_q(model, init, mono_x, mono_mask, seed, search_samples)
    rows = len(mono_x)
    loc, log_scale = loc0.copy(), np.log(scale0)
    trace = np.zeros(steps + 1, np.float64)
    targets = model.head.targets(mono_x)
    rates = final_learning_rate + 0.5 * (learning_rate - final_learning_rate) * (
        1.0 + np.cos(np.pi * np.arange(steps) / max(1, steps - 1)))
    # The means and log-scales of every channel image, (N * C, d) variables; one compiled
    # step updates a block of ``batch_size`` rows (all of them unless memory asks for less).
    params = (tf.Variable(loc), tf.Variable(log_scale))
    for block_start in range(0, rows, batch_size):
        block = slice(block_start, block_start + batch_size)
        block_rows = len(mono_x[block])
        values = tuple(tf.constant(p[block]) for p in (loc, log_scale))
        moments = tuple((tf.zeros((block_rows, d)), tf.zeros((block_rows, d))) for _ in "ms")
        block_targets, block_mask = targets[block], tf.constant(mono_mask[block])
        for step in range(steps + 1):
            # Every image's noise of this step, sliced: a fit does not depend on batch_size.
            eps = tf.random.stateless_normal([samples, rows, d], seed=tf.constant(
                [seed, step], tf.int64))[:, block_start:block_start + block_rows]
            if step < steps:
                elbo, values, moments = _fit_step(
                    model, values, moments, block_targets, block_mask, eps,
                    tf.constant(rates[step], tf.float32), tf.constant(step + 1, tf.float32))
            else:
                elbo = _fit_value(model, values, block_targets, block_mask, eps)
            trace[step] += float(tf.reduce_sum(elbo))
        for variable, value in zip(params, values):
            variable[block_start:block_start + block_rows].assign(value)
    loc, log_scale = params[0].numpy(), params[1].numpy()
    trace /= len(x)  # channel images summed into images, averaged over images
    scale = np.exp(log_scale).astype(np.float32)
    if not (np.all(np.isfinite(loc)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise FloatingPointError("the fit diverged (non-finite means or scales): lower the "
                                 f"learning_rate ({learning_rate:g}).")
    elbo_final = elbo_initial = reverted = None
    if eval_samples:
        # A noise stream of its own (stream 1): independent of proposal_estimates' noise, so
        # a later check of the kept q is not judged by the noise that chose it.
        final = _estimates(model, mono_x, mono_mask, loc, scale, eval_samples, seed, stream=1)
        initial = _estimates(model, mono_x, mono_mask, loc0, scale0, eval_samples, seed,
                             stream=1)
        final_elbo = final["elbo"]
        if keep_better:
            worse = final_elbo < initial["elbo"]
            loc[worse], scale[worse] = loc0[worse], scale0[worse]
            final_elbo = np.where(worse, initial["elbo"], final_elbo)
            reverted = worse.reshape(-1, channels)
        elbo_final = _per_image(final_elbo, channels, False)
        elbo_initial = _per_image(initial["elbo"], channels, False)
    return PosteriorFit(
        mean=loc.reshape(-1, channels, d), scale=scale.reshape(-1, channels, d),
        elbo=elbo_final, initial_elbo=elbo_initial, reverted=reverted, trace=trace,
        steps_to_converge=steps_to_converge(trace, tolerance, window), init=init, steps=steps,
        learning_rate=learning_rate, samples=samples, seconds=time.perf_counter() - start,
        settings={"final_learning_rate": final_learning_rate, "eval_samples": eval_samples,
                  "convergence_tolerance_nats": tolerance, "convergence_window": window,
                  **({"search_samples": search_samples} if init == "search" else {})})


# --------------------------------------------------------------------------------------------
# A start without the encoder: the best of K prior samples, one decoder pass for all images
# --------------------------------------------------------------------------------------------
_SEARCH_TABLE = {}  # the last decoded prior sample set: (key, value); see _prior_table
_SEARCH_TABLE_MAX_BYTES = 512 * 2 ** 20


def _prior_table(model, num_samples: int, seed: int, sample_chunk: int = 1000):
    """``(z (K, d), log p(z) (K,), weights (K, 784 F), per-pixel constants (K, 784))`` of K
    prior draws: log p(x_pixel | z_k) = features(x)_pixel . weights_k,pixel + constant_k,pixel.

    The last table is kept (up to 512 MB) for the next call with the same decoder weights,
    head, K and seed: every mask of a run searches the same decoded samples."""
    digest = hashlib.sha256()
    for weight in model.mono_decoder.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    key = (type(model).__name__, model.config.head, model.config.categorical_bins,
           model.config.normal_scale, model.config.latent_dim, digest.hexdigest(), num_samples,
           seed)
    if _SEARCH_TABLE.get("key") == key:
        return _SEARCH_TABLE["value"]
    d = model.config.latent_dim
    z = np.random.default_rng([seed, 1]).standard_normal((num_samples, d)).astype(np.float32)
    log_prior = model.latent_prior(1).log_prob(z[:, np.newaxis, :]).numpy()
    # Any target works as the reference: constant = log p(reference) - f(reference) . weights.
    reference = model.head.targets(tf.zeros((1, 28, 28, 1)))
    reference_features = model.head.features(reference)
    per_pixel = int(reference_features.shape[1]) // (28 * 28)
    reference_features = tf.reshape(reference_features, [1, 28 * 28, per_pixel])
    weights, constants = [], []
    for start in range(0, num_samples, sample_chunk):
        params = model.mono_pixel_params(z[start:start + sample_chunk])
        chunk_weights, _ = model.head.linear_form(params)
        log_prob = tf.reshape(model.head.distribution(params).distribution.log_prob(reference),
                              [-1, 28 * 28])
        chunk_constants = log_prob - tf.reduce_sum(
            tf.reshape(chunk_weights, [-1, 28 * 28, per_pixel]) * reference_features, axis=-1)
        weights.append(chunk_weights.numpy())
        constants.append(chunk_constants.numpy())
    value = (z, log_prior, np.concatenate(weights), np.concatenate(constants))
    _SEARCH_TABLE.clear()
    if sum(part.nbytes for part in value) <= _SEARCH_TABLE_MAX_BYTES:
        _SEARCH_TABLE.update(key=key, value=value)
    return value


def _prior_search(model, mono_x, mono_mask, num_samples: int, seed: int,
                  sample_chunk: int = 2000) -> np.ndarray:
    z, log_prior, weights, constants = _prior_table(model, num_samples, seed)
    features = model.head.features(model.head.targets(mono_x)).numpy()
    per_pixel = features.shape[1] // (28 * 28)
    observed = mono_mask.reshape(len(mono_x), -1)
    masked_features = features * np.repeat(observed, per_pixel, axis=1)
    best = np.full(len(mono_x), -np.inf)
    best_index = np.zeros(len(mono_x), np.int64)
    for start in range(0, num_samples, sample_chunk):
        chunk = slice(start, start + sample_chunk)
        table = (masked_features @ weights[chunk].T + observed @ constants[chunk].T
                 + log_prior[chunk])
        chunk_best = table.argmax(axis=1)
        values = table[np.arange(len(table)), chunk_best]
        better = values > best
        best[better], best_index[better] = values[better], chunk_best[better] + start
    return z[best_index]


def prior_search(model: GenerativeModel, x, mask=None, num_samples: int = 20_000,
                 seed: int = 0, labels=None) -> np.ndarray:
    """Codes (N, C, d): for each (channel) image the one among ``num_samples`` draws from the
    prior with the largest log p(x_observed | z) + log p(z), without the encoder. The draws
    are decoded once for all images; each head's per-pixel log p(x | z) is linear in fixed
    features of x, so the masked N x K table is two matrix products per chunk of draws:
    (mask * features) . weights + mask . per-pixel constants."""
    _check_model(model, "prior_search", labels)
    num_samples, seed = check_count("num_samples", num_samples), check_seed(seed)
    x, mono_x, mono_mask = _inputs(model, x, mask)
    z = _prior_search(model, mono_x, mono_mask, num_samples, seed)
    return z.reshape(len(x), model.config.channels, model.config.latent_dim)


# --------------------------------------------------------------------------------------------
# Estimates under a given diagonal q: masked ELBO and IWAE
# --------------------------------------------------------------------------------------------
@tf.function(reduce_retracing=True)
def _proposal_block(model, targets, mask, loc, scale, eps):
    """log w (S, B), sum_k log p(x_obs | z_k) (B,) for z = loc + scale * eps."""
    z = loc[tf.newaxis] + scale[tf.newaxis] * eps
    log_px = _masked_log_likelihood(model, z, targets, mask)
    log_q = tf.reduce_sum(tfd.Normal(loc, scale).log_prob(z), axis=-1)
    log_p = model.latent_prior(1).log_prob(z[..., tf.newaxis, :])
    return log_px + log_p - log_q, tf.reduce_sum(log_px, axis=0)


def _estimates(model, mono_x, mono_mask, loc, scale, num_samples, seed, max_decodes=4000,
               antithetic=True, stream=0):
    """IWAE, ELBO and KL per channel image (M,) under q = N(loc, scale^2), loc/scale (M, d).

    Block b of images gets the noise of stateless seed (seed, 4 b + stream), so two proposals
    for the same images share it (common random numbers). ``antithetic``: the samples come in
    pairs eps, -eps; each z_k is still distributed as q, so both estimates keep their meaning
    (the IWAE average of weights is still unbiased for p(x_obs)), and the part of log p(x | z)
    that is odd around the mean cancels within a pair (for the shipped VAE the ELBO estimate's
    noise drops by a quarter)."""
    rows, d = len(mono_x), model.config.latent_dim
    images_per_block = max(1, max_decodes // num_samples)
    samples_per_block = min(num_samples, max(2, max_decodes // images_per_block // 2 * 2))
    targets = model.head.targets(mono_x)
    iwae = np.zeros(rows)
    log_px_total = np.zeros(rows)
    log_w_total = np.zeros(rows)
    block_index = 0
    for start in range(0, rows, images_per_block):
        block = slice(start, start + images_per_block)
        count_rows = len(mono_x[block])
        log_w_parts = []
        args = (targets[block], tf.constant(mono_mask[block]), tf.constant(loc[block]),
                tf.constant(scale[block]))
        for k_start in range(0, num_samples, samples_per_block):
            count = min(samples_per_block, num_samples - k_start)
            seed_pair = tf.constant([seed, 4 * block_index + stream], tf.int64)
            block_index += 1
            if antithetic:
                half = tf.random.stateless_normal([(count + 1) // 2, count_rows, d], seed_pair)
                eps = tf.concat([half, -half], axis=0)[:count]
            else:
                eps = tf.random.stateless_normal([count, count_rows, d], seed_pair)
            log_w, log_px_sum = _proposal_block(model, *args, eps)
            log_w_parts.append(log_w.numpy().astype(np.float64))
            log_px_total[block] += log_px_sum.numpy()
        log_w = np.concatenate(log_w_parts, axis=0)
        log_w_total[block] = log_w.sum(axis=0)
        top = log_w.max(axis=0)
        iwae[block] = top + np.log(np.exp(log_w - top).sum(axis=0)) - np.log(num_samples)
    kl = _closed_form_kl(model, tf.constant(loc), tf.constant(scale))
    if kl is None:
        # No closed form: log q(z_k) - log p(z_k) = log p(x_obs | z_k) - log w_k, averaged
        # over the same samples.
        kl = (log_px_total - log_w_total) / num_samples
    else:
        kl = kl.numpy().astype(np.float64)
    return {"iwae": iwae, "elbo": log_px_total / num_samples - kl, "kl": kl}


def proposal_estimates(model: GenerativeModel, x, mean, scale, mask=None,
                       num_samples: int = 1000, seed: int = 0, max_decodes: int = 4000,
                       per_channel: bool = False, antithetic: bool = True,
                       labels=None) -> dict:
    """Estimates under the proposal q = N(mean, diag scale^2) (mean, scale (N, C, d)), from
    the same K = ``num_samples`` samples per image, each (N,) nats (or (N, C)):

    ``iwae``  logsumexp_k [log p(x_obs | z_k) + log p(z_k) - log q(z_k)] - log K, a lower
              bound of log p(x_obs) that tightens as K grows (like
              ``likelihood.posterior_estimates``, with any proposal instead of q(z|x));
    ``elbo``  mean_k log p(x_obs | z_k) - KL(q || p(z)), the KL analytic (a learned prior's:
              the mean of log q(z_k) - log p(z_k) over the same samples);
    ``kl``    KL(q || p(z)).
    With a mask only the observed pixels count (x_obs); None = all pixels. The noise depends
    on (seed, the block) only, so two proposals for the same images and K share it, and their
    per-image difference is nearly free of sampling noise. ``antithetic``: samples in pairs
    (eps, -eps), see ``_estimates``. At most ``max_decodes`` latents are decoded at once
    (memory: about 0.5 MB each)."""
    _check_model(model, "proposal_estimates", labels)
    num_samples, seed = check_count("num_samples", num_samples), check_seed(seed)
    max_decodes = check_count("max_decodes", max_decodes)
    x, mono_x, mono_mask = _inputs(model, x, mask)
    loc, scale = _check_q(model, mean, scale, len(x))
    values = _estimates(model, mono_x, mono_mask, loc, scale, num_samples, seed, max_decodes,
                        bool(antithetic))
    return {key: _per_image(value, model.config.channels, per_channel)
            for key, value in values.items()}


def masked_elbo(model: GenerativeModel, x, mean, scale, mask=None, num_samples: int = 100,
                seed: int = 0, labels=None) -> np.ndarray:
    """The ELBO of the observed pixels per image, (N,) nats, under q = N(mean, scale^2)."""
    return proposal_estimates(model, x, mean, scale, mask, num_samples, seed,
                              labels=labels)["elbo"]


def proposal_iwae(model: GenerativeModel, x, mean, scale, mask=None, num_samples: int = 1000,
                  seed: int = 0, labels=None) -> np.ndarray:
    """IWAE estimate of log p(x_obs) per image, (N,) nats, with the proposal N(mean, scale^2)."""
    return proposal_estimates(model, x, mean, scale, mask, num_samples, seed,
                              labels=labels)["iwae"]


def encoder_q(model: GenerativeModel, x, mask=None, labels=None):
    """``(mean, scale)`` (N, C, d) of the encoder's q(z|x), missing pixels set to 0."""
    _check_model(model, "encoder_q", labels)
    x, mono_x, mono_mask = _inputs(model, x, mask)
    mean, scale = model.mono_code_distribution(mono_x * mono_mask)
    if scale is None:
        raise ValueError("encoder_q needs an encoder with a distribution q(z|x).")
    shape = (len(x), model.config.channels, model.config.latent_dim)
    return mean.reshape(shape), scale.reshape(shape)


# --------------------------------------------------------------------------------------------
# Completion
# --------------------------------------------------------------------------------------------
def fill(x, mask, values) -> np.ndarray:
    """x where mask is 1 (bit for bit), ``values`` elsewhere: images of x's shape, one image
    (28, 28, C) such as a per-pixel mean, or a number, in [0, 1]."""
    x = validate_images(x, "images")
    mask = check_mask(mask, x.shape)
    values = np.asarray(values, np.float32)
    try:
        values = np.broadcast_to(values, x.shape)
    except ValueError:
        raise ValueError(f"fill values must be a number, one image (28, 28, C) or images of "
                         f"shape {x.shape}; got {values.shape}.") from None
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
        raise ValueError("fill values must be finite and in [0, 1].")
    return np.where(mask > 0, x, values)


def complete(model: GenerativeModel, x, mask, steps: int = 15,
             learning_rate: Optional[float] = None, init: str = "search", seed: int = 0,
             how: str = "mean", labels=None, **fit_options):
    """Complete images from their observed pixels: fit q(z | psi_n) to the observed pixels
    (``fit_posteriors``; by default 15 steps from the best of 20,000 prior draws, no encoder,
    learning rate 0.2 for that start), decode its mean (``model.decode_images``, ``how`` =
    mean | mode | sample) and fill the missing pixels only: observed pixels are returned
    untouched, bit for bit. ``steps=0`` with ``init="encoder"`` is the encoder applied to the
    masked image (missing pixels 0). ``fit_options`` go to ``fit_posteriors``. Returns
    ``(completed (N, 28, 28, C) float32, fit)``."""
    _check_model(model, "complete", labels)
    if learning_rate is None:
        learning_rate = COMPLETION_LEARNING_RATE if init == "search" else LEARNING_RATES.get(init)
    if how not in IMAGE_KINDS:
        raise ValueError(f"image kind must be one of {IMAGE_KINDS}, got {how!r}.")
    x = check_images(x, model.config.channels)
    fit_options.setdefault("eval_samples", 0)
    fit = fit_posteriors(model, x, mask, steps=steps, learning_rate=learning_rate, init=init,
                         seed=seed, **fit_options)
    decoded = model.decode_images(fit.mean, how=how, seed=seed)
    return fill(x, mask, decoded), fit
