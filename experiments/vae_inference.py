"""VAE-INFERENCE: what the encoder costs, and image completion from the observed pixels alone.

Inference (the first --images mono test images): for each image a diagonal Gaussian
q(z | psi_n) is fitted to the frozen decoder by Adam on the ELBO (models/inference.py), from a
random start and from the best of --search-samples prior draws (both without the encoder),
and from the encoder's q(z|x) (refinement; where its own estimate finds the result no better,
the encoder's q is kept). Reports each q's ELBO on every image (--eval-samples samples, the
same noise for every q), the amortisation gap (refined - encoder ELBO per image; images with
a difference below 0.25 nats are measured again with K samples), log p(x) by IWAE with K =
--iwae-samples under the encoder's, the random-start and the refined q (on the first
--iwae-images images), the judge's accuracy (tolerance 0.8) on the decoded means, the ELBO
along the optimisation, steps to converge and images per second.

Completion (--completion-images stacked test images per mask, the same mask on every
channel, and their channel digits as mono images): the missing pixels of four masks (left
half observed, top half observed, a random half observed, all but a centre 12 x 12 square
observed) are filled from q fitted to the observed pixels alone (--completion-steps steps
from the best prior draw, no encoder), decoded at its mean; observed pixels stay untouched.
Baselines: missing pixels 0, the per-pixel training mean, the encoder applied to the masked
image. Accuracy = the judge is confident (mono 0.8, colour 0.5) and right.

Writes results/vae_inference/elbo_vs_step.png, completions.png, color_completions.png,
completion_accuracy.png, completions.npz and color_completions.npz (arrays images (M, 28, 28,
C), labels (M,), masks (M,) mask names, observed (M, 28, 28, 1) the pixel masks) and
metrics.json (with section_seconds).

    python experiments/vae_inference.py                       # shipped weights, about 4 min
    python experiments/vae_inference.py --iwae-images 500     # IWAE on every image (+7 min)
    python experiments/vae_inference.py --sections completion --completion-images 2000
"""
import time

import numpy as np

from atomic_io import atomic_path, save_figure
from experiments import cli
from experiments.outputs import write_metrics
from experiments.runs import get_model, load_data
from models import inference
from stacked_mnist import fold_channels

QUICK = {"images": 48, "iwae_images": 8, "eval_samples": 8, "steps": 10, "refine_steps": 5,
         "search_steps": 5, "completion_images": 12, "completion_steps": 5,
         "search_samples": 500}
Q_NAMES = {"encoder": "encoder q(z|x)", "random": "fitted from a random start (no encoder)",
           "search": "fitted from the best prior draw (no encoder)",
           "refined": "fitted from the encoder's q (refined)"}
FIT_INIT = {"random": "random", "search": "search", "refined": "encoder"}
IWAE_Q = ("encoder", "random", "refined")
SECTIONS = ("inference", "completion")
RECHECK_BELOW = 0.25  # nats  # log p(x) by IWAE under each of these q


def add_flags(parser) -> None:
    count = cli.count
    parser.add_argument("--images", type=count, default=500,
                        help="mono test images of the inference section (default 500)")
    parser.add_argument("--steps", type=count, default=100,
                        help="Adam steps of the fit from a random start (default 100)")
    parser.add_argument("--search-steps", type=count, default=50,
                        help="Adam steps of the fit from the best prior draw (default 50)")
    parser.add_argument("--refine-steps", type=count, default=50,
                        help="Adam steps refining the encoder's q (default 50)")
    parser.add_argument("--eval-samples", type=count, default=32,
                        help="samples of each q for the per-image ELBO (default 32)")
    parser.add_argument("--iwae-samples", type=count, default=1000,
                        help="K of the IWAE estimate of log p(x) under each q (default 1000)")
    parser.add_argument("--iwae-images", type=count, default=25,
                        help="images (the first ones) given the IWAE estimate; it decodes K "
                             "latents per image and q (default 25)")
    parser.add_argument("--completion-images", type=count, default=500,
                        help="stacked test images per mask; the mono completions are their "
                             "channel digits, three times as many (default 500)")
    parser.add_argument("--completion-steps", type=count, default=15,
                        help="Adam steps of each completion fit (default 15)")
    parser.add_argument("--search-samples", type=count, default=20_000,
                        help="prior draws the encoder-free starts choose from (default 20000)")
    parser.add_argument("--masks", nargs="+", choices=inference.MASKS,
                        default=list(inference.MASKS), help="masks to complete (default all)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="what to run (default both)")


def main(argv=None):
    run, opts = cli.parse_args(__doc__, "vae_inference", "vae", argv, extra=add_flags,
                               quick_caps=QUICK)  # seconds, whatever the flags say
    seconds, metrics = {}, {}
    start = time.perf_counter()
    if "inference" in opts.sections:
        metrics["inference"] = inference_section(run, opts, seconds)
    if "completion" in opts.sections:
        metrics["completion"] = completion_section(run, opts, seconds)
    seconds["total"] = round(time.perf_counter() - start, 1)
    metrics["section_seconds"] = seconds
    return write_metrics(run, metrics)


# ---------------------------------------------------------------------------------------------
def inference_section(run, opts, seconds: dict) -> dict:
    tick = time.perf_counter()
    x_train, _, x_test, y_test = load_data(run, run.dataset)
    model, info = get_model(run, run.dataset, False, x_train, x_test)
    x, y = x_test[:opts.images], y_test[:opts.images]
    seconds["load_mono"] = round(time.perf_counter() - tick, 1)

    tick = time.perf_counter()
    q = {"encoder": inference.encoder_q(model, x)}
    fits = {}
    for name, steps in (("random", opts.steps), ("search", opts.search_steps),
                        ("refined", opts.refine_steps)):
        # The refinement keeps the encoder's q where its own ELBO estimate (noise independent
        # of the evaluation below) finds the fitted q no better.
        refine = name == "refined"
        fits[name] = inference.fit_posteriors(
            model, x, steps=steps, init=FIT_INIT[name], seed=run.seed,
            eval_samples=opts.eval_samples if refine else 0, keep_better=refine,
            search_samples=opts.search_samples)
        q[name] = (fits[name].mean, fits[name].scale)
        print(f"  fit from {FIT_INIT[name]}: {len(x)} images x {steps} steps in "
              f"{fits[name].seconds:.1f} s", flush=True)
    seconds["inference_fits"] = round(time.perf_counter() - tick, 1)

    # Every q's ELBO on every image with the same noise (common random numbers): the
    # per-image differences are nearly free of sampling noise.
    tick = time.perf_counter()
    elbo = {name: inference.proposal_estimates(model, x, mean, scale,
                                               num_samples=opts.eval_samples,
                                               seed=run.seed)["elbo"]
            for name, (mean, scale) in q.items()}
    seconds["inference_elbo"] = round(time.perf_counter() - tick, 1)

    tick = time.perf_counter()
    sub = slice(0, min(opts.iwae_images, len(x)))
    iwae = {name: inference.proposal_estimates(model, x[sub], q[name][0][sub], q[name][1][sub],
                                               num_samples=opts.iwae_samples, seed=run.seed)
            for name in IWAE_Q}
    seconds["inference_iwae"] = round(time.perf_counter() - tick, 1)

    tick = time.perf_counter()
    net, tolerance = run.dataset.judge(), run.dataset.tolerance
    accuracy = {name: net.check_predictability(model.decode_images(mean), y, tolerance)[1]
                for name, (mean, _) in q.items()}
    original_accuracy = net.check_predictability(x, y, tolerance)[1]
    seconds["inference_judge"] = round(time.perf_counter() - tick, 1)

    gap = elbo["refined"] - elbo["encoder"]
    # Where the difference is small its sign is within the estimate's noise: measure those
    # images again with K samples (other noise, still common to both q).
    tick = time.perf_counter()
    close = np.flatnonzero(gap < RECHECK_BELOW)
    rechecked = gap.copy()
    if len(close):
        again = {name: inference.proposal_estimates(
            model, x[close], q[name][0][close], q[name][1][close],
            num_samples=opts.iwae_samples, seed=cli.derive_seed(run.seed, "recheck"))["elbo"]
            for name in ("encoder", "refined")}
        rechecked[close] = again["refined"] - again["encoder"]
    seconds["inference_recheck"] = round(time.perf_counter() - tick, 1)
    log_px = np.max([iwae[name]["iwae"] for name in IWAE_Q], axis=0)  # the tightest bound
    per_q = {}
    for name in q:
        entry = {"description": Q_NAMES[name], "mean_elbo_nats": float(np.mean(elbo[name])),
                 "reconstruction_accuracy": accuracy[name]}
        if name in iwae:
            entry["mean_iwae_log_px_nats"] = float(np.mean(iwae[name]["iwae"]))
            entry["mean_elbo_on_iwae_images_nats"] = float(np.mean(iwae[name]["elbo"]))
        if name in fits:
            fit = fits[name]
            entry.update(fit.summary())
            entry["images_per_second"] = round(len(x) / fit.seconds, 1)
            entry["image_steps_per_second"] = round(len(x) * fit.steps / fit.seconds, 1)
            reached = np.flatnonzero(fit.trace >= np.mean(elbo["encoder"]))
            entry["steps_to_reach_encoder_elbo"] = int(reached[0]) if len(reached) else None
            entry["at_least_encoder_elbo_share"] = float(np.mean(elbo[name] >= elbo["encoder"]))
        per_q[name] = entry
    _save_elbo_figure(fits, elbo, rechecked, run.out / "elbo_vs_step.png", len(x),
                      opts.eval_samples, opts.iwae_samples)
    return {
        "model": info,
        "data": run.dataset.data_name(False),
        "images": int(len(x)),
        "eval_samples": opts.eval_samples,
        "iwae_samples": opts.iwae_samples,
        "iwae_images": int(sub.stop),
        "q": per_q,
        "amortisation_gap_nats": float(np.mean(gap)),
        "amortisation_gap_median_nats": float(np.median(gap)),
        "refined_at_least_encoder_share": float(np.mean(gap >= 0)),
        "refined_minus_encoder_min_nats": float(np.min(gap)),
        "recheck": {
            "images": int(len(close)), "samples": opts.iwae_samples,
            "rule": f"images whose {opts.eval_samples}-sample difference is below "
                    f"{RECHECK_BELOW} nats, estimated again with {opts.iwae_samples} samples",
            "refined_at_least_encoder_share": float(np.mean(rechecked >= 0)),
            "refined_minus_encoder_min_nats": float(np.min(rechecked)),
        },
        # On the IWAE images: log p(x) (the best of the IWAE bounds) - ELBO of the refined q
        # is the approximation gap of the diagonal Gaussian family, ELBO(refined) - ELBO
        # (encoder) the amortisation gap (Cremer et al., 2018).
        "log_px_iwae_best_nats": float(np.mean(log_px)),
        "approximation_gap_nats": float(np.mean(log_px - iwae["refined"]["elbo"])),
        "amortisation_gap_on_iwae_images_nats": float(np.mean(
            iwae["refined"]["elbo"] - iwae["encoder"]["elbo"])),
        "encoder_free_reconstruction_accuracy": accuracy["random"],
        "original_images_accuracy": original_accuracy,
        "tolerance": run.dataset.tolerance,
        "figure": str(run.out / "elbo_vs_step.png"),
    }


def _save_elbo_figure(fits, elbo, gap, path, images: int, eval_samples: int,
                      recheck_samples: int) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    encoder = float(np.mean(elbo["encoder"]))
    colours = {"random": "tab:red", "search": "tab:green", "refined": "tab:blue"}
    for ax, zoom in zip(axes[:2], (False, True)):
        for name, fit in fits.items():
            ax.plot(np.arange(len(fit.trace)), fit.trace, color=colours[name],
                    label=f"{Q_NAMES[name]}: {np.mean(elbo[name]):.1f}")
            if fit.steps_to_converge is not None:
                ax.plot(fit.steps_to_converge, fit.trace[fit.steps_to_converge], "o",
                        color=colours[name])
        ax.axhline(encoder, color="k", ls="--", lw=1, label=f"encoder q(z|x): {encoder:.1f}")
        ax.set(xlabel="Adam step", ylabel=f"mean ELBO over {images} images, nats")
        if zoom:
            top = max(max(np.max(f.trace) for f in fits.values()), encoder)
            ax.set_ylim(encoder - 25, top + 3)
            ax.set_title("zoomed; dots: converged (window criterion)")
        else:
            ax.set_title("ELBO along the optimisation (one-sample estimates)")
            ax.legend(fontsize=8, loc="lower right", title_fontsize=8,
                      title=f"mean ELBO at the end ({eval_samples}-sample estimates)")
    axes[2].hist(gap, bins=40, color="tab:blue")
    axes[2].axvline(0, color="k", lw=1)
    axes[2].set(xlabel=f"ELBO(refined q) - ELBO(encoder q) per image, nats ({eval_samples} "
                       f"samples;\nbelow {RECHECK_BELOW} nats measured again with "
                       f"{recheck_samples})", ylabel="images",
                title=f"amortisation gap: mean {np.mean(gap):.2f}, min {np.min(gap):.2f}, "
                      f">= 0 on {100 * np.mean(gap >= 0):.1f}%")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
def completion_section(run, opts, seconds: dict) -> dict:
    tick = time.perf_counter()
    mono_data, colour_data = run.dataset, run.dataset.stacked()
    x_train, _, _, _ = load_data(run, mono_data)
    mono_model, _ = get_model(run, mono_data, False, x_train, None)
    c_train, _, c_test, c_labels = load_data(run, colour_data)
    colour_model, colour_info = get_model(run, colour_data, False, c_train, c_test)
    xc, yc = c_test[:opts.completion_images], c_labels[:opts.completion_images]
    xm = fold_channels(xc)[0]  # the channel digits, image n's channel c at row 3 n + c
    ym = ((yc[:, None] // 10 ** np.arange(3)) % 10).reshape(-1)
    # The shipped colour model is the mono weights on each channel: its completion of a
    # stacked image is then exactly the three mono completions (the same fold order, noise
    # and seeds), so the mono results are read from it instead of fitted a second time.
    shared = all(np.array_equal(a, b) for a, b in zip(mono_model.network_weights(),
                                                      colour_model.network_weights()))
    means = {1: x_train.mean(axis=0), 3: c_train.mean(axis=0)}
    seconds["load_colour"] = round(time.perf_counter() - tick, 1)

    net = mono_data.judge()  # a stack is judged channel by channel by the mono judge
    data = {1: mono_data, 3: colour_data}
    sets = {1: (xm, ym, mono_model), 3: (xc, yc, colour_model)}
    results = {c: {"accuracy": {}, "predictability": {}} for c in sets}
    stored = {c: {"images": [], "labels": [], "masks": [], "observed": []} for c in sets}
    fit_summaries, examples = {}, {c: {} for c in sets}
    completion_seconds = 0.0
    for name in opts.masks:
        tick = time.perf_counter()
        mask = inference.make_mask(name, len(xc), channels=3, seed=run.seed)
        masks = {1: fold_channels(mask)[0], 3: mask}
        filled = {}
        filled[3], fit = inference.complete(colour_model, xc, mask, steps=opts.completion_steps,
                                            seed=run.seed, search_samples=opts.search_samples)
        if shared:
            filled[1] = fold_channels(filled[3])[0]
        else:
            filled[1], _ = inference.complete(mono_model, xm, masks[1],
                                              steps=opts.completion_steps, seed=run.seed,
                                              search_samples=opts.search_samples)
        completion_seconds += time.perf_counter() - tick
        fit_summaries[name] = fit.summary()
        for channels, (x, y, model) in sets.items():
            tolerance = data[channels].tolerance
            methods = {
                "fitted": filled[channels],
                "zeros": inference.fill(x, masks[channels], 0.0),
                "train_mean": inference.fill(x, masks[channels], means[channels]),
                "encoder": inference.complete(model, x, masks[channels], steps=0,
                                              init="encoder")[0],
            }
            judged = {method: net.check_predictability(images, y, tolerance)
                      for method, images in methods.items()}
            results[channels]["accuracy"][name] = {m: j[1] for m, j in judged.items()}
            results[channels]["predictability"][name] = {m: j[0] for m, j in judged.items()}
            untouched = np.array_equal(methods["fitted"][masks[channels] > 0],
                                       x[masks[channels] > 0])
            if not untouched:
                raise AssertionError("a completion changed an observed pixel")
            part = stored[channels]
            part["images"].append(methods["fitted"])
            part["labels"].append(y)
            part["masks"].append(np.full(len(x), name))
            part["observed"].append(masks[channels][..., :1].astype(np.uint8))
            examples[channels][name] = (x[:10], masks[channels][:10], methods["fitted"][:10],
                                        methods["encoder"][:10])
    seconds["completion_fits"] = round(completion_seconds, 1)

    tick = time.perf_counter()
    summary = {"model": colour_info, "masks": {m: inference.MASK_DESCRIPTIONS[m]
                                               for m in opts.masks},
               "steps": opts.completion_steps, "init": "search",
               "search_samples": opts.search_samples, "fits": fit_summaries,
               "mono_results_read_from_the_colour_fits": shared,
               "channel_images_per_second": round(
                   len(xm) * len(opts.masks) / max(completion_seconds, 1e-9), 1)}
    for channels, (x, y, _) in sets.items():
        prefix = "color_" if channels == 3 else ""
        kind = "colour" if channels == 3 else "mono"
        _save_completions(stored[channels], run.out / f"{prefix}completions.npz")
        _save_completion_figure(examples[channels], run.out / f"{prefix}completions.png",
                                kind)
        summary[kind] = {
            "images_per_mask": int(len(x)),
            "source": ("stacked test images (COLOR_BINARY_COMPLETE, seed "
                       f"{run.seed}), the first {len(x)}" if channels == 3 else
                       "the channel digits of those stacked test images"),
            "tolerance": data[channels].tolerance,
            "original_images_accuracy": net.check_predictability(
                x, y, data[channels].tolerance)[1],
            "accuracy": results[channels]["accuracy"],
            "predictability": results[channels]["predictability"],
            "file": str(run.out / f"{prefix}completions.npz"),
        }
    _save_accuracy_figure(summary, opts.masks, run.out / "completion_accuracy.png")
    seconds["completion_outputs"] = round(time.perf_counter() - tick, 1)
    return summary


def _save_completions(parts, path) -> None:
    arrays = {key: np.concatenate(values) for key, values in parts.items()}
    arrays["images"] = arrays["images"].astype(np.float32)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


def _mosaic(images) -> np.ndarray:
    """One row of (n, 28, 28, C) images with 2-pixel white gaps, mono drawn dark on white."""
    images = np.clip(np.asarray(images, np.float32), 0, 1)
    if images.shape[-1] == 1:
        images = np.repeat(1.0 - images, 3, axis=-1)
    row = np.ones((30, 30 * len(images), 3), np.float32)
    for i, image in enumerate(images):
        row[1:29, 30 * i + 1:30 * i + 29] = image
    return row


def _save_completion_figure(examples, path, kind: str) -> None:
    import matplotlib.pyplot as plt

    names = list(examples)
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 3.6 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        x, mask, filled, encoder = examples[name]
        observed = np.where(mask > 0, x, 0.5)  # missing pixels grey
        ax.imshow(np.concatenate([_mosaic(a) for a in (x, observed, filled, encoder)]),
                  interpolation="nearest")
        ax.set_yticks(15 + 30 * np.arange(4), ["original", "observed", "completed", "encoder"],
                      fontsize=9)
        ax.set_xticks([])
        ax.set_title(inference.MASK_DESCRIPTIONS[name], fontsize=10)
    fig.suptitle(f"VAE completions, {kind}. Rows: original; observed (grey = missing); "
                 "completed from q fitted\nto the observed pixels; the encoder applied to the "
                 "masked image (baseline). Observed pixels are kept.", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _save_accuracy_figure(summary, masks, path) -> None:
    import matplotlib.pyplot as plt

    methods = {"fitted": "fitted q (no encoder)", "encoder": "encoder on masked image",
               "train_mean": "per-pixel training mean", "zeros": "zeros"}
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), sharey=True)
    for ax, kind in zip(axes, ("mono", "colour")):
        accuracy = summary[kind]["accuracy"]
        width = 0.8 / len(methods)
        for i, (method, label) in enumerate(methods.items()):
            ax.bar(np.arange(len(masks)) + (i - 1.5) * width,
                   [accuracy[m][method] for m in masks], width, label=label)
        ax.axhline(summary[kind]["original_images_accuracy"], color="k", ls=":", lw=1,
                   label="original images")
        ax.set_xticks(np.arange(len(masks)), masks)
        ax.set(ylim=(0, 1), ylabel="accuracy (confident and right)",
               title=f"{kind}: {summary[kind]['images_per_mask']} images per mask, tolerance "
                     f"{summary[kind]['tolerance']}")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    cli.run_script(main)
