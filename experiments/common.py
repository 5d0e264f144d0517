"""Command-line and output concerns of the experiment scripts: flags, data, which model a run
uses (the library's shipped one, or one trained into a run folder), figures, metrics.

Every script has the same shape: parse the shared flags, get the data and the model, run its
row, write ``metrics.json`` and PNG figures to ``--out`` and print a short table.

Which model: the shipped one (``models.zoo``) unless ``--retrain`` or ``--set`` ask for
another; those are trained into a run folder, ``runs/<run>/`` (model files, their config and
metadata as JSON, the command lines, and the rows' outputs), and reused from there by the same
command. ``saved_models/`` changes only with ``--ship``. ``--quick`` trains a throw-away model
on a few hundred images into the output folder.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # scripts run as `python experiments/x.py` from anywhere
    sys.path.insert(0, str(REPO_ROOT))


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow without its start-up chatter (oneDNN, CUDA probes) and retracing
    warnings, unless the user has set TF_CPP_MIN_LOG_LEVEL: then their setting rules.

    The chatter is written by native code before any log level applies, so the process's
    stderr goes to a temporary file during the import and is replayed if the import fails.
    """
    if "tensorflow" in sys.modules:  # imported already (a notebook, a test session)
        return
    # tf.keras as Keras 2 (the tf-keras package, which every module here imports explicitly
    # for tfp.layers): TensorFlow's import then skips loading Keras 3, about 4 s of start-up.
    # Only before TensorFlow is imported: set later, it sends tf.keras down a path that
    # TensorFlow Probability's import then fails on.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the device probes print here, not later
            tf.get_logger().setLevel("ERROR")
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


_import_tensorflow_quietly()

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from atomic_io import atomic_path, process_alive, save_figure  # noqa: E402
from models import HEADS, ModelFileError, load_model, save  # noqa: E402
from models import zoo  # noqa: E402
from models.flowprior import FlowPriorVAE  # noqa: E402
from models.training import DISTRIBUTE, distribution_strategy, worker_suffix  # noqa: E402
from stacked_mnist import DataMode, StackedMNISTData  # noqa: E402

QUICK_IMAGES = 512
QUICK_CAPS = {"samples": 500, "iwae_samples": 10, "prior_samples": 1000}
_CACHE = {}  # one run's data sets, models and judge: the STACK rows ask for them repeatedly


def count(text: str) -> int:
    """argparse type of a count flag: an integer >= 1, refused with a message otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


LEARNED_PRIOR_KIND = FlowPriorVAE.kind  # what --learned-prior switches the VAE rows to


def parse_args(doc: str, row: str, kind: str, argv=None, extra=None,
               quick_caps=None, learned_prior: bool = False) -> argparse.Namespace:
    """The shared flags; ``extra(parser)`` adds a script's own, and ``quick_caps`` the caps
    --quick puts on them (beside QUICK_CAPS). ``learned_prior``: offer --learned-prior, the
    VAE whose prior was learned with it (family LEARNED_PRIOR_KIND) instead of ``kind``."""
    parser = argparse.ArgumentParser(
        description=doc.strip().split("\n")[0],
        epilog=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--retrain", action="store_true",
                        help="train the model(s) again, into a run folder (runs/<run>/, "
                             "replacing that run's models); saved_models/ is left alone "
                             "unless --ship")
    parser.add_argument("--set", dest="settings", nargs="+", default=[], metavar="KEY=VALUE",
                        help="change the model config, e.g. --set latent_dim=2 beta=4; the "
                             "model is trained into a run folder on first use and reused after")
    parser.add_argument("--ship", action="store_true",
                        help="with --retrain: write the retrained mono model(s) to "
                             "saved_models/, replacing the shipped ones")
    parser.add_argument("--run", default=None,
                        help="run folder name under runs/ (default: from the family, the "
                             "--set values and the seed); alone, use that run's models")
    default_epochs = zoo.recipe(zoo.shipped_name(kind, False)).epochs
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs when training (default: the recipe's, "
                             f"{default_epochs})")
    parser.add_argument("--seed", type=int, default=0,
                        help="run seed: data stacking, training and sampling derive from it")
    parser.add_argument("--out", default=None,
                        help=f"output folder (default results/{row}/, or runs/<run>/{row}/ "
                             "for a model that is not the shipped one)")
    parser.add_argument("--quick", action="store_true",
                        help="a few hundred images and one epoch into --out (for tests; seconds)")
    add_training_flags(parser)
    parser.add_argument("--head", choices=HEADS, default="bernoulli",
                        help="output distribution p(x|z), the same as --set head=...; other "
                             "than bernoulli (the shipped one) it is trained on first use")
    parser.add_argument("--mnist-dir", default=None,
                        help="directory with the MNIST IDX files (default: $MNIST_DIR, then the "
                             "keras download)")
    if learned_prior:
        parser.add_argument("--learned-prior", action="store_true",
                            help="the VAE trained with a learned flow prior p(z) "
                                 f"(saved_models/{LEARNED_PRIOR_KIND}_mono_*.keras), sampled "
                                 "from that prior, instead of the N(0, I) VAE; results go "
                                 f"to results/{row}-learned_prior/")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if getattr(args, "learned_prior", False):
        kind = LEARNED_PRIOR_KIND
    for name in ("epochs", "samples", "iwae_samples", "prior_samples", "top"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    try:
        args.settings = _parse_settings(args.settings, args.head)
        zoo.recipe(zoo.shipped_name(kind, False)).config.with_settings(args.settings)
    except ValueError as err:
        parser.error(str(err))
    if args.run is not None and not re.fullmatch(r"[A-Za-z0-9_=,+-][A-Za-z0-9_.=,+-]*", args.run):
        parser.error(f"--run takes a folder name under runs/ (letters, digits, _ . = , + -), "
                     f"got {args.run!r}")
    if args.ship and (args.settings or not args.retrain or args.quick):
        parser.error("--ship replaces the shipped models: it needs --retrain, and neither "
                     "--set, another --head nor --quick")
    args.row, args.kind = row, kind
    args.command = " ".join([f"python experiments/{row}.py"]
                            + list(sys.argv[1:] if argv is None else argv))
    if args.quick:  # keep --quick at seconds whatever the defaults
        for name, cap in {**QUICK_CAPS, **(quick_caps or {})}.items():
            value = getattr(args, name, None)
            if isinstance(value, list):  # a flag that takes several counts
                setattr(args, name, sorted({min(v, cap) for v in value}))
            elif value is not None:
                setattr(args, name, min(value, cap))
    args.run_dir = None
    if (args.retrain or args.settings or args.run) and not args.quick and not args.ship:
        args.run_dir = zoo.run_folder(args.run or zoo.run_name(kind, args.settings, args.seed
                                                               if args.retrain else 0))
    if args.out is None:  # the learned-prior VAE's results sit beside the row's own
        args.out = (args.run_dir or REPO_ROOT / "results") / (
            f"{row}-learned_prior" if getattr(args, "learned_prior", False) else row)
    if args.seed < 0:
        parser.error("--seed must be an integer >= 0")
    check_training_flags(parser, args)
    args.out = Path(args.out).resolve()  # a user's relative path is relative to their cwd
    _claim_output_folder(parser, args.out)
    args.started = time.time()
    return args


def _claim_output_folder(parser, out: Path) -> None:
    """Make sure ``out`` is a writable folder before any work starts, and that no other live
    run writes into it (a lock file with the owner's process id; a dead owner's is taken
    over). The lock is released when this process ends."""
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        parser.error(f"--out {out} is not a writable folder ({err.strerror})")
    lock = out / ".run.lock"
    try:
        owner = int(lock.read_text())
    except (OSError, ValueError):
        owner = None
    if owner not in (None, os.getpid()) and process_alive(owner):
        parser.error(f"another run (process {owner}) is writing into {out}; wait for it, or "
                     "choose another --out")
    lock.write_text(str(os.getpid()))
    atexit.register(lambda: lock.unlink(missing_ok=True)
                    if lock.is_file() and lock.read_text() == str(os.getpid()) else None)


def add_training_flags(parser) -> None:
    """Watching and scaling a training (every training command has them)."""
    parser.add_argument("--tensorboard", default=None, metavar="DIR",
                        help="write the loss terms and image grids of every epoch for "
                             "TensorBoard (`tensorboard --logdir DIR`), one subfolder per model")
    parser.add_argument("--distribute", choices=DISTRIBUTE, default="none",
                        help="train with tf.distribute: mirrored = every local GPU (or the "
                             "CPU), multiworker = the cluster in TF_CONFIG (default none)")


def check_training_flags(parser, args) -> None:
    if args.distribute == "multiworker" and "TF_CONFIG" not in os.environ:
        parser.error("--distribute multiworker needs the cluster in the TF_CONFIG environment "
                     "variable (README: Watch, resume, scale out)")


def _parse_settings(pairs, head: str) -> dict:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE pairs, got {pair!r}")
        settings[key] = value
    if head != "bernoulli":
        settings.setdefault("head", head)
    return settings


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


def get_model(args, channels: int, missing: bool, x_train, x_val, labels=None,
              val_labels=None):
    """The model a row uses, ``(model, info dict)``: the shipped one, or one trained into the
    run folder (or, with --quick, into --out) and reused from there. A conditional family
    trains on the images' ``labels`` (and ``val_labels``).

    Colour models are the mono subnet applied to each channel: the shipped colour model loads
    the mono weights (exact for stackedMNIST, whose channels are independent digits); a run
    uses its colour-trained file if it has one, else its mono file, else trains on colour data.
    """
    config = zoo.recipe(zoo.shipped_name(args.kind, missing)).config.with_settings(
        args.settings).replace(channels=channels)
    key = ("model", config, missing, args.retrain, args.epochs, args.seed,
           str(args.run_dir or ""), str(args.out) if args.quick else None)
    if key not in _CACHE:
        _CACHE[key] = _get_model(args, channels, missing, x_train, x_val,
                                 {"labels": labels, "val_labels": val_labels})
    return _CACHE[key]


def _get_model(args, channels, missing, x_train, x_val, labels):
    name = zoo.shipped_name(args.kind, missing)
    mode = mode_for(channels, missing)
    if args.quick:
        path = args.out / f"quick_model_{mode.name.lower()}.keras"
        model, info = _train_into(args, name, channels, mode, x_train, x_val, path, labels,
                                  epochs=1)
        return model, {**info, "quick": True}
    if args.run_dir is None and not args.retrain:
        try:
            model = zoo.load(name, channels=channels)
        except ModelFileError as err:
            raise SystemExit(str(err)) from err
        path = zoo.path(name)
        print(f"loaded {zoo.shown_path(path)} (trained on {model.metadata.get('trained_on')})")
        return model, {"model_file": zoo.shown_path(path), **model.metadata}
    if args.ship:
        if channels != 1:
            raise SystemExit("--ship replaces the shipped mono models; run it on a mono row "
                             "or with experiments/train_all.py")
        return _train_into(args, name, channels, mode, x_train, x_val, zoo.path(name), labels)
    colour_file = args.run_dir / f"{name.replace('_mono_', '_color_')}.keras"
    mono_file = args.run_dir / f"{name}.keras"
    candidates = (colour_file, mono_file) if channels == 3 else (mono_file,)
    wanted = zoo.recipe(name).config.with_settings(args.settings)
    for candidate in candidates if not args.retrain else ():
        saved = zoo.file_config(candidate)
        if saved is not None and saved.replace(channels=1) == wanted:
            model = load_model(candidate, channels=channels)
            print(f"loaded {zoo.shown_path(candidate)} from run {args.run_dir.name}")
            return model, {"model_file": zoo.shown_path(candidate), **model.metadata}
    return _train_into(args, name, channels, mode, x_train, x_val, candidates[0], labels)


def _train_into(args, name, channels, mode, x_train, x_val, path, labels, epochs=None):
    """Train the recipe ``name`` with the run's settings on ``x_train``, save it to ``path``
    (with its config and metadata as JSON beside it, and the command line in the folder).

    Every epoch leaves a checkpoint (``zoo.backup_folder``): the same command, run again after
    an interruption, resumes from the last finished epoch; the model file is written only at
    the end, and the checkpoints are removed once it is."""
    epochs = epochs or args.epochs
    print(f"training {name} ({mode.name}) for {epochs or zoo.recipe(name).epochs} epochs "
          f"-> {zoo.shown_path(path)}")
    strategy = distribution_strategy(args.distribute)
    backup = zoo.backup_folder(path)
    tensorboard = Path(args.tensorboard).resolve() / path.stem if args.tensorboard else None
    model = zoo.train(name, x_train, x_val, settings=args.settings, epochs=epochs,
                      seed=args.seed, channels=channels, verbose=progress_verbosity(args),
                      data=mode.name, backup_dir=backup, tensorboard_dir=tensorboard,
                      strategy=strategy, **labels)
    suffix = worker_suffix(strategy)
    if suffix:  # another worker of a cluster: the chief writes the model files
        path = path.with_name(path.stem + suffix + ".keras")
    save(model, path)
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({"config": model.config.to_dict(), **model.metadata},
                                  indent=2, default=_json_default))
    with open(path.parent / "commands.txt", "a") as commands:
        commands.write(args.command + "\n")
    shutil.rmtree(str(backup) + suffix, ignore_errors=True)
    return model, {"model_file": zoo.shown_path(path), **model.metadata}


def progress_verbosity(args) -> int:
    """Keras-style verbosity of a training loop: a progress bar, a line per epoch under CI (no
    bar redraws in the log), nothing for --quick."""
    return 0 if args.quick else (2 if os.environ.get("CI") else 1)


def get_latent_flow(args, model, info: dict):
    """The flow fitted to ``model``'s codes of its mono training images; ``(flow, info)``.

    It lives beside the model file (``<model>.flow.keras``) and records that file's SHA-256:
    a flow fitted to other weights (after --retrain) is fitted again, never silently reused.
    Mono and colour rows share it, since both draw one mono latent per channel.
    """
    model_path = REPO_ROOT / info["model_file"]  # absolute paths stay as they are
    flow_path = zoo.flow_path(model_path)
    try:
        flow, status = zoo.flow_for_file(model_path)
    except ModelFileError as err:
        raise SystemExit(str(err)) from err
    if flow is not None:
        print(f"loaded {zoo.shown_path(flow_path)}")
        return flow, {**flow.metadata, "flow_file": zoo.shown_path(flow_path)}
    if status == "stale":
        print(f"{zoo.shown_path(flow_path)} was fitted to other weights than {zoo.shown_path(model_path)}; "
              "fitting it again")
    mode = mode_for(1, missing=str(info.get("trained_on", "")).endswith("MISSING"))
    x_train, _, x_test, _ = load_data(mode, args)
    epochs = 2 if args.quick else zoo.FLOW_EPOCHS
    print(f"fitting the latent flow to the codes of {len(x_train)} {mode.name} images for "
          f"{epochs} epochs -> {zoo.shown_path(flow_path)}")
    flow = zoo.fit_flow(model, x_train, x_test, seed=args.seed, epochs=epochs,
                        verbose=progress_verbosity(args))
    flow.metadata["fitted_on"] = mode.name
    zoo.save_flow(flow, model_path)
    return flow, {**flow.metadata, "flow_file": zoo.shown_path(flow_path)}


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
    # The one-page view of a results folder (results/ or a run folder) gets this section.
    if args.out.parent.name == "results" or args.out.parent.parent == zoo.RUNS:
        from results_page import write_index

        print(f"  {'results page':40s} {write_index(args.out.parent)}")
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
