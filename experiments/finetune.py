"""FINETUNE: labels as a resource. The encoder of a shipped model trained on complete data
(default the VAE; ``--family ae``) becomes a classifier (``models.classifier``: its trunk,
dropout, a softmax layer; random shifts in training) and is fine-tuned with 100, 1,000 and
all 60,000 training labels (balanced and seeded below all), against the same network
trained from scratch on the same labels with the same steps. Test accuracy on the whole
test set.

Per data set (``CLASSIFIERS``): on MNIST, shifts of up to 10 %, no hidden layer, at least 10
passes, the shipped VAE's encoder. On Fashion-MNIST, the encoder of a VAE with one extra
convolution per resolution (``vae_fashion_blocks_complete``; the rows' plain VAE is too small
a classifier), shifts of up to 5 % and mirror images, a 256-unit hidden layer, at least 30
passes. --shift, --mirror, --hidden-units and --passes override them.

Training per run: whole passes over the labelled images, at least --min-steps batches of 128
and --passes passes; Adam from 1e-3 with a half-cosine decay. Every number is a function of
--seed.

Writes results/finetune/finetune.png (test accuracy against labels), table.md and
metrics.json.

    python experiments/finetune.py                           # MNIST (8 minutes here)
    python experiments/finetune.py --dataset fashion_mnist   # Fashion-MNIST (16 minutes)
    python experiments/finetune.py --labels 100 --quick      # tiny models, seconds
"""
import argparse
import dataclasses
import time
from typing import Dict

import numpy as np

from atomic_io import atomic_path, save_figure
from experiments import cli
from experiments.cli import count
from experiments.outputs import write_metrics
from experiments.runs import load_data, shipped_or_quick
from models import zoo
from models.classifier import (balanced_subset, classifier_accuracy, encoder_classifier,
                               fit_classifier)

QUICK = {"min_steps": 10, "passes": 1}
BATCH = 128
STARTS = ("fine-tuned", "from scratch")


@dataclasses.dataclass(frozen=True)
class ClassifierPlan:
    """How a data set's classifier trains: the views (shifts of up to ``shift`` of the image
    size; ``mirror`` images where a mirror keeps the class), the head's ``hidden_units``, the
    least ``passes``, and the shipped models whose encoders it fine-tunes instead of the
    family's rows' model (``encoders``: family -> model name)."""
    shift: float
    mirror: bool
    hidden_units: int
    passes: int
    encoders: Dict[str, str] = dataclasses.field(default_factory=dict)


# Fashion-MNIST (probes with all labels, fine-tuning the rows' VAE, whose encoder has no dense
# layer: 86.98 %; mirror images and 5 % shifts 88.66 %; a 256-unit layer as well 89.79 %; the
# trunk with block_convs=1 from scratch, 30 passes, 92.74 %).
CLASSIFIERS = {
    "mnist": ClassifierPlan(shift=0.1, mirror=False, hidden_units=0, passes=10),
    "fashion_mnist": ClassifierPlan(shift=0.05, mirror=True, hidden_units=256, passes=30,
                                    encoders={"vae": "vae_fashion_blocks_complete"}),
}


def add_flags(parser) -> None:
    parser.add_argument("--labels", type=count, nargs="+", default=[100, 1000, 60_000],
                        help="labelled training images per run, multiples of 10 (at least "
                             "the training set's size: all of it; default 100 1000 60000)")
    parser.add_argument("--passes", type=count,
                        help="passes over the labelled images, at least (default: the data "
                             "set's, 10 for MNIST, 30 for Fashion-MNIST)")
    parser.add_argument("--shift", type=float,
                        help="random shifts in training, at most this share of the image size "
                             "(default: the data set's, 0.1 for MNIST, 0.05 for Fashion-MNIST)")
    parser.add_argument("--mirror", action=argparse.BooleanOptionalAction,
                        help="mirror images in training (default: for Fashion-MNIST only)")
    parser.add_argument("--hidden-units", type=cli.integer_at_least(0, cli.MAX_COUNT),
                        help="a hidden layer of this width in the head, 0 for none (default: "
                             "the data set's, none for MNIST, 256 for Fashion-MNIST)")
    parser.add_argument("--min-steps", type=count, default=500,
                        help="batches per run, at least (default 500)")


def dataset_plan(run, opts) -> ClassifierPlan:
    """The data set's ``ClassifierPlan`` with the flags that were given in its place (--quick: at
    most QUICK's passes)."""
    plan = CLASSIFIERS[run.dataset.name]
    given = {field: getattr(opts, field) for field in ("shift", "mirror", "hidden_units",
                                                      "passes")}
    plan = dataclasses.replace(plan, **{k: v for k, v in given.items() if v is not None})
    if not 0 <= plan.shift < 0.5:
        raise ValueError(f"--shift must lie in [0, 0.5) (a share of the image size); got "
                         f"{plan.shift:g}.")
    if run.quick:  # (parse_args caps --passes only where it was given)
        plan = dataclasses.replace(plan, passes=min(plan.passes, QUICK["passes"]))
    return plan


def labelled(y_train, labels: int, seed: int) -> np.ndarray:
    """The indices of the labelled images: all of them, or a balanced seeded subset."""
    if labels >= len(y_train):
        return np.arange(len(y_train))
    return balanced_subset(y_train, labels, seed=seed)


def run_one(model_loader, pretrained: bool, x, y, x_test, y_test, steps: int, seed: int,
            plan: ClassifierPlan) -> dict:
    start = time.time()
    net = encoder_classifier(model_loader(), pretrained=pretrained, seed=seed, shift=plan.shift,
                             mirror=plan.mirror, hidden_units=plan.hidden_units)
    fit_classifier(net, x, y, steps=steps, batch_size=BATCH, seed=seed)
    return {"test_accuracy": classifier_accuracy(net, x_test, y_test),
            "steps": steps, "seconds": round(time.time() - start, 1)}


def save_plot(results: dict, path, title: str) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    counts = sorted(int(n) for n in results)
    for start, style in zip(STARTS, ("o-", "s--")):
        ax.plot(counts, [100 * results[str(n)][start]["test_accuracy"] for n in counts],
                style, label=start)
    ax.set_xscale("log")
    ax.set(xlabel="labelled training images", ylabel="test accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main(argv=None):
    run, opts = cli.parse_args(__doc__, "finetune", "vae", argv, extra=add_flags,
                               quick_caps=QUICK, trains=False, families=("ae",),
                               datasets=tuple(name for name, _ in zoo.DATA_OF_TAG.values()))
    dataset = run.dataset
    if any(n % 10 for n in opts.labels):
        raise ValueError(f"--labels must be multiples of 10 (as many of each class); got "
                         f"{' '.join(map(str, opts.labels))}.")
    plan = dataset_plan(run, opts)
    x_train, y_train, x_test, y_test = load_data(run, dataset)
    name = plan.encoders.get(run.family) or zoo.shipped_name(run.family, False,
                                                             dataset.model_tag)
    results = {}
    subsets = {len(p): p for p in (labelled(y_train, n, run.seed)
                                   for n in sorted(opts.labels))}
    for picked in subsets.values():  # (every count at least the training set's is "all")
        steps = max(opts.min_steps, plan.passes * -(-len(picked) // BATCH))
        results[str(len(picked))] = {
            start: run_one(lambda: shipped_or_quick(run, name), start == STARTS[0],
                           x_train[picked], y_train[picked], x_test, y_test, steps, run.seed,
                           plan)
            for start in STARTS}
        print(f"{len(picked):6d} labels: "
              + ", ".join(f"{start} {100 * r['test_accuracy']:.2f} % ({r['seconds']:.0f} s)"
                          for start, r in results[str(len(picked))].items()), flush=True)
    lines = ["| labelled images | " + " | ".join(STARTS) + " |", "| ---: | ---: | ---: |"]
    lines += [f"| {n} | " + " | ".join(f"{100 * r[s]['test_accuracy']:.2f} %" for s in STARTS)
              + " |" for n, r in results.items()]
    table = "\n".join(lines) + "\n"
    with atomic_path(run.out / "table.md") as tmp:
        tmp.write_text(table)
    print(table)
    save_plot(results, run.out / "finetune.png",
              f"{dataset.title}: the {run.family.upper()}'s encoder as a classifier")
    return write_metrics(run, {
        "encoder_of": "trained by --quick" if run.quick else zoo.shown_path(zoo.path(name)),
        "batch_size": BATCH, "passes_at_least": plan.passes, "min_steps": opts.min_steps,
        "shift": plan.shift, "mirror": plan.mirror, "hidden_units": plan.hidden_units,
        "results": results,
    })


if __name__ == "__main__":
    cli.run_script(main)
