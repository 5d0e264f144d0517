"""VAE-BETA: what the KL weight beta does, measured on one recipe trained with six betas.

-ELBO_beta = -E_q log p(x|z) + beta KL(q(z|x) || N(0, I)). Every beta has two shipped models
(``models.zoo.BETAS``, ``zoo.beta_name``): one trained on MONO_BINARY_COMPLETE, one without the
8s; a small network (no dense layer, 16-dimensional latent, 12 epochs) so all twelve fit the
weights budget. Per beta, on the test sets:

  -ELBO, rate and distortion  in nats: rate = KL(q(z|x) || N(0, I)), distortion = -E_q log
                              p(x|z) (one sample of q), -ELBO = rate + distortion (beta = 1's
                              objective, whatever beta the model was trained with)
  active units                latent dimensions whose posterior mean varies over the test set
                              by more than 0.01 (Burda et al. 2015), and those whose average
                              KL(q(z_i|x) || N(0, 1)) exceeds 0.1 nats
  reconstruction accuracy     the judge on the decoded posterior means, tolerance 0.8
  generation                  z ~ N(0, I): --samples colour images (the mono model on R, G and
                              B), judged once per channel image: mono quality and coverage
                              over all the channel images (tolerance 0.8), colour quality,
                              coverage of the 1000 classes and the class frequencies' KL to
                              uniform (tolerance 0.5; beside the KL a uniform generator's
                              samples would show, (classes - 1) / (2 n), since 10,000 samples
                              keep the judging time in budget: the rows draw 26,000)
  anomaly                     ROC / PR AUC for the 8s, mono, -IWAE (K = --iwae-samples) of the
                              model trained without 8s

Figures: the rate-distortion curve, quality against beta, and latent traversals of beta = 1
against beta = 4 (each row one dimension swept over [-3, 3], rows ordered by KL).

    python experiments/vae_beta.py                 # shipped weights, under 3 minutes here
    python experiments/vae_beta.py --betas 1 4     # some of the betas
    python experiments/vae_beta.py --quick         # tiny models on a few hundred images
    python experiments/train_all.py --only vae_beta4_mono_complete   # train one again
"""
import time

import numpy as np

import evaluation
from experiments import cli
from experiments.cli import count
from experiments.outputs import write_metrics
from experiments.runs import load_data, shipped_or_quick
from models import zoo
from models.latent import activity, kl_per_dimension, traverse
from models.likelihood import posterior_estimates
from stacked_mnist import fold_channels
from verification_net import combine_channels

QUICK = {"samples": 200}


def add_flags(parser) -> None:
    parser.add_argument("--betas", type=float, nargs="+", default=list(zoo.BETAS),
                        choices=zoo.BETAS, metavar="BETA",
                        help=f"the betas to evaluate (default all: {list(zoo.BETAS)})")
    parser.add_argument("--samples", type=count, default=10_000,
                        help="colour samples per beta, three mono samples each (default "
                             "10000)")
    parser.add_argument("--iwae-samples", type=count, default=5,
                        help="importance samples of the anomaly score (default 5)")


def judge_samples(model, count: int, seed: int, dataset) -> dict:
    """Mono and colour quality and coverage, and the colour KL to uniform, of ``count`` colour
    samples from N(0, I), each channel image judged once and the colour verdicts formed by
    the judge's own rule (``verification_net.combine_channels``)."""
    colour = model.with_channels(3)
    mono_images = fold_channels(evaluation.judged_images(colour.generate_images(count,
                                                                                seed=seed)))[0]
    digits, beliefs = evaluation.verdicts(mono_images, dataset)
    results = {}
    for entry, (classes, belief) in (
            (dataset, (digits, beliefs)),
            (dataset.stacked(), combine_channels(digits.reshape(-1, 3), beliefs.reshape(-1, 3)))):
        judged = evaluation.generation_metrics(None, entry, classes, belief)
        results["mono" if entry.channels == 1 else "colour"] = {
            "samples": judged["samples"], "quality": judged["quality_predictability"],
            "coverage": judged["coverage"]}
    results["colour"]["kl_to_uniform_nats"] = judged["kl_confident_samples_to_uniform_nats"]
    results["colour"]["kl_of_a_uniform_generator_expected_nats"] = judged[
        "kl_of_a_uniform_generator_expected_nats"]
    return results


def evaluate(run, opts, beta: float, x_test, y_test, x_test_missing, y_test_missing) -> dict:
    dataset = run.dataset
    model = shipped_or_quick(run, zoo.beta_name(beta, False))
    estimates = posterior_estimates(model, x_test, num_samples=1, seed=run.seed)
    rate = float(np.mean(estimates["kl"]))
    neg_elbo = float(-np.mean(estimates["elbo"]))
    means, scales = model.mono_code_distribution(x_test)
    _, active = activity(means)
    kl = kl_per_dimension(means, scales)
    accuracy = evaluation.reconstruction_metrics(model.reconstruct_images(x_test), x_test,
                                                 y_test, dataset)["reconstruction_accuracy"]
    without_8s = shipped_or_quick(run, zoo.beta_name(beta, True))
    scores = -posterior_estimates(without_8s, x_test_missing, opts.iwae_samples,
                                  run.seed)["iwae"]
    anomaly = evaluation.evaluate_scores(scores, evaluation.anomaly_labels(y_test_missing,
                                                                           dataset))
    return {
        "model_file": ("trained by --quick" if run.quick
                       else zoo.shown_path(zoo.path(zoo.beta_name(beta, False)))),
        "test_neg_elbo_nats": neg_elbo,
        "rate_nats": rate,
        "distortion_nats": neg_elbo - rate,
        "active_units": int(active.sum()),
        "units_above_0.1_nats": int(np.sum(kl > 0.1)),
        "kl_per_dimension_nats": np.round(kl, 3).tolist(),
        "reconstruction_accuracy": float(accuracy),
        **judge_samples(model, opts.samples, run.seed, dataset),
        "anomaly_roc_auc": anomaly["roc_auc"],
        "anomaly_pr_auc": anomaly["pr_auc"],
    }, model, (means, scales)


def save_curves(results: dict, path) -> None:
    import matplotlib.pyplot as plt

    from atomic_io import save_figure

    betas = sorted(results)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    rate = [results[b]["rate_nats"] for b in betas]
    distortion = [results[b]["distortion_nats"] for b in betas]
    left.plot(rate, distortion, "o-")
    for b, r, d in zip(betas, rate, distortion):
        left.annotate(f"beta {b:g}", (r, d), textcoords="offset points", xytext=(5, 5),
                      fontsize=8)
    left.set_xlabel("rate: KL(q(z|x) || N(0, I)), nats")
    left.set_ylabel("distortion: -E_q log p(x|z), nats")
    left.set_title("Rate-distortion, MNIST test set", fontsize=10)
    for key, label in (("mono", "mono, tolerance 0.8"), ("colour", "colour, tolerance 0.5")):
        right.plot(betas, [100 * results[b][key]["quality"] for b in betas], "o-", label=label)
    right.plot(betas, [100 * results[b]["reconstruction_accuracy"] for b in betas], "s--",
               label="reconstruction accuracy, mono")
    right.set_xscale("log", base=2)
    right.set_xlabel("beta")
    right.set_ylabel("%")
    right.set_title("Sample quality (z ~ N(0, I)) against beta", fontsize=10)
    right.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def save_traversals(panels: dict, path) -> None:
    """One grid per beta side by side: rows = dimensions by decreasing KL, over [-3, 3]."""
    import matplotlib.pyplot as plt

    from atomic_io import save_figure

    values = np.linspace(-3, 3, 9)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 8))
    for ax, (beta, (model, (means, scales))) in zip(np.atleast_1d(axes), panels.items()):
        kl = kl_per_dimension(means, scales)
        order = np.argsort(-kl)
        codes = traverse(means[0], values)[order]  # (d, 9, d)
        images = model.decode_images(codes.reshape(-1, codes.shape[-1]))[..., 0]
        rows = images.reshape(len(order), len(values), 28, 28)
        mosaic = 1 - rows.transpose(0, 2, 1, 3).reshape(len(order) * 28, len(values) * 28)
        ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1)
        ax.set_yticks(np.arange(len(order)) * 28 + 14)
        ax.set_yticklabels([f"{kl[i]:.2f}" for i in order], fontsize=7)
        ax.set_xticks(np.arange(len(values)) * 28 + 14)
        ax.set_xticklabels([f"{v:g}" for v in values], fontsize=7)
        ax.set_ylabel("dimension's KL, nats")
        ax.set_title(f"beta = {beta:g}", fontsize=10)
    fig.suptitle("Traversals of a test image's posterior mean, one dimension per row")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main(argv=None):
    run, opts = cli.parse_args(__doc__, "vae_beta", "vae", argv, extra=add_flags,
                               quick_caps=QUICK, trains=False, datasets=("mnist",))
    _, _, x_test, y_test = load_data(run, run.dataset)
    _, _, x_missing, y_missing = load_data(run, run.dataset, missing=True)
    results, panels, seconds = {}, {}, {}
    for beta in sorted(set(opts.betas)):
        start = time.perf_counter()
        results[beta], model, codes = evaluate(run, opts, beta, x_test, y_test, x_missing,
                                               y_missing)
        if beta in (1.0, 4.0):
            panels[beta] = (model, codes)
        seconds[f"beta={beta:g}"] = round(time.perf_counter() - start, 1)
        row = results[beta]
        print(f"beta {beta:g}: -ELBO {row['test_neg_elbo_nats']:.1f} = rate "
              f"{row['rate_nats']:.1f} + distortion {row['distortion_nats']:.1f}; "
              f"{row['active_units']} active ({row['units_above_0.1_nats']} above 0.1 nats); "
              f"quality {100 * row['mono']['quality']:.1f} % / "
              f"{100 * row['colour']['quality']:.1f} %; AUC {row['anomaly_roc_auc']:.3f}",
              flush=True)
    save_curves(results, run.out / "beta_curves.png")
    if panels:
        save_traversals(panels, run.out / "beta_traversals.png")
    return write_metrics(run, {"betas": {f"{b:g}": r for b, r in results.items()},
                               "section_seconds": seconds})


if __name__ == "__main__":
    cli.run_script(main)
