"""Benchmark of the likelihood estimators and the training step against the machine's
matrix-multiply rate, side by side in one run.

    python benchmarks/decode_rate.py                       # the shipped VAE, 2 rounds
    python benchmarks/decode_rate.py --model saved_models/vae_binarised_complete.keras
    python benchmarks/decode_rate.py --images 20 --rounds 1   # a quick look

Per variant: decoder passes per second, the decoder's FLOPs per pass (counted from its
layers: 2 multiply-adds per weight use), and the fraction of the measured float32 matrix
product rate (2048 x 2048, the same process, the same rounds) that it reaches. Variants: the
decoder alone on one large batch (the ceiling), with and without XLA; the batched IWAE of
``models.likelihood.posterior_estimates`` (per-image samples: every pass is a decode); the
ELBO with one sample; and the training step of the model's recipe (forward and backward,
counted as 3 forward passes of encoder and decoder) compiled with and without XLA. The
variants alternate within every round and the best round of each is kept. Writes
results/benchmarks/decode_rate.json.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

import numpy as np
import tensorflow as tf
import tf_keras

from models import build_model, load_model, zoo
from models.likelihood import posterior_estimates
from report import report
from stacked_mnist import DataMode, StackedMNISTData

MATMUL_SIZE = 2048


def layer_flops(model: tf_keras.Model) -> int:
    """FLOPs of one forward pass of a functional subnet for one image: 2 per multiply-add
    of its convolutions, transposed convolutions and dense layers (biases, activations and
    the head are left out: a few per cent at most)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, tf_keras.Model):
            total += layer_flops(layer)
        elif isinstance(layer, tf_keras.layers.Conv2DTranspose):  # before Conv2D: a subclass
            h, w, c_in = layer.input_shape[1:]
            total += 2 * h * w * c_in * layer.filters * int(np.prod(layer.kernel_size))
        elif isinstance(layer, tf_keras.layers.Conv2D):
            h, w, c_out = layer.output_shape[1:]
            c_in = layer.input_shape[-1]
            total += 2 * h * w * c_out * c_in * int(np.prod(layer.kernel_size))
        elif isinstance(layer, tf_keras.layers.Dense):
            total += 2 * layer.input_shape[-1] * layer.units
    return int(total)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(zoo.path("vae_mono_complete")),
                        help="a VAE model file (default: the shipped mono VAE)")
    parser.add_argument("--images", type=int, default=100,
                        help="test images of the IWAE and training variants (default 100)")
    parser.add_argument("--iwae-samples", type=int, default=1000,
                        help="K of the IWAE variant (default 1000)")
    parser.add_argument("--batch", type=int, default=20_000,
                        help="latents per call of the decoder-alone variants (default 20000)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (best kept)")
    parser.add_argument("--out", default=str(REPO_ROOT / "results" / "benchmarks"))
    args = parser.parse_args(argv)
    if min(args.images, args.iwae_samples, args.batch, args.rounds) < 1:
        parser.error("--images, --iwae-samples, --batch and --rounds must be positive.")
    model = load_model(args.model)
    if model.prior is None:
        parser.error(f"{args.model} has no prior: the estimators need a VAE.")
    x = StackedMNISTData(DataMode.MONO_BINARY_COMPLETE, seed=0).get_full_data_set(
        training=False)[0][: args.images]
    decoder, encoder = model.mono_decoder, model.mono_encoder
    decode_flops, encode_flops = layer_flops(decoder), layer_flops(encoder)
    z = tf.random.stateless_normal((args.batch, model.config.latent_dim), seed=[0, 0])
    a = tf.random.stateless_normal((MATMUL_SIZE, MATMUL_SIZE), seed=[0, 1])

    @tf.function
    def matmul(a):
        return tf.reduce_sum(tf.matmul(a, a))

    def log_px(z):  # the decoder and the head's log-density: what an estimator pays per pass
        dist = model.head.distribution(model.mono_pixel_params(z))
        return tf.reduce_sum(dist.log_prob(tf.zeros_like(dist.mean())))

    plain_decode = tf.function(log_px)
    xla_decode = tf.function(log_px, jit_compile=True)

    def training_step(jit: bool):
        trainer = build_model(model.config, seed=0)
        trainer.compile(optimizer=tf_keras.optimizers.Adam(1e-3), jit_compile=jit)
        batches = tf.data.Dataset.from_tensor_slices(x).batch(len(x))
        trainer.fit(batches, epochs=1, verbose=0)  # traced and compiled outside the timing
        return lambda: trainer.fit(batches.repeat(10), epochs=1, verbose=0)

    variants = {  # name: (callable, decoder passes, FLOPs per pass)
        "matmul_2048": (lambda: matmul(a).numpy(), 1, 2 * MATMUL_SIZE ** 3),
        "decoder_alone": (lambda: plain_decode(z).numpy(), args.batch, decode_flops),
        "decoder_alone_xla": (lambda: xla_decode(z).numpy(), args.batch, decode_flops),
        "iwae_batched": (lambda: posterior_estimates(model, x, args.iwae_samples, seed=0),
                         len(x) * args.iwae_samples, decode_flops),
        "elbo_one_sample": (lambda: posterior_estimates(model, x, 1, seed=0), len(x),
                            decode_flops),
        "training_step": (training_step(False), 10 * len(x), 3 * (decode_flops + encode_flops)),
        "training_step_xla": (training_step(True), 10 * len(x),
                              3 * (decode_flops + encode_flops)),
    }
    for fn, _, _ in variants.values():  # warm-up: traces and compilations are not timed
        fn()
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (fn, _, _) in variants.items():
            times[name].append(seconds(fn))
    matmul_rate = variants["matmul_2048"][2] / min(times["matmul_2048"])
    results = {"model": zoo.shown_path(args.model), "images": len(x),
               "iwae_samples": args.iwae_samples, "decoder_batch": args.batch,
               "decoder_flops_per_pass": decode_flops, "encoder_flops_per_pass": encode_flops,
               "matmul_gflops_per_s": round(matmul_rate / 1e9, 1)}
    for name, (_, passes, flops) in variants.items():
        if name == "matmul_2048":
            continue
        rate = passes / min(times[name])
        results[f"{name}_passes_per_s"] = round(rate, 1)
        results[f"{name}_gflops_per_s"] = round(rate * flops / 1e9, 1)
        results[f"{name}_fraction_of_matmul"] = round(rate * flops / matmul_rate, 3)
    report(results, Path(args.out) / "decode_rate.json")


if __name__ == "__main__":
    main()
