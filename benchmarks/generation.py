"""Benchmark of the generation section of ``vae_stack.py``, its slowest part: decode 26,000 x 3
channel latents z ~ N(0, I) through the shipped VAE and judge the 78,000 channel images.

    python benchmarks/generation.py                  # 26,000 colour samples, 2 rounds
    python benchmarks/generation.py --samples 5000 --rounds 1   # a quicker look

Each step is timed as the rows run it (one compiled TensorFlow call per batch:
``GenerativeModel.decode_images`` and the verification net's forward pass) and, for
comparison, compiled with XLA (``tf.function(jit_compile=True)``). The two variants alternate
within each round, so the ratios are measured in one run on the same host state; the best
round of each is reported, and the XLA outputs are checked against the rows' path. Writes
results/benchmarks/generation.json.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

import numpy as np
import tensorflow as tf

from models import ModelFileError, zoo
from models.batching import in_batches
from report import report
from verification_net import VerificationNet

JUDGE_BATCH = 2048
DECODE_BATCH = 5000


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=26_000,
                        help="colour samples (3 channel latents each; default 26,000)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (best kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO_ROOT / "results" / "benchmarks"))
    args = parser.parse_args(argv)
    if args.samples < 1 or args.rounds < 1:
        parser.error("--samples and --rounds must be positive.")
    try:
        model = zoo.load("vae_mono_complete")
    except ModelFileError as err:
        raise SystemExit(str(err)) from err
    net = VerificationNet()
    if not net.done_training:
        raise SystemExit("the verification net has no weights: run python verification_net.py.")
    mono_z = model.sample_latents(3 * args.samples, seed=args.seed)  # (3 M, 1, d): per channel

    def decode_rows_path(z):
        return model.decode_images(z, "mean", batch_size=DECODE_BATCH)

    xla_decoder = tf.function(jit_compile=True)(
        lambda z: model.head.image(model.head.distribution(model.mono_pixel_params(z)), "mean"))
    xla_judge = tf.function(jit_compile=True)(lambda x: net.model(x, training=False))

    def decode_xla(z):
        return in_batches(xla_decoder, z[:, 0], DECODE_BATCH)

    def judge_rows_path(images):
        return net._class_probabilities(images, batch_size=JUDGE_BATCH)

    def judge_xla(images):
        return in_batches(xla_judge, images, JUDGE_BATCH)

    # Warm-up: trace and compile every variant for the batch shapes the timed runs use (XLA
    # compiles once per shape: a full batch and the last, shorter one).
    def warm_up(x, batch_size: int):
        return x[:batch_size + len(x) % batch_size]

    decode_xla(warm_up(mono_z, DECODE_BATCH))
    decode_rows_path(warm_up(mono_z, DECODE_BATCH))
    warm_images = decode_rows_path(warm_up(mono_z, JUDGE_BATCH))
    judge_rows_path(warm_images)
    judge_xla(warm_images)

    seconds = {"decode": [], "decode_xla": [], "judge": [], "judge_xla": []}
    for round_index in range(args.rounds):
        images, t = timed(decode_rows_path, mono_z)
        seconds["decode"].append(t)
        images_xla, t = timed(decode_xla, mono_z)
        seconds["decode_xla"].append(t)
        probs, t = timed(judge_rows_path, images)
        seconds["judge"].append(t)
        probs_xla, t = timed(judge_xla, images)
        seconds["judge_xla"].append(t)
        print(f"round {round_index + 1}/{args.rounds}: "
              + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in seconds.items()), flush=True)

    best = {key: min(values) for key, values in seconds.items()}
    channel_images = len(mono_z)
    results = {
        "model": str(zoo.path("vae_mono_complete").relative_to(REPO_ROOT)),
        "colour_samples": args.samples,
        "channel_images": channel_images,
        "rounds": args.rounds,
        **{f"{key}_seconds": round(value, 2) for key, value in best.items()},
        "decode_images_per_second": round(channel_images / best["decode"]),
        "judge_images_per_second": round(channel_images / best["judge"]),
        "xla_over_rows_path_decode": round(best["decode_xla"] / best["decode"], 2),
        "xla_over_rows_path_judge": round(best["judge_xla"] / best["judge"], 2),
        "xla_max_abs_difference_images": float(np.max(np.abs(images_xla - images))),
        "xla_max_abs_difference_probabilities": float(np.max(np.abs(probs_xla - probs))),
    }
    report(results, Path(args.out) / "generation.json")


if __name__ == "__main__":
    main()
