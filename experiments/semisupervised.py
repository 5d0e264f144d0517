"""SEMISUPERVISED: the M2 semi-supervised VAE (models/m2.py; Kingma et al. 2014) trained on all
60,000 MNIST training images with 100, 1,000 or 3,000 of their labels (balanced; three label
draws for 100), and its pseudo-labelling variant with 100 labels (three draws; models/m2.py),
as classifiers and as class-conditional generators, from shipped weights.

For every shipped M2 model: test accuracy on the whole test set of its classifier q(y | x),
and of the generative classifier argmax_y p(x | y) p(y) (p(x | y) importance-sampled with
--iwae-samples draws of q(z | x, y), p(z | y) the fitted class prior, on the first --images
test images); the judge's conditional accuracy on --per-digit samples of each digit. A table by
method and labels (mean and spread over the label draws) beside published test accuracies with 100
labels (Kingma et al. 2014, Table 1: M2 88.03 %, M1+M2 96.67 %; Rasmus et al. 2015, Ladder
networks: 98.94 %), cited as published.

Writes results/semisupervised/table.md, m2_digits.png (rows: requested digit, one model per
method and label count) and metrics.json.

    python experiments/semisupervised.py           # shipped weights
    python experiments/semisupervised.py --quick   # one tiny model, seconds
"""
import time

import numpy as np

import evaluation
from atomic_io import atomic_path
from experiments import cli
from experiments.cli import count
from experiments.outputs import save_image_grid, write_metrics
from experiments.runs import load_data, shipped_or_quick
from models import zoo
from models.conditional import class_log_likelihoods, class_posterior, log_class_prior

QUICK = {"images": 50, "iwae_samples": 2, "per_digit": 10}
GRID_COLUMNS = 10  # judged samples per digit shown in m2_digits.png
PUBLISHED = (("M2 (Kingma et al. 2014)", 100, 88.03), ("M1+M2 (Kingma et al. 2014)", 100, 96.67),
             ("Ladder network (Rasmus et al. 2015)", 100, 98.94))


def add_flags(parser) -> None:
    parser.add_argument("--images", type=count, default=1000,
                        help="test images for the generative classifier (default 1000)")
    parser.add_argument("--iwae-samples", type=count, default=10,
                        help="importance samples per (image, label) for p(x | y) (default 10)")
    parser.add_argument("--per-digit", type=count, default=100,
                        help="generated samples per digit for the judge (default 100)")


def semi_supervised_recipes(quick: bool) -> list:
    names = [name for name, plan in zoo.SHIPPED.items() if plan.labelled is not None]
    if not names:
        raise ValueError("no semi-supervised (m2) recipe in models.zoo.SHIPPED.")
    return names[:1] if quick else names


def evaluate(run, opts, model, dataset, x_test, y_test):
    """``(metrics, samples)``: the model's metrics and its judged samples, ``--per-digit`` of
    each digit in digit order."""
    start = time.perf_counter()
    accuracy = float(np.mean(model.classify(x_test) == y_test))
    few = slice(0, opts.images)
    log_lik = class_log_likelihoods(model, x_test[few], num_samples=opts.iwae_samples,
                                    seed=run.seed)[:, 0]
    posterior = class_posterior(log_lik, log_class_prior(model.metadata.get("digit_counts")))
    digits = np.repeat(np.arange(10), opts.per_digit)
    samples = model.decode_images(model.class_codes(digits, seed=run.seed), labels=digits)
    judged = evaluation.conditional_metrics(evaluation.judged_images(samples), digits, dataset)
    return {"classifier_accuracy": accuracy,
            "generative_classifier_accuracy": float(np.mean(posterior.argmax(axis=1)
                                                            == y_test[few])),
            "generative_classifier_images": int(len(log_lik)),
            "labels_kept": model.metadata.get("labels_kept"),
            "label_seed": model.metadata.get("label_seed"),
            "train_seconds": model.metadata.get("train_seconds"),
            "generation": judged, "seconds": round(time.perf_counter() - start, 1)}, samples


def method(name: str) -> str:
    """The table's method of a shipped M2 recipe."""
    return ("M2 + pseudo-labels" if zoo.recipe(name).config.consistency_weight else "M2")


def table(results: dict, names_by_group: dict) -> str:
    lines = ["| method | labels | test accuracy (q(y\\|x)) | generative classifier | "
             "conditional samples (judge) |", "| --- | ---: | ---: | ---: | ---: |"]
    for (kind, labels), names in sorted(names_by_group.items()):
        def spread(key, pick=lambda r, k: r[k]):
            values = [100 * pick(results[n], key) for n in names]
            text = f"{np.mean(values):.2f} %"
            return text + (f" +- {np.std(values):.2f} ({len(values)} draws)"
                           if len(values) > 1 else "")
        lines.append(f"| {kind}, ours | {labels} | {spread('classifier_accuracy')} | "
                     f"{spread('generative_classifier_accuracy')} | "
                     f"{spread('conditional_accuracy', lambda r, k: r['generation'][k])} |")
    lines += [f"| {name}, published | {labels} | {accuracy:.2f} % | | |"
              for name, labels, accuracy in PUBLISHED]
    return "\n".join(lines) + "\n"


def main(argv=None):
    run, opts = cli.parse_args(__doc__, "semisupervised", "m2", argv, extra=add_flags,
                               quick_caps=QUICK, trains=False, datasets=("mnist",))
    dataset = run.dataset
    _, _, x_test, y_test = load_data(run, dataset)
    results, names_by_group, grids = {}, {}, []
    for name in semi_supervised_recipes(run.quick):
        model = shipped_or_quick(run, name)
        results[name], samples = evaluate(run, opts, model, dataset, x_test, y_test)
        group = method(name), zoo.recipe(name).labelled
        names_by_group.setdefault(group, []).append(name)
        print(f"{name}: q(y|x) {100 * results[name]['classifier_accuracy']:.2f} %, generative "
              f"classifier {100 * results[name]['generative_classifier_accuracy']:.2f} %",
              flush=True)
        if len(names_by_group[group]) == 1:  # a block of judged samples per method and labels
            by_digit = samples.reshape(10, opts.per_digit, *samples.shape[1:])
            grids.append(by_digit[:, :GRID_COLUMNS].reshape(-1, *samples.shape[1:]))
    text = table(results, names_by_group)
    with atomic_path(run.out / "table.md") as tmp:
        tmp.write_text(text)
    print(text)
    save_image_grid(np.concatenate(grids), run.out / "m2_digits.png",
                    columns=min(GRID_COLUMNS, opts.per_digit),
                    title="rows: requested digit 0-9; blocks, top to bottom:\n"
                          + ", ".join(f"{kind} ({n} labels)" for kind, n in names_by_group))
    return write_metrics(run, {"test_images": int(len(x_test)),
                               "iwae_samples": opts.iwae_samples, "models": results,
                               "published_100_labels": {n: a for n, _, a in PUBLISHED}})


if __name__ == "__main__":
    cli.run_script(main)
