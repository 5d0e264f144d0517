"""AE and VAE models with tfp.layers output distributions; see ``generative.py``."""
from .config import HEADS, KINDS, ModelConfig
from .generative import GenerativeModel, build_model, fit_model
from .heads import make_head
from .io import ModelFileError, load_model, read_model_file, save_model
from .latent_flow import FlowFileError, LatentFlow

__all__ = [
    "HEADS", "KINDS", "ModelConfig", "GenerativeModel", "build_model", "fit_model",
    "make_head", "ModelFileError", "load_model", "read_model_file", "save_model",
    "FlowFileError", "LatentFlow",
]
