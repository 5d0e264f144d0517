"""What a run writes: metrics.json (atomically, with the command line), PNG figures, samples
files. Every function takes the values it writes and the path; none reads flags."""
from __future__ import annotations

import json
import textwrap
import time
import zipfile
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from atomic_io import atomic_path, save_figure  # noqa: E402

from .results_page import is_results_folder, write_index  # noqa: E402


def write_metrics(run, metrics: dict) -> Path:
    """``run.out``/metrics.json (atomically) with the run's command line, then a printed
    table; the results page of the folder above gets this section."""
    metrics = {
        "row": run.row,
        "command": run.command,
        "seed": run.seed,
        "quick": bool(run.quick),
        "wall_seconds": round(time.time() - run.started, 1),
        **metrics,
    }
    path = run.out / "metrics.json"
    with atomic_path(path) as tmp:
        # allow_nan=False: a NaN or infinity would make the file unreadable as strict JSON.
        tmp.write_text(json.dumps(metrics, indent=2, default=json_default, allow_nan=False))
    print(f"\n{run.row} results ({path}):")
    for key, value in metrics.items():
        if isinstance(value, (int, float, str, bool)) or value is None:
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            print(f"  {key:40s} {shown}")
    if is_results_folder(run.out.parent):
        print(f"  {'results page':40s} {write_index(run.out.parent)}")
    return path


def json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def save_samples(images, path, **arrays) -> None:
    """samples.npz with the array ``images`` (float32) and any other named ``arrays``, deflated
    at level 1: np.savez_compressed's level 6 takes 2.7x as long on 26,000 colour images for a
    file half the size."""
    with atomic_path(path) as tmp, zipfile.ZipFile(
            tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in {"images": images.astype(np.float32), **arrays}.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(array))


def save_class_histogram(shares, path, title: str) -> None:
    """Bars of the class shares (channels, 10), one panel per channel."""
    channels = len(shares)
    fig, axes = plt.subplots(1, channels, figsize=(4 * channels, 3), squeeze=False)
    for c, ax in enumerate(axes[0]):
        ax.bar(range(10), shares[c])
        ax.axhline(0.1, color="k", ls=":", lw=1)
        ax.set(xticks=range(10), xlabel="digit", ylabel="share",
               title="RGB"[c] + " channel" if channels == 3 else "digit frequencies")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def save_image_grid(images, path, title: str = "", columns: int = 10,
                    captions: Optional[list] = None) -> Path:
    """A grid of (N, 28, 28, C) images as PNG, drawn as one mosaic (fast for large grids)."""
    images = np.clip(np.asarray(images, np.float32), 0, 1)
    label_room = 0 if captions is None else 9  # pixels above each image for its caption
    rows, width, height = int(np.ceil(len(images) / columns)), 30, 30 + label_room
    channels = images.shape[-1]
    # White gaps: colour images are drawn as they are, mono ones inverted below.
    gap = 0.0 if channels == 1 else 1.0
    mosaic = np.full((rows * height, columns * width, channels), gap, np.float32)
    for i, image in enumerate(images):
        top, left = (i // columns) * height + label_room + 1, (i % columns) * width + 1
        mosaic[top:top + 28, left:left + 28] = image
    if channels == 1:  # mono digits drawn dark on white, as on paper
        mosaic = 1.0 - mosaic[..., 0]
    fig, ax = plt.subplots(figsize=(columns * 0.8, rows * 0.8 * height / width + 0.5))
    ax.imshow(mosaic, cmap="gray" if channels == 1 else None, vmin=0, vmax=1,
              interpolation="nearest")
    ax.axis("off")
    for i, caption in enumerate(captions or []):
        ax.text((i % columns + 0.5) * width, (i // columns) * height + label_room, caption,
                ha="center", va="bottom", fontsize=7)
    if title:  # wrapped to the grid's width (about 8 characters a column)
        ax.set_title(textwrap.fill(title, width=max(8 * columns, 30)))
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return Path(path)


def save_reconstruction_figure(originals, reconstructions, path, title: str,
                               columns: int = 10) -> Path:
    """Originals in odd rows, their reconstructions right below."""
    count = min(len(originals), 2 * columns)
    pairs = []
    for start in range(0, count, columns):
        pairs.extend(originals[start:start + columns])
        pairs.extend(reconstructions[start:start + columns])
    return save_image_grid(np.asarray(pairs), path, title=title, columns=columns)
