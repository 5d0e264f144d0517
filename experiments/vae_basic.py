"""VAE-BASIC: how well does the VAE reconstruct MNIST test digits?

The VAE trained on MONO_BINARY_COMPLETE (shipped in saved_models/) reconstructs the whole test
set; the verification net judges the reconstructions at tolerance 0.8 (predictability and
accuracy, the course's definitions).

Writes results/vae_basic/reconstructions.png (test images above their reconstructions) and
results/vae_basic/metrics.json.

    python experiments/vae_basic.py              # shipped weights, seconds
    python experiments/vae_basic.py --retrain    # train again (30 epochs) into runs/, then evaluate
    python experiments/vae_basic.py --learned-prior  # the VAE trained with a learned flow prior
"""

from experiments import cli, rows


def main(argv=None):
    return rows.main(__doc__, "vae_basic", "vae", "basic", argv)


if __name__ == "__main__":
    cli.run_script(main)
