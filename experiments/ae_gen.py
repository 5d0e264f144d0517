"""AE-GEN: the AE as a generator of MNIST digits.

The AE has no prior: codes are drawn from a Gaussian fitted to the training codes
(--latent standard: from N(0, I)). 10,000 decoded images are judged by the verification net at
tolerance 0.8: quality (predictability) and coverage of the 10 classes, plus class frequencies.

Writes results/ae_gen/generated.png, generated_class_frequencies.png, samples.npz (array
`images`, (M, 28, 28, 1) in [0, 1]) and metrics.json.

    python experiments/ae_gen.py              # shipped weights
    python experiments/ae_gen.py --retrain    # train again (15 epochs) into runs/, then generate
    python experiments/ae_gen.py --latent flow   # codes from a flow fitted to the training codes
"""
import common
import rows


def main(argv=None):
    def flags(parser):
        rows.add_gen_flags(parser, 10_000)
        rows.add_latent_flag(parser, "ae")

    args = common.parse_args(__doc__, "ae_gen", "ae", argv, extra=flags)
    return common.write_metrics(args, rows.gen(args, channels=1))


if __name__ == "__main__":
    main()
