"""Save and load trained models as one ``.npz`` file: the config as JSON, free-form metadata as
JSON, and the weight arrays. Loading reads with ``allow_pickle=False``: a model file is data,
never code, the same guarantee as Keras' ``safe_mode=True``. Writes go to a temporary file
that is renamed into place, so a crash never leaves half a model on disk.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from atomic_io import atomic_path

from .config import ModelConfig
from .generative import GenerativeModel, build_model

FORMAT_VERSION = 1


class ModelFileError(RuntimeError):
    """A model file is missing, corrupt or does not fit its config."""


def save_model(model: GenerativeModel, path, metadata: Optional[dict] = None,
               weight_dtype: str = "float32") -> Path:
    """Write config, metadata and weights to ``path`` (a .npz file) atomically.

    ``weight_dtype="float16"`` halves the file (relative rounding 5e-4 per weight); loading
    casts back to float32.
    """
    path = Path(path)
    arrays = {f"w{i:03d}": w.astype(weight_dtype)
              for i, w in enumerate(model.network_weights())}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle,
            format_version=np.array(FORMAT_VERSION),
            config=np.array(model.config.to_json()),
            metadata=np.array(json.dumps(metadata or {}, sort_keys=True)),
            **arrays,
        )
    return path


def read_model_file(path) -> Tuple[ModelConfig, dict, list]:
    """``(config, metadata, weights)`` from a file written by ``save_model``."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(
            f"Model file {path} does not exist. Train it (the experiment scripts do with "
            "--retrain) or restore the shipped copy with `git checkout saved_models/`."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            if int(archive["format_version"]) != FORMAT_VERSION:
                raise ModelFileError(f"Model file {path} has format {archive['format_version']}, "
                                     f"this code reads format {FORMAT_VERSION}.")
            config = ModelConfig.from_json(str(archive["config"]))
            metadata = json.loads(str(archive["metadata"]))
            names = sorted(k for k in archive.files if k.startswith("w"))
            weights = [archive[name] for name in names]
    except ModelFileError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise ModelFileError(
            f"Model file {path} is corrupt or not a model file ({type(err).__name__}: {err}). "
            "Restore it with `git checkout saved_models/` or retrain with --retrain."
        ) from err
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
