"""The main job: run the eight grading rows from the shipped weights and print one table.

    python experiments/run_all.py            # about 10 minutes on 2 CPU cores
    python experiments/run_all.py --quick    # every row on tiny data (a smoke run)

Each row writes results/<row>/ (figures and metrics.json). The results table collected here,
against the targets, is the one README.md reports; it is written to results/summary.md, and
every row's metrics together to results/summary.json. With --rows, the rows not run keep their
previous results in both files (those of a run of the same kind, quick or not).
"""
import argparse
import importlib
import json

from common import REPO_ROOT, atomic_path
from results_page import write_index

ROWS = ["ae_basic", "ae_gen", "ae_anom", "ae_stack",
        "vae_basic", "vae_gen", "vae_anom", "vae_stack"]


# The grading table: (row, section of a STACK row's metrics, measure, target, metric keys).
# A key ending in "%" is shown as a percentage.
TABLE = [
    ("ae_basic", None, "reconstruction accuracy / predictability, mono, tol 0.8", ">= 97%",
     ["reconstruction_accuracy%", "reconstruction_predictability%"]),
    ("ae_stack", "basic", "reconstruction accuracy / predictability, colour, tol 0.5",
     ">= 92%", ["reconstruction_accuracy%", "reconstruction_predictability%"]),
    ("vae_basic", None, "reconstruction accuracy / predictability, mono, tol 0.8", ">= 95%",
     ["reconstruction_accuracy%", "reconstruction_predictability%"]),
    ("vae_stack", "basic", "reconstruction accuracy / predictability, colour, tol 0.5",
     ">= 90%", ["reconstruction_accuracy%", "reconstruction_predictability%"]),
    ("ae_gen", None, "quality / coverage, mono, 10,000 samples", "reported",
     ["quality_predictability%", "coverage%"]),
    ("vae_gen", None, "quality / coverage, mono, 10,000 samples", ">= 90% / 100%",
     ["quality_predictability%", "coverage%"]),
    ("ae_stack", "gen", "quality / coverage of 1000, 26,000 samples", "reported",
     ["quality_predictability%", "coverage%"]),
    ("vae_stack", "gen", "quality / coverage of 1000, 26,000 samples", ">= 90% / 100%",
     ["quality_predictability%", "coverage%"]),
    ("ae_stack", "gen", "KL(class frequencies || uniform) / a uniform generator's, nats",
     "reported", ["kl_class_frequencies_to_uniform_nats",
                  "kl_of_a_uniform_generator_expected_nats"]),
    ("vae_stack", "gen", "KL(class frequencies || uniform) / a uniform generator's, nats",
     "<= 0.05", ["kl_class_frequencies_to_uniform_nats",
                 "kl_of_a_uniform_generator_expected_nats"]),
    ("ae_anom", None, "ROC AUC / PR AUC for the 8s, mono", "reported", ["roc_auc", "pr_auc"]),
    ("ae_stack", "anom", "ROC AUC / PR AUC, colour (an 8 in any channel)", "reported",
     ["roc_auc", "pr_auc"]),
    ("vae_anom", None, "ROC AUC / PR AUC for the 8s, mono", ">= 0.95", ["roc_auc", "pr_auc"]),
    ("vae_stack", "anom", "ROC AUC / PR AUC, colour (an 8 in any channel)", ">= 0.95",
     ["roc_auc", "pr_auc"]),
]


def _shown(value, key: str) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if key.endswith("%") else f"{value:.3f}"


def results_table(all_metrics: dict) -> str:
    """The README's results table (markdown) from the rows' metrics.json contents."""
    lines = ["| row | measure | obtained | target | command |", "| --- | --- | --- | --- | --- |"]
    for row, section, measure, target, keys in TABLE:
        if row not in all_metrics:
            continue
        metrics = all_metrics[row][section] if section else all_metrics[row]
        obtained = " / ".join(_shown(metrics[k.rstrip("%")], k) for k in keys)
        if "default_score" in metrics:
            measure += f" (score: {metrics['default_score']})"
        lines.append(f"| {row.upper().replace('_', '-')} | {measure.replace('|', '&#124;')} | "
                     f"{obtained} | {target} | `python experiments/{row}.py` |")
    seconds = ", ".join(f"{row} {m['wall_seconds']:.0f} s" for row, m in all_metrics.items())
    lines.append(f"| all | wall time from shipped weights | {seconds} | <= 120 s each | "
                 "`python experiments/run_all.py` |")
    return "\n".join(lines) + "\n"


def combined_metrics(previous: dict, fresh: dict, quick: bool) -> dict:
    """Every row's metrics in table order: ``fresh`` ones, else the ``previous`` run's.

    Previous rows of the other kind (a --quick smoke run versus a real one) are dropped.
    """
    kept = {row: m for row, m in previous.items() if bool(m.get("quick")) == quick}
    merged = {**kept, **fresh}
    return {row: merged[row] for row in ROWS if row in merged}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny data, seconds per row")
    parser.add_argument("--seed", type=int, default=0, help="run seed for every row")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=ROWS, help="rows to run")
    args = parser.parse_args(argv)
    all_metrics = {}
    for row in args.rows:
        flags = ["--seed", str(args.seed)] + (["--quick"] if args.quick else [])
        path = importlib.import_module(row).main(flags)
        all_metrics[row] = json.loads(path.read_text())
    results = REPO_ROOT / "results"
    summary = results / "summary.json"
    previous = {}
    if summary.is_file():
        try:
            previous = json.loads(summary.read_text())
        except json.JSONDecodeError:
            print(f"ignoring {summary}: not valid JSON; it is rewritten")
    all_metrics = combined_metrics(previous, all_metrics, args.quick)
    table = results_table(all_metrics)
    with atomic_path(summary) as tmp:
        tmp.write_text(json.dumps(all_metrics, indent=2))
    with atomic_path(results / "summary.md") as tmp:
        tmp.write_text(table)
    page = write_index(results)
    print("\n" + table)
    print(f"Written: {results / 'summary.md'} (the README's table), {results / 'summary.json'}, "
          f"{page} (every row's figures and tables on one page)")


if __name__ == "__main__":
    main()
