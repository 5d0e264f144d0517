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

from experiments import cli, rows


def main(argv=None):
    return rows.main(__doc__, "ae_gen", "ae", "gen", argv, samples=10_000, other_families=False)


if __name__ == "__main__":
    cli.run_script(main)
