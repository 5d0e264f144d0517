"""AE-STACK: the AE-BASIC, AE-GEN and AE-ANOM rows on stackedMNIST (1000 classes).

The colour model is the mono AE subnet applied to R, G and B with one set of weights, so by
default it loads the shipped mono weights (exact for stackedMNIST, whose channels are
independent digits); --retrain trains it on COLOR_BINARY_* data instead, into a run
folder (runs/<run>/), which later runs of the same command reuse. Tolerance 0.5, as in the course;
coverage is out of 1000 classes; an anomaly is a test image with an 8 in any channel,
scored by its most anomalous channel by default (the joint, summed scores are reported
beside it).

Writes results/ae_stack/color_*.png, color_samples.npz ((M, 28, 28, 3) in [0, 1]) and
metrics.json with the sections basic, gen and anom, and section_seconds (where the time went).

    python experiments/ae_stack.py              # shipped weights
    python experiments/ae_stack.py --retrain    # train colour models into runs/ (15 epochs each)
    python experiments/ae_stack.py --latent flow   # generation from the fitted flow
"""

from experiments import cli, rows


def main(argv=None):
    return rows.main(__doc__, "ae_stack", "ae", "stack", argv, samples=26_000,
                     other_families=False, likelihood=False)


if __name__ == "__main__":
    cli.run_script(main)
