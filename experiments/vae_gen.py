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
import common
import rows


def main(argv=None):
    def flags(parser):
        rows.add_gen_flags(parser, 10_000)
        rows.add_latent_flag(parser, "vae")

    args = common.parse_args(__doc__, "vae_gen", "vae", argv, extra=flags,
                             learned_prior=True)
    return common.write_metrics(args, rows.gen(args, channels=1))


if __name__ == "__main__":
    main()
