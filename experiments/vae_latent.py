"""VAE-LATENT: where the classes live in the latent space, how it interpolates, what each
dimension does.

Sections (each one's seconds in metrics.json):
  2d          the 2-dimensional VAE (saved_models/vae2d_mono_complete.keras; Fashion-MNIST:
              vae2d_fashion_complete): posterior means of the test images coloured by class;
              the decoded manifold (a 20 x 20 grid through the inverse normal CDF); its
              reconstruction accuracy and sample quality / coverage beside the shipped VAE's;
              the share of its decoder's 7 x 7 grid units that are constant (dead)
  maps        PCA and t-SNE of the test codes of the shipped VAE (8-d on MNIST) and of the AE,
              coloured by class; a linear probe and 5-NN accuracy of the codes (fitted on
              training codes), beside raw pixels and a 2-component PCA of pixels (and the 2-d
              VAE's codes)
  maps_2d     four 2-d maps side by side: the 2-d AE's codes, the 2-d VAE's posterior means,
              a PCA and a t-SNE of the pixels; each with the linear and 5-NN probe accuracies
              on the same --tsne-points training and test images (t-SNE maps both at once)
  interpolate linear and spherical paths between test images of different digits (figure with
              the judge's class and belief), and over --pairs random pairs the share of
              intermediate images the judge is confident about
  traverse    each latent dimension of the 8-d VAE swept over [-3, 3] from a test image's
              posterior mean; per dimension its average KL and whether it is active

    python experiments/vae_latent.py            # shipped weights, about 3 to 4 minutes
    python experiments/vae_latent.py --dataset fashion_mnist
    python experiments/vae_latent.py --quick    # tiny models on a few hundred images
"""
import time

import numpy as np
import tf_keras

import evaluation
import named_data
from experiments import cli
from experiments.cli import count, derive_seed
from experiments.outputs import save_image_grid, write_metrics
from experiments.runs import load_data, shipped_or_quick
from models import zoo
from models.latent import (activity, interpolate, kl_per_dimension, normal_grid, pca_2d,
                           probe_accuracies, traverse, tsne_2d)
QUICK = {"samples": 200, "pairs": 20, "probe_train": 300, "tsne_points": 100}
# The data sets with the 2-d models these sections need.
DATASETS = tuple(n for n in named_data.names(channels=1)
                 if zoo.has_recipe("vae2d", False, named_data.get(n).model_tag)
                 and zoo.has_recipe("ae2d", False, named_data.get(n).model_tag))


def add_flags(parser) -> None:
    parser.add_argument("--samples", type=count, default=10_000,
                        help="generated images per model for quality / coverage (default 10000)")
    parser.add_argument("--pairs", type=count, default=1000,
                        help="random test pairs for the interpolation statistics (default 1000)")
    parser.add_argument("--probe-train", type=count, default=10_000,
                        help="training images the probes are fitted on (default 10000)")
    parser.add_argument("--tsne-points", type=count, default=2000,
                        help="test codes in each t-SNE map; training and test images of the "
                             "2-d maps (default 2000)")


def judged(dataset, images):
    """``(classes, beliefs, confident)`` of the data set's judge at its tolerance."""
    predictions, beliefs = evaluation.verdicts(images, dataset)
    return predictions, beliefs, beliefs >= dataset.tolerance


def scatter(points, labels, path, title, class_names):
    """One map of 2-d points coloured by class."""
    scatter_panels([(points, labels, title)], path, class_names)


def scatter_panels(panels, path, class_names):
    """Maps side by side: ``panels`` of ``(points (N, 2), labels (N,), title)``, one legend."""
    import matplotlib.pyplot as plt

    from atomic_io import save_figure

    fig, axes = plt.subplots(1, len(panels), figsize=(1.5 + 4.5 * len(panels), 5),
                             squeeze=False, constrained_layout=True)
    for ax, (points, labels, title) in zip(axes[0], panels):
        cloud = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7,
                           vmin=-0.5, vmax=9.5)
        ax.set_title(title, fontsize=10)
    bar = fig.colorbar(cloud, ax=list(axes[0]), ticks=range(10), aspect=30, pad=0.01)
    bar.ax.set_yticklabels(class_names)
    save_figure(fig, path)
    plt.close(fig)


def model_names(dataset) -> dict:
    """The shipped models the sections use, by role, for the data set's model tag."""
    tag = dataset.model_tag
    return {"vae": zoo.shipped_name("vae", False, tag), "ae": zoo.shipped_name("ae", False, tag),
            "vae_2d": f"vae2d_{tag}_complete", "ae_2d": f"ae2d_{tag}_complete"}


def constant_grid_share(model, codes, spread: float = 0.01) -> float:
    """The share of the units of the decoder's dense layer into the 7 x 7 grid whose output
    varies by less than ``spread`` over ``codes`` (N, d): a unit that died in training decodes
    the same patch into every image (the old 2-d VAE's grey square: 55 % of them)."""
    decoder = model.mono_decoder
    grid = [layer for layer in decoder.layers if isinstance(layer, tf_keras.layers.Dense)][-1]
    values = tf_keras.Model(decoder.inputs, grid.output).predict(codes, batch_size=1000,
                                                                 verbose=0)
    return float(np.mean(np.ptp(values, axis=0) < spread))


def section_2d(run, opts, model8, x_test, y_test):
    dataset = run.dataset
    model2 = shipped_or_quick(run, model_names(dataset)["vae_2d"])
    means, _ = model2.mono_code_distribution(x_test)
    scatter(means, y_test, run.out / "latent_2d_scatter.png",
            "2-d VAE: posterior means of the test images", dataset.class_names)
    grid = normal_grid(20)
    manifold = model2.decode_images(grid.reshape(-1, 2))
    save_image_grid(manifold, run.out / "latent_2d_manifold.png", columns=20,
                           title="2-d VAE: decoded grid, inverse normal CDF of the unit square")
    results = {}
    for name, model in (("vae_2d", model2), (_vae_key(model8), model8)):
        reconstructions = model.reconstruct_images(x_test)
        _, generated = evaluation.generate_and_judge(model, opts.samples, dataset, seed=run.seed)
        judged_reconstructions = evaluation.reconstruction_metrics(reconstructions, x_test,
                                                                   y_test, dataset)
        results[name] = {key: judged_reconstructions[key] for key in (
            "reconstruction_accuracy", "reconstruction_predictability")}
        results[name].update({key: generated[key]
                              for key in ("quality_predictability", "coverage")})
    results["vae_2d"]["constant_grid_units"] = constant_grid_share(model2, means)
    return results, model2


def section_maps(run, opts, model8, model2, ae, x_train, y_train, x_test, y_test):
    rng = np.random.default_rng(run.seed)
    pick = rng.permutation(len(x_train))[: opts.probe_train]
    xs, ys = x_train[pick], y_train[pick]
    subset = rng.permutation(len(x_test))[: opts.tsne_points]
    vae_key = _vae_key(model8)
    spaces = {vae_key: (model8.encode(xs), model8.encode(x_test)),
              "ae": (ae.encode(xs), ae.encode(x_test)),
              "vae_2d": (model2.encode(xs), model2.encode(x_test)),
              "pixels": (xs, x_test)}
    spaces["pixels_pca_2d"] = tuple(pca_2d(xs, x_test)[0])
    results = {}
    for name, (train_codes, test_codes) in spaces.items():
        results[name] = probe_accuracies(train_codes, ys, test_codes, y_test, seed=run.seed)
        if name in (vae_key, "ae"):
            (_, test_2d), explained = pca_2d(train_codes, test_codes)
            results[name]["pca_explained_variance_2"] = float(np.sum(explained))
            scatter(test_2d, y_test, run.out / f"{name}_pca.png",
                    f"{name}: PCA of the test codes ({100 * np.sum(explained):.0f} % of the "
                    "variance)", run.dataset.class_names)
            scatter(tsne_2d(test_codes[subset], seed=run.seed), y_test[subset],
                    run.out / f"{name}_tsne.png",
                    f"{name}: t-SNE of {len(subset)} test codes", run.dataset.class_names)
    return results


def _vae_key(model) -> str:
    """The shipped VAE's name in metrics.json: ``vae_8d`` on MNIST."""
    return f"vae_{model.config.latent_dim}d"


def section_maps_2d(run, opts, model2, x_train, y_train, x_test, y_test):
    """The 2-d AE, the 2-d VAE, PCA and t-SNE of the pixels on the same images: --tsne-points
    training images (the probes' training set) and as many test images. t-SNE has no map for
    new points, so it embeds both sets at once; the others map the test images with what
    they learnt from the training images (PCA) or the whole training set (the networks)."""
    rng = np.random.default_rng(derive_seed(run.seed, "maps_2d"))
    train = rng.permutation(len(x_train))[: opts.tsne_points]
    test = rng.permutation(len(x_test))[: opts.tsne_points]
    xs, ys, xt, yt = x_train[train], y_train[train], x_test[test], y_test[test]
    ae2 = shipped_or_quick(run, model_names(run.dataset)["ae_2d"])
    (pca_train, pca_test), explained = pca_2d(xs, xt)
    joint = tsne_2d(np.concatenate([xs, xt]), seed=run.seed)
    spaces = {"ae_2d": (ae2.encode(xs)[:, 0], ae2.encode(xt)[:, 0]),
              "vae_2d": (model2.encode(xs)[:, 0], model2.encode(xt)[:, 0]),
              "pixels_pca_2d": (pca_train, pca_test),
              "pixels_tsne_2d": (joint[: len(xs)], joint[len(xs):])}
    titles = {"ae_2d": "2-d AE: codes", "vae_2d": "2-d VAE: posterior means",
              "pixels_pca_2d": f"pixels: PCA ({100 * np.sum(explained):.0f} % of the variance)",
              "pixels_tsne_2d": "pixels: t-SNE"}
    results, panels = {}, []
    for name, (train_codes, test_codes) in spaces.items():
        results[name] = probe_accuracies(train_codes, ys, test_codes, yt, seed=run.seed)
        panels.append((test_codes, yt, f"{titles[name]}\nlinear probe "
                       f"{100 * results[name]['linear_probe_accuracy']:.1f} %, 5-NN "
                       f"{100 * results[name]['knn5_accuracy']:.1f} %"))
    scatter_panels(panels, run.out / "latent_maps_2d.png", run.dataset.class_names)
    return {"train_images": int(len(xs)), "test_images": int(len(xt)), **results}


def section_interpolate(run, opts, model8, x_test, y_test):
    rng = np.random.default_rng(run.seed)
    first = rng.integers(0, len(x_test), 4 * opts.pairs)
    second = rng.integers(0, len(x_test), 4 * opts.pairs)
    keep = y_test[first] != y_test[second]
    first, second = first[keep][: opts.pairs], second[keep][: opts.pairs]
    codes = model8.encode(x_test)[:, 0]
    results, shown, captions = {}, [], []
    for path in ("linear", "spherical"):
        z = np.stack([interpolate(codes[a], codes[b], 10, path)
                      for a, b in zip(first, second)])  # (pairs, 10, d)
        images = model8.decode_images(z.reshape(-1, z.shape[-1])).reshape(
            len(first), 10, 28, 28, 1)
        _, beliefs, confident = judged(run.dataset, images[:, 1:-1].reshape(-1, 28, 28, 1))
        results[path] = {"confident_share_of_intermediate_images": float(confident.mean()),
                         "mean_belief_of_intermediate_images": float(beliefs.mean())}
        shown.extend(images[:3].reshape(-1, 28, 28, 1))
        predictions, beliefs, _ = judged(run.dataset, images[:3].reshape(-1, 28, 28, 1))
        captions.extend(f"{p} {b:.2f}" for p, b in zip(predictions, beliefs))
    save_image_grid(np.array(shown), run.out / "interpolation.png", columns=10,
                           captions=captions,
                           title="8-d VAE: linear (rows 1-3) and spherical (rows 4-6) paths; "
                                 "judge's class and belief")
    return {"pairs": int(len(first)), "steps": 10, **results}


def section_traverse(run, opts, model8, x_test):
    means, scales = model8.mono_code_distribution(x_test)
    variance, active = activity(means)
    kl = kl_per_dimension(means, scales)
    values = np.linspace(-3, 3, 9)
    codes = traverse(means[0], values)  # (d, 9, d)
    images = model8.decode_images(codes.reshape(-1, codes.shape[-1]))
    save_image_grid(images, run.out / "traversal.png", columns=len(values),
                           title="8-d VAE: each row sweeps one dimension over [-3, 3] from a "
                                 "test image's posterior mean")
    return {"values": values.tolist(),
            "kl_per_dimension_nats": np.round(kl, 4).tolist(),
            "posterior_mean_variance": np.round(variance, 4).tolist(),
            "active": active.tolist(), "active_units": int(active.sum())}


def main(argv=None):
    run, opts = cli.parse_args(__doc__, "vae_latent", "vae", argv, extra=add_flags,
                               quick_caps=QUICK, trains=False, datasets=DATASETS)
    x_train, y_train, x_test, y_test = load_data(run, run.dataset)
    names = model_names(run.dataset)
    model8 = shipped_or_quick(run, names["vae"])
    metrics = {"model": {"model_file": "trained by --quick" if run.quick else
                         zoo.shown_path(zoo.path(names["vae"])), **model8.metadata}}
    seconds = {}

    start = time.perf_counter()
    metrics["latent_2d"], model2 = section_2d(run, opts, model8, x_test, y_test)
    seconds["2d"] = round(time.perf_counter() - start, 1)

    start = time.perf_counter()
    ae = shipped_or_quick(run, names["ae"])
    metrics["maps"] = section_maps(run, opts, model8, model2, ae, x_train, y_train, x_test,
                                   y_test)
    seconds["maps"] = round(time.perf_counter() - start, 1)

    start = time.perf_counter()
    metrics["maps_2d"] = section_maps_2d(run, opts, model2, x_train, y_train, x_test, y_test)
    seconds["maps_2d"] = round(time.perf_counter() - start, 1)

    for name, section in (("interpolate", lambda: section_interpolate(run, opts, model8, x_test,
                                                                      y_test)),
                          ("traverse", lambda: section_traverse(run, opts, model8, x_test))):
        start = time.perf_counter()
        metrics[name] = section()
        seconds[name] = round(time.perf_counter() - start, 1)
    return write_metrics(run, {**metrics, "section_seconds": seconds})


if __name__ == "__main__":
    cli.run_script(main)
