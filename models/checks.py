"""Argument checks at the library's public entry points: one place, one message style.

Every check raises ``ValueError`` saying what was expected and what came, so a bad input fails
at once instead of as a silent wrong number (images in 0-255, NaN latents, a reshape that
quietly changes the number of images) or an error from deep inside TensorFlow.
"""
from __future__ import annotations

import numbers
from typing import Optional

import numpy as np

from stacked_mnist import finite_float32, validate_images

__all__ = ["check_count", "check_seed", "check_positive", "check_images", "check_latents",
           "check_values", "check_finite_output"]


def family_model_name(family, config) -> str:
    """The default Keras name of a ``family`` model (a class with a ``kind``) built from
    ``config``, after checking that the config asks for that family."""
    if config.kind != family.kind:
        raise ValueError(f"{family.__name__} builds kind {family.kind!r} models, the config "
                         f"asks for {config.kind!r}; use models.build_model(config).")
    return f"{config.kind}_{config.channels}ch"


def check_count(name: str, value, low: int = 1, high: Optional[int] = None) -> int:
    """An integer >= ``low`` and, if given, <= ``high`` (numpy integers too; not bool)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low
            or (high is not None and value > high)):
        bounds = f">= {low}" if high is None else f"from {low} to {high}"
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r}.")
    return int(value)


def check_positive(name: str, value) -> float:
    """A finite number > 0 (a learning rate, a tolerance), as float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    return float(value)


def check_seed(seed) -> int:
    """A seed: an integer >= 0 (numpy's generators refuse negative ones deep inside)."""
    return check_count("seed", seed, low=0)


def check_images(x, channels: int, name: str = "images") -> np.ndarray:
    """Images for a model with ``channels`` channels: float32 (N, 28, 28, C) in [0, 1], at
    least one, finite (``stacked_mnist.validate_images``)."""
    return validate_images(x, name, channels=channels)


def check_latents(z, channels: int, latent_dim: int, name: str = "latents") -> np.ndarray:
    """Codes (N, C, d) as float32 (a mono model also takes (N, d)); finite, at least one."""
    z = np.asarray(z)
    if z.ndim == 2 and channels == 1:
        z = z[:, np.newaxis, :]
    if z.ndim != 3 or z.shape[1:] != (channels, latent_dim):
        expected = f"(N, {channels}, {latent_dim})" + (
            f" or (N, {latent_dim})" if channels == 1 else "")
        raise ValueError(f"{name} must have shape {expected}; got {z.shape}.")
    return finite_float32(z, name, what="codes")


def check_values(values, name: str, ndim: Optional[int] = None, min_rows: int = 1,
                 what: str = "values", dtype=np.float64) -> np.ndarray:
    """Real, finite numbers as ``dtype`` (float64): ``ndim`` dimensions if given, and at least
    ``min_rows`` along the first axis (for arrays of one or more dimensions). NaN or inf in,
    NaN out: every such input is refused here, saying which argument it was."""
    values = np.asarray(values)
    if values.dtype == bool or not (np.issubdtype(values.dtype, np.integer)
                                    or np.issubdtype(values.dtype, np.floating)):
        raise ValueError(f"{name} must be real numbers ({what}); got dtype {values.dtype}.")
    if ndim is not None and values.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension{'s' if ndim != 1 else ''} "
                         f"({what}); got shape {values.shape}.")
    if values.ndim and len(values) < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} {what}; got shape {values.shape}.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains NaN or infinite values; expected finite {what}.")
    return values.astype(dtype, copy=False)


def check_finite_output(values: np.ndarray, what: str, source: Optional[str] = None):
    """Outputs of a network must be finite: NaN means damaged or diverged weights, and a
    metric computed from them would be a silent wrong answer."""
    if not np.all(np.isfinite(values)):
        origin = f" (weights from {source})" if source else ""
        raise FloatingPointError(
            f"the model's {what} are not finite{origin}: its weights are damaged or the "
            "training diverged. Load a good model file (the shipped ones: `git checkout -- "
            "saved_models/`) or train again.")
    return values
