"""The command line of every script: the shared flags become a ``Run`` (what every part of a
run needs: data set, family, seed, output folder, how the model is obtained) and the script's
own flags a frozen ``Options``; the argparse Namespace never leaves ``parse_args``.

A flag a script cannot honour is not offered: scripts that only evaluate shipped models get no
training flags (``trains=False``), ``--family`` lists only the families the script can run,
``--dataset`` only the data sets it has models for.
"""
from __future__ import annotations

import argparse
import atexit
import dataclasses
import math
import os
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import named_data
from atomic_io import process_alive
from models import HEADS, SAMPLERS, ModelFileError, zoo
from models.training import DISTRIBUTE, check_tf_config
from named_data import Dataset
from stacked_mnist import DataNotFoundError

from . import REPO_ROOT

QUICK_CAPS = {"samples": 500, "iwae_samples": 10, "prior_samples": 1000}
LEARNED_PRIOR = "flowprior_vae"  # the family --learned-prior stands for

# Seeds derived from the run seed, each stream by name (one place, so two parts of a run never
# share noise by accident and a stream keeps its numbers when others are added).
SEED_STREAMS = {"main": 0, "style_grid": 1, "recheck": 1, "maps_2d": 2}


def derive_seed(seed: int, stream: str) -> int:
    """The seed of the named ``stream`` of a run with seed ``seed``."""
    if stream not in SEED_STREAMS:
        raise ValueError(f"unknown seed stream {stream!r}; known: {sorted(SEED_STREAMS)}.")
    return seed + SEED_STREAMS[stream]


@dataclass(frozen=True)
class Run:
    """What a script's parts need to know about its run (no flags beyond these)."""

    row: str  # the script's name: results/<row>/
    family: str  # a key of models.FAMILIES
    dataset: Dataset  # --dataset: the data set the script runs on
    seed: int
    out: Path  # output folder
    command: str  # the command line, recorded in metrics.json
    quick: bool = False  # tiny data and one epoch: seconds
    data_dir: Optional[str] = None  # the data set's directory (else its environment variable)
    settings: Dict[str, str] = field(default_factory=dict)  # --set: model config changes
    retrain: bool = False
    ship: bool = False
    run_dir: Optional[Path] = None  # runs/<run>/ for a model that is not the shipped one
    epochs: Optional[int] = None
    tensorboard: Optional[str] = None
    distribute: str = "none"
    started: float = field(default_factory=time.time)

    @property
    def progress_verbosity(self) -> int:
        """Keras-style verbosity of a training loop: a progress bar, a line per epoch under CI
        (no bar redraws in the log), nothing for --quick."""
        return 0 if self.quick else (2 if os.environ.get("CI") else 1)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose refusals are one line on stderr (exit status 2), like every
    other known error of the scripts (``run_script``), instead of the usage text and a line."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (--help lists the flags)\n")


# The largest value of each count flag (by its dest), so that no flag can ask for more memory
# or time than a run can give: the images a flag makes are held in memory (100,000 mono
# images fill 314 MB, colour ones three times that), test sets hold 10,000 images. Every other
# count flag stops at MAX_COUNT.
MAX_COUNT = 1_000_000
COUNT_LIMITS = {
    "samples": 100_000, "per_digit": 10_000, "per_number": 100, "non_digits": 10_000,
    "top": 1000, "images": 10_000, "iwae_images": 10_000, "completion_images": 10_000,
    "subset": 10_000, "pairs": 10_000, "probe_train": 60_000, "tsne_points": 10_000,
    "iwae_samples": 100_000, "full_k": 1000, "subset_k": 10_000, "anomaly_samples": 1000,
    "eval_samples": 10_000, "steps": 100_000, "search_steps": 100_000,
    "refine_steps": 100_000, "completion_steps": 100_000, "epochs": 10_000,
}


# Count flags that need more than one: a t-SNE map of one point is no map.
COUNT_MINIMUMS = {"tsne_points": 2}


def check_count_limits(parser, values: dict) -> None:
    """Refuse (``parser.error``) a count flag above its ``COUNT_LIMITS`` entry or below its
    ``COUNT_MINIMUMS`` one."""
    for name, value in values.items():
        limit, least = COUNT_LIMITS.get(name), COUNT_MINIMUMS.get(name)
        flag = f"--{name.replace('_', '-')}"
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, int):
                continue
            if limit is not None and item > limit:
                parser.error(f"{flag} {item:,} is above its limit {limit:,} "
                             "(experiments.cli.COUNT_LIMITS); ask for fewer")
            if least is not None and item < least:
                parser.error(f"{flag} must be at least {least}, got {item}")


def integer_at_least(low: int, high: Optional[int] = None) -> Callable[[str], int]:
    """argparse type of an integer flag >= ``low`` (and <= ``high``), refused with a message
    otherwise."""
    wanted = f">= {low}" if high is None else f"from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {wanted}, got {text!r}")
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be an integer {wanted}, got {value}")
        return value

    return parse


def positive_number(text: str) -> float:
    """argparse type of a finite number > 0 (--temperature), refused with a message otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


count = integer_at_least(1, MAX_COUNT)  # a count flag: --samples, --epochs, ...
# --seed: TensorFlow takes seeds below 2**32, and the derived streams add up to their offset.
seed_value = integer_at_least(0, 2 ** 32 - 1 - max(SEED_STREAMS.values()))


def folder_name(text: str) -> str:
    """argparse type of a folder name under runs/ (--run): one plain name, no path."""
    try:
        return zoo.check_run_name(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err))


# Folders of the repository no run may write into (--out): the shipped files and the code.
PROTECTED = ("saved_models", "models", "experiments", "tests", "docs", "benchmarks", ".git",
             ".ci")


def output_folder(text: str) -> Path:
    """argparse type of --out: any folder except the repository itself and its code and
    shipped-model folders (a run writes metrics.json, figures and models there)."""
    out = Path(text).expanduser().resolve()  # a user's relative path is relative to the cwd
    root = REPO_ROOT.resolve()
    if out == root or any(out == root / name or out.is_relative_to(root / name)
                          for name in PROTECTED):
        raise argparse.ArgumentTypeError(
            f"{text} is the repository or one of its code or shipped-model folders "
            f"({', '.join(PROTECTED)}); choose an output folder such as results/<name>")
    return out


def datasets_with_models(families: Sequence[str]) -> Tuple[str, ...]:
    """The data sets for which every one of ``families`` has a shipped recipe."""
    def shipped(dataset: Dataset) -> bool:
        return all(zoo.has_recipe(f, False, dataset.model_tag) for f in families)

    return tuple(n for n in named_data.names() if shipped(named_data.get(n)))


def add_training_flags(parser) -> None:
    """Watching and scaling a training (every training command has them)."""
    parser.add_argument("--tensorboard", default=None, metavar="DIR",
                        help="write the loss terms and image grids of every epoch for "
                             "TensorBoard (`tensorboard --logdir DIR`), one subfolder per model")
    parser.add_argument("--distribute", choices=DISTRIBUTE, default="none",
                        help="train with tf.distribute: mirrored = every local GPU (or the "
                             "CPU), multiworker = the cluster in TF_CONFIG (default none)")


def check_training_flags(parser, distribute: str, tensorboard: Optional[str] = None) -> None:
    """Refuse, before any work, a training setup that would fail later."""
    if distribute == "multiworker":
        try:
            check_tf_config(os.environ.get("TF_CONFIG"))
        except ValueError as err:
            parser.error(str(err))
    if tensorboard is not None and Path(tensorboard).exists() and not Path(tensorboard).is_dir():
        parser.error(f"--tensorboard {tensorboard} is a file; give a folder for the summaries")


def add_debug_flag(parser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a known error instead of one line")


def add_data_flags(parser, datasets: Sequence[str]) -> None:
    parser.add_argument("--dataset", choices=datasets, default=datasets[0],
                        help=f"data set by name (default {datasets[0]})")
    parser.add_argument("--data-dir", "--mnist-dir", dest="data_dir", default=None,
                        help="directory with the data set's IDX files (default: its "
                             "environment variable, MNIST_DIR for MNIST, then the keras "
                             "download)")


def parse_args(doc: str, row: str, family: str, argv=None, extra: Optional[Callable] = None,
               quick_caps: Optional[dict] = None, trains: bool = True,
               families: Sequence[str] = (), datasets: Optional[Sequence[str]] = None):
    """``(Run, Options)`` from the command line. ``extra(parser)`` adds the script's own flags,
    which become the frozen dataclass ``Options``; ``quick_caps`` caps them under --quick.

    trains: offer the training flags (--retrain, --set, --ship, --run, --epochs, --head,
        --tensorboard, --distribute). families: the other families the script can run
        (--family; ``flowprior_vae`` also as --learned-prior). datasets: the --dataset choices
        (default: those with shipped models of the families).
    """
    parser = ArgumentParser(description=doc.strip().split("\n")[0], epilog=doc,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    choices = tuple(dict.fromkeys((family, *families)))
    if len(choices) > 1:
        parser.add_argument("--family", choices=choices, default=family,
                            help=f"model family (default {family})")
        if LEARNED_PRIOR in choices:
            parser.add_argument("--learned-prior", dest="family", action="store_const",
                                const=LEARNED_PRIOR,
                                help="the same as --family flowprior_vae: the VAE trained with "
                                     f"a learned flow prior p(z) (saved_models/{LEARNED_PRIOR}"
                                     f"_mono_*.keras); results go to results/{row}-learned_prior/")
    if trains:
        _add_model_flags(parser, family)
    parser.add_argument("--seed", type=seed_value, default=0,
                        help="run seed: data stacking, training and sampling derive from it")
    parser.add_argument("--out", type=output_folder, default=None,
                        help=f"output folder (default results/{row}/, or runs/<run>/{row}/ "
                             "for a model that is not the shipped one)")
    parser.add_argument("--quick", action="store_true",
                        help="a few hundred images and one epoch into --out (for tests; seconds)")
    add_data_flags(parser, tuple(datasets or datasets_with_models((family,))))
    add_debug_flag(parser)
    shared = {action.dest for action in parser._actions}
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if getattr(args, "temperature", None) is not None and not SAMPLERS[args.latent].tempered:
        tempered = [kind for kind, cls in SAMPLERS.items() if cls.tempered]
        parser.error(f"--temperature scales the noise of a {' or '.join(tempered)} sampler; "
                     f"--latent {args.latent} has none: add --latent {tempered[0]}, or leave "
                     "--temperature out")
    own = {name: value for name, value in vars(args).items() if name not in shared}
    check_count_limits(parser, {**own, "epochs": getattr(args, "epochs", None)})
    if args.quick:  # keep --quick at seconds whatever the defaults
        for name, cap in {**QUICK_CAPS, **(quick_caps or {})}.items():
            value = own.get(name)
            if isinstance(value, list):  # a flag that takes several counts
                own[name] = sorted({min(v, cap) for v in value})
            elif value is not None:
                own[name] = min(value, cap)
    options_type = dataclasses.make_dataclass("Options", list(own), frozen=True)
    run = _make_run(parser, args, row, family, argv, trains)
    _claim_output_folder(parser, run.out)
    return run, options_type(**own)


def _add_model_flags(parser, family: str) -> None:
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
    parser.add_argument("--run", type=folder_name, default=None,
                        help="run folder name under runs/ (default: from the family, the "
                             "--set values and the seed); alone, use that run's models")
    default_epochs = zoo.recipe(zoo.shipped_name(family, False)).epochs
    parser.add_argument("--epochs", type=count, default=None,
                        help=f"training epochs when training (default: the recipe's, "
                             f"{default_epochs} on MNIST)")
    parser.add_argument("--head", choices=HEADS, default="bernoulli",
                        help="output distribution p(x|z), the same as --set head=...; other "
                             "than bernoulli (the shipped one) it is trained on first use")
    add_training_flags(parser)


def _make_run(parser, args, row: str, default_family: str, argv, trains: bool) -> Run:
    family = getattr(args, "family", default_family)
    dataset = named_data.get(args.dataset)
    if trains and not zoo.has_recipe(family, False, dataset.model_tag):
        elsewhere = datasets_with_models((family,))
        parser.error(f"--family {family} has no models for --dataset {dataset.name}; "
                     + (f"it runs on: {', '.join(elsewhere)}" if elsewhere
                        else "no data set has a shipped model of it for the rows"))
    command = " ".join([f"python experiments/{row}.py"]
                       + list(sys.argv[1:] if argv is None else argv))
    model_flags = {}
    if trains:
        try:
            settings = _parse_settings(args.settings, args.head)
            zoo.recipe(zoo.shipped_name(family, False)).config.with_settings(settings)
        except ValueError as err:
            parser.error(str(err))
        if args.ship and (settings or not args.retrain or args.quick):
            parser.error("--ship replaces the shipped models: it needs --retrain, and neither "
                         "--set, another --head nor --quick")
        check_training_flags(parser, args.distribute, args.tensorboard)
        run_dir = None
        if (args.retrain or settings or args.run) and not args.quick and not args.ship:
            # Another data set's models train into their own run folder.
            base = family if args.dataset == parser.get_default("dataset") else \
                f"{family}-{args.dataset}"
            run_dir = zoo.run_folder(args.run or zoo.run_name(
                base, settings, args.seed if args.retrain else 0))
        model_flags = dict(settings=settings, retrain=args.retrain, ship=args.ship,
                           run_dir=run_dir, epochs=args.epochs, tensorboard=args.tensorboard,
                           distribute=args.distribute)
    out = args.out
    if out is None:
        latent = getattr(args, "latent", None)
        latent = latent if latent != parser.get_default("latent") else None
        if getattr(args, "temperature", None) is not None:  # not the row's own folder
            latent = f"{latent}-temperature_{args.temperature:g}"
        out = (model_flags.get("run_dir") or REPO_ROOT / "results") / output_name(
            row, family, default_family, dataset, parser.get_default("dataset"), latent)
    return Run(row=row, family=family, dataset=dataset, seed=args.seed, out=Path(out).resolve(),
               command=command, quick=args.quick, data_dir=args.data_dir, **model_flags)


def output_name(row: str, family: str, default_family: str, dataset: Dataset,
                default_dataset: str, latent: Optional[str] = None) -> str:
    """results/<row>/ for the script's defaults; another family, latent sampler (``latent``,
    when not the default) or data set adds a suffix (``vae_gen-learned_prior``,
    ``vae_gen-latent_flow``, ``vae_gen-fashion_mnist``)."""
    name = row
    if family != default_family:
        name += "-learned_prior" if family == LEARNED_PRIOR else f"-{family}"
    if latent is not None:
        name += f"-latent_{latent}"
    if dataset.name != default_dataset:
        name += f"-{dataset.name}"
    return name


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


def check_writable_folder(parser, folder: Path, flag: str = "--out") -> None:
    """Make ``folder`` (and its parents) and check that a file can be written there, before
    any work starts; ``parser.error`` naming ``flag`` otherwise."""
    if folder.exists() and not folder.is_dir():
        parser.error(f"{flag} {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        parser.error(f"{flag} {folder} is not a writable folder ({err.strerror})")


def _claim_output_folder(parser, out: Path) -> None:
    """Make sure ``out`` is a writable folder before any work starts, and that no other live
    run writes into it (a lock file with the owner's process id; a dead owner's is taken
    over). The lock is released when this process ends."""
    check_writable_folder(parser, out)
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


# Errors a user can fix: shown as one line (exit status 2) unless --debug. OSError: a path
# that cannot be written or read (a file where a folder belongs, a full disk); FloatingPoint-
# Error: damaged weights (the message names the file and the fix); MemoryError: more than the
# machine holds.
KNOWN_ERRORS = (DataNotFoundError, ModelFileError, OSError, ValueError, FloatingPointError,
                MemoryError)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {' '.join(str(message).split())}\n"


def run_script(main: Callable) -> None:
    """Run a script's ``main()``; a known error ends it with one line on stderr and exit
    status 2 (``--debug`` shows the traceback). Warnings are one line each as well."""
    debug, formatter = "--debug" in sys.argv, warnings.formatwarning
    if not debug:
        warnings.formatwarning = _one_line_warning
    try:
        main()
    except KNOWN_ERRORS as err:
        if debug:
            traceback.print_exc()
        text = " ".join(str(err).split()) or type(err).__name__
        if isinstance(err, MemoryError):
            text = f"out of memory ({text}); ask for fewer samples or images"
        print(f"error: {text}", file=sys.stderr)
        raise SystemExit(2)
    finally:
        warnings.formatwarning = formatter
