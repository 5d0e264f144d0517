"""Benchmark of the prior Monte Carlo log p(x) estimator (issue targets: <= 10 s, <= 4 GB,
>= 100x faster than decoding K samples per image; colour within 3x the mono time).

    python benchmarks/likelihood.py                 # shipped mono VAE, K = 10,000
    python benchmarks/likelihood.py --samples 2000 --images 2000   # a quicker look

Times, in one run: the matrix path (``models.likelihood.prior_log_likelihood``) on the whole
mono test set and on the whole colour test set, and two per-image loops timed on a few images
and extrapolated to the full set: (a) decode the K latent samples again for every image, (b)
decode them once, then loop over images computing log p(x|z_k) for all k. Checks that all
three agree. Peak memory is the process's peak resident set size (TensorFlow included) and
its growth during the matrix path. Writes results/benchmarks/likelihood.json.
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

import numpy as np
from scipy.special import logsumexp

from models import ModelConfig, ModelFileError, build_model, zoo
from models.likelihood import prior_log_likelihood
from report import report
from stacked_mnist import DataMode, StackedMNISTData



def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def loop_decoding_per_image(model, x, z) -> np.ndarray:
    """(a) The obvious way: for every image, decode all K samples and evaluate log p(x|z)."""
    out = []
    for image in x:
        dist = model.head.distribution(model.mono_pixel_params(z))
        log_px_given_z = dist.log_prob(model.head.targets(image[np.newaxis])).numpy()
        out.append(logsumexp(log_px_given_z.astype(np.float64)) - np.log(len(z)))
    return np.array(out)


def loop_over_predecoded(model, x, z) -> np.ndarray:
    """(b) Decode the K samples once; then per image, log p(x|z_k) for all k in numpy."""
    weights, constants = (t.numpy() for t in model.head.linear_form(model.mono_pixel_params(z)))
    features = model.head.features(model.head.targets(x)).numpy()
    return np.array([logsumexp((weights @ f + constants).astype(np.float64)) - np.log(len(z))
                     for f in features])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10_000, help="K prior samples")
    parser.add_argument("--images", type=int, default=10_000, help="test images (max 10000)")
    parser.add_argument("--loop-images", type=int, default=5,
                        help="images timed for loop (a); loop (b) times 20x as many")
    parser.add_argument("--untrained", action="store_true",
                        help="time an untrained model of the shipped architecture")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO_ROOT / "results" / "benchmarks"))
    args = parser.parse_args(argv)

    if args.untrained:
        model = build_model(ModelConfig(kind="vae", latent_dim=8))
        model_name = "untrained VAE (latent 8, Bernoulli)"
    else:
        try:
            model = zoo.load("vae_mono_complete")
        except ModelFileError as err:
            raise SystemExit(f"{err} Or time an untrained model with --untrained.") from err
        model_name = "saved_models/vae_mono_complete.keras"
    mono_x = StackedMNISTData(DataMode.MONO_BINARY_COMPLETE, seed=args.seed).get_full_data_set(
        training=False)[0][: args.images]
    colour_x = StackedMNISTData(DataMode.COLOR_BINARY_COMPLETE, seed=args.seed
                                ).get_full_data_set(training=False)[0][: args.images]
    k = args.samples
    z = np.random.default_rng(args.seed).standard_normal((k, model.config.latent_dim)).astype(
        np.float32)

    prior_log_likelihood(model, mono_x[:10], num_samples=1000)  # warm up TF's graphs
    rss_before = current_rss_mb()
    start = time.perf_counter()
    fast_mono = prior_log_likelihood(model, mono_x, num_samples=k, seed=args.seed)
    mono_seconds = time.perf_counter() - start
    peak_after_mono = peak_rss_mb()

    colour_model = build_model(model.config.replace(channels=3))  # the same subnet, 3 channels
    colour_model.set_network_weights(model.network_weights())
    start = time.perf_counter()
    fast_colour = prior_log_likelihood(colour_model, colour_x, num_samples=k, seed=args.seed)
    colour_seconds = time.perf_counter() - start

    few = args.loop_images
    start = time.perf_counter()
    slow_a = loop_decoding_per_image(model, mono_x[:few], z)
    loop_a_seconds = (time.perf_counter() - start) / few * len(mono_x)
    start = time.perf_counter()
    slow_b = loop_over_predecoded(model, mono_x[: 20 * few], z)
    loop_b_seconds = (time.perf_counter() - start) / (20 * few) * len(mono_x)

    agreement = max(float(np.max(np.abs(slow_a - fast_mono[:few]) / np.abs(slow_a))),
                    float(np.max(np.abs(slow_b - fast_mono[: 20 * few]) / np.abs(slow_b))))
    results = {
        "model": model_name,
        "prior_samples": k,
        "mono_images": int(len(mono_x)),
        "colour_images": int(len(colour_x)),
        "mono_seconds": round(mono_seconds, 2),
        "colour_seconds": round(colour_seconds, 2),
        "colour_over_mono": round(colour_seconds / mono_seconds, 2),
        "process_peak_rss_mb": round(peak_rss_mb(), 0),
        "rss_growth_during_mono_mb": round(peak_after_mono - rss_before, 0),
        "loop_a_decode_per_image_seconds_extrapolated": round(loop_a_seconds, 1),
        "loop_b_predecoded_seconds_extrapolated": round(loop_b_seconds, 1),
        "speedup_vs_a": round(loop_a_seconds / mono_seconds, 1),
        "speedup_vs_b": round(loop_b_seconds / mono_seconds, 1),
        "max_relative_difference_to_loops": agreement,
        "mean_log_px_mono_nats": round(float(np.mean(fast_mono)), 3),
        "mean_log_px_colour_nats": round(float(np.mean(fast_colour)), 3),
    }
    report(results, Path(args.out) / "likelihood.json")


if __name__ == "__main__":
    main()
