"""The main job: run the eight grading rows from the shipped weights and print one table.

    python experiments/run_all.py            # about 10 minutes on 2 CPU cores
    python experiments/run_all.py --quick    # every row on tiny data (a smoke run)

Each row writes results/<row>/ (figures and metrics.json). The results table collected here,
against the targets, is the one README.md reports; it is written to results/summary.md, and
every row's metrics together to results/summary.json. With --rows, the rows not run keep their
previous results in both files (those of a run of the same kind, quick or not).
"""
import importlib
import json

from atomic_io import atomic_path, read_json_object
from experiments import REPO_ROOT, cli
import named_data
from experiments.grading import ALL_ROWS, results_table, rows_for, script_of
from experiments.results_page import write_index


def combined_metrics(previous: dict, fresh: dict, quick: bool) -> dict:
    """Every row's metrics in table order: ``fresh`` ones, else the ``previous`` run's.

    Previous rows of the other kind (a --quick smoke run versus a real one) are dropped.
    """
    kept = {row: m for row, m in previous.items()
            if isinstance(m, dict) and bool(m.get("quick")) == quick}
    merged = {**kept, **fresh}
    return {row: merged[row] for row in ALL_ROWS if row in merged}


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny data, seconds per row")
    parser.add_argument("--seed", type=cli.seed_value, default=0, help="run seed for every row")
    parser.add_argument("--rows", nargs="+", choices=ALL_ROWS, default=None,
                        help="rows to run (default: all; the last ones are the generation rows "
                             "with the latent flow sampler, and with the Gaussian mixture "
                             "where the data set's VAE ships one)")
    cli.add_data_flags(parser, cli.datasets_with_models(("ae", "vae")))
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    all_metrics = {}
    for row in args.rows or rows_for(named_data.get(args.dataset)):
        script, extra = script_of(row)
        flags = (["--seed", str(args.seed), "--dataset", args.dataset, *extra]
                 + (["--quick"] if args.quick else [])
                 + (["--data-dir", args.data_dir] if args.data_dir else []))
        path = importlib.import_module(f"experiments.{script}").main(flags)
        all_metrics[row] = json.loads(path.read_text())
    results = REPO_ROOT / "results"
    # Another data set's table sits beside the default one: results/summary-<name>.md.
    stem = "summary" if args.dataset == parser.get_default("dataset") else \
        f"summary-{args.dataset}"
    summary = results / f"{stem}.json"
    previous = read_json_object(summary, "results summary") or {}  # damaged: rewritten
    all_metrics = combined_metrics(previous, all_metrics, args.quick)
    table = results_table(all_metrics, named_data.get(args.dataset))
    with atomic_path(summary) as tmp:
        tmp.write_text(json.dumps(all_metrics, indent=2))
    with atomic_path(results / f"{stem}.md") as tmp:
        tmp.write_text(table)
    page = write_index(results)
    print("\n" + table)
    print(f"Written: {results / stem}.md (the README's table), {summary}, "
          f"{page} (every row's figures and tables on one page)")


if __name__ == "__main__":
    cli.run_script(main)
