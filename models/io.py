"""Save and load trained models as one ``.npz`` file: the config as JSON, free-form metadata as
JSON, and the weight arrays. Loading reads with ``allow_pickle=False``: a model file is data,
never code, the same guarantee as Keras' ``safe_mode=True``. Writes go to a temporary file
that is renamed into place, so a crash never leaves half a model on disk.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional, Tuple

import numpy as np

from atomic_io import atomic_path

from .config import ModelConfig
from .generative import GenerativeModel, build_model

FORMAT_VERSION = 1


class ModelFileError(RuntimeError):
    """A model file is missing, corrupt or does not fit its config."""


def write_archive(path, weights, version: int, weight_dtype: str = "float32",
                  **texts: str) -> Path:
    """One .npz written atomically: ``format_version``, JSON ``texts`` by name, and the
    ``weights`` as arrays w000, w001, ... (cast to ``weight_dtype``). Model and flow files."""
    path = Path(path)
    arrays = {f"w{i:03d}": np.asarray(w).astype(weight_dtype) for i, w in enumerate(weights)}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, format_version=np.array(version),
                            **{name: np.array(text) for name, text in texts.items()}, **arrays)
    return path


def read_archive(path, version: int, what: str, error: type, parse: Callable[[dict], Any],
                 missing_hint: str = "", corrupt_hint: str = "") -> Tuple[Any, list]:
    """``(parse(texts), weights)`` from a file written by ``write_archive``, read with
    ``allow_pickle=False``. A missing, other-version or unreadable file, or texts that
    ``parse`` rejects (ValueError, KeyError, TypeError), raise ``error`` naming the file as
    ``what`` ("Model file"), followed by the hint that says how to restore it."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} does not exist.{missing_hint}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if int(archive["format_version"]) != version:
                raise error(f"{what} {path} has format {archive['format_version']}, this code "
                            f"reads format {version}.")
            texts = {k: str(archive[k]) for k in archive.files
                     if k != "format_version" and not k.startswith("w")}
            weights = [archive[k] for k in sorted(archive.files) if k.startswith("w")]
        parsed = parse(texts)
    except error:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as err:
        raise error(f"{what} {path} is corrupt or not a {what.lower()} "
                    f"({type(err).__name__}: {err}).{corrupt_hint}") from err
    return parsed, weights


def save_model(model: GenerativeModel, path, metadata: Optional[dict] = None,
               weight_dtype: str = "float32") -> Path:
    """Write config, metadata and weights to ``path`` (a .npz file) atomically.

    ``weight_dtype="float16"`` halves the file (relative rounding 5e-4 per weight); loading
    casts back to float32.
    """
    return write_archive(path, model.network_weights(), FORMAT_VERSION, weight_dtype,
                         config=model.config.to_json(),
                         metadata=json.dumps(metadata or {}, sort_keys=True))


def read_model_file(path) -> Tuple[ModelConfig, dict, list]:
    """``(config, metadata, weights)`` from a file written by ``save_model``."""
    (config, metadata), weights = read_archive(
        path, FORMAT_VERSION, "Model file", ModelFileError,
        parse=lambda texts: (ModelConfig.from_json(texts["config"]),
                             json.loads(texts["metadata"])),
        missing_hint=" Train it (the experiment scripts do with --retrain) or restore the "
                     "shipped copy with `git checkout saved_models/`.",
        corrupt_hint=" Restore it with `git checkout saved_models/` or retrain with --retrain.")
    return config, metadata, weights


def load_model(path, channels: Optional[int] = None) -> Tuple[GenerativeModel, dict]:
    """Rebuild a saved model; ``channels`` overrides the saved channel count.

    Mono and colour models share one set of weights (the colour model is the mono subnet run
    on R, G and B), so a mono file loads as a colour model and vice versa.
    """
    config, metadata, weights = read_model_file(path)
    if channels is not None:
        config = config.replace(channels=channels)
    model = build_model(config)
    expected = [w.shape for w in model.network_weights()]
    found = [w.shape for w in weights]
    if expected != found:
        raise ModelFileError(
            f"Model file {path} holds weights of shapes {found[:4]}... that do not fit its "
            f"config ({config}); the file is corrupt or was written by other code."
        )
    model.set_network_weights(weights)
    return model, metadata
