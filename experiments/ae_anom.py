"""AE-ANOM: the AE as an anomaly detector for the digit 8.

The AE trained on MONO_BINARY_MISSING (no 8s) scores every test image; the 8s are the
anomalies. Score: reconstruction NLL, -log p(x | encode(x)). Reports ROC AUC, PR AUC and a
Youden threshold.

Writes results/ae_anom/anomaly_curves.png (ROC and PR), top_anomalies.png and metrics.json.

    python experiments/ae_anom.py              # shipped weights
    python experiments/ae_anom.py --retrain    # train again (15 epochs) into runs/, then score
"""

from experiments import cli, rows


def main(argv=None):
    return rows.main(__doc__, "ae_anom", "ae", "anom", argv, other_families=False, likelihood=False)


if __name__ == "__main__":
    cli.run_script(main)
