"""The model families by name (``ModelConfig.kind``), like the heads.

A family is one class on ``generative.GenerativeModel`` that overrides what differs (the latent
layer, how a code is drawn, the divergence, the prior, the default sampler). Adding one = one
module and one line here; the generic tests are parametrised over this registry.
"""
from .ae import AE
from .cvae import CVAE
from .flowprior import FlowPriorVAE
from .vae import VAE

FAMILIES = {cls.kind: cls for cls in (AE, VAE, CVAE, FlowPriorVAE)}
