"""ANOMALY-LOO: leave one class out. For every class c of the data set, the shipped small VAE
trained without c (``models.zoo.loo_name``: the beta sweep's network at beta 1, 10 epochs)
scores the whole test set; c's test images are the anomalies. Per class, ROC AUC and PR AUC
of the default score, -IWAE (K = --iwae-samples), and of the reconstruction NLL at the
posterior mean; then the mean and the worst class of each. PR AUC depends on the share of
anomalies, about 10 % here (the share of class c in the test set, shown beside it).

Figure: ROC AUC and PR AUC per class, both scores. metrics.json: the table.

    python experiments/anomaly_loo.py                          # MNIST, shipped weights
    python experiments/anomaly_loo.py --dataset fashion_mnist  # Fashion-MNIST
    python experiments/anomaly_loo.py --quick                  # tiny models, a few classes
    python experiments/train_all.py --only vae_loo3_mono       # train one again
"""
import dataclasses

import numpy as np

import evaluation
from atomic_io import atomic_path
from experiments import cli
from experiments.cli import count
from experiments.outputs import write_metrics
from experiments.rows import anomaly_scores
from experiments.runs import load_data, shipped_or_quick
from models import zoo

QUICK = {"iwae_samples": 2}
QUICK_CLASSES = 3  # --quick trains this many throw-away models
DATASETS = tuple(name for name, _ in zoo.DATA_OF_TAG.values())
SCORES = {"neg_iwae": "-IWAE", "reconstruction_nll": "reconstruction NLL"}


def add_flags(parser) -> None:
    parser.add_argument("--iwae-samples", type=count, default=5,
                        help="importance samples K of the default score (default 5)")
    parser.add_argument("--classes", type=int, nargs="+", default=list(range(10)),
                        choices=range(10), metavar="CLASS",
                        help="the classes held out in turn (default all ten)")


def summarise(per_class: dict) -> dict:
    """Mean and worst class of each score's ROC AUC and PR AUC."""
    summary = {}
    for score in SCORES:
        for measure in ("roc_auc", "pr_auc"):
            values = {c: r[score][measure] for c, r in per_class.items()}
            worst = min(values, key=values.get)
            summary[f"{score}_{measure}_mean"] = float(np.mean(list(values.values())))
            summary[f"{score}_{measure}_worst"] = values[worst]
            summary[f"{score}_{measure}_worst_class"] = worst
    return summary


def markdown_table(per_class: dict, summary: dict, class_names) -> str:
    """The table as markdown: a line per held-out class, then the mean and the worst."""
    lines = ["| held-out class | share of test set | ROC AUC -IWAE | PR AUC -IWAE | "
             "ROC AUC recon. NLL | PR AUC recon. NLL |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for c, r in per_class.items():
        name = class_names[c] if class_names[c] == str(c) else f"{c} {class_names[c]}"
        lines.append(f"| {name} | {100 * r['anomaly_share']:.1f} % | "
                     + " | ".join(f"{r[score][measure]:.3f}" for score in SCORES
                                  for measure in ("roc_auc", "pr_auc")) + " |")
    for kind in ("mean", "worst"):
        cells = []
        for score in SCORES:
            for measure in ("roc_auc", "pr_auc"):
                value = summary[f"{score}_{measure}_{kind}"]
                worst = (f" ({class_names[summary[f'{score}_{measure}_worst_class']]})"
                         if kind == "worst" else "")
                cells.append(f"{value:.3f}{worst}")
        lines.append(f"| **{kind}** | | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def save_figure_per_class(per_class: dict, class_names, path, title: str) -> None:
    import matplotlib.pyplot as plt

    from atomic_io import save_figure

    classes = list(per_class)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    width = 0.38
    positions = np.arange(len(classes))
    for ax, measure in zip(axes, ("roc_auc", "pr_auc")):
        for i, (score, label) in enumerate(SCORES.items()):
            ax.bar(positions + (i - 0.5) * width, [per_class[c][score][measure] for c in classes],
                   width, label=label)
        ax.set_xticks(positions, [class_names[c] for c in classes], rotation=30, ha="right",
                      fontsize=8)
        ax.set_ylim(0, 1.08)
        ax.set_title(f"{measure.replace('_', ' ').upper()} for the held-out class", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    # chance: ROC AUC 0.5; PR AUC the share of anomalies in the test set
    axes[0].axhline(0.5, color="k", ls="--", lw=0.8, label="chance")
    axes[1].hlines([per_class[c]["anomaly_share"] for c in classes], positions - width,
                   positions + width, colors="k", linestyles="--", lw=0.8)
    axes[0].legend(fontsize=8, loc="upper center", ncol=3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main(argv=None):
    run, opts = cli.parse_args(__doc__, "anomaly_loo", "vae", argv, extra=add_flags,
                               quick_caps=QUICK, trains=False, datasets=DATASETS)
    dataset = run.dataset
    classes = sorted(set(opts.classes))[:QUICK_CLASSES if run.quick else None]
    _, _, x_test, y_test = load_data(run, dataset)  # one test set for every model
    per_class, models = {}, {}
    for held_out in classes:
        name = zoo.loo_name(held_out, dataset.model_tag)
        without = dataclasses.replace(dataset, anomaly_class=held_out)
        model = shipped_or_quick(run, name)
        is_anomaly = evaluation.anomaly_labels(y_test, without)
        scores = anomaly_scores(model, x_test, run.seed, opts.iwae_samples)
        per_class[held_out] = {
            **{score: evaluation.evaluate_scores(values, is_anomaly)
               for score, values in scores.items()},
            "anomaly_share": float(np.mean(is_anomaly))}
        models[held_out] = {"model_file": "trained by --quick" if run.quick
                            else zoo.shown_path(zoo.path(name)),
                            "trained_on": model.metadata.get("trained_on")}
        print(f"{dataset.class_names[held_out]:>12s} held out: ROC AUC "
              f"{per_class[held_out]['neg_iwae']['roc_auc']:.3f} (-IWAE), "
              f"{per_class[held_out]['reconstruction_nll']['roc_auc']:.3f} "
              f"(reconstruction NLL)", flush=True)
    save_figure_per_class(per_class, dataset.class_names, run.out / "anomaly_loo.png",
                          f"{dataset.title}: a VAE trained without one class finds it")
    summary = summarise(per_class)
    table = markdown_table(per_class, summary, dataset.class_names)
    with atomic_path(run.out / "table.md") as tmp:
        tmp.write_text(table)
    print(table)
    return write_metrics(run, {
        "default_score": "neg_iwae", "iwae_samples": opts.iwae_samples,
        "class_names": list(dataset.class_names),
        "per_class": {str(c): r for c, r in per_class.items()},
        **summary,
        "models": {str(c): m for c, m in models.items()},
    })


if __name__ == "__main__":
    cli.run_script(main)
