"""Estimates of log p(x) for trained VAEs, and the AE's anomaly score.

All estimators work on the mono subnet: a colour image is folded into its three channel images
and its log p(x) is the sum of the three channel estimates, which is exact for the factorised
colour model (independent latents per channel). ``per_channel=True`` returns the (N, C) channel
terms instead of their sum. Each distinct channel image is scored once: stackedMNIST draws its
30,000 test channels from the 10,000 MNIST test digits (about 9,500 distinct), so a colour
estimate costs what a mono one does; copies of an image share its estimate. Results are in nats.

prior_log_likelihood  log p(x) ~ logsumexp_k log p(x | z_k) - log K, z_k ~ p(z), the K
                      samples shared by all images. Each head's log p(x|z) is linear in fixed
                      features of x, so the N x K table is a matrix product per chunk of
                      samples (memory: one chunk of the table at a time).
iwae_log_likelihood   importance sampling with q(z|x) as proposal: logsumexp_k [log p(x|z_k) +
                      log p(z_k) - log q(z_k|x)] - log K (the IWAE bound; K = 1 gives the ELBO
                      on average and it tightens as K grows).
elbo                  E_q log p(x|z) - KL(q || p), the KL analytic (Monte Carlo for a learned
                      prior).
reconstruction_nll    -log p(x | z = encode(x)): the AE score (also defined for the VAE).

The CVAE: the posterior estimators and reconstruction_nll take ``labels=`` (log p(x | y)); the
prior estimators refuse it and name these (and ``models.conditional``) instead.
"""
from __future__ import annotations

import time

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from atomic_io import atomic_path
from stacked_mnist import distinct_channel_images, fold_channels

from .checks import check_count, check_images, check_seed
from .generative import GenerativeModel

tfd = tfp.distributions


def _per_image(distinct_values: np.ndarray, inverse: np.ndarray, channels: int,
               per_channel: bool) -> np.ndarray:
    """Scatter values of the distinct channel images back: (N, C), or summed to (N,)."""
    values = np.asarray(distinct_values, np.float64)[inverse].reshape(-1, channels)
    return values if per_channel else values.sum(axis=1)


class _LogSumExp:
    """Running logsumexp over column blocks of a table, one value per row."""

    def __init__(self, rows: int):
        self.maximum = np.full(rows, -np.inf, np.float64)
        self.total = np.zeros(rows, np.float64)

    def add(self, block: np.ndarray) -> None:
        block_max = block.max(axis=1).astype(np.float64)
        new_max = np.maximum(self.maximum, block_max)
        # Rows with nothing finite yet (max -inf) would give exp(-inf - -inf) = NaN.
        shift = np.where(np.isfinite(new_max), new_max, 0.0)
        self.total = self.total * np.exp(self.maximum - shift) + np.exp(
            block - shift[:, None].astype(block.dtype)
        ).sum(axis=1, dtype=np.float64)
        self.maximum = new_max

    def result(self) -> np.ndarray:
        with np.errstate(divide="ignore"):  # log 0 = -inf where every term was -inf
            return np.where(np.isfinite(self.maximum), self.maximum, 0.0) + np.log(self.total)


def _mono_posterior(model: GenerativeModel, mono_x) -> tfd.Distribution:
    """q(z|x) for mono images (B, 28, 28, 1): batch (B,), event (1, d)."""
    return model.posterior(model.mono_latent_params(mono_x))


def _checked_input(model: GenerativeModel, what: str, x, seed: int, labels=None,
                   takes_labels: bool = False, **counts):
    """``(images, digits)``, after checking that the estimator applies to the model (it needs
    a latent prior; a conditional model needs labels, if the estimator takes them) and that
    the images, labels, the seed and the counts (sample and chunk sizes) are valid. ``digits``
    (N * C,): each channel image's digit for a conditional model, else None."""
    if model.prior is None:
        raise ValueError(f"{what} needs a model with a latent prior (a VAE); got a "
                         f"{model.config.kind!r} model. Score it with reconstruction_nll.")
    if model.conditional and not takes_labels:
        raise ValueError(
            f"{what} estimates log p(x) of unconditional models; for a conditional "
            f"{model.config.kind!r} model use iwae_log_likelihood(model, x, labels=y) (log p(x "
            "| y)) or models.conditional.class_log_likelihoods and marginal_log_likelihood.")
    if model.conditional and labels is None:
        raise ValueError(
            f"{what} of a conditional {model.config.kind!r} model estimates log p(x | y): pass "
            f"labels=y, the class of every image (0..{10 ** model.config.channels - 1}); "
            "without labels use models.conditional.class_log_likelihoods and "
            "marginal_log_likelihood (log p(x) = log sum_y p(x | y) p(y)).")
    check_seed(seed)
    for name, value in counts.items():
        check_count(name, value)
    x = check_images(x, model.config.channels)
    return x, model.mono_digits(labels, len(x))


def prior_log_likelihood(model: GenerativeModel, x, num_samples: int = 10_000, seed: int = 0,
                         sample_chunk: int = 1000, image_chunk: int = 10_000,
                         per_channel: bool = False, labels=None) -> np.ndarray:
    """Prior Monte Carlo estimate of log p(x), (N,) nats; see the module docstring.

    x: (N, 28, 28, C) in [0, 1]. Each chunk of latent samples is decoded once; its weights
    then meet the features of one chunk of (channel) images at a time, so peak memory is about
    image_chunk * (784 F + sample_chunk) * 4 bytes whatever N and K are (F = features per
    pixel: 1 for Bernoulli, 2 for Beta and Normal, the bins for the categorical head).
    """
    x, _ = _checked_input(model, "prior_log_likelihood", x, seed, labels,
                          num_samples=num_samples,
                          sample_chunk=sample_chunk, image_chunk=image_chunk)
    mono_x, inverse, channels = distinct_channel_images(x)
    targets = model.head.targets(mono_x)
    z = model.prior_codes(num_samples, seed=seed)
    running = _LogSumExp(len(mono_x))
    for start in range(0, num_samples, sample_chunk):
        weights, constants = model.head.linear_form(
            model.mono_pixel_params(z[start:start + sample_chunk]))
        weights, constants = weights.numpy(), constants.numpy()[np.newaxis, :]
        table = np.empty((len(mono_x), len(weights)), np.float32)
        for rows in range(0, len(mono_x), image_chunk):
            features = model.head.features(targets[rows:rows + image_chunk]).numpy()
            # Columns that are zero for every image of the chunk (background pixels, bins no
            # pixel falls in) add nothing to the product.
            used = np.flatnonzero(np.any(features != 0, axis=0))
            table[rows:rows + image_chunk] = features[:, used] @ weights[:, used].T + constants
        running.add(table)
    return _per_image(running.result() - np.log(num_samples), inverse, channels, per_channel)


def naive_prior_log_likelihood(model: GenerativeModel, x, num_samples: int = 10_000,
                               seed: int = 0, labels=None) -> np.ndarray:
    """The same estimate computed the slow, obvious way (reference for tests and benchmarks):
    per channel image, ``log_prob`` of the decoder distribution at all K samples."""
    x, _ = _checked_input(model, "naive_prior_log_likelihood", x, seed, labels,
                          num_samples=num_samples)
    mono_x, channels = fold_channels(x)
    z = model.prior_codes(num_samples, seed=seed)
    dist = model.head.distribution(model.mono_pixel_params(z))
    targets = model.head.targets(mono_x)
    values = []
    for image in range(len(mono_x)):
        log_px_given_z = dist.log_prob(targets[image])  # broadcast over the K samples
        values.append(tf.reduce_logsumexp(log_px_given_z).numpy() - np.log(num_samples))
    return np.array(values, np.float64).reshape(-1, channels).sum(axis=1)


DECODE_BATCH = 2000  # codes decoded at once: peak memory is this many decoder activations


@tf.function(reduce_retracing=True)
def _log_px(model, flat_z, targets, digits=None):
    """log p(x_r | z_r), (R,), for codes (R, d) and head targets (R, 28, 28, 1, ...)."""
    return model.head.distribution(model.mono_pixel_params(flat_z, digits)).log_prob(targets)


def decoded_log_px(model: GenerativeModel, z, targets, digits=None) -> tf.Tensor:
    """log p(x_b | z_kb), (K, B): codes z (K, B, 1, d) of the images whose head targets are
    ``targets`` (B, 28, 28, 1, ...) (with their ``digits`` (B,), for a conditional model).
    At most DECODE_BATCH codes are decoded at once (decoding is exact per row, so the result
    does not depend on it), which keeps memory small however large K * B is."""
    count, images = int(z.shape[0]), int(z.shape[1])
    flat_z = tf.reshape(z, [-1, model.config.latent_dim])  # row k * B + b
    parts = []
    for start in range(0, count * images, DECODE_BATCH):
        rows = tf.range(start, min(start + DECODE_BATCH, count * images)) % images
        parts.append(_log_px(model, flat_z[start:start + DECODE_BATCH],
                             tf.gather(targets, rows),
                             None if digits is None else tf.gather(digits, rows)))
    return tf.reshape(tf.concat(parts, axis=0), [count, images])


@tf.function(reduce_retracing=True)
def posterior_draws(model, batch, count: int, seed, digits=None, class_prior: bool = False):
    """``count`` samples z_k ~ q(z|x) of mono images (B, 28, 28, 1) (of ``digits`` (B,), for
    a conditional model): ``(z (count, B, 1, d), log p(z_k) (count, B), log q(z_k|x) (count,
    B), KL(q || p) (B,))``, the KL analytic for the VAE (a learned prior's: the mean over the
    samples). ``class_prior``: log p(z_k) under the CVAE's class prior p(z | y) instead of
    the N(0, I) it was trained with (the KL stays the trained prior's)."""
    posterior = model.posterior(model.mono_latent_params(batch, digits))
    z = posterior.sample(count, seed=seed)
    if class_prior:
        log_pz = model.class_prior(digits).log_prob(z[:, :, 0, :])
    else:
        log_pz = model.latent_prior(channels=1).log_prob(z)
    return z, log_pz, posterior.log_prob(z), model.kl_divergence(posterior, z)


def _posterior_block(model, batch, count: int, seed, digits=None):
    """``(log w (count, B), sum_k log p(x|z_k) (B,), KL(q || p) (B,))`` for ``count``
    samples z_k ~ q(z|x) of each mono image of ``batch``."""
    z, log_pz, log_qz, kl = posterior_draws(model, batch, count, seed, digits)
    log_px = decoded_log_px(model, z, model.head.targets(batch), digits)
    return log_px + log_pz - log_qz, tf.reduce_sum(log_px, axis=0), kl


def posterior_estimates(model: GenerativeModel, x, num_samples: int = 5000, seed: int = 0,
                        max_decodes: int = 20_000, per_channel: bool = False,
                        labels=None) -> dict:
    """IWAE and ELBO from the same K samples of q(z|x) per (channel) image, (N,) nats each.

    ``iwae``: logsumexp_k log w_k - log K with w_k = p(x|z_k) p(z_k) / q(z_k|x);
    ``elbo``: mean_k log p(x|z_k) - KL(q || p(z)), the KL analytic for the VAE (a learned
    prior's: the mean of log q(z_k|x) - log p(z_k) over the same samples);
    ``kl``: that KL(q(z|x) || p(z)).
    Samples are drawn in blocks of at most ``max_decodes`` codes, each block from its own
    random stream (so the estimates depend on it), and decoded DECODE_BATCH at a time. A
    conditional model (the CVAE) needs ``labels`` (N,), the class of every image: its
    estimates are of log p(x | y).
    """
    x, digits = _checked_input(model, "posterior_estimates", x, seed, labels, True,
                               num_samples=num_samples, max_decodes=max_decodes)
    mono_x, inverse, channels = model.distinct_mono_images(x, digits)
    iwae = np.zeros(len(mono_x), np.float64)
    elbo_values = np.zeros(len(mono_x), np.float64)
    kl_values = np.zeros(len(mono_x), np.float64)
    images_per_block = max(1, max_decodes // num_samples)
    samples_per_block = min(num_samples, max(1, max_decodes // images_per_block))
    block_index = 0
    for start in range(0, len(mono_x), images_per_block):
        rows = slice(start, start + images_per_block)
        batch = tf.constant(mono_x[rows])
        running = _LogSumExp(len(mono_x[rows]))
        for k_start in range(0, num_samples, samples_per_block):
            count = min(samples_per_block, num_samples - k_start)
            log_w, log_px_sum, kl = _posterior_block(
                model, batch, count, tf.constant([seed, block_index], tf.int32),
                None if digits is None else tf.constant(digits[rows], tf.int32))
            block_index += 1
            running.add(log_w.numpy().T)  # (images, samples)
            elbo_values[rows] += log_px_sum.numpy() / num_samples
            kl_values[rows] += kl.numpy() * (count / num_samples)  # a mean over the blocks
        iwae[rows] = running.result()
    return {"iwae": _per_image(iwae - np.log(num_samples), inverse, channels, per_channel),
            "elbo": _per_image(elbo_values - kl_values, inverse, channels, per_channel),
            "kl": _per_image(kl_values, inverse, channels, per_channel)}


def iwae_log_likelihood(model: GenerativeModel, x, num_samples: int = 5000, seed: int = 0,
                        max_decodes: int = 20_000, per_channel: bool = False,
                        labels=None) -> np.ndarray:
    """Importance-sampled log p(x) with q(z|x) as proposal, (N,) nats (log p(x | y) of a
    conditional model, given ``labels``)."""
    return posterior_estimates(model, x, num_samples, seed, max_decodes, per_channel,
                               labels)["iwae"]


def elbo(model: GenerativeModel, x, num_samples: int = 1, seed: int = 0,
         max_decodes: int = 20_000, per_channel: bool = False, labels=None) -> np.ndarray:
    """E_q log p(x|z) (averaged over ``num_samples`` draws) - KL(q || p(z)), (N,) nats (a
    conditional model's, given ``labels``)."""
    return posterior_estimates(model, x, num_samples, seed, max_decodes, per_channel,
                               labels)["elbo"]


def reconstruction_nll(model: GenerativeModel, x, per_channel: bool = False,
                       batch_size: int = 5000, labels=None) -> np.ndarray:
    """-log p(x | z = encode(x)), (N,) nats: the AE anomaly score (higher = more anomalous);
    z is the code (AE) or the posterior mean (VAE); a conditional model takes the images'
    ``labels``. ``model.reconstruct`` gives it together with the reconstructed images."""
    nll = model.reconstruct(x, batch_size=batch_size, labels=labels)[1]
    return nll if per_channel else nll.sum(axis=1)


_STATE_KEYS = ("iwae", "elbo", "kl")


def _load_state(state_path, identity: str, chunk_images: int):
    """The per-image arrays of a state file of this identity and chunk size, or None (none
    yet, another identity or chunk size, or a damaged file: the run starts over)."""
    try:
        with np.load(state_path, allow_pickle=False) as state:
            if (str(state["identity"]) == identity
                    and int(state["chunk_images"]) == chunk_images):
                stored = {key: state[key].astype(np.float64) for key in _STATE_KEYS}
                if len({len(v) for v in stored.values()}) == 1:
                    return stored
    except (OSError, ValueError, KeyError):
        pass
    return None


def _shared_chunks(length: int, held: int, chunk_images: int) -> list:
    """Row slices of the chunks that a run over ``length`` images and one over the first
    ``held`` of them draw alike: chunk c's stream is the same in both, and so are its images
    unless one run's end cut it shorter."""
    return [slice(first, first + chunk_images) for first in range(0, min(length, held),
                                                                  chunk_images)
            if min(first + chunk_images, length) == min(first + chunk_images, held)]


def resumable_posterior_estimates(model: GenerativeModel, x, num_samples: int, seed: int,
                                  state_path, identity: str, chunk_images: int = 100,
                                  max_decodes: int = 20_000, progress=None) -> dict:
    """``posterior_estimates`` of mono images ``x`` in chunks of ``chunk_images``, for runs
    of hours (K = 5,000 on 10,000 images): after every chunk the per-image results so far are
    written whole to ``state_path`` (.npz), and a run stopped at any point resumes after its
    last finished chunk with the numbers an uninterrupted run gives. ``identity`` says what
    the results belong to (the model file's SHA-256, the data, K, the seed); a state file of
    another identity or chunk size, or a damaged one, is started over. Chunk c draws from its
    own stream of (``seed``, c), so a state of the same identity over a shorter or longer
    prefix of the same images gives its finished chunks too (the first 1,000 images' run
    starts the whole test set's): ``x`` must then be the images that identity names.
    ``progress(done, total, seconds, resumed)`` is called after every chunk: images done of
    ``total``, this run's seconds, and the images a resumed state held (this run's rate is
    (done - resumed) / seconds)."""
    x = check_images(x, 1, "x")
    check_count("num_samples", num_samples)
    check_count("chunk_images", chunk_images)
    check_seed(seed)
    results = {key: np.full(len(x), np.nan) for key in _STATE_KEYS}
    stored = _load_state(state_path, identity, chunk_images)
    held = 0 if stored is None else len(stored["iwae"])
    shared = _shared_chunks(len(x), held, chunk_images)
    for rows in shared:
        for key in results:
            results[key][rows] = stored[key][rows]
    # a longer run's state stays whole: this run adds the chunks both draw alike
    written = stored if held > len(x) else results
    resumed = int(np.sum(np.isfinite(results["iwae"])))
    start = time.perf_counter()
    for chunk, first in enumerate(range(0, len(x), chunk_images)):
        rows = slice(first, first + chunk_images)
        if np.all(np.isfinite(results["iwae"][rows])):
            continue
        stream = int(np.random.SeedSequence([seed, chunk]).generate_state(1)[0] % 2 ** 31)
        estimates = posterior_estimates(model, x[rows], num_samples, stream, max_decodes)
        into_longer_state = written is not results and rows in shared
        for key in results:
            results[key][rows] = estimates[key]
            if into_longer_state:
                written[key][rows] = estimates[key]
        with atomic_path(state_path, suffix=".npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, identity=np.array(identity),
                         chunk_images=np.array(chunk_images), **written)
        if progress is not None:
            progress(int(np.sum(np.isfinite(results["iwae"]))), len(x),
                     time.perf_counter() - start, resumed)
    return results
