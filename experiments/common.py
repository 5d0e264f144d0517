"""Shared pieces of the eight experiment scripts: flags, data, load-or-train, figures, metrics.

Every script has the same shape: parse the shared flags, get the data and the model (the
shipped weights in ``saved_models/`` unless ``--retrain``; ``--quick`` trains a throw-away model
on a few hundred images into the output folder), run its row, write ``metrics.json`` and PNG
figures to ``--out`` (default ``results/<row>/``) and print a short table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # scripts run as `python experiments/x.py` from anywhere
    sys.path.insert(0, str(REPO_ROOT))

# tf.keras as Keras 2 (the tf-keras package, which every module here imports explicitly for
# tfp.layers): TensorFlow's import then skips loading Keras 3, about 4 s of each script's
# start-up. A value the user has set wins.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from atomic_io import atomic_path, save_figure  # noqa: E402
from models import HEADS, ModelConfig, ModelFileError, build_model, fit_model  # noqa: E402
from models import load_model, save_model  # noqa: E402
from models.latent_flow import FlowFileError, LatentFlow, file_digest  # noqa: E402
from stacked_mnist import DataMode, StackedMNISTData  # noqa: E402

SAVED_MODELS = REPO_ROOT / "saved_models"
# The shipped networks, by (kind, trained without 8s). The VAE's latent size trades
# reconstruction against generation and anomaly detection. Measured with the same scripts
# (README; images judged at the Bernoulli mode): 16 dimensions with a 128-unit dense layer
# reach a test -ELBO of 76.4 nats (8: 86.4) and 96.1 % reconstruction accuracy (8: 94.1 %), but
# more samples from N(0, I) fall into "holes" between the posterior clouds (quality 77 % against
# 82 %) and the model trained without 8s explains the 8s better (ROC AUC 0.949 against 0.974).
# Generating and detecting are what the VAE is for, so it ships with 8. One extra convolution
# per resolution (block_convs=1) improves all of it at 8 dimensions: -ELBO 81.3,
# reconstruction 95.7 %, quality 85.9 %, at 2.5x the training time. With it, 6 dimensions
# reach colour quality 90.5 % and KL 0.046 but lose colour reconstruction (87.3 %; judged at
# the mean, README "A smaller latent"). The VAE trained without 8s keeps the plain network:
# in every comparison the better density model found the 8s worse (README), and the plain
# network trains in less than half the time.
# The AE has no prior to match, so it gets a wider code; its 128-unit dense layer keeps the
# file small (1.6 MB as float16; all shipped weights must stay under 25 MB).
_AE = ModelConfig(kind="ae", latent_dim=32, head="bernoulli", hidden_units=128)
_VAE = ModelConfig(kind="vae", latent_dim=8, head="bernoulli")
MODEL_CONFIGS = {
    ("ae", False): _AE,
    ("ae", True): _AE,
    ("vae", False): _VAE.replace(block_convs=1),
    ("vae", True): _VAE,
}
DEFAULT_EPOCHS = {"ae": 15, "vae": 30}
# Model files hold float16 weights: half the size (the shipped ones must stay small).
WEIGHT_DTYPE = "float16"
# The learning rate is constant for the first half of training, then shrinks 20% per epoch.
DECAY_FROM = {"ae": 8, "vae": 15}
# The ex-post latent prior (--latent flow): fitting takes about 2 minutes on 60,000 codes.
FLOW_EPOCHS = 20
QUICK_IMAGES = 512
QUICK_CAPS = {"samples": 500, "iwae_samples": 10, "prior_samples": 1000}
_CACHE = {}  # one run's data sets and models: the STACK rows ask for them several times


def parse_args(doc: str, row: str, kind: str, argv=None, extra=None) -> argparse.Namespace:
    """The shared flags; ``extra(parser)`` adds a script's own."""
    parser = argparse.ArgumentParser(
        description=doc.strip().split("\n")[0],
        epilog=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--retrain", action="store_true",
                        help="train the model(s) again and overwrite the file(s) in saved_models/")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS[kind],
                        help=f"training epochs when training (default {DEFAULT_EPOCHS[kind]})")
    parser.add_argument("--seed", type=int, default=0,
                        help="run seed: data stacking, training and sampling derive from it")
    parser.add_argument("--out", default=str(REPO_ROOT / "results" / row),
                        help=f"output folder (default results/{row}/)")
    parser.add_argument("--quick", action="store_true",
                        help="a few hundred images and one epoch into --out (for tests; seconds)")
    parser.add_argument("--head", choices=HEADS, default="bernoulli",
                        help="output distribution p(x|z); models other than bernoulli are "
                             "trained on first use (default bernoulli, the shipped one)")
    parser.add_argument("--mnist-dir", default=None,
                        help="directory with the MNIST IDX files (default: $MNIST_DIR, then the "
                             "keras download)")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    for name in ("epochs", "samples", "iwae_samples", "prior_samples", "top"):
        if getattr(args, name, 1) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    args.row, args.kind = row, kind
    args.command = " ".join([f"python experiments/{row}.py"]
                            + list(sys.argv[1:] if argv is None else argv))
    if args.quick:  # keep --quick at seconds whatever the defaults
        for name, cap in QUICK_CAPS.items():
            if hasattr(args, name):
                setattr(args, name, min(getattr(args, name), cap))
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    args.started = time.time()
    return args


def mode_for(channels: int, missing: bool) -> DataMode:
    return DataMode[f"{'COLOR' if channels == 3 else 'MONO'}_BINARY_"
                    f"{'MISSING' if missing else 'COMPLETE'}"]


def load_data(mode: DataMode, args):
    """``(x_train, y_train, x_test, y_test)``; ``--quick`` keeps QUICK_IMAGES of each."""
    key = ("data", mode, args.seed, args.quick)
    if key not in _CACHE:
        _CACHE[key] = _load_data(mode, args)
    return _CACHE[key]


def _load_data(mode: DataMode, args):
    data = StackedMNISTData(mode, seed=args.seed, mnist_dir=args.mnist_dir)
    x_train, y_train = data.get_full_data_set(training=True)
    x_test, y_test = data.get_full_data_set(training=False)
    if args.quick:
        x_train, y_train = x_train[:QUICK_IMAGES], y_train[:QUICK_IMAGES]
        # Test images in random order so a small slice still holds some 8s.
        pick = np.random.default_rng(args.seed).permutation(len(x_test))[:QUICK_IMAGES]
        x_test, y_test = x_test[pick], y_test[pick]
    return x_train, y_train, x_test, y_test


def model_file(kind: str, channels: int, missing: bool, head: str) -> Path:
    name = f"{kind}_{'color' if channels == 3 else 'mono'}_{'missing' if missing else 'complete'}"
    if head != "bernoulli":
        name += f"_{head}"
    return SAVED_MODELS / f"{name}.npz"


def get_model(args, channels: int, missing: bool, x_train, x_val):
    """Load the shipped model, or train (and save) it; returns ``(model, info dict)``.

    Colour models are the mono subnet applied to each channel: unless a colour-trained file
    exists, the colour model loads the mono weights, which is exact for stackedMNIST because
    its channels are independent digits.
    """
    # A --quick model lives in its run's output folder, so it is only shared within that run.
    key = ("model", args.kind, args.head, channels, missing, args.retrain, args.epochs,
           str(args.out) if args.quick else None)
    if key not in _CACHE:
        _CACHE[key] = _get_model(args, channels, missing, x_train, x_val)
    return _CACHE[key]


def _get_model(args, channels, missing, x_train, x_val):
    config = MODEL_CONFIGS[args.kind, missing].replace(head=args.head, channels=channels)
    mode = mode_for(channels, missing)
    if args.quick:
        path = args.out / f"quick_model_{mode.name.lower()}.npz"
        model, metadata = _train_and_save(config, mode, x_train, x_val, 1, args, path)
        return model, {"model_file": str(path), "quick": True, **metadata}
    path = model_file(args.kind, channels, missing, args.head)
    mono_path = model_file(args.kind, 1, missing, args.head)
    if not args.retrain:
        for candidate in (path, mono_path):
            if candidate.is_file():
                try:
                    model, metadata = load_model(candidate, channels=channels)
                except ModelFileError as err:
                    raise SystemExit(str(err)) from err
                print(f"loaded {_shown(candidate)} (trained on {metadata.get('trained_on')})")
                return model, {"model_file": _shown(candidate), **metadata}
    print(f"training {config.kind.upper()} on {mode.name} for {args.epochs} epochs -> "
          f"{_shown(path)}")
    model, metadata = _train_and_save(config, mode, x_train, x_val, args.epochs, args, path)
    return model, {"model_file": _shown(path), **metadata}


def _train_and_save(config, mode, x_train, x_val, epochs, args, path):
    model = build_model(config)
    start = time.time()
    decay_from = min(DECAY_FROM[config.kind], epochs)
    history = fit_model(model, x_train, x_val, epochs=epochs, seed=args.seed,
                        decay_from=decay_from, verbose=_progress_verbosity(args))
    seconds = time.time() - start
    metadata = {
        "trained_on": mode.name, "epochs": epochs, "seed": args.seed,
        "learning_rate": "1e-3, x0.8 per epoch from epoch %d" % (decay_from + 1),
        "train_images": int(len(x_train)), "train_seconds": round(seconds, 1),
        "seconds_per_epoch": round(seconds / epochs, 1),
        "history": {k: [round(float(v), 3) for v in vals] for k, vals in history.history.items()},
        "weights_stored_as": WEIGHT_DTYPE,
    }
    save_model(model, path, metadata, weight_dtype=WEIGHT_DTYPE)
    # Continue with the weights the file holds, as every later run will.
    model.set_network_weights([w.astype(WEIGHT_DTYPE) for w in model.network_weights()])
    return model, metadata


def _progress_verbosity(args) -> int:
    """Keras-style verbosity of a training loop: a progress bar, a line per epoch under CI (no
    bar redraws in the log), nothing for --quick."""
    return 0 if args.quick else (2 if os.environ.get("CI") else 1)


def get_latent_flow(args, model, info: dict):
    """The flow fitted to ``model``'s codes of its mono training images; ``(flow, info)``.

    It lives beside the model file (``<model>.flow.npz``) and records that file's SHA-256:
    a flow fitted to other weights (after --retrain) is fitted again, never silently reused.
    Mono and colour rows share it, since both draw one mono latent per channel.
    """
    model_path = REPO_ROOT / info["model_file"]  # absolute paths (--quick) stay as they are
    flow_path = model_path.with_suffix(".flow.npz")
    digest = file_digest(model_path)
    if flow_path.is_file():
        try:
            flow, metadata = LatentFlow.load(flow_path)
        except FlowFileError as err:
            raise SystemExit(f"{err} Delete it to fit the flow again, or restore the shipped "
                             "copy with `git checkout saved_models/`.") from err
        if metadata.get("model_sha256") == digest:
            print(f"loaded {_shown(flow_path)}")
            return flow, {"flow_file": _shown(flow_path), **metadata}
        print(f"{_shown(flow_path)} was fitted to other weights than {_shown(model_path)}; "
              "fitting it again")
    mode = mode_for(1, missing=str(info.get("trained_on", "")).endswith("MISSING"))
    x_train, _, x_test, _ = load_data(mode, args)
    epochs = 2 if args.quick else FLOW_EPOCHS
    print(f"fitting the latent flow to the codes of {len(x_train)} {mode.name} images for "
          f"{epochs} epochs -> {_shown(flow_path)}")
    start = time.time()
    flow = LatentFlow(model.config.latent_dim, seed=args.seed)
    mean, scale = model.mono_code_distribution(x_train)
    val_mean, val_scale = model.mono_code_distribution(x_test)
    history = flow.fit(mean, scale, val_mean, val_scale, epochs=epochs, seed=args.seed,
                       verbose=_progress_verbosity(args))
    metadata = {
        "model_file": _shown(model_path), "model_sha256": digest, "fitted_on": mode.name,
        "codes": "z ~ q(z|x), redrawn every epoch" if model.is_vae else "the AE codes",
        "train_images": int(len(x_train)), "epochs": epochs, "seed": args.seed,
        "layers": flow.layers, "hidden_units": flow.hidden_units,
        "fit_seconds": round(time.time() - start, 1), "history": history,
    }
    flow.save(flow_path, metadata)
    return flow, {"flow_file": _shown(flow_path), **metadata}


def _shown(path: Path) -> str:
    """A path as printed and recorded: relative to the repository when inside it."""
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def verifier():
    """The shipped judge, loaded once per run."""
    if "verifier" not in _CACHE:
        from verification_net import VerificationNet

        net = VerificationNet()
        if not net.done_training:
            raise SystemExit("The verification net has no weights: run "
                             "`python verification_net.py`.")
        _CACHE["verifier"] = net
    return _CACHE["verifier"]


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------
def write_metrics(args, metrics: dict) -> Path:
    """metrics.json (atomically) with the run's command line, then a printed table."""
    metrics = {
        "row": args.row,
        "command": args.command,
        "seed": args.seed,
        "quick": bool(args.quick),
        "wall_seconds": round(time.time() - args.started, 1),
        **metrics,
    }
    path = args.out / "metrics.json"
    with atomic_path(path) as tmp:
        # allow_nan=False: a NaN or infinity would make the file unreadable as strict JSON.
        tmp.write_text(json.dumps(metrics, indent=2, default=_json_default, allow_nan=False))
    print(f"\n{args.row} results ({path}):")
    for key, value in metrics.items():
        if isinstance(value, (int, float, str, bool)) or value is None:
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            print(f"  {key:40s} {shown}")
    return path


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")


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
    if title:
        ax.set_title(title)
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
