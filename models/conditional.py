"""The conditional VAE as a generative classifier and an anomaly detector.

    log_lik = class_log_likelihoods(cvae, x, num_samples=10)   # (N, C, 10): log p(x_c | y)
    posterior = class_posterior(log_lik, log_prior)            # p(y | x_c), sums to 1
    score = -marginal_log_likelihood(log_lik, log_prior)       # -log sum_y p(x_c|y) p(y)

log p(x | y) is importance-sampled with the encoder's q(z | x, y) as proposal:
logsumexp_k [log p(x | z_k, y) + log p(z_k) - log q(z_k | x, y)] - log K (the IWAE bound, exact
as K grows). Every image is paired with all ten labels and K samples: a block of B images costs
one encoder pass of 10 B rows and decoder passes over 10 B K rows. The estimates work per
channel image (a colour model's channels are independent, each with its own digit); each
distinct channel image is estimated once.

The digit's position as a latent variable (``max_shift`` = s > 0): the model says the image is
a digit of its training distribution moved by t, t uniform over the (2 s + 1)^2 whole-pixel
moves of at most s each way (transformation-invariant models, Frey and Jojic 2003), so
p(x | y) = mean_t p(x moved back by t | y), each term importance-sampled as above.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from scipy.special import logsumexp

from stacked_mnist import distinct_channel_images

from .checks import check_count, check_images, check_seed
from .likelihood import decoded_log_px, posterior_draws
from .networks import LABEL_CLASSES, every_digit_rows


def _check_conditional(model) -> None:
    if not model.conditional or model.prior is None:
        raise ValueError(f"needs a conditional model with a latent prior (cvae); got a "
                         f"{model.config.kind!r} model.")


PRIORS = ("standard", "class")
MAX_SHIFT = 4  # MNIST's digits lie in the middle 20 x 20 pixels: a larger move cuts them


def _class_block(model, mono_x, num_samples: int, seed, prior: str) -> np.ndarray:
    """Mono images (B, 28, 28, 1) -> (B, 10) IWAE estimates of log p(x | y) for every y."""
    images, digits = every_digit_rows(mono_x)
    z, log_pz, log_qz, _ = posterior_draws(model, images, num_samples, seed, digits,
                                           class_prior=prior == "class")
    log_w = decoded_log_px(model, z, model.head.targets(images), digits) + log_pz - log_qz
    log_lik = tf.reduce_logsumexp(log_w, axis=0) - tf.math.log(tf.cast(num_samples, tf.float32))
    return tf.reshape(log_lik, [len(mono_x), LABEL_CLASSES]).numpy()


def moved(x, rows: int, columns: int) -> np.ndarray:
    """Images (N, 28, 28, C) moved down by ``rows`` and right by ``columns`` whole pixels
    (negative: up, left); zeros move in."""
    x = np.asarray(x)
    out = np.zeros_like(x)
    height, width = x.shape[1:3]
    out[:, max(rows, 0):height + min(rows, 0), max(columns, 0):width + min(columns, 0)] = \
        x[:, max(-rows, 0):height - max(rows, 0), max(-columns, 0):width - max(columns, 0)]
    return out


def class_log_likelihoods(model, x, num_samples: int = 10, seed: int = 0,
                          max_decodes: int = 20_000, prior: str = "class",
                          max_shift: int = 0) -> np.ndarray:
    """(N, C, 10) nats: log p(x_c | y) of every channel image of x (N, 28, 28, C) under every
    digit y, by importance sampling with ``num_samples`` draws of q(z | x_c, y) each.
    ``prior``: p(z | y) is the model's class prior ("class", see models/cvae.py) or the
    N(0, I) it was trained with ("standard"). ``max_shift`` = s: the digit's position is a
    latent too, p(x | y) the mean over its (2 s + 1)^2 moves by up to s pixels each way (see
    the module's docstring; 0: the image as it is; each move costs a whole estimate).

    Blocks of max_decodes // (10 K) images (at least one) draw their samples from one random
    stream each, every move from streams of its own (the unmoved images' are those of
    ``max_shift`` = 0); the codes are decoded ``likelihood.DECODE_BATCH`` at a time.
    """
    _check_conditional(model)
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}.")
    x = check_images(x, model.config.channels)
    num_samples, seed = check_count("num_samples", num_samples), check_seed(seed)
    check_count("max_decodes", max_decodes)
    max_shift = check_count("max_shift", max_shift, low=0, high=MAX_SHIFT)
    distinct, inverse, channels = distinct_channel_images(x)
    block = max(1, max_decodes // (LABEL_CLASSES * num_samples))
    starts = range(0, len(distinct), block)
    steps = range(-max_shift, max_shift + 1)
    moves = [(0, 0)] + [(r, c) for r in steps for c in steps if (r, c) != (0, 0)]
    per_move = []
    for number, (rows, columns) in enumerate(moves):
        images = moved(distinct, rows, columns)
        per_move.append(np.concatenate([
            _class_block(model, tf.constant(images[start:start + block]), num_samples,
                         tf.constant([seed, number * len(starts) + index], tf.int32), prior)
            for index, start in enumerate(starts)]))
    values = mixture_log_likelihoods(per_move)
    if not np.all(np.isfinite(values)):
        raise FloatingPointError("log p(x | y) is not finite: the model's weights are damaged "
                                 "or the training diverged.")
    return values[inverse].reshape(len(x), channels, LABEL_CLASSES)


def mixture_log_likelihoods(log_liks) -> np.ndarray:
    """log p(x | y) of an equal mixture, log mean_m p_m(x | y), from the components' log p(x | y)
    (a sequence of arrays of one shape, e.g. ``class_log_likelihoods`` of models trained
    alike; the component is a latent variable with a uniform prior)."""
    try:
        shape = np.shape(log_liks)
        log_liks = np.asarray(log_liks, np.float64)
    except (TypeError, ValueError):  # ragged or not numbers
        shape = None
    if shape is None or len(shape) < 2 or shape[0] == 0:
        got = "arrays of different shapes" if shape is None else f"shape {shape}"
        raise ValueError(f"log_liks must be one array of log p(x | y) per component, all of "
                         f"one shape; got {got}.")
    return logsumexp(log_liks, axis=0) - np.log(len(log_liks))


def log_class_prior(digit_counts=None) -> np.ndarray:
    """log p(y), (10,): the training frequencies of the digits (a model trained without 8s
    gives log p(8) = -inf), or uniform when no counts are given."""
    if digit_counts is None:
        return np.full(LABEL_CLASSES, -np.log(LABEL_CLASSES))
    try:
        counts = np.asarray(digit_counts, np.float64)
    except (TypeError, ValueError):
        counts = np.asarray(digit_counts, object)
    if (counts.dtype != np.float64 or counts.shape != (LABEL_CLASSES,)
            or not np.all(np.isfinite(counts)) or np.any(counts < 0) or counts.sum() <= 0):
        # NaN or inf counts (a damaged model file's metadata) would give NaN priors and a
        # classifier that silently guesses.
        raise ValueError(f"digit_counts must be 10 counts, finite and >= 0, not all 0 (a model "
                         f"file's metadata['digit_counts'], or None for a uniform p(y)); got "
                         f"{digit_counts!r}.")
    with np.errstate(divide="ignore"):
        return np.log(counts / counts.sum())


def _joint(log_lik, log_prior) -> np.ndarray:
    """log p(x | y) + log p(y), after checking both: log_lik (..., 10) finite, log_prior (10,)
    without NaN or +inf and not all -inf (a digit never seen has log p(y) = -inf)."""
    log_lik, log_prior = np.asarray(log_lik, np.float64), np.asarray(log_prior, np.float64)
    finite = bool(np.all(np.isfinite(log_lik)))
    if log_lik.ndim < 1 or log_lik.shape[-1] != LABEL_CLASSES or not finite:
        raise ValueError(f"log_lik must be finite log p(x | y) with a last axis of "
                         f"{LABEL_CLASSES} digits (class_log_likelihoods); got shape "
                         f"{log_lik.shape}{'' if finite else ' with NaN or inf values'}.")
    if (log_prior.shape != (LABEL_CLASSES,) or np.any(np.isnan(log_prior))
            or np.any(log_prior == np.inf) or not np.any(np.isfinite(log_prior))):
        raise ValueError(f"log_prior must be log p(y), {LABEL_CLASSES} values, -inf allowed but "
                         f"not for every digit, no NaN (log_class_prior); got {log_prior}.")
    return log_lik + log_prior


def class_posterior(log_lik: np.ndarray, log_prior: np.ndarray) -> np.ndarray:
    """p(y | x) = p(x | y) p(y) / sum_y' p(x | y') p(y'), over the last axis."""
    joint = _joint(log_lik, log_prior)
    return np.exp(joint - logsumexp(joint, axis=-1, keepdims=True))


def marginal_log_likelihood(log_lik: np.ndarray, log_prior: np.ndarray) -> np.ndarray:
    """log p(x) = log sum_y p(x | y) p(y), over the last axis."""
    return logsumexp(_joint(log_lik, log_prior), axis=-1)
