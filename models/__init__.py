"""Deep generative models on MNIST and stackedMNIST: AE and VAE families with tfp.layers
output distributions, latent samplers, likelihood estimators, and the shipped models by name.

    import models
    model = models.zoo.load("vae_mono_complete")         # a shipped model, ready to use
    images = model.generate_images(16, seed=0)           # (16, 28, 28, 1) in [0, 1]

Importing the package registers every class a model file names, so
``tf_keras.models.load_model(path, safe_mode=True)`` reads our ``.keras`` files.
"""
from . import zoo
from .config import HEADS, ModelConfig
from .families import ENCODER_FAMILIES, FAMILIES, build_model
from .generative import GenerativeModel
from .generators import Generator
from .heads import make_head
from .io import ModelFileError, load, load_model, load_sampler, save, save_model
from .samplers import SAMPLERS, LatentSampler, make_sampler
from .training import DISTRIBUTE, distribution_strategy, fit_model, worker_suffix

__all__ = [
    "HEADS", "FAMILIES", "ENCODER_FAMILIES", "SAMPLERS", "ModelConfig", "GenerativeModel",
    "Generator", "LatentSampler",
    "build_model", "fit_model", "make_head", "make_sampler", "ModelFileError", "load",
    "load_model", "load_sampler", "save", "save_model", "zoo", "DISTRIBUTE",
    "distribution_strategy", "worker_suffix",
]
