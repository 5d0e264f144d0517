"""VAE-ANOM: the VAE as an anomaly detector for the digit 8.

The VAE trained on MONO_BINARY_MISSING (no 8s) scores every test image; the 8s are the
anomalies. Scores, side by side: -log p(x) by importance sampling with q(z|x) (IWAE, the
default), by the course's prior Monte Carlo (K = 10,000), -ELBO and the reconstruction NLL.
Reports ROC AUC, PR AUC and a Youden threshold per score.

Writes results/vae_anom/anomaly_curves.png (ROC and PR), top_anomalies.png and metrics.json.

    python experiments/vae_anom.py              # shipped weights
    python experiments/vae_anom.py --retrain    # train again (30 epochs) into runs/, then score
    python experiments/vae_anom.py --learned-prior  # the VAE trained with a learned flow prior
"""

from experiments import cli, rows


def main(argv=None):
    return rows.main(__doc__, "vae_anom", "vae", "anom", argv)


if __name__ == "__main__":
    cli.run_script(main)
