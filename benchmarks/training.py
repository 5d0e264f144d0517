"""Benchmark of training throughput: one device against MirroredStrategy over 2 logical CPU
devices, side by side in one run (the CPU is split before TensorFlow starts).

    python benchmarks/training.py                    # the plain VAE, 8,192 images, 2 rounds
    python benchmarks/training.py --images 2048 --rounds 1

Both train the same model (the shipped VAE recipe without 8s: the plain network, latent 8) on
the same images for one epoch per round, from the same initial weights; the first epoch of
each (graph tracing) is not timed, and the variants alternate within each round. On 2 CPU
cores the mirrored copy has no spare hardware, so the figure is its overhead: with GPUs each
replica gets its own device. Writes results/benchmarks/training.json.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

import tensorflow as tf

# Two logical CPU devices: set before anything else touches TensorFlow's devices.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np

from models import build_model, fit_model, zoo
from report import report
from stacked_mnist import DataMode, StackedMNISTData


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8192, help="training images per epoch")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (best kept)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=str(REPO_ROOT / "results" / "benchmarks"))
    args = parser.parse_args(argv)
    if min(args.images, args.rounds, args.batch_size) < 1:
        parser.error("--images, --rounds and --batch-size must be positive.")
    x = StackedMNISTData(DataMode.MONO_BINARY_MISSING, seed=0).get_full_data_set(
        training=True)[0][: args.images]
    config = zoo.recipe("vae_mono_missing").config
    strategies = {"one_device": tf.distribute.OneDeviceStrategy("/cpu:0"),
                  "mirrored_2_cpu": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])}
    models = {name: build_model(config, seed=0, strategy=s) for name, s in strategies.items()}
    for model in models.values():  # trace the training graphs outside the timed epochs
        fit_model(model, x[: 4 * args.batch_size], epochs=1, batch_size=args.batch_size,
                  verbose=0)
    best = {name: float("inf") for name in models}
    for round_ in range(args.rounds):
        for name, model in models.items():
            start = time.perf_counter()
            fit_model(model, x, epochs=1, batch_size=args.batch_size, seed=round_, verbose=0)
            best[name] = min(best[name], time.perf_counter() - start)
            print(f"round {round_ + 1}: {name} {time.perf_counter() - start:.1f} s", flush=True)
    throughput = {name: len(x) / seconds for name, seconds in best.items()}
    report({
        "model": "vae_mono_missing recipe (plain network, latent 8, Bernoulli)",
        "images_per_epoch": len(x), "batch_size": args.batch_size, "rounds": args.rounds,
        **{f"{name}_images_per_second": round(v, 1) for name, v in throughput.items()},
        "mirrored_over_one_device": round(throughput["mirrored_2_cpu"]
                                          / throughput["one_device"], 3),
        "logical_devices": [d.name for d in tf.config.list_logical_devices("CPU")],
        "numpy": np.__version__,
    }, Path(args.out) / "training.json")


if __name__ == "__main__":
    main()
