"""The model families by name (``ModelConfig.kind``), like the heads, and ``build_model``.

A family is one class on ``generative.GenerativeModel`` that overrides what differs (the latent
layer, how a code is drawn, its prior object, its conditioning and extra state, the default
sampler). Adding one = one module and one line here; the generic tests are parametrised over
this registry.
"""
from __future__ import annotations

import contextlib
from typing import Optional

import tf_keras

from .acgan import ACGAN
from .ae import AE
from .checks import check_positive, check_seed
from .config import ModelConfig, register_families
from .cvae import CVAE
from .flowprior import FlowPriorVAE
from .gan import GAN
from .generative import GenerativeModel
from .joint_vae import JointVAE
from .m2 import M2
from .vae import VAE

FAMILIES = {cls.kind: cls for cls in (AE, VAE, CVAE, FlowPriorVAE, M2, GAN, ACGAN, JointVAE)}
# The families with the mono subnets' encoder and likelihood (GenerativeModel): all but the
# GANs and the joint-channel VAE, whose networks see all channels together.
ENCODER_FAMILIES = {kind: cls for kind, cls in FAMILIES.items()
                    if issubclass(cls, GenerativeModel)}
register_families(FAMILIES)  # ModelConfig checks its kind against this (live) registry


def build_model(config: ModelConfig, learning_rate: float = 1e-3, seed: Optional[int] = None,
                metadata: Optional[dict] = None, strategy=None):
    """A compiled model of the config's family (``families.FAMILIES[config.kind]``).

    ``seed`` fixes the initial weights (it seeds Python, numpy and TensorFlow first).
    ``strategy``: a ``tf.distribute`` strategy to build (and later train) the model under,
    e.g. ``tf.distribute.MirroredStrategy()``; see ``training.distribution_strategy``.
    """
    if config.kind not in FAMILIES:  # a clear error, not a KeyError
        raise ValueError(f"kind must be one of {tuple(FAMILIES)}, got {config.kind!r}.")
    learning_rate = check_positive("learning_rate", learning_rate)  # NaN: a NaN model later
    if seed is not None:
        tf_keras.utils.set_random_seed(check_seed(seed))
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = FAMILIES[config.kind](config, metadata=metadata)
        model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate))
    return model
