"""Data and models of a run: the library's shipped model, or one trained into a run folder.

Which model: the shipped one (``models.zoo``) unless --retrain or --set ask for another; those
are trained into a run folder, ``runs/<run>/`` (model files, their config and metadata as
JSON, the command lines, and the rows' outputs), and reused from there by the same command.
``saved_models/`` changes only with --ship. --quick trains a throw-away model on a few hundred
images into the output folder.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Optional

import numpy as np

from atomic_io import atomic_path
from models import FAMILIES, load_model, save, zoo
from models.training import distribution_strategy, worker_suffix
from named_data import Dataset

from . import REPO_ROOT
from .cli import Run
from .outputs import json_default

QUICK_IMAGES = 512  # --quick's training images
QUICK_TEST_IMAGES = 256  # and test images: fewer, scoring them costs more than training on them
_CACHE = {}  # one run's data sets and models: the STACK rows ask for them repeatedly


def load_data(run: Run, dataset: Dataset, missing: bool = False):
    """``(x_train, y_train, x_test, y_test)`` of ``dataset`` (``missing``: training images
    without the anomaly class); --quick keeps QUICK_IMAGES training and QUICK_TEST_IMAGES test
    images."""
    key = ("data", dataset, missing, run.seed, run.quick, run.data_dir)
    if key not in _CACHE:
        x_train, y_train, x_test, y_test = dataset.load(
            missing, seed=run.seed, directory=run.data_dir,
            max_train_images=QUICK_IMAGES if run.quick else None)
        if run.quick:
            # Test images in random order so a small slice still holds some anomalies.
            pick = np.random.default_rng(run.seed).permutation(len(x_test))[:QUICK_TEST_IMAGES]
            x_test, y_test = x_test[pick], y_test[pick]
        _CACHE[key] = x_train, y_train, x_test, y_test
    return _CACHE[key]


def model_name(run: Run, dataset: Dataset, missing: bool) -> str:
    """The recipe of the run's family for ``dataset`` (shipped under this name)."""
    return zoo.shipped_name(run.family, missing, dataset.model_tag)


def get_model(run: Run, dataset: Dataset, missing: bool, x_train, x_val, labels=None,
              val_labels=None):
    """The model a row uses, ``(model, info dict)``: the shipped one, or one trained into the
    run folder (or, with --quick, into --out) and reused from there. A conditional family
    trains on the images' ``labels`` (and ``val_labels``).

    Colour models are the mono subnet applied to each channel: the shipped colour model loads
    the mono weights (exact for stacked data, whose channels are independent images); a run
    uses its colour-trained file if it has one, else its mono file, else trains on colour data.
    """
    name = model_name(run, dataset, missing)
    config = zoo.recipe(name).config.with_settings(run.settings).replace(
        channels=dataset.channels)
    key = ("model", config, dataset.name, missing, run.retrain, run.epochs, run.seed,
           str(run.run_dir or ""), str(run.out) if run.quick else None)
    if key not in _CACHE:
        _CACHE[key] = _get_model(run, name, dataset, missing, x_train, x_val,
                                 {"labels": labels, "val_labels": val_labels})
    return _CACHE[key]


def _get_model(run: Run, name: str, dataset: Dataset, missing: bool, x_train, x_val, labels):
    channels, data = dataset.channels, dataset.data_name(missing)
    if run.quick:
        path = run.out / f"quick_model_{data.lower()}.keras"
        model, info = _quick(run, (name, data), channels, path, lambda: _train_into(
            run, name, channels, data, x_train, x_val, path, labels, epochs=1)[0])
        return model, {**info, "quick": True}
    if run.run_dir is None and not run.retrain:
        model = zoo.load(name, channels=channels)
        path = zoo.path(name)
        print(f"loaded {zoo.shown_path(path)} (trained on {model.metadata.get('trained_on')})")
        return model, {"model_file": zoo.shown_path(path), **model.metadata}
    if run.ship:
        if channels != 1:
            raise ValueError("--ship replaces the shipped mono models; run it on a mono row "
                             "or with experiments/train_all.py")
        return _train_into(run, name, channels, data, x_train, x_val, zoo.path(name), labels)
    colour_file = run.run_dir / f"{name.replace('_mono_', '_color_')}.keras"
    mono_file = run.run_dir / f"{name}.keras"
    candidates = (colour_file, mono_file) if channels == 3 else (mono_file,)
    wanted = zoo.recipe(name).config.with_settings(run.settings)
    for candidate in candidates if not run.retrain else ():
        saved = zoo.file_config(candidate)
        if saved is not None and saved.replace(channels=1) == wanted:
            model = load_model(candidate, channels=channels)
            print(f"loaded {zoo.shown_path(candidate)} from run {run.run_dir.name}")
            return model, {"model_file": zoo.shown_path(candidate), **model.metadata}
    return _train_into(run, name, channels, data, x_train, x_val, candidates[0], labels)


def _train_into(run: Run, name: str, channels: int, data: str, x_train, x_val, path: Path,
                labels, epochs=None):
    """Train the recipe ``name`` with the run's settings on ``x_train``, save it to ``path``
    (with its config and metadata as JSON beside it, and the command line in the folder).

    Every epoch leaves a checkpoint (``zoo.backup_folder``): the same command, run again after
    an interruption, resumes from the last finished epoch; the model file is written only at
    the end, and the checkpoints are removed once it is."""
    epochs = epochs or run.epochs
    print(f"training {name} ({data}) for {epochs or zoo.recipe(name).epochs} epochs "
          f"-> {zoo.shown_path(path)}")
    strategy = distribution_strategy(run.distribute)
    backup = zoo.backup_folder(path)
    tensorboard = Path(run.tensorboard).resolve() / path.stem if run.tensorboard else None
    model = zoo.train(name, x_train, x_val, settings=run.settings, epochs=epochs,
                      seed=run.seed, channels=channels, verbose=run.progress_verbosity,
                      data=data, backup_dir=backup, tensorboard_dir=tensorboard,
                      strategy=strategy, **labels)
    suffix = worker_suffix(strategy)
    if suffix:  # another worker of a cluster: the chief writes the model files
        path = path.with_name(path.stem + suffix + ".keras")
    save(model, path)
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({"config": model.config.to_dict(), **model.metadata},
                                  indent=2, default=json_default))
    with open(path.parent / "commands.txt", "a") as commands:
        commands.write(run.command + "\n")
    shutil.rmtree(str(backup) + suffix, ignore_errors=True)
    return model, {"model_file": zoo.shown_path(path), **model.metadata}


def shipped_or_quick(run: Run, name: str):
    """The shipped model ``name``, or with --quick a throw-away one trained on tiny data of its
    recipe (``zoo.training_set``) into the output folder (the analysis scripts that compare
    several shipped models)."""
    if not run.quick:
        return zoo.load(name)
    plan = zoo.recipe(name)
    dataset = zoo.training_set(plan)
    x_train, y_train, x_test, y_test = load_data(run, dataset, plan.missing)
    path = run.out / f"quick_{name}.keras"
    conditional = FAMILIES[plan.config.kind].conditional

    def train():
        model = zoo.train(name, x_train, x_test, epochs=1, seed=run.seed, verbose=0,
                          labels=y_train if conditional else None,
                          val_labels=y_test if conditional else None)
        save(model, path)
        return model

    # Keyed by what the recipe trains, not its name: recipes that differ only in the seed of
    # their shipped file (a second training) give one quick model, which takes the run's seed.
    what = (repr(dataclasses.replace(plan, seed=0)), dataset.name)
    return _quick(run, what, 1, path, train)[0]


# A --quick model is a function of its recipe, the run's settings and seed and its data: one
# process (run_all.py --quick, the test suite) trains each once, and later runs that ask for
# it load a copy of that file into their own output folder. Processes that name one folder in
# $QUICK_MODEL_CACHE (the test suite's workers) share them: the first to need a model trains
# it and leaves a copy there for the others.
QUICK_CACHE_ENV = "QUICK_MODEL_CACHE"
_QUICK_FILES = {}


def _quick(run: Run, what: tuple, channels: int, path: Path, train):
    """``(model, info)``: ``train()`` (which saves the model to ``path``), or a copy of the
    file an earlier run trained for the same ``what`` (recipe and data), channels, settings
    and seed: in this process, or in another one sharing $QUICK_MODEL_CACHE."""
    key = (*what, channels, json.dumps(run.settings, sort_keys=True, default=str), run.seed,
           str(run.data_dir))
    earlier, digest = _QUICK_FILES.get(key, (None, None))
    if earlier is None or not earlier.is_file() or zoo.file_digest(earlier) != digest:
        shared = _shared_quick_file(key)
        if shared is None or not shared.is_file():
            model = train()  # (a file replaced since, e.g. by another --set into that folder)
            _QUICK_FILES[key] = path, zoo.file_digest(path)
            if shared is not None:
                _copy_model_file(path, shared)
            return model, {"model_file": zoo.shown_path(path), **model.metadata}
        earlier = shared
    if earlier != path:
        _copy_model_file(earlier, path)
    model = load_model(path, channels=channels)
    print(f"loaded a copy of {zoo.shown_path(earlier)}, which an earlier run trained")
    return model, {"model_file": zoo.shown_path(path), **model.metadata}


def _shared_quick_file(key: tuple) -> Optional[Path]:
    folder = os.environ.get(QUICK_CACHE_ENV)
    if not folder:
        return None
    return Path(folder) / f"{hashlib.sha256(repr(key).encode()).hexdigest()[:24]}.keras"


def _copy_model_file(source: Path, target: Path) -> None:
    """The model file and the JSON beside it (if any), each written whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".keras"):  # the model last: its presence means both are there
        if source.with_suffix(suffix).is_file():
            with atomic_path(target.with_suffix(suffix)) as tmp:
                shutil.copyfile(source.with_suffix(suffix), tmp)


def get_latent_sampler(run: Run, model, info: dict, dataset: Dataset, kind: str = "flow"):
    """The ex-post sampler of ``kind`` ("flow", "diffusion" or "gmm") fitted to ``model``'s
    codes of its mono training images; ``(sampler, info)``.

    It lives beside the model file (``<model>.<kind>.keras``) and records that file's SHA-256:
    a sampler fitted to other weights (after --retrain) is fitted again, never silently reused.
    A shipped model without that sampler gets one fitted into runs/samplers/ (only
    ``train_all.py --ship`` writes saved_models/). Mono and colour rows share it, since both
    draw one mono latent per channel.
    """
    model_path = REPO_ROOT / info["model_file"]  # absolute paths stay as they are
    sampler, status, path = zoo.find_sampler(model_path, kind)
    if sampler is None:
        if status == "stale":
            print(f"{zoo.shown_path(path)} was fitted to other weights than "
                  f"{zoo.shown_path(model_path)}; fitting it again")
        mono = dataset.mono()
        missing = str(info.get("trained_on", "")).endswith("MISSING")
        x_train, _, x_test, _ = load_data(run, mono, missing)
        print(f"fitting the latent {kind} to the codes of {len(x_train)} "
              f"{mono.data_name(missing)} images -> {zoo.shown_path(path)}")
        sampler, _ = zoo.fit_beside(model, model_path, x_train, x_test, mono.data_name(missing),
                                    kind, seed=run.seed, verbose=run.progress_verbosity,
                                    quick=run.quick, path=path)
    else:
        print(f"loaded {zoo.shown_path(path)}")
    return sampler, {**sampler.metadata, f"{kind}_file": zoo.shown_path(path)}

