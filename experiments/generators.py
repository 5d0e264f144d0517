"""GENERATORS: every shipped generator side by side. --samples images from each (the VAE with
N(0, I), a Gaussian fitted to its codes, a Gaussian mixture and its latent flow; the VAE with a
learned prior; the CVAE with balanced labels; the AE with a mixture and with its flow; the GAN
and the AC-GAN, with balanced labels, when shipped), judged like the GEN rows (quality,
coverage, class KL) and measured in the judge's penultimate features against the real test
images: the Frechet distance, and the precision (fidelity) and recall (diversity) of
k-nearest-neighbour manifolds (Kynkaanniemi et al., NeurIPS 2019). The floor of both: real
training images against real test images.

Writes results/generators/generators.png (a row of samples per generator), table.md and
metrics.json.

    python experiments/generators.py              # MNIST, 10,000 samples each, shipped weights
    python experiments/generators.py --quick      # tiny models, seconds
"""
import numpy as np

import evaluation
from atomic_io import atomic_path
from experiments import cli
from experiments.cli import count
from experiments.outputs import save_image_grid, write_metrics
from experiments.runs import load_data, shipped_or_quick
from models import Generator, make_sampler, zoo

QUICK = {"samples": 300, "neighbours": 3}
FIT_IMAGES = 10_000  # training images whose codes the fitted samplers see


def add_flags(parser) -> None:
    parser.add_argument("--samples", type=count, default=10_000,
                        help="images per generator, and real images per reference set "
                             "(default 10000)")
    parser.add_argument("--neighbours", type=count, default=3,
                        help="k of the precision / recall manifolds (default 3)")


def training_codes(model, x_train) -> np.ndarray:
    """The codes of the first FIT_IMAGES training images, one row per channel code."""
    return model.encode(x_train[:FIT_IMAGES]).reshape(-1, model.config.latent_dim)


def fitted(kind: str, codes, seed: int):
    return make_sampler(kind, codes.shape[1]).fit(codes, seed=seed)


def shipped_generators(run, dataset, x_train) -> dict:
    """``{label: generator}`` of every shipped generator of the data set (tiny models under
    --quick; the flows are then fitted, not loaded)."""
    tag = dataset.model_tag

    def model(kind):
        return shipped_or_quick(run, zoo.shipped_name(kind, False, tag))

    def flow(codes, kind):
        if run.quick:
            return fitted("fitted", codes, run.seed)  # no flow to load
        return zoo.load_flow(zoo.shipped_name(kind, False, tag))

    vae, ae = model("vae"), model("ae")
    vae_codes, ae_codes = training_codes(vae, x_train), training_codes(ae, x_train)
    generators = {
        "VAE, N(0, I)": vae,
        "VAE, fitted Gaussian": Generator(vae, fitted("fitted", vae_codes, run.seed)),
        "VAE, Gaussian mixture": Generator(vae, fitted("gmm", vae_codes, run.seed)),
        "VAE, latent flow": Generator(vae, flow(vae_codes, "vae")),
    }
    if zoo.has_recipe("flowprior_vae", False, tag):
        generators["VAE with a learned prior"] = model("flowprior_vae")
    if zoo.has_recipe("cvae", False, tag):
        generators["CVAE, balanced labels"] = model("cvae")
    generators["AE, Gaussian mixture"] = Generator(ae, fitted("gmm", ae_codes, run.seed))
    generators["AE, latent flow"] = Generator(ae, flow(ae_codes, "ae"))
    if zoo.has_recipe("gan", False, tag):
        generators["GAN"] = model("gan")
    if zoo.has_recipe("acgan", False, tag):
        generators["AC-GAN, balanced labels"] = model("acgan")
    return generators


def main(argv=None):
    run, opts = cli.parse_args(__doc__, "generators", "vae", argv, extra=add_flags,
                               quick_caps=QUICK, trains=False, datasets=("mnist",))
    dataset = run.dataset
    x_train, _, x_test, _ = load_data(run, dataset)
    real = x_test[: opts.samples]
    real_features = evaluation.judge_features(real, dataset)
    train_features = evaluation.judge_features(x_train[: len(real)], dataset)
    floor = {"frechet_distance": evaluation.frechet_distance(train_features, real_features),
             **evaluation.manifold_precision_recall(real_features, train_features,
                                                    opts.neighbours)}
    results, rows = {}, []
    for label, generator in shipped_generators(run, dataset, x_train).items():
        images, metrics = evaluation.generate_and_judge(generator, opts.samples, dataset,
                                                        seed=run.seed)
        features = evaluation.judge_features(images, dataset)
        results[label] = {
            "quality": metrics["quality_predictability"], "coverage": metrics["coverage"],
            "kl_class_frequencies_to_uniform_nats":
                metrics["kl_class_frequencies_to_uniform_nats"],
            "frechet_distance": evaluation.frechet_distance(features, real_features),
            **evaluation.manifold_precision_recall(real_features, features, opts.neighbours)}
        rows.append(images[:12])
        r = results[label]
        print(f"{label:>26s}: quality {100 * r['quality']:.1f} %, FD {r['frechet_distance']:.2f}, "
              f"precision {r['precision']:.3f}, recall {r['recall']:.3f}", flush=True)
    lines = ["| generator | quality | coverage | class KL (nats) | Frechet distance | "
             "precision | recall |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
             f"| real training images (the floor) | | | | {floor['frechet_distance']:.2f} | "
             f"{floor['precision']:.3f} | {floor['recall']:.3f} |"]
    lines += [f"| {label} | {100 * r['quality']:.1f} % | {100 * r['coverage']:.0f} % | "
              f"{r['kl_class_frequencies_to_uniform_nats']:.3f} | {r['frechet_distance']:.2f} | "
              f"{r['precision']:.3f} | {r['recall']:.3f} |" for label, r in results.items()]
    table = "\n".join(lines) + "\n"
    with atomic_path(run.out / "table.md") as tmp:
        tmp.write_text(table)
    print(table)
    save_image_grid(np.concatenate(rows), run.out / "generators.png",
                    title="12 samples per generator, rows in the table's order", columns=12)
    return write_metrics(run, {"samples": opts.samples, "neighbours": opts.neighbours,
                               "real_reference": floor, "generators": results})


if __name__ == "__main__":
    cli.run_script(main)
