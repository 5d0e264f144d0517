"""ANOMALY-THRESHOLDS: thresholds that hold. The shipped VAE and AE trained without the
anomaly class (MNIST: the 8s; Fashion-MNIST: the bags) score the test set; a seeded half of
it is the validation split. Scores: the VAE's -IWAE, -ELBO and reconstruction NLL, -IWAE
corrected for input complexity (Serra et al., ICLR 2020: minus the bits zlib needs for the
image), and the AE's reconstruction NLL. On the validation split each rule of
``evaluation.THRESHOLD_RULES`` picks a threshold per score: the ROC point closest to (0, 1),
the best F1, and, needing no anomaly, the 95th percentile of the normal images' scores and
the band of their central 95 % (a band flags images scored outside it either way). Each
threshold is then measured on images the rules never saw: the other half of the test set
(the held-out class, new images), and anomalies of kinds never seen beside that half's
normal images (as many as it has held-out-class images): the other data set's test images,
uniform noise, blank images and the normal images inverted.

Writes results/anomaly_thresholds/thresholds.png (every set's scores and the thresholds),
table.md and metrics.json (every threshold, with accuracy, precision, recall and false
positive rate on every set, and each set's ROC AUC).

    python experiments/anomaly_thresholds.py                          # MNIST, shipped weights
    python experiments/anomaly_thresholds.py --dataset fashion_mnist  # Fashion-MNIST
    python experiments/anomaly_thresholds.py --quick                  # tiny models, seconds
"""
import numpy as np

import evaluation
import named_data
from atomic_io import atomic_path, save_figure
from experiments import cli
from experiments.cli import count
from experiments.outputs import write_metrics
from experiments.rows import anomaly_scores
from experiments.runs import load_data, shipped_or_quick
from models import zoo

QUICK = {"iwae_samples": 2}
DATASETS = named_data.names(channels=1)
COMPLEXITY = "neg_iwae_minus_zlib_bits"  # evaluation.complexity_corrected of -IWAE
# The scores of each family (rows.anomaly_scores' names) with their labels.
SCORES = {"vae": {"neg_iwae": "-IWAE", "neg_elbo": "-ELBO",
                  "reconstruction_nll": "reconstruction NLL",
                  COMPLEXITY: "-IWAE in bits - zlib bits"},
          "ae": {"reconstruction_nll": "reconstruction NLL"}}
RULES = tuple(evaluation.THRESHOLD_RULES)
TEST_SPLIT = "test split"  # the held-out class's images the rules did not see


def add_flags(parser) -> None:
    parser.add_argument("--iwae-samples", type=count, default=5,
                        help="importance samples K of the -IWAE and -ELBO scores (default 5)")


def unseen_anomalies(run, dataset, normal_images, count: int) -> dict:
    """``count`` images of every kind of anomaly the models and the rules never saw: the
    other data set's test images (presented as ``dataset`` presents its own: binarised at
    0.5 or not) and ``evaluation.synthetic_anomalies`` of ``normal_images``."""
    other = next(named_data.get(name) for name in DATASETS if name != dataset.name)
    x_other = other.load(seed=run.seed, binary=dataset.binary)[2]
    pick = np.random.default_rng(run.seed).permutation(len(x_other))[:count]
    return {f"{other.title} images": x_other[pick],
            **evaluation.synthetic_anomalies(normal_images, count, seed=run.seed,
                                             binary=dataset.binary)}


def with_complexity(scores: dict, images) -> dict:
    """``scores`` and, where there is a -IWAE score, its input-complexity version."""
    if "neg_iwae" in scores:
        scores[COMPLEXITY] = evaluation.complexity_corrected(scores["neg_iwae"], images)
    return scores


def measure(scores, is_anomaly, validation, test, unseen_scores: dict) -> dict:
    """One score's thresholds (chosen on ``validation``) and how each holds: on the test
    split and on each unseen kind beside the test split's normal images."""
    thresholds = evaluation.choose_thresholds(scores[validation], is_anomaly[validation])
    normal = scores[test][~is_anomaly[test]]
    sets = {"validation": (scores[validation], is_anomaly[validation]),
            TEST_SPLIT: (scores[test], is_anomaly[test])}
    for kind, values in unseen_scores.items():
        sets[kind] = (np.concatenate([normal, values]),
                      np.arange(len(normal) + len(values)) >= len(normal))
    return {
        "thresholds": thresholds,
        "roc_auc": {name: evaluation.evaluate_scores(*pair)["roc_auc"]
                    for name, pair in sets.items()},
        "rules": {rule: {name: evaluation.threshold_metrics(*pair, threshold)
                         for name, pair in sets.items()}
                  for rule, threshold in thresholds.items()},
    }


def shown_threshold(threshold) -> str:
    """A score, or a band as "low to high"."""
    if isinstance(threshold, (tuple, list)):
        return f"{threshold[0]:.1f} to {threshold[1]:.1f}"
    return f"{threshold:.1f}"


def markdown_table(results: dict, kinds) -> str:
    """A line per score and rule: its threshold, accuracy / precision / recall on the test
    split, then accuracy / recall beside each unseen kind."""
    lines = ["| score | rule | threshold | test split: acc. / prec. / recall | "
             + " | ".join(f"{kind}: acc. / recall" for kind in kinds) + " |",
             "| --- | --- | ---: | ---: | " + " | ".join("---:" for _ in kinds) + " |"]
    for label, result in results.items():
        for rule in RULES:
            sets = result["rules"][rule]
            test = sets[TEST_SPLIT]
            lines.append(
                f"| {label} | {rule} | {shown_threshold(result['thresholds'][rule])} | "
                f"{test['accuracy']:.3f} / {test['precision']:.3f} / {test['recall']:.3f} | "
                + " | ".join(f"{sets[kind]['accuracy']:.3f} / {sets[kind]['recall']:.3f}"
                             for kind in kinds) + " |")
    return "\n".join(lines) + "\n"


def save_strips(score_sets: dict, results: dict, path, title: str) -> None:
    """Per score, every set's scores as a strip of points and the thresholds (a log axis
    where every score is positive)."""
    import matplotlib.pyplot as plt

    labels = list(score_sets)
    columns = min(2, len(labels))
    rows = -(-len(labels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 3.4 * rows), squeeze=False)
    rng = np.random.default_rng(0)  # the jitter of the points
    for ax, label in zip(axes.flat, labels):
        names = list(score_sets[label])
        for row, name in enumerate(names):
            scores = score_sets[label][name]
            ax.scatter(scores, row + rng.uniform(-0.3, 0.3, len(scores)), s=2, alpha=0.3)
        for rule, style in zip(RULES, ("-", "--", ":", "-.")):
            lines = np.atleast_1d(results[label]["thresholds"][rule])
            for i, value in enumerate(lines):
                ax.axvline(value, color="k", ls=style, lw=1,
                           label=f"threshold: {rule}" if i == 0 else None)
        if all(np.min(scores) > 0 for scores in score_sets[label].values()):
            ax.set_xscale("log")
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set(title=label, xlabel="score (higher = more anomalous)")
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="lower center", ncol=len(RULES),
               fontsize=8)
    save_figure(fig, path)
    plt.close(fig)


def main(argv=None):
    run, opts = cli.parse_args(__doc__, "anomaly_thresholds", "vae", argv, extra=add_flags,
                               quick_caps=QUICK, trains=False, datasets=DATASETS)
    dataset = run.dataset
    _, _, x_test, y_test = load_data(run, dataset, missing=True)
    is_anomaly = evaluation.anomaly_labels(y_test, dataset)
    validation, test = evaluation.validation_split(is_anomaly, seed=run.seed)
    normal_test = test[~is_anomaly[test]]
    unseen = unseen_anomalies(run, dataset, x_test[normal_test],
                              int(np.sum(is_anomaly[test])))
    held_out = dataset.class_names[dataset.anomaly_class]
    results, score_sets, models = {}, {}, {}
    for family, names in SCORES.items():
        name = zoo.shipped_name(family, True, dataset.model_tag)
        model = shipped_or_quick(run, name)
        models[family] = ("trained by --quick" if run.quick
                          else zoo.shown_path(zoo.path(name)))
        x_unseen = np.concatenate(list(unseen.values()))
        scores = with_complexity(anomaly_scores(model, x_test, run.seed, opts.iwae_samples),
                                 x_test)
        unseen_all = with_complexity(anomaly_scores(model, x_unseen, run.seed,
                                                    opts.iwae_samples), x_unseen)
        ends = np.cumsum([len(images) for images in unseen.values()])
        for score, text in names.items():
            label = f"{family.upper()} {text}"
            unseen_scores = dict(zip(unseen, np.split(unseen_all[score], ends[:-1])))
            results[label] = measure(scores[score], is_anomaly, validation, test,
                                     unseen_scores)
            score_sets[label] = {
                "normal (test split)": scores[score][normal_test],
                f"{held_out} (test split)": scores[score][test[is_anomaly[test]]],
                **unseen_scores}
            holds = results[label]["rules"]["roc_corner"]
            print(f"{label:>26s}: threshold {results[label]['thresholds']['roc_corner']:.1f} "
                  f"(roc_corner): test split accuracy {holds[TEST_SPLIT]['accuracy']:.3f}; "
                  "recall of unseen kinds "
                  + ", ".join(f"{holds[kind]['recall']:.2f}" for kind in unseen), flush=True)
    save_strips(score_sets, results, run.out / "thresholds.png",
                    f"{dataset.title}: models trained without {held_out}s; thresholds chosen "
                    "on the validation split")
    table = markdown_table(results, list(unseen))
    with atomic_path(run.out / "table.md") as tmp:
        tmp.write_text(table)
    print(table)
    return write_metrics(run, {
        "held_out_class": held_out,
        "rules": evaluation.THRESHOLD_RULES,
        "iwae_samples": opts.iwae_samples,
        "split": {"validation": int(len(validation)), "test": int(len(test)),
                  "anomalies_per_unseen_kind": int(np.sum(is_anomaly[test]))},
        "unseen_kinds": list(unseen),
        "scores": results,
        "models": models,
    })


if __name__ == "__main__":
    cli.run_script(main)
