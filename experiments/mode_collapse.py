"""MODE_COLLAPSE: the stacked-MNIST mode-collapse protocol (VEEGAN's, as in PacGAN, Lin et al.
NeurIPS 2018, Table 2): generators of stacked images (three MNIST digits in R, G and B, 1,000
classes), --samples images each (26,000 in the protocol), every channel classified by the judge.
Modes: classes given to at least one sample (the protocol's count), and to at least one
confident sample; KL(class frequencies || uniform) over every sample; quality.

Generators: those whose networks see the three channels together, trained on 128,000 stacks
(models.zoo): a VAE, and GANs without and with PacGAN's packing of two samples per
discriminator verdict; and the factorised colour VAE (the mono VAE on each channel) with
N(0, I) and with its latent flow.
PacGAN's published rows beside, cited as published (not re-run here): DCGAN 99 modes / KL
3.40, VEEGAN 150 / 2.95, PacDCGAN2 1000 / 0.06.

Writes results/mode_collapse/table.md, samples.png (a row per generator) and metrics.json.

    python experiments/mode_collapse.py           # shipped weights
    python experiments/mode_collapse.py --quick   # tiny models, seconds
"""
import numpy as np

import evaluation
from atomic_io import atomic_path
from experiments import cli
from experiments.cli import count
from experiments.outputs import save_image_grid, write_metrics
from experiments.runs import shipped_or_quick
from models import Generator, zoo

QUICK = {"samples": 500}
PUBLISHED = (("DCGAN", 99, 3.40), ("VEEGAN", 150, 2.95), ("PacDCGAN2", 1000, 0.06))
# The generators whose one network sees the three channels together.
JOINT = {"VAE, one network on stacks, N(0, I)": "joint_vae_stacked_complete",
         "GAN on stacks": "gan_stacked_complete",
         "GAN on stacks, packing 2 (PacGAN)": "gan_stacked_pack2_complete"}


def add_flags(parser) -> None:
    parser.add_argument("--samples", type=count, default=26_000,
                        help="images per generator (default 26000, the protocol's)")


def stacked_generators(run) -> dict:
    """``{label: generator}``: the factorised colour VAE, and the shipped generators whose
    networks see the three channels together (tiny models under --quick; the colour VAE's
    flow is then left out: there is none to load)."""
    vae = shipped_or_quick(run, zoo.shipped_name("vae", False)).with_channels(3)
    generators = {"VAE, three mono subnets, N(0, I)": vae}
    if not run.quick:
        generators["VAE, three mono subnets, latent flow"] = Generator(
            vae, zoo.load_flow(zoo.shipped_name("vae", False)))
    for label, name in JOINT.items():
        generators[label] = shipped_or_quick(run, name)
    return generators


def main(argv=None):
    run, opts = cli.parse_args(__doc__, "mode_collapse", "gan", argv, extra=add_flags,
                               quick_caps=QUICK, trains=False, datasets=("stacked_mnist",))
    dataset = run.dataset
    results, rows = {}, []
    for label, generator in stacked_generators(run).items():
        images = evaluation.judged_images(generator.generate_images(opts.samples,
                                                                    seed=run.seed))
        predictions, beliefs = evaluation.verdicts(images, dataset)
        metrics = evaluation.generation_metrics(None, dataset, predictions, beliefs)
        results[label] = {
            "modes": int(np.count_nonzero(np.bincount(predictions,
                                                      minlength=dataset.num_classes))),
            "modes_confident": metrics["classes_covered"],
            "kl_to_uniform_nats": metrics["kl_class_frequencies_to_uniform_nats"],
            "quality": metrics["quality_predictability"]}
        rows.append(images[:12])
        r = results[label]
        print(f"{label}: {r['modes']} modes ({r['modes_confident']} confident), KL "
              f"{r['kl_to_uniform_nats']:.3f}, quality {100 * r['quality']:.1f} %", flush=True)
    lines = ["| generator | modes (of 1000) | modes, confident samples | KL to uniform (nats) "
             "| quality |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {label} | {r['modes']} | {r['modes_confident']} | "
              f"{r['kl_to_uniform_nats']:.3f} | {100 * r['quality']:.1f} % |"
              for label, r in results.items()]
    lines += [f"| {name} (PacGAN, Table 2, as published) | {modes} | | {kl:.2f} | |"
              for name, modes, kl in PUBLISHED]
    table = "\n".join(lines) + "\n"
    with atomic_path(run.out / "table.md") as tmp:
        tmp.write_text(table)
    print(table)
    save_image_grid(np.concatenate(rows), run.out / "samples.png", columns=12,
                    title="12 samples per generator, rows in the table's order")
    return write_metrics(run, {
        "samples": opts.samples,
        "kl_of_a_uniform_generator_expected_nats": (dataset.num_classes - 1) / (2 * opts.samples),
        "generators": results,
        "published_pacgan_table2": {n: {"modes": m, "kl": k} for n, m, k in PUBLISHED}})


if __name__ == "__main__":
    cli.run_script(main)
