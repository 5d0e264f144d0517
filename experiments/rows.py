"""The three kinds of grading row, shared by the AE and VAE scripts and their colour versions.

basic()   reconstructions of the test set, judged by the data set's judge
gen()     images from a generator (a model with a latent sampler): quality and class coverage
anom()    a model trained without the anomaly class scores the test set; how well the scores
          find that class
stack()   the three on the stacked data set, timed (the STACK rows)

Each takes the ``Run``, the data set entry it runs on and the script's ``Options``, returns a
dict of metrics and writes its figures into ``run.out`` (colour ones prefixed ``color_``).
The numbers come from ``evaluation``; this module picks models, data and figures.
"""
from __future__ import annotations

import time

import numpy as np

import evaluation
from models import FAMILIES, SAMPLERS, Generator, make_sampler, zoo
from models.likelihood import posterior_estimates, prior_log_likelihood, reconstruction_nll
from named_data import Dataset

from . import cli
from .cli import Run
from .outputs import (save_class_histogram, save_image_grid, save_reconstruction_figure,
                      save_samples, write_metrics)
from .runs import get_latent_sampler, get_model, load_data

IWAE_SAMPLES = 5  # per distinct channel image: 10,000 test images decode 50,000 latents
# The decoder's mean image, p(pixel = 1) for Bernoulli pixels, is what public implementations
# of the course assignment judge (their sigmoid output), so it is the default.
JUDGED_IMAGE_HELP = ("image the judge sees: the mean (default; for Bernoulli pixels "
                     "p(pixel = 1)), the mode (pixels with p >= 0.5, binary like the data) or a "
                     "random sample")


def families_for(*sections: str):
    """The registered families that can run every one of ``sections``: gen needs
    ``generate_images`` (a GAN has nothing else), basic ``reconstruct`` (an encoder), anom an
    encoder and scores without labels (the CVAE's likelihood needs them)."""
    def can(cls, section: str) -> bool:
        if section == "gen":
            return hasattr(cls, "generate_images")
        return hasattr(cls, "reconstruct") and not (section == "anom" and cls.conditional)

    return tuple(kind for kind, cls in FAMILIES.items()
                 if all(can(cls, section) for section in sections))


def add_judge_flag(parser) -> None:
    parser.add_argument("--judge", choices=("mean", "mode", "sample"), default="mean",
                        help=JUDGED_IMAGE_HELP)


def _prefix(dataset: Dataset) -> str:
    return "color_" if dataset.channels == 3 else ""


def _labels_if_conditional(run: Run, labels):
    return labels if FAMILIES[run.family].conditional else None


def stack(run: Run, dataset: Dataset, options) -> dict:
    """A STACK row: the basic, gen and anom sections on the stacked data set, each timed."""
    stacked = dataset.stacked()
    metrics, seconds = {}, {}
    for section, row in (("basic", basic), ("gen", gen), ("anom", anom)):
        start = time.perf_counter()
        metrics[section] = row(run, stacked, options)
        seconds[section] = round(time.perf_counter() - start, 1)
    return {**metrics, "section_seconds": seconds}


# ---------------------------------------------------------------------------------------------
def basic(run: Run, dataset: Dataset, options) -> dict:
    """Reconstruct the whole test set through the model trained on complete data."""
    x_train, y_train, x_test, y_test = load_data(run, dataset, missing=False)
    labels = _labels_if_conditional(run, y_test)
    model, info = get_model(run, dataset, False, x_train, x_test,
                            labels=_labels_if_conditional(run, y_train), val_labels=labels)
    reconstructions, nll = model.reconstruct(x_test, how=options.judge, seed=run.seed,
                                             labels=labels)
    save_reconstruction_figure(
        x_test[:20], reconstructions[:20], run.out / f"{_prefix(dataset)}reconstructions.png",
        title=f"{run.family.upper()} test images (odd rows) and reconstructions "
              f"({options.judge}; even rows)")
    judged = evaluation.reconstruction_metrics(reconstructions, x_test, y_test, dataset)
    return {
        "model": info,
        "data": dataset.data_name(False),
        "judged_image": options.judge,
        "tolerance": judged.pop("tolerance"),
        "test_images": int(len(x_test)),
        **judged,
        # -log p(x | z) at the code (AE) or the posterior mean (VAE): the ANOM rows' AE score.
        "test_reconstruction_nll_nats": float(np.mean(nll.sum(axis=1))),
        **(_elbo_terms(model, x_test, run.seed)
           if model.prior is not None and labels is None else {}),
    }


def _elbo_terms(model, x, seed: int) -> dict:
    """The test set's mean KL and -ELBO, one sample of q(z|x) per image."""
    estimates = posterior_estimates(model, x, num_samples=1, seed=seed)
    return {"test_kl_nats": float(np.mean(estimates["kl"])),
            "test_neg_elbo_nats": float(-np.mean(estimates["elbo"]))}


# ---------------------------------------------------------------------------------------------
def add_gen_flags(parser, default_samples: int, family: str) -> None:
    parser.add_argument("--samples", type=cli.count, default=default_samples,
                        help=f"number of generated images (default {default_samples})")
    default = FAMILIES[family].default_sampler
    parser.add_argument(
        "--latent", choices=tuple(SAMPLERS), default=default,
        help=f"latent sampler of the generated codes (default {default}): "
             + "; ".join(f"{name} = {cls.description or name}" for name, cls in SAMPLERS.items())
             + ". standard is the family's own prior (N(0, I); a learned prior, a class "
               "prior); flow, diffusion and gmm are fitted once (seconds to minutes) and "
               "kept beside the model file")
    parser.add_argument("--temperature", type=cli.positive_number, default=None,
                        help="with --latent diffusion or gmm: the scale of the sampler's noise "
                             "(every draw of the diffusion chain, each mixture component's "
                             "spread; default: the sampler file's, 1 for the shipped ones, the "
                             "model itself; below 1 colder, surer samples of less variety)")


def generator_for(run: Run, dataset: Dataset, options, model, info, x_train):
    """``(generator, description, sampler info or None)``: the model's decoder fed by the
    --latent sampler. The fitted Gaussian sees every channel's code of (up to) 10,000
    training images: plenty for a d x d covariance, and seconds to fit; the others are fitted
    once and kept beside the model file (``get_latent_sampler``)."""
    d = model.config.latent_dim
    if options.latent != "standard" and not hasattr(model, "encode"):
        raise ValueError(f"--latent {options.latent} fits a sampler to the codes of an "
                         f"encoder; a {model.kind} model has none: use --latent standard.")
    if options.latent == "standard":
        sampler, sampler_info = None, None  # the family's own prior
        description = model.prior_description
    elif options.latent in zoo.EX_POST_KINDS:
        sampler, sampler_info = get_latent_sampler(run, model, info, dataset, options.latent)
        if options.temperature is not None:  # only for a tempered sampler (cli.parse_args)
            sampler.temperature = options.temperature
        description = sampler.description + (
            " fitted to q(z|x) of the training images" if model.prior is not None
            else " fitted to the training codes") + (
            f", temperature {sampler.temperature:g}"
            if getattr(sampler, "temperature", 1.0) != 1.0 else "")
    else:
        codes = model.encode(x_train[:10_000]).reshape(-1, d)
        sampler = make_sampler(options.latent, d).fit(codes, seed=run.seed)
        description = SAMPLERS[options.latent].description or options.latent
        sampler_info = None
    if sampler is None and options.judge == "mean":
        return model, description, sampler_info  # its own generate_images(count, seed, labels)
    return Generator(model, sampler, how=options.judge), description, sampler_info


def gen(run: Run, dataset: Dataset, options) -> dict:
    """Generate ``options.samples`` images, judge them, save samples.npz and figures."""
    x_train, y_train, x_test, y_test = load_data(run, dataset, missing=False)
    model, info = get_model(run, dataset, False, x_train, x_test,
                            labels=_labels_if_conditional(run, y_train),
                            val_labels=_labels_if_conditional(run, y_test))
    generator, latent_description, sampler_info = generator_for(run, dataset, options, model,
                                                                info, x_train)
    images, metrics = evaluation.generate_and_judge(generator, options.samples, dataset,
                                                    seed=run.seed)
    prefix = _prefix(dataset)
    save_samples(images, run.out / f"{prefix}samples.npz")
    save_image_grid(images[:100], run.out / f"{prefix}generated.png",
                    title=f"{run.family.upper()} samples ({options.judge}), z ~ "
                          f"{latent_description}")
    shares = np.array(list(metrics["digit_frequencies_per_channel"].values()))
    save_class_histogram(shares, run.out / f"{prefix}generated_class_frequencies.png",
                         title=f"{run.family.upper()}: classes of confidently judged samples")
    return {
        "model": info,
        "latent_distribution": latent_description,
        **({f"latent_{options.latent}": sampler_info} if sampler_info else {}),
        "judged_image": options.judge,
        **metrics,
        **evaluation.real_images_reference(x_test, dataset),
        "samples_file": str(run.out / f"{prefix}samples.npz"),
    }


# ---------------------------------------------------------------------------------------------
def add_anom_flags(parser, likelihood: bool) -> None:
    parser.add_argument("--top", type=cli.count, default=16, help="anomalies shown (default 16)")
    if likelihood:
        parser.add_argument("--prior-samples", type=cli.count, default=10_000,
                            help="K of the prior Monte Carlo estimate (default 10000)")
        parser.add_argument("--iwae-samples", type=cli.count, default=IWAE_SAMPLES,
                            help="K of the importance-sampling estimate and the ELBO "
                                 f"(default {IWAE_SAMPLES})")


WORST_CHANNEL = "max_channel_"  # prefix of the colour scores that take the worst channel


def anomaly_scores(model, x, seed: int, iwae_samples: int, prior_samples: int = 0) -> dict:
    """Scores per test image, higher = more anomalous: the negated log-likelihood estimates
    (a model with a prior; IWAE and ELBO share the same K samples of q(z|x); the slow
    prior Monte Carlo estimate only if ``prior_samples`` > 0) and the reconstruction NLL.

    Colour: the model factorises over channels, so each score is the sum of three channel
    terms. "An 8 in any channel" is a question about the worst channel, and one odd digit is
    diluted by two ordinary ones in the sum, so the colour rows also score each image by its
    most anomalous channel (prefix max_channel_).
    """
    per_channel = model.config.channels > 1
    scores = {"reconstruction_nll": reconstruction_nll(model, x, per_channel=per_channel)}
    if model.prior is not None:
        estimates = posterior_estimates(model, x, iwae_samples, seed, per_channel=per_channel)
        scores["neg_elbo"], scores["neg_iwae"] = -estimates["elbo"], -estimates["iwae"]
        if prior_samples > 0:
            scores["neg_prior_mc"] = -prior_log_likelihood(model, x, prior_samples, seed,
                                                           per_channel=per_channel)
    if not per_channel:
        return scores
    return {**{name: s.sum(axis=1) for name, s in scores.items()},
            **{WORST_CHANNEL + name: s.max(axis=1) for name, s in scores.items()}}


def _score_label(name: str, options, channels: int) -> str:
    worst = name.startswith(WORST_CHANNEL)
    base = name[len(WORST_CHANNEL):] if worst else name
    label = {"reconstruction_nll": "reconstruction NLL", "neg_elbo": "-ELBO",
             "neg_iwae": f"-IWAE (K={getattr(options, 'iwae_samples', '')})",
             "neg_prior_mc": f"-prior MC (K={getattr(options, 'prior_samples', '')})"}[base]
    if channels == 1:
        return label
    return label + (", worst channel" if worst else ", joint (sum of channels)")


def anom(run: Run, dataset: Dataset, options) -> dict:
    """Train without the anomaly class, score every test image, evaluate how well each score
    finds that class."""
    x_train, _, x_test, y_test = load_data(run, dataset, missing=True)
    model, info = get_model(run, dataset, True, x_train, x_test)
    is_anomaly = evaluation.anomaly_labels(y_test, dataset)
    scores = anomaly_scores(model, x_test, run.seed, getattr(options, "iwae_samples", 1),
                            getattr(options, "prior_samples", 1))
    # IWAE beats the prior Monte Carlo estimate of log p(x) by far (docs/experiments.md).
    default = "neg_iwae" if model.prior is not None else "reconstruction_nll"
    channels = dataset.channels
    if channels > 1:
        default = WORST_CHANNEL + default
    results = {name: evaluation.evaluate_scores(s, is_anomaly) for name, s in scores.items()}

    prefix = _prefix(dataset)
    anomaly_class = dataset.class_names[dataset.anomaly_class]
    # Colour: the worst-channel scores and the default's joint (summed) version.
    plotted = [n for n in scores if channels == 1 or n.startswith(WORST_CHANNEL)
               or WORST_CHANNEL + n == default]
    evaluation.save_curves({_score_label(n, options, channels): scores[n] for n in plotted},
                           is_anomaly, run.out / f"{prefix}anomaly_curves.png",
                           title=f"{run.family.upper()} trained without {anomaly_class}s: "
                                 f"finding the {anomaly_class}s")
    order = np.argsort(-scores[default])[: options.top]
    save_image_grid(x_test[order], run.out / f"{prefix}top_anomalies.png",
                    title=f"{options.top} most anomalous test images by "
                          f"{_score_label(default, options, channels)}",
                    columns=8, captions=[f"{y_test[i]}" for i in order])
    summary = {
        "model": info,
        "data": dataset.data_name(True),
        "anomaly": dataset.anomaly_text,
        "default_score": default,
        "roc_auc": results[default]["roc_auc"],
        "pr_auc": results[default]["pr_auc"],
        "top_k": int(options.top),
        f"top_k_share_of_{anomaly_class}s": float(np.mean(is_anomaly[order])),
        "scores": results,
    }
    if model.prior is not None:
        summary["mean_log_px_nats"] = {
            name: float(-np.mean(s)) for name, s in scores.items()
            if name != "reconstruction_nll" and not name.startswith(WORST_CHANNEL)}
    return summary


# ---------------------------------------------------------------------------------------------
ROWS = {"basic": basic, "gen": gen, "anom": anom, "stack": stack}


def main(doc: str, row: str, family: str, section: str, argv=None, samples: int = 10_000,
         other_families: bool = True, likelihood: bool = True):
    """A grading row's whole script: its flags, the row, metrics.json. ``other_families``:
    offer --family (every registered family that can run the section) and --learned-prior."""
    def flags(parser) -> None:
        if section in ("basic", "gen", "stack"):
            add_judge_flag(parser)
        if section in ("gen", "stack"):
            add_gen_flags(parser, samples, family)
        if section in ("anom", "stack"):
            add_anom_flags(parser, likelihood)

    needs = ("basic", "gen", "anom") if section == "stack" else (section,)
    run, options = cli.parse_args(doc, row, family, argv, extra=flags,
                                  families=families_for(*needs) if other_families else ())
    return write_metrics(run, ROWS[section](run, run.dataset, options))
