"""CVAE: draw any requested digit or three-digit number, classify by likelihood, find the 8s.

The conditional VAE (models/cvae.py) has the digit label at its encoder and decoder; a colour
image is the mono model per channel, each channel conditioned on its own digit (R ones, G tens,
B hundreds). Codes come from its class prior p(z | y), a Gaussian per digit fitted to the
training codes (models/cvae.py; N(0, I), the prior it was trained with, leaves holes in which a
"1" decodes as a 7); the N(0, I) numbers are reported beside.

Sections (each one's seconds in metrics.json):
  generate    mono: --per-digit samples of each digit; colour: --per-number samples of every
              number 000-999; z from the class prior (mono also from N(0, I), beside).
              Conditional accuracy = the judge is confident (tolerance 0.8 mono, 0.5
              colour) and its class is the requested one. Figures: digits x styles,
              style transfer (test images' z decoded with every label), requested numbers.
              samples.npz / color_samples.npz hold ``images`` and ``requested_labels``.
  classify    the generative classifier argmax_y log p(x|y) + log p(y), log p(x|y) importance-
              sampled with q(z|x,y): test accuracy at K = --full-k on the whole test set and at
              each --subset-k on --subset test images (and at K = --full-k with N(0, I) as
              p(z|y)); the confusion matrix; how it treats non-digits (noise, constants)
  classify_bayes_trained  the same for the CVAE trained for its own Bayes rule as well
              (``cvae_bayes_mono_complete``: the ELBO's cross-entropy over the ten labels
              in its loss; MNIST only)
  classify_position  the Bayes-trained recipe's two trainings (``cvae_bayes_mono_complete``,
              run seed 0, and ``cvae_bayes_mono_complete_seed1``) with the digit's position a
              latent (--max-shift: p(x|y) the mean over the image's moves by whole pixels),
              each alone, as an equal mixture (one model) and as an ensemble (the mean of
              their posteriors), on the whole test set at K = --full-k
  anomaly     the CVAE trained without 8s: score = -log sum_y p(x|y) p(y), p(y) the training
              digit frequencies (p(8) = 0); ROC / PR AUC mono and colour (worst channel), beside
              the VAE's from results/vae_anom and results/vae_stack when they exist

    python experiments/cvae.py            # shipped weights, about 10 minutes here
    python experiments/cvae.py --quick    # tiny models on a few hundred images
"""
import time
import warnings

import numpy as np

import evaluation
from atomic_io import read_json_object, save_figure
from experiments import REPO_ROOT, cli
from experiments.cli import count
from experiments.outputs import save_image_grid, save_samples, write_metrics
from experiments.runs import get_model, load_data, shipped_or_quick
from models import make_sampler, zoo
from models.conditional import (MAX_SHIFT, class_log_likelihoods, class_posterior,
                                log_class_prior, marginal_log_likelihood,
                                mixture_log_likelihoods)
from stacked_mnist import fold_channels

QUICK = {"per_digit": 20, "per_number": 1, "subset": 100, "subset_k": 3, "anomaly_samples": 1,
         "non_digits": 20}


def add_flags(parser) -> None:
    parser.add_argument("--per-digit", type=count, default=1000,
                        help="mono samples per requested digit (default 1000)")
    parser.add_argument("--per-number", type=count, default=26,
                        help="colour samples per requested number 000-999 (default 26)")
    parser.add_argument("--full-k", type=count, default=1,
                        help="importance samples per (image, label) on the whole test set "
                             "(default 1)")
    parser.add_argument("--subset", type=count, default=1000,
                        help="test images for the larger K (default 1000)")
    parser.add_argument("--subset-k", type=count, nargs="+", default=[10, 100],
                        help="importance samples per (image, label) on the subset "
                             "(default 10 100)")
    parser.add_argument("--max-shift", type=cli.integer_at_least(0, MAX_SHIFT), default=1,
                        help="classify_position: the digit's moves, up to this many pixels "
                             "each way (default 1: 9 positions, 9 times the work of one; 0: "
                             "the image as it is)")
    parser.add_argument("--anomaly-samples", type=count, default=2,
                        help="importance samples per (image, label) for the anomaly score "
                             "(default 2)")
    parser.add_argument("--non-digits", type=count, default=200,
                        help="uniform-noise images for the classifier's non-digit test "
                             "(default 200; plus 11 constant images)")


def timed(seconds: dict, name: str, work):
    start = time.perf_counter()
    result = work()
    seconds[name] = round(time.perf_counter() - start, 1)
    return result


def requested(run, opts, channels: int) -> np.ndarray:
    """The labels asked for: every digit --per-digit times, or every number --per-number."""
    if channels == 1:
        return np.repeat(np.arange(10), opts.per_digit)
    return np.repeat(np.arange(1000), opts.per_number)


def section_generate(run, opts, model, dataset, x_test, y_test) -> dict:
    channels = dataset.channels
    labels = requested(run, opts, channels)
    images = evaluation.judged_images(model.decode_images(
        model.class_codes(labels, seed=run.seed), labels=labels))
    prefix = "" if channels == 1 else "color_"
    save_samples(images, run.out / f"{prefix}samples.npz", requested_labels=labels)
    if channels == 1:
        # Rows: digits; columns: one u ~ N(0, I) each, through every digit's class prior.
        u = np.random.default_rng(cli.derive_seed(run.seed, "style_grid")).standard_normal(
            (10, model.config.latent_dim))
        digits = np.repeat(np.arange(10), 10)
        grid = model.decode_images(model.class_codes(digits, noise=np.tile(u, (10, 1))),
                                   labels=digits)
        save_image_grid(grid, run.out / "cvae_digits.png", columns=10,
                               title="CVAE: row = requested digit, column = one u (a style)")
        style_transfer(run, opts, model, x_test, y_test)
        from_standard = evaluation.judged_images(model.decode_images(
            model.sample_latents(len(labels), make_sampler("standard", model.config.latent_dim),
                                 seed=run.seed), labels=labels))
        beside = {"with_standard_normal_z": evaluation.conditional_metrics(
            from_standard, labels, dataset)}
    else:
        beside = {}  # colour from N(0, I): see docs/experiments.md, "The CVAE's class prior"
        shown = np.random.default_rng(run.seed).choice(len(labels), 40, replace=False)
        save_image_grid(images[shown], run.out / "color_cvae_numbers.png", columns=10,
                               captions=[f"{labels[i]:03d}" for i in shown],
                               title="CVAE colour: requested numbers (caption)")
    return {
        "samples": int(len(labels)),
        "samples_per_label": int(len(labels) // 10 ** channels),
        "labels": 10 ** channels,
        "tolerance": dataset.tolerance,
        "latent": "class prior p(z|y)",
        **evaluation.conditional_metrics(images, labels, dataset),
        **beside,
        "samples_file": zoo.shown_path(run.out / f"{prefix}samples.npz"),
    }


def style_transfer(run, opts, model, x_test, y_test, count: int = 8) -> None:
    """Each row: a test image, then its z (posterior mean given its own label) decoded with
    every label 0..9."""
    pick = np.random.default_rng(run.seed).choice(len(x_test), count, replace=False)
    z = model.encode(x_test[pick], labels=y_test[pick])
    decoded = model.decode_images(np.repeat(z, 10, axis=0),
                                  labels=np.tile(np.arange(10), count)).reshape(count, 10, 28,
                                                                               28, 1)
    rows = np.concatenate([x_test[pick][:, np.newaxis], decoded], axis=1)
    save_image_grid(rows.reshape(-1, 28, 28, 1), run.out / "cvae_style_transfer.png",
                           columns=11, captions=(["test"] + [str(d) for d in range(10)]) * count,
                           title="CVAE style transfer: a test image's z decoded with every label")


# The CVAE trained for its own Bayes rule as well (models/zoo.py), classified beside the row's,
# and its recipe's two trainings (run seeds 0 and 1), which the position section combines as
# one model, p(x | y) = (p_0(x | y) + p_1(x | y)) / 2, and as an ensemble of two classifiers.
BAYES_TRAINED = "cvae_bayes_mono_complete"
BAYES_TRAININGS = (BAYES_TRAINED, "cvae_bayes_mono_complete_seed1")


def section_classify(run, opts, model, x_test, y_test, figure: str = "cvae",
                     title: str = "CVAE") -> dict:
    log_p_y = log_class_prior(model.metadata.get("digit_counts"))
    subset = np.random.default_rng(run.seed).permutation(len(x_test))[: opts.subset]
    runs, confusion = {}, None
    everything = np.arange(len(x_test))
    for k, pick, prior in ([(opts.full_k, everything, "class")]
                           + [(k, subset, "class") for k in opts.subset_k]
                           + [(opts.full_k, everything, "standard")]):
        print(f"classifying {len(pick)} test images, K = {k}, {prior} prior: "
              f"{len(pick) * 10 * k:,} decoder passes", flush=True)
        start = time.perf_counter()
        log_lik = class_log_likelihoods(model, x_test[pick], num_samples=k, seed=run.seed,
                                        prior=prior)[:, 0]
        seconds = time.perf_counter() - start
        posterior = class_posterior(log_lik, log_p_y)
        predictions = posterior.argmax(axis=1)
        key = (f"K={k}, {'all' if len(pick) == len(x_test) else len(pick)} test images"
               + (", N(0, I) as p(z|y)" if prior == "standard" else ""))
        runs[key] = {"num_samples": k, "images": int(len(pick)), "prior": prior,
                     "accuracy": float(np.mean(predictions == y_test[pick])),
                     "seconds": round(seconds, 1),
                     "decoder_passes_per_second": round(len(pick) * 10 * k / seconds)}
        if confusion is None:  # the whole test set's
            confusion = np.zeros((10, 10), np.int64)
            np.add.at(confusion, (y_test[pick], predictions), 1)
            digits_max = log_lik.max(axis=1)
            save_confusion(confusion, run.out / f"{figure}_confusion.png",
                           f"{title} generative classifier, {key}: "
                           f"{100 * runs[key]['accuracy']:.2f} % correct")
    return {"p_y": "digit frequencies of the training data", "runs": runs,
            "confusion_matrix_rows_true_columns_predicted": confusion.tolist(),
            "non_digits": non_digits(run, opts, model, log_p_y, digits_max)}


def section_position(run, opts, models: dict, x_test, y_test) -> dict:
    """The Bayes-trained CVAEs' classifier with the digit's position a latent: each model
    ({name: model}, all trained on one data set) alone, the Bayes rule of their equal mixture
    (one generative model), and their ensemble (the mean of the models' posteriors p(y | x))."""
    log_p_y = log_class_prior(next(iter(models.values())).metadata.get("digit_counts"))

    def accuracy(posterior) -> float:
        return float(np.mean(posterior.argmax(axis=1) == y_test))

    start = time.perf_counter()
    log_liks, posteriors = [], []
    for name, model in models.items():
        print(f"classifying {len(x_test)} test images with {name}, K = {opts.full_k}, "
              f"{(2 * opts.max_shift + 1) ** 2} positions", flush=True)
        log_liks.append(class_log_likelihoods(model, x_test, num_samples=opts.full_k,
                                              seed=run.seed, max_shift=opts.max_shift)[:, 0])
        posteriors.append(class_posterior(log_liks[-1], log_p_y))
    mixture = class_posterior(mixture_log_likelihoods(log_liks), log_p_y)
    return {"models": list(models), "num_samples": opts.full_k, "max_shift": opts.max_shift,
            "images": int(len(x_test)), "seconds": round(time.perf_counter() - start, 1),
            "accuracy_each": dict(zip(models, map(accuracy, posteriors))),
            "accuracy_mixture": accuracy(mixture),
            "accuracy_ensemble": accuracy(np.mean(posteriors, axis=0))}


def non_digits(run, opts, model, log_p_y, digits_max) -> dict:
    """max_y log p(x|y) and the classifier's answer for noise and constant images, beside the
    real test digits'."""
    rng = np.random.default_rng(run.seed)
    sets = {"uniform_noise": rng.random((opts.non_digits, 28, 28, 1)).astype(np.float32),
            "constant": np.linspace(0, 1, 11, dtype=np.float32)[:, None, None, None]
            * np.ones((1, 28, 28, 1), np.float32)}
    results = {"test_digits": _spread(digits_max)}
    k = opts.full_k  # as for the test digits
    for name, images in sets.items():
        log_lik = class_log_likelihoods(model, images, num_samples=k, seed=run.seed)[:, 0]
        posterior = class_posterior(log_lik, log_p_y)
        results[name] = {**_spread(log_lik.max(axis=1)), "num_samples": k,
                         "mean_top_posterior": float(posterior.max(axis=1).mean()),
                         "predicted_digit_counts": np.bincount(posterior.argmax(axis=1),
                                                               minlength=10).tolist()}
    results["lowest_test_digit_above_every_non_digit"] = bool(
        digits_max.min() > max(results[n]["max"] for n in sets))
    return results


def _spread(values) -> dict:
    """max_y log p(x|y) in nats: mean, min, median, max."""
    return {"max_log_px_given_y_mean": float(np.mean(values)), "min": float(np.min(values)),
            "median": float(np.median(values)), "max": float(np.max(values))}


def save_confusion(confusion, path, title: str) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5.5))
    shown = np.log10(1 + confusion)
    ax.imshow(shown, cmap="Blues")
    for (true, predicted), value in np.ndenumerate(confusion):
        ax.text(predicted, true, str(value), ha="center", va="center", fontsize=7,
                color="white" if shown[true, predicted] > shown.max() / 2 else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def section_anomaly(run, opts) -> dict:
    """Scores of the CVAE trained without 8s, mono and colour; each distinct channel image of
    both test sets is estimated once (the colour channels are MNIST test digits)."""
    mono_data, colour_data = run.dataset, run.dataset.stacked()
    x_train, y_train, x_mono, y_mono = load_data(run, mono_data, missing=True)
    model, info = get_model(run, mono_data, True, x_train, x_mono, labels=y_train,
                            val_labels=y_mono)
    _, _, x_colour, y_colour = load_data(run, colour_data, missing=True)
    log_p_y = log_class_prior(model.metadata.get("digit_counts"))
    both = np.concatenate([x_mono, fold_channels(x_colour)[0]])
    print(f"anomaly scores of {len(x_mono)} mono and {len(x_colour)} colour test images, "
          f"K = {opts.anomaly_samples}", flush=True)
    log_lik = class_log_likelihoods(model, both, num_samples=opts.anomaly_samples,
                                    seed=run.seed)[:, 0]
    scores = {"neg_log_sum_y": -marginal_log_likelihood(log_lik, log_p_y),
              "neg_max_y": -log_lik.max(axis=1)}
    mono = {name: s[: len(x_mono)] for name, s in scores.items()}
    worst = {name: s[len(x_mono):].reshape(-1, 3).max(axis=1) for name, s in scores.items()}
    mono_8s = evaluation.anomaly_labels(y_mono, mono_data)
    colour_8s = evaluation.anomaly_labels(y_colour, colour_data)
    evaluation.save_curves({"mono, -log sum_y p(x|y) p(y)": mono["neg_log_sum_y"],
                 "mono, -max_y log p(x|y)": mono["neg_max_y"]}, mono_8s,
                run.out / "cvae_anomaly_curves.png", "CVAE trained without 8s: finding the 8s")
    evaluation.save_curves({"colour worst channel, -log sum_y p(x|y) p(y)": worst["neg_log_sum_y"],
                 "colour worst channel, -max_y log p(x|y)": worst["neg_max_y"]}, colour_8s,
                run.out / "color_cvae_anomaly_curves.png",
                "CVAE trained without 8s: an 8 in any channel")
    return {"model": info, "num_samples": opts.anomaly_samples,
            "default_score": "neg_log_sum_y",
            "mono": {name: evaluation.evaluate_scores(s, mono_8s) for name, s in mono.items()},
            "colour_worst_channel": {name: evaluation.evaluate_scores(s, colour_8s)
                                     for name, s in worst.items()},
            "vae_for_comparison": vae_numbers()}


def vae_numbers() -> dict:
    """The VAE's default anomaly AUCs from its rows' last runs (results/), if there are any."""
    found = {}
    for row, key in (("vae_anom", None), ("vae_stack", "anom")):
        path = REPO_ROOT / "results" / row / "metrics.json"
        metrics = read_json_object(path, "metrics file")
        try:
            metrics = metrics[key] if key else metrics
            found[row] = {"score": metrics["default_score"], "roc_auc": metrics["roc_auc"],
                          "pr_auc": metrics["pr_auc"], "file": f"results/{row}/metrics.json"}
        except (KeyError, TypeError):  # no file, or one without the anomaly numbers
            if metrics is not None:
                warnings.warn(f"ignoring {path}: it holds no anomaly AUCs.", stacklevel=2)
    return found or {"missing": "run python experiments/vae_anom.py and vae_stack.py"}


def main(argv=None):
    run, opts = cli.parse_args(__doc__, "cvae", "cvae", argv, extra=add_flags,
                               quick_caps=QUICK)
    x_train, y_train, x_test, y_test = load_data(run, run.dataset)
    mono, info = get_model(run, run.dataset, False, x_train, x_test, labels=y_train,
                           val_labels=y_test)
    colour = mono.with_channels(3)  # the mono subnet on R, G and B, one set of weights
    metrics, seconds = {"model": info}, {}
    metrics["generate_mono"] = timed(seconds, "generate_mono", lambda: section_generate(
        run, opts, mono, run.dataset, x_test, y_test))
    metrics["generate_colour"] = timed(seconds, "generate_colour", lambda: section_generate(
        run, opts, colour, run.dataset.stacked(), x_test, y_test))
    metrics["classify"] = timed(seconds, "classify", lambda: section_classify(
        run, opts, mono, x_test, y_test))
    if run.dataset.name == zoo.recipe(BAYES_TRAINED).dataset:
        bayes_trained = {name: shipped_or_quick(run, name) for name in BAYES_TRAININGS}
        metrics["classify_bayes_trained"] = timed(seconds, "classify_bayes_trained", lambda: {
            "model": BAYES_TRAINED, **section_classify(
                run, opts, bayes_trained[BAYES_TRAINED], x_test, y_test, "cvae_bayes",
                "Bayes-trained CVAE")})
        metrics["classify_position"] = timed(seconds, "classify_position", lambda: (
            section_position(run, opts, bayes_trained, x_test, y_test)))
    metrics["anomaly"] = timed(seconds, "anomaly", lambda: section_anomaly(run, opts))
    return write_metrics(run, {**metrics, "section_seconds": seconds})


if __name__ == "__main__":
    cli.run_script(main)
