"""results/index.html: every result on one page that opens from disk (no server).

The grading tables (results/summary.json, and summary-<data set>.json for every other data set
run_all.py ran on), then one section per output folder under results/ that holds a
metrics.json (the rows first, then any other script's), each with
its figures, its anomaly-score table where it has one, and a link to its metrics.json. Every
script rewrites the page after it writes its metrics, so a section appears once its script ran.
"""
from __future__ import annotations

import html
import time
from pathlib import Path
from urllib.parse import quote

import named_data
from atomic_io import atomic_path, read_json

from . import REPO_ROOT
from .grading import ALL_ROWS, results_table
STYLE = """body{font-family:sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;
text-align:left;font-size:14px}th{background:#eee}img{max-width:100%;margin:6px 0;
border:1px solid #ddd}figure{margin:0 0 1em 0}figcaption{font-size:13px;color:#555}
nav a{margin-right:1em}"""


def _table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _summary_tables(results: Path) -> str:
    """The grading table of every data set run_all.py has run on (summary[-<name>].json)."""
    parts = []
    for summary in sorted(results.glob("summary*.json")):
        name = summary.stem.partition("-")[2] or "mnist"
        if name not in named_data.DATASETS:
            continue
        dataset = named_data.get(name)
        try:
            lines = results_table(_read_json(summary), dataset).strip().splitlines()
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) \
                as err:
            parts.append(f"<h3>{html.escape(dataset.title)}</h3><p>{html.escape(summary.name)} "
                         f"could not be read ({html.escape(type(err).__name__)}).</p>")
            continue
        cells = [[c.strip().replace("&#124;", "|").strip("`") for c in line.strip("|").split("|")]
                 for line in lines if not line.startswith("| ---")]
        parts.append(f"<h3>{html.escape(dataset.title)}</h3>" + _table(cells[0], cells[1:]))
    return "".join(parts) or ("<p>No results table yet: run "
                              "<code>python experiments/run_all.py</code>.</p>")


def _score_tables(metrics: dict) -> str:
    """ROC / PR AUC per anomaly score, for a row's metrics or a STACK row's anom section."""
    parts = []
    for title, section in (("", metrics), (" (colour)", metrics.get("anom", {}))):
        scores = section.get("scores") if isinstance(section, dict) else None
        if scores:
            rows = [(name, f"{r['roc_auc']:.3f}", f"{r['pr_auc']:.3f}",
                     "default" if name == section.get("default_score") else "")
                    for name, r in scores.items()]
            parts.append(f"<h3>Anomaly scores{title}</h3>"
                         + _table(("score", "ROC AUC", "PR AUC", ""), rows))
    return "".join(parts)


def _folders(results: Path) -> list:
    found = [p.parent for p in results.glob("*/metrics.json")]
    order = {name: i for i, name in enumerate(ALL_ROWS)}
    return sorted(found, key=lambda p: (order.get(p.name, len(order)), p.name))


def is_results_folder(folder: Path) -> bool:
    """Whether ``folder`` gets a results page: results/ itself, or a run folder runs/<run>/."""
    folder = Path(folder).resolve()
    return folder.name == "results" or folder.parent == (REPO_ROOT / "runs").resolve()


def _link(*parts: str) -> str:
    """A link target relative to results/: each part percent-encoded (no scheme, no "..",
    nothing the browser could run), then HTML-escaped."""
    return html.escape("./" + "/".join(quote(part, safe="") for part in parts))


# A metrics.json or summary.json larger than this is not read (the largest written is about
# 20 kB): the page is built from files anyone may drop under results/.
MAX_JSON_BYTES = 16 << 20


def _read_json(path: Path):
    return read_json(path, MAX_JSON_BYTES, "results_page.MAX_JSON_BYTES")


def _read_metrics(folder: Path):
    """A folder's metrics.json as a dict, or the reason it cannot be read."""
    try:
        metrics = _read_json(folder / "metrics.json")
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return None, f"{type(err).__name__}: {err}"
    if not isinstance(metrics, dict):
        return None, "not a JSON object"
    return metrics, None


def write_index(results) -> Path:
    """Write ``results/index.html`` from what the folder holds now; returns its path. A
    metrics.json that cannot be read is listed as such; the page is written all the same."""
    results = Path(results)
    sections, links = [], []
    for folder in _folders(results):
        name = folder.name
        anchor = quote(name, safe="")
        metrics, problem = _read_metrics(folder)
        links.append(f'<a href="#{html.escape(anchor)}">{html.escape(name)}</a>')
        figures = "".join(
            f'<figure><img src="{_link(name, png.name)}" '
            f'alt="{html.escape(png.stem)}"><figcaption>{html.escape(png.stem)}</figcaption>'
            "</figure>" for png in sorted(folder.glob("*.png")))
        if problem:
            body = f"<p>metrics.json could not be read ({html.escape(problem)}).</p>"
        else:
            command = html.escape(str(metrics.get("command", "")))
            try:
                tables = _score_tables(metrics)
            except (KeyError, TypeError, ValueError, AttributeError):
                tables = "<p>Its anomaly scores could not be read.</p>"
            body = (f"<p><code>{command}</code> &middot; "
                    f'<a href="{_link(name, "metrics.json")}">metrics.json</a></p>{tables}')
        sections.append(f'<section id="{html.escape(anchor)}"><h2>{html.escape(name)}</h2>'
                        f"{body}{figures}</section>")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Results</title>"
            f"<style>{STYLE}</style></head><body><h1>Deep generative models on MNIST and "
            f"stackedMNIST: results</h1><p>Written {time.strftime('%Y-%m-%d %H:%M')} from "
            f"the folders under <code>{html.escape(str(results))}</code>.</p>"
            f"<nav>{''.join(links)}</nav><h2>The grading table</h2>{_summary_tables(results)}"
            f"{''.join(sections)}</body></html>\n")
    path = results / "index.html"
    with atomic_path(path, suffix=".html") as tmp:
        tmp.write_text(page)
    return path
