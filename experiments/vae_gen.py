"""VAE-GEN: the VAE as a generator of MNIST digits.

Latents z ~ N(0, I), the VAE's prior; the encoder is never used. 10,000 decoded images are
judged by the verification net at tolerance 0.8: quality (predictability) and coverage of the
10 classes, plus the class frequencies.

Writes results/vae_gen/generated.png, generated_class_frequencies.png, samples.npz (array
`images`, (M, 28, 28, 1) in [0, 1]) and metrics.json.

    python experiments/vae_gen.py              # shipped weights
    python experiments/vae_gen.py --retrain    # train again (30 epochs) into runs/, then generate
    python experiments/vae_gen.py --latent flow  # z from the ex-post flow prior fitted to q(z|x)
    python experiments/vae_gen.py --learned-prior  # the VAE whose flow prior was learned with it
"""

from experiments import cli, rows


def main(argv=None):
    return rows.main(__doc__, "vae_gen", "vae", "gen", argv, samples=10_000)


if __name__ == "__main__":
    cli.run_script(main)
