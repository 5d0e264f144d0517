"""AE-BASIC: how well does the AE reconstruct MNIST test digits?

The AE trained on MONO_BINARY_COMPLETE (shipped in saved_models/) reconstructs the whole test
set; the verification net judges the reconstructions at tolerance 0.8 (predictability and
accuracy, the course's definitions).

Writes results/ae_basic/reconstructions.png (test images above their reconstructions) and
results/ae_basic/metrics.json.

    python experiments/ae_basic.py              # shipped weights, seconds
    python experiments/ae_basic.py --retrain    # train again (15 epochs) into runs/, then evaluate
"""

from experiments import cli, rows


def main(argv=None):
    return rows.main(__doc__, "ae_basic", "ae", "basic", argv, other_families=False)


if __name__ == "__main__":
    cli.run_script(main)
