"""Model and sampler files: native Keras ``.keras`` archives.

    models.save(model, "vae.keras")                  # any family's model, or a sampler
    model = models.load("vae.keras")                 # checked first, then safe_mode=True
    model = tf_keras.models.load_model("vae.keras", safe_mode=True)   # works too, after
                                                     # `import models` registers the classes

Every class a file names is registered (``tf_keras.saving.register_keras_serializable``) and
rebuilt from plain ``get_config`` values (the ModelConfig, metadata, sampler settings); Keras
stores the weights (float32) in the archive's ``model.weights.h5``. Files are written to a
temporary name and renamed, so a crash never leaves half a file.

``load`` checks a file before Keras reads it, since ``safe_mode=True`` alone does not keep
code out in tf_keras 2.21 (see keras_files.py): a loadable file is an intact archive of
exactly what ``model.save`` writes, whose config names one of our registered classes and holds
plain values only, and whose sizes (a model's ModelConfig, a sampler's latent_dim and
settings) are within ``keras_files.LIMITS``; each archive member's inflated size is bounded by
``keras_files.MAX_MEMBER_BYTES``. Weights must be finite when saved and when loaded.
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import tf_keras

from atomic_io import atomic_path
from keras_files import read_config

from .config import ModelConfig
from .families import FAMILIES
from .generative import GenerativeModel
from .samplers import SAMPLERS, LatentSampler
from .whole_image import WholeImageModel

# What a model file may hold (a sampler file: a sampler).
MODEL_CLASSES = (GenerativeModel, WholeImageModel)


class ModelFileError(RuntimeError):
    """A model or sampler file is missing, damaged, unsafe, or not what was expected."""


def _registered_classes() -> dict:
    """``{registered name: class}`` of every family and sampler a file may name."""
    classes = [*FAMILIES.values(), *SAMPLERS.values()]
    return {tf_keras.saving.get_registered_name(cls): cls for cls in classes}


def _state_weights(obj) -> list:
    """Every weight the file holds: the model's networks, or the sampler's variables."""
    if hasattr(obj, "network_weights"):
        return obj.network_weights()
    return [w.numpy() for w in obj.weights]


def save(obj, path, metadata: Optional[dict] = None) -> Path:
    """Write a model (without optimizer state) or a sampler to ``path`` (``.keras``),
    atomically; ``metadata`` is merged into ``obj.metadata`` first and travels in the file."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"model files end in .keras, got {path}.")
    name = tf_keras.saving.get_registered_name(type(obj))
    if name not in _registered_classes():
        raise TypeError(f"{type(obj).__name__} is not a registered model family or sampler.")
    weights = _state_weights(obj)
    if not all(np.all(np.isfinite(w)) for w in weights if np.issubdtype(w.dtype, np.floating)):
        raise ValueError(f"refusing to save {path}: the weights contain NaN or infinite values "
                         "(the training diverged).")
    obj.metadata.update(metadata or {})
    if hasattr(obj, "network_weights"):
        # A fresh uncompiled copy: no optimizer state (a third of the file) and no metric
        # tracker state in the file.
        copy = type(obj).from_config(obj.get_config())
        copy.set_network_weights(weights)
        obj = copy
    with atomic_path(path, suffix=".keras") as tmp, _quiet_made_configs():
        obj.save(str(tmp))
    return path


@contextlib.contextmanager
def _quiet_made_configs():
    """Keras reads every layer's config while it walks a model for its weights; the MADE
    networks' initializer settings (flows, the learned prior) make it warn about serialising
    them, which the file never does (it holds our plain configs only)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The `keras\.\w+\.serialize\(\)` API")
        yield


def check_archive(path) -> dict:
    """The config of a ``.keras`` file that is safe to hand to Keras; ``ValueError`` saying
    what is wrong otherwise (see the module docstring)."""
    config = read_config(path)
    registered = _registered_classes()
    if config.get("registered_name") not in registered:
        named = config.get("registered_name") or config.get("class_name")
        raise ValueError(f"it names the class {named!r}, which is not one of the registered "
                         f"model families and samplers {sorted(registered)}; such files are "
                         "not loaded, since other classes (Lambda layers, custom code) can run "
                         "code from the file")
    # Keras imports a named module before it looks the class up; only the registered class's
    # own module may be named (classes defined in __main__ are saved without one).
    if config.get("module") not in (None, registered[config["registered_name"]].__module__):
        raise ValueError(f"its config names the module {config.get('module')!r}")
    if _names_objects(config.get("config")):
        raise ValueError("its config holds serialised objects where plain values belong")
    _check_sizes(registered[config["registered_name"]], config.get("config"))
    return config


def _check_sizes(cls, values) -> None:
    """The sizes the config asks ``cls`` to build, against ``keras_files.LIMITS`` (before
    Keras builds anything: a 3 kB file could ask for more memory than the machine has)."""
    if not isinstance(values, dict):
        raise ValueError("its config holds no settings")
    if issubclass(cls, MODEL_CLASSES):
        if not isinstance(values.get("config"), dict):
            raise ValueError("its config holds no model config")
        ModelConfig.from_dict(values["config"])  # checks every size and the parameter count
    elif issubclass(cls, LatentSampler):
        settings = {key: values[key] for key in cls.settings_names if key in values}
        cls.check_sizes(values.get("latent_dim"), **settings)


def _names_objects(node) -> bool:
    """True if a config value holds a serialised Keras object (class_name / module keys)."""
    if isinstance(node, dict):
        return ("class_name" in node or "module" in node
                or any(_names_objects(v) for v in node.values()))
    if isinstance(node, list):
        return any(_names_objects(v) for v in node)
    return False


def load(path, expected=object, hint: str = ""):
    """Check ``path`` (see ``check_archive``) and load it with ``safe_mode=True``; the
    object must be an instance of ``expected`` (a class or a tuple of them). Every failure is
    one ``ModelFileError`` that names the file, followed by ``hint`` (how to restore it)."""
    path = Path(path)
    hint = f" {hint}" if hint else ""
    if not path.is_file():
        raise ModelFileError(f"Model file {path} does not exist.{hint}")
    try:
        check_archive(path)
        with _quiet_made_configs():
            obj = tf_keras.models.load_model(str(path), safe_mode=True, compile=False)
    except Exception as err:  # zipfile, h5py, JSON and Keras errors alike
        raise ModelFileError(f"Model file {path} cannot be loaded: {err}.{hint}") from err
    if not isinstance(obj, expected):
        wanted = " or ".join(cls.__name__ for cls in (
            expected if isinstance(expected, tuple) else (expected,)))
        raise ModelFileError(f"Model file {path} holds a {type(obj).__name__}, not a "
                             f"{wanted}.{hint}")
    weights = _state_weights(obj)
    if not all(np.all(np.isfinite(w)) for w in weights if np.issubdtype(w.dtype, np.floating)):
        raise ModelFileError(f"Model file {path} holds NaN or infinite weights.{hint}")
    return obj


def save_model(model, path, metadata: Optional[dict] = None) -> Path:
    """``save`` for a model of any family."""
    return save(model, path, metadata)


def load_model(path, channels: Optional[int] = None, hint: str = ""):
    """A saved model of any family; ``channels`` rebuilds it for mono (1) or colour (3).

    Mono and colour models share one set of weights (the colour model is the mono subnet run
    on R, G and B), so a mono file loads as a colour model and vice versa.
    """
    model = load(path, MODEL_CLASSES, hint)
    if channels is not None and channels != model.config.channels:
        if not isinstance(model, GenerativeModel):
            raise ModelFileError(f"Model file {path} holds a {model.config.channels}-channel "
                                 f"{model.kind!r} model; its networks see every channel "
                                 f"together, so it has no {channels}-channel version.{hint}")
        return model.with_channels(channels)
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3))
    return model


def load_sampler(path, hint: str = ""):
    return load(path, LatentSampler, hint)


def read_metadata(path) -> Tuple[dict, dict]:
    """``(model config values, metadata)`` of a checked file, without building the model."""
    config = check_archive(path)["config"]
    return config.get("config", {}), config.get("metadata", {})
