"""The main job: run the eight grading rows from the shipped weights and print one table.

    python experiments/run_all.py            # about 10 minutes on 2 CPU cores
    python experiments/run_all.py --quick    # every row on tiny data (a smoke run)

Each row writes results/<row>/ (figures and metrics.json); the table collected here is what
README.md reports, and it is also written to results/summary.json.
"""
import argparse
import importlib
import json
import time

from common import REPO_ROOT, atomic_path

ROWS = ["ae_basic", "ae_gen", "ae_anom", "ae_stack",
        "vae_basic", "vae_gen", "vae_anom", "vae_stack"]


def headline(row: str, metrics: dict) -> dict:
    """The numbers of a row that go into the results table."""
    def pick(m, prefix=""):
        keys = ["reconstruction_accuracy", "quality_predictability", "coverage",
                "kl_class_frequencies_to_uniform_nats", "roc_auc", "pr_auc"]
        return {prefix + k: m[k] for k in keys if k in m}

    if row.endswith("stack"):
        return {**pick(metrics["basic"], "basic."), **pick(metrics["gen"], "gen."),
                **pick(metrics["anom"], "anom.")}
    return pick(metrics)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny data, seconds per row")
    parser.add_argument("--seed", type=int, default=0, help="run seed for every row")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=ROWS, help="rows to run")
    args = parser.parse_args(argv)
    summary = {}
    for row in args.rows:
        flags = ["--seed", str(args.seed)] + (["--quick"] if args.quick else [])
        start = time.time()
        path = importlib.import_module(row).main(flags)
        metrics = json.loads(path.read_text())
        summary[row] = {"seconds": round(time.time() - start, 1), **headline(row, metrics)}
    with atomic_path(REPO_ROOT / "results" / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    print("\nrow          seconds  results")
    for row, values in summary.items():
        numbers = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if k != "seconds")
        print(f"{row:12s} {values['seconds']:7.1f}  {numbers}")


if __name__ == "__main__":
    main()
