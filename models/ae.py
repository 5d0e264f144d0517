"""The auto-encoder family: a deterministic code, no prior, loss -log p(x | z(x))."""
from __future__ import annotations

import tf_keras

from .generative import GenerativeModel


@tf_keras.saving.register_keras_serializable(package="models")
class AE(GenerativeModel):
    """The base class's defaults are the AE: the encoder's output is the code, the divergence
    is 0, and there is no prior, so generation draws codes from a Gaussian fitted to the
    training codes (the ``fitted`` sampler) and the likelihood estimators refuse it."""

    kind = "ae"
    default_sampler = "fitted"
