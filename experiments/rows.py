"""The three kinds of grading row, shared by the AE and VAE scripts and their colour versions.

basic()   reconstructions of the test set, judged by the verification net
gen()     images decoded from random latents: quality (predictability) and class coverage
anom()    a model trained without 8s scores the test set; how well do the scores find the 8s
stack()   the three on stackedMNIST, timed (the STACK rows)

Each returns a dict of metrics and writes its figures into ``args.out`` with a prefix.
"""
from __future__ import annotations

import time
import zipfile
from typing import Optional

import numpy as np

from atomic_io import atomic_path, save_figure
from common import (get_latent_flow, get_model, load_data, mode_for, save_image_grid,
                    save_reconstruction_figure, verifier)
from models import FAMILIES, SAMPLERS, make_sampler
from models.anomaly import contains_digit, evaluate_scores, save_curves
from models.likelihood import posterior_estimates, prior_log_likelihood, reconstruction_nll

TOLERANCE = {1: 0.8, 3: 0.5}  # the course's tolerances: mono 0.8, stacked 0.5
IWAE_SAMPLES = 5  # per distinct channel image: 10,000 test images decode 50,000 latents
# The decoder's mean image, p(pixel = 1) for Bernoulli pixels, is what public implementations
# of the course assignment judge (their sigmoid output), so it is the default.
JUDGED_IMAGE_HELP = ("image the verification net judges: the mean (default; for Bernoulli "
                     "pixels p(pixel = 1)), the mode (pixels with p >= 0.5, binary like the "
                     "data) or a random sample")


def add_judge_flag(parser) -> None:
    parser.add_argument("--judge", choices=("mean", "mode", "sample"), default="mean",
                        help=JUDGED_IMAGE_HELP)


def stack(args) -> dict:
    """A STACK row: the basic, gen and anom sections on stackedMNIST, and each one's seconds."""
    metrics, seconds = {}, {}
    for section, run in (("basic", basic), ("gen", gen), ("anom", anom)):
        start = time.perf_counter()
        metrics[section] = run(args, channels=3)
        seconds[section] = round(time.perf_counter() - start, 1)
    return {**metrics, "section_seconds": seconds}


def _prefix(channels: int) -> str:
    return "color_" if channels == 3 else ""


# ---------------------------------------------------------------------------------------------
def basic(args, channels: int) -> dict:
    """Reconstruct the whole test set through the model trained on complete data."""
    x_train, _, x_test, y_test = load_data(mode_for(channels, missing=False), args)
    model, info = get_model(args, channels, missing=False, x_train=x_train, x_val=x_test)
    tolerance = TOLERANCE[channels]
    reconstructions, nll = model.reconstruct(x_test, how=args.judge, seed=args.seed)
    net = verifier()
    predictability, accuracy = net.check_predictability(reconstructions, y_test, tolerance)
    _, original_accuracy = net.check_predictability(x_test, y_test, tolerance)
    save_reconstruction_figure(
        x_test[:20], reconstructions[:20], args.out / f"{_prefix(channels)}reconstructions.png",
        title=f"{args.kind.upper()} test images (odd rows) and reconstructions "
              f"({args.judge}; even rows)")
    return {
        "model": info,
        "data": mode_for(channels, False).name,
        "judged_image": args.judge,
        "tolerance": tolerance,
        "test_images": int(len(x_test)),
        "reconstruction_predictability": predictability,
        "reconstruction_accuracy": accuracy,
        "original_test_images_accuracy": original_accuracy,
        # -log p(x | z) at the code (AE) or the posterior mean (VAE): the ANOM rows' AE score.
        "test_reconstruction_nll_nats": float(np.mean(nll.sum(axis=1))),
        **(_elbo_terms(model, x_test, args.seed) if model.prior is not None else {}),
    }


def _elbo_terms(model, x, seed: int) -> dict:
    """The test set's mean KL and -ELBO, one sample of q(z|x) per image."""
    estimates = posterior_estimates(model, x, num_samples=1, seed=seed)
    return {"test_kl_nats": float(np.mean(estimates["kl"])),
            "test_neg_elbo_nats": float(-np.mean(estimates["elbo"]))}


# ---------------------------------------------------------------------------------------------
def add_gen_flags(parser, default_samples: int) -> None:
    add_judge_flag(parser)
    parser.add_argument("--samples", type=int, default=default_samples,
                        help=f"number of generated images (default {default_samples})")


LATENT_DESCRIPTIONS = {
    "standard": "standard normal N(0, I)",
    "fitted": "Gaussian fitted to the training codes (mean, full covariance)",
    "gmm": "Gaussian mixture (10 components) fitted to the training codes",
    "flow": "masked autoregressive flow fitted to {codes}",
}


def add_latent_flag(parser, kind: str) -> None:
    default = FAMILIES[kind].default_sampler
    parser.add_argument(
        "--latent", choices=tuple(SAMPLERS), default=default,
        help=f"latent distribution of the generated codes (default {default}): standard = "
             "N(0, I) (the VAE's prior; with --learned-prior the model's learned prior); fitted = a Gaussian fitted to the training codes; "
             "gmm = a Gaussian mixture fitted to them; flow = a masked autoregressive flow "
             "fitted to the codes (for a VAE to q(z|x)), fitted once, about 2 minutes, and "
             "kept beside the model file")


def _latent_sampler(model, args, info, x_train):
    """``(sampler, description, flow info or None)`` for ``args.latent``.

    The fitted Gaussian and mixture see every channel's code of (up to) 10,000 training images:
    plenty for a d x d covariance, and seconds to fit.
    """
    d = model.config.latent_dim
    if getattr(args, "learned_prior", False) and args.latent == "standard":
        return None, "the flow prior learned with the model (u ~ N(0, I) pushed through it)", \
            None
    if args.latent == "flow":
        flow, flow_info = get_latent_flow(args, model, info)
        codes = "q(z|x) of the training images" if model.prior is not None else \
            "the training codes"
        return flow, LATENT_DESCRIPTIONS["flow"].format(codes=codes), flow_info
    description = LATENT_DESCRIPTIONS[args.latent]
    if args.latent == "standard":
        return make_sampler("standard", d), description + (
            " (the prior)" if model.prior is not None else ""), None
    codes = model.encode(x_train[:10_000]).reshape(-1, d)
    return make_sampler(args.latent, d).fit(codes, seed=args.seed), description, None


def gen(args, channels: int) -> dict:
    """Generate ``args.samples`` images, judge them, save samples.npz and figures."""
    x_train, _, x_test, _ = load_data(mode_for(channels, missing=False), args)
    model, info = get_model(args, channels, missing=False, x_train=x_train, x_val=x_test)
    tolerance = TOLERANCE[channels]
    sampler, latent_description, flow_info = _latent_sampler(model, args, info, x_train)
    z = model.sample_latents(args.samples, sampler, seed=args.seed)
    # 8-bit grey levels, like MNIST's own float images: the judge cannot tell (quality moved by
    # 0.004 points on 26,000 colour means) and samples.npz deflates to a fifth (background
    # pixels become exactly 0). Binary modes and samples are unchanged.
    images = np.round(model.decode_images(z, how=args.judge, seed=args.seed) * 255) / 255
    net = verifier()
    predictions, beliefs = net.predict(images)
    predictions = predictions.astype(int)
    confident = beliefs >= tolerance
    classes = 10 ** channels
    confident_counts = np.bincount(predictions[confident], minlength=classes)
    shares = _digit_shares(predictions[confident], channels)

    prefix = _prefix(channels)
    save_samples(images, args.out / f"{prefix}samples.npz")
    save_image_grid(images[:100], args.out / f"{prefix}generated.png",
                    title=f"{args.kind.upper()} samples ({args.judge}), z ~ {latent_description}")
    _save_class_histogram(shares, args.out / f"{prefix}generated_class_frequencies.png",
                          title=f"{args.kind.upper()}: digits of confidently classified samples")
    return {
        "model": info,
        "latent_distribution": latent_description,
        **({"latent_flow": flow_info} if flow_info else {}),
        "judged_image": args.judge,
        "judged_image_precision": "8-bit grey levels (k / 255)",
        "tolerance": tolerance,
        "samples": int(args.samples),
        "quality_predictability": float(np.mean(confident)),
        "coverage": float(np.count_nonzero(confident_counts)) / classes,
        "classes_covered": int(np.count_nonzero(confident_counts)),
        # As in the GAN literature, every sample counts with its most likely class.
        "kl_class_frequencies_to_uniform_nats": kl_to_uniform(
            np.bincount(predictions, minlength=classes)),
        "kl_confident_samples_to_uniform_nats": kl_to_uniform(confident_counts),
        # What a perfectly uniform generator scores with this many samples (finite-sample bias).
        "kl_of_a_uniform_generator_expected_nats": (classes - 1) / (2 * len(images)),
        "digit_frequencies_per_channel": {f"channel_{c}": np.round(shares[c], 4).tolist()
                                          for c in range(channels)},
        "samples_file": str(args.out / f"{prefix}samples.npz"),
    }


def kl_to_uniform(counts) -> Optional[float]:
    """KL(class frequencies || uniform) in nats; None when there is nothing to count."""
    if counts.sum() == 0:
        return None
    frequencies = counts[counts > 0] / counts.sum()
    return float(np.sum(frequencies * np.log(frequencies * len(counts))))


def _digit_shares(predictions, channels: int) -> np.ndarray:
    """(channels, 10): how often each digit is predicted in each channel."""
    digits = [(predictions // 10 ** c) % 10 for c in range(channels)]
    return np.array([np.bincount(d, minlength=10) / max(1, len(d)) for d in digits])


def save_samples(images, path, **arrays) -> None:
    """samples.npz with the array ``images`` (float32) and any other named ``arrays``, deflated
    at level 1: np.savez_compressed's level 6 takes 2.7x as long on 26,000 colour images for a
    file half the size."""
    with atomic_path(path) as tmp, zipfile.ZipFile(
            tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in {"images": images.astype(np.float32), **arrays}.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(array))


def _save_class_histogram(shares, path, title: str) -> None:
    import matplotlib.pyplot as plt

    channels = len(shares)
    fig, axes = plt.subplots(1, channels, figsize=(4 * channels, 3), squeeze=False)
    for c, ax in enumerate(axes[0]):
        ax.bar(range(10), shares[c])
        ax.axhline(0.1, color="k", ls=":", lw=1)
        ax.set(xticks=range(10), xlabel="digit", ylabel="share",
               title="RGB"[c] + " channel" if channels == 3 else "digit frequencies")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
def add_anom_flags(parser, vae: bool) -> None:
    parser.add_argument("--top", type=int, default=16, help="anomalies shown (default 16)")
    if vae:
        parser.add_argument("--prior-samples", type=int, default=10_000,
                            help="K of the prior Monte Carlo estimate (default 10000)")
        parser.add_argument("--iwae-samples", type=int, default=IWAE_SAMPLES,
                            help="K of the importance-sampling estimate and the ELBO "
                                 f"(default {IWAE_SAMPLES})")


WORST_CHANNEL = "max_channel_"  # prefix of the colour scores that take the worst channel


def _anomaly_scores(model, x, args, channels: int) -> dict:
    """Scores per test image, higher = more anomalous: the negated log-likelihood estimates
    (VAE; IWAE and ELBO share the same K samples of q(z|x)) and the reconstruction NLL.

    Colour: the model factorises over channels, so each score is the sum of three channel
    terms. "An 8 in any channel" is a question about the worst channel, and one odd digit is
    diluted by two ordinary ones in the sum, so the colour rows also score each image by its
    most anomalous channel (prefix max_channel_).
    """
    per_channel = channels > 1
    scores = {"reconstruction_nll": reconstruction_nll(model, x, per_channel=per_channel)}
    if model.prior is not None:
        estimates = posterior_estimates(model, x, args.iwae_samples, args.seed,
                                        per_channel=per_channel)
        scores["neg_elbo"], scores["neg_iwae"] = -estimates["elbo"], -estimates["iwae"]
        scores["neg_prior_mc"] = -prior_log_likelihood(model, x, args.prior_samples, args.seed,
                                                       per_channel=per_channel)
    if not per_channel:
        return scores
    return {**{name: s.sum(axis=1) for name, s in scores.items()},
            **{WORST_CHANNEL + name: s.max(axis=1) for name, s in scores.items()}}


def _score_label(name: str, args, channels: int) -> str:
    worst = name.startswith(WORST_CHANNEL)
    base = name[len(WORST_CHANNEL):] if worst else name
    label = {"reconstruction_nll": "reconstruction NLL", "neg_elbo": "-ELBO",
             "neg_iwae": f"-IWAE (K={getattr(args, 'iwae_samples', '')})",
             "neg_prior_mc": f"-prior MC (K={getattr(args, 'prior_samples', '')})"}[base]
    if channels == 1:
        return label
    return label + (", worst channel" if worst else ", joint (sum of channels)")


def anom(args, channels: int) -> dict:
    """Train without 8s, score every test image, evaluate how well each score finds the 8s."""
    x_train, _, x_test, y_test = load_data(mode_for(channels, missing=True), args)
    model, info = get_model(args, channels, missing=True, x_train=x_train, x_val=x_test)
    is_anomaly = contains_digit(y_test, 8, channels)
    scores = _anomaly_scores(model, x_test, args, channels)
    # IWAE beats the prior Monte Carlo estimate of log p(x) by far (see README).
    default = "neg_iwae" if model.prior is not None else "reconstruction_nll"
    if channels > 1:
        default = WORST_CHANNEL + default
    results = {name: evaluate_scores(s, is_anomaly) for name, s in scores.items()}

    prefix = _prefix(channels)
    # Colour: the worst-channel scores and the default's joint (summed) version.
    plotted = [n for n in scores if channels == 1 or n.startswith(WORST_CHANNEL)
               or WORST_CHANNEL + n == default]
    save_curves({_score_label(n, args, channels): scores[n] for n in plotted}, is_anomaly,
                args.out / f"{prefix}anomaly_curves.png",
                title=f"{args.kind.upper()} trained without 8s: finding the 8s")
    order = np.argsort(-scores[default])[: args.top]
    save_image_grid(x_test[order], args.out / f"{prefix}top_anomalies.png",
                    title=f"{args.top} most anomalous test images by "
                          f"{_score_label(default, args, channels)}",
                    columns=8, captions=[f"{y_test[i]}" for i in order])
    summary = {
        "model": info,
        "data": mode_for(channels, True).name,
        "anomaly": "test image contains an 8" + (" in any channel" if channels == 3 else ""),
        "default_score": default,
        "roc_auc": results[default]["roc_auc"],
        "pr_auc": results[default]["pr_auc"],
        "top_k": int(args.top),
        "top_k_share_of_8s": float(np.mean(is_anomaly[order])),
        "scores": results,
    }
    if model.prior is not None:
        summary["mean_log_px_nats"] = {
            name: float(-np.mean(s)) for name, s in scores.items()
            if name != "reconstruction_nll" and not name.startswith(WORST_CHANNEL)}
    return summary
