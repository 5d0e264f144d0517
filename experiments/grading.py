"""The grading table: the eight rows of the course, their measures and targets, and the
markdown table the main job prints (results/summary.md) and the results page shows."""
from __future__ import annotations

ROWS = ["ae_basic", "ae_gen", "ae_anom", "ae_stack",
        "vae_basic", "vae_gen", "vae_anom", "vae_stack"]


# The grading table: (row, section of a STACK row's metrics, measure, target, metric keys).
# A key ending in "%" is shown as a percentage.
TABLE = [
    ("ae_basic", None, "reconstruction accuracy / predictability, mono, tol 0.8", ">= 97%",
     ["reconstruction_accuracy%", "reconstruction_predictability%"]),
    ("ae_stack", "basic", "reconstruction accuracy / predictability, colour, tol 0.5",
     ">= 92%", ["reconstruction_accuracy%", "reconstruction_predictability%"]),
    ("vae_basic", None, "reconstruction accuracy / predictability, mono, tol 0.8", ">= 95%",
     ["reconstruction_accuracy%", "reconstruction_predictability%"]),
    ("vae_stack", "basic", "reconstruction accuracy / predictability, colour, tol 0.5",
     ">= 90%", ["reconstruction_accuracy%", "reconstruction_predictability%"]),
    ("ae_gen", None, "quality / coverage, mono, 10,000 samples", "reported",
     ["quality_predictability%", "coverage%"]),
    ("vae_gen", None, "quality / coverage, mono, 10,000 samples", ">= 90% / 100%",
     ["quality_predictability%", "coverage%"]),
    ("ae_stack", "gen", "quality / coverage of 1000, 26,000 samples", "reported",
     ["quality_predictability%", "coverage%"]),
    ("vae_stack", "gen", "quality / coverage of 1000, 26,000 samples", ">= 90% / 100%",
     ["quality_predictability%", "coverage%"]),
    ("ae_stack", "gen", "KL(class frequencies || uniform) / a uniform generator's, nats",
     "reported", ["kl_class_frequencies_to_uniform_nats",
                  "kl_of_a_uniform_generator_expected_nats"]),
    ("vae_stack", "gen", "KL(class frequencies || uniform) / a uniform generator's, nats",
     "<= 0.05", ["kl_class_frequencies_to_uniform_nats",
                 "kl_of_a_uniform_generator_expected_nats"]),
    ("ae_anom", None, "ROC AUC / PR AUC for the 8s, mono", "reported", ["roc_auc", "pr_auc"]),
    ("ae_stack", "anom", "ROC AUC / PR AUC, colour (an 8 in any channel)", "reported",
     ["roc_auc", "pr_auc"]),
    ("vae_anom", None, "ROC AUC / PR AUC for the 8s, mono", ">= 0.95", ["roc_auc", "pr_auc"]),
    ("vae_stack", "anom", "ROC AUC / PR AUC, colour (an 8 in any channel)", ">= 0.95",
     ["roc_auc", "pr_auc"]),
]


def _shown(value, key: str) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if key.endswith("%") else f"{value:.3f}"


def results_table(all_metrics: dict) -> str:
    """The README's results table (markdown) from the rows' metrics.json contents."""
    lines = ["| row | measure | obtained | target | command |", "| --- | --- | --- | --- | --- |"]
    for row, section, measure, target, keys in TABLE:
        if row not in all_metrics:
            continue
        metrics = all_metrics[row][section] if section else all_metrics[row]
        obtained = " / ".join(_shown(metrics[k.rstrip("%")], k) for k in keys)
        if "default_score" in metrics:
            measure += f" (score: {metrics['default_score']})"
        lines.append(f"| {row.upper().replace('_', '-')} | {measure.replace('|', '&#124;')} | "
                     f"{obtained} | {target} | `python experiments/{row}.py` |")
    seconds = ", ".join(f"{row} {m['wall_seconds']:.0f} s" for row, m in all_metrics.items())
    lines.append(f"| all | wall time from shipped weights | {seconds} | <= 120 s each | "
                 "`python experiments/run_all.py` |")
    return "\n".join(lines) + "\n"
