"""The grading table: the eight rows of the course, their measures and targets, and the
markdown table the main job prints (results/summary.md) and the results page shows."""
from __future__ import annotations

ROWS = ["ae_basic", "ae_gen", "ae_anom", "ae_stack",
        "vae_basic", "vae_gen", "vae_anom", "vae_stack"]
# Rows beyond the course's: a script run with other flags, named as its output folder.
EXTRA_ROWS = {"ae_gen-latent_flow": ("ae_gen", ("--latent", "flow")),
              "vae_gen-latent_flow": ("vae_gen", ("--latent", "flow")),
              "vae_gen-latent_gmm": ("vae_gen", ("--latent", "gmm"))}
ALL_ROWS = ROWS + list(EXTRA_ROWS)


def rows_for(dataset) -> list:
    """The rows the main job runs on the data set entry ``dataset``: all but the Gaussian
    mixture's row where the VAE ships without one (the flow rows run everywhere)."""
    from models import zoo

    samplers = zoo.recipe(zoo.shipped_name("vae", False, dataset.model_tag)).ex_post_samplers
    return [row for row in ALL_ROWS if "gmm" in samplers or not row.endswith("gmm")]


def script_of(row: str):
    """``(script, extra flags)`` of a row of ``ALL_ROWS``."""
    return EXTRA_ROWS.get(row, (row, ()))


# The grading table: (row, section of a STACK row's metrics, measure, the course's target for
# MNIST, metric keys, the keys of the judge's figure on real test images). A key ending in "%"
# is shown as a percentage. In a measure, {tol} and {tol3} are the data set's tolerances for one
# image and a stack, {anomaly} its anomaly class.
RECONSTRUCTION = ["reconstruction_accuracy%", "reconstruction_predictability%"]
REAL_RECONSTRUCTION = ["original_test_images_accuracy%"]
GENERATION = ["quality_predictability%", "coverage%"]
REAL_GENERATION = ["real_test_images_quality_predictability%", "real_test_images_coverage%"]
KL = ["kl_class_frequencies_to_uniform_nats", "kl_of_a_uniform_generator_expected_nats"]
TABLE = [
    ("ae_basic", None, "reconstruction accuracy / predictability, mono, tol {tol}", ">= 97%",
     RECONSTRUCTION, REAL_RECONSTRUCTION),
    ("ae_stack", "basic", "reconstruction accuracy / predictability, colour, tol {tol3}",
     ">= 92%", RECONSTRUCTION, REAL_RECONSTRUCTION),
    ("vae_basic", None, "reconstruction accuracy / predictability, mono, tol {tol}", ">= 95%",
     RECONSTRUCTION, REAL_RECONSTRUCTION),
    ("vae_stack", "basic", "reconstruction accuracy / predictability, colour, tol {tol3}",
     ">= 90%", RECONSTRUCTION, REAL_RECONSTRUCTION),
    ("ae_gen", None, "quality / coverage, mono, 10,000 samples", "reported", GENERATION,
     REAL_GENERATION),
    ("ae_gen-latent_flow", None, "quality / coverage, mono, codes ~ flow", "reported",
     GENERATION, REAL_GENERATION),
    ("vae_gen", None, "quality / coverage, mono, 10,000 samples", ">= 90% / 100%",
     GENERATION, REAL_GENERATION),
    ("vae_gen-latent_flow", None, "quality / coverage, mono, z ~ flow", "reported",
     GENERATION, REAL_GENERATION),
    ("vae_gen-latent_gmm", None, "quality / coverage, mono, z ~ Gaussian mixture",
     "reported", GENERATION, REAL_GENERATION),
    ("ae_stack", "gen", "quality / coverage of 1000, 26,000 samples", "reported",
     GENERATION, REAL_GENERATION),
    ("vae_stack", "gen", "quality / coverage of 1000, 26,000 samples", ">= 90% / 100%",
     GENERATION, REAL_GENERATION),
    ("ae_stack", "gen", "KL(class frequencies || uniform) / a uniform generator's, nats",
     "reported", KL, []),
    ("vae_stack", "gen", "KL(class frequencies || uniform) / a uniform generator's, nats",
     "<= 0.05", KL, []),
    ("ae_anom", None, "ROC AUC / PR AUC for the {anomaly}s, mono", "reported",
     ["roc_auc", "pr_auc"], []),
    ("ae_stack", "anom", "ROC AUC / PR AUC, colour (a{n} {anomaly} in any channel)",
     "reported", ["roc_auc", "pr_auc"], []),
    ("vae_anom", None, "ROC AUC / PR AUC for the {anomaly}s, mono", ">= 0.95",
     ["roc_auc", "pr_auc"], []),
    ("vae_stack", "anom", "ROC AUC / PR AUC, colour (a{n} {anomaly} in any channel)",
     ">= 0.95", ["roc_auc", "pr_auc"], []),
]
# Another data set's targets (issue 24) are relative to the judge's figure on real images.
# The sampler target is the flow's in the issue; the Gaussian mixture is held to it too.
RELATIVE_TARGETS = {"vae_basic": ">= 95% of real", "vae_gen-latent_flow": ">= 90% of real / 100%",
                    "vae_gen-latent_gmm": ">= 90% of real / 100%"}


def _shown(value, key: str) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if key.endswith("%") else f"{value:.3f}"


def _values(metrics: dict, keys) -> str:
    return " / ".join(_shown(metrics.get(k.rstrip("%")), k) for k in keys) if keys else ""


def results_table(all_metrics: dict, dataset=None) -> str:
    """The README's results table (markdown) from the rows' metrics.json contents, for the
    data set entry ``dataset`` (default MNIST): each measure, the judge's figure on real test
    images where there is one, the target and the command."""
    import named_data

    dataset = dataset or named_data.get("mnist")
    anomaly = dataset.class_names[dataset.anomaly_class].lower()
    words = {"tol": f"{dataset.tolerance:g}", "tol3": f"{dataset.stacked().tolerance:g}",
             "anomaly": anomaly, "n": "n" if anomaly[0] in "aeiou8" else ""}
    flags = "" if dataset.name == "mnist" else f" --dataset {dataset.name}"
    lines = ["| row | measure | obtained | real test images | target | command |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row, section, measure, target, keys, real_keys in TABLE:
        if row not in all_metrics:
            continue
        metrics = all_metrics[row][section] if section else all_metrics[row]
        measure = measure.format(**words)
        if "default_score" in metrics:
            measure += f" (score: {metrics['default_score']})"
        if dataset.mono_name != "mnist":
            target = RELATIVE_TARGETS.get(row, "reported") if section is None else "reported"
        script, extra = script_of(row)
        command = " ".join([f"python experiments/{script}.py", *extra]) + flags
        lines.append(f"| {row.upper().replace('_', '-')} | {measure.replace('|', '&#124;')} | "
                     f"{_values(metrics, keys)} | {_values(metrics, real_keys)} | {target} | "
                     f"`{command}` |")
    seconds = ", ".join(f"{row} {m['wall_seconds']:.0f} s" for row, m in all_metrics.items())
    lines.append(f"| all | wall time from shipped weights | {seconds} | | <= 120 s each | "
                 f"`python experiments/run_all.py{flags}` |")
    return "\n".join(lines) + "\n"
