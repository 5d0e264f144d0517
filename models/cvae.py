"""The conditional VAE family (Sohn et al. 2015): q(z | x, y), p(x | z, y) and the prior
p(z) = N(0, I), with y the image's digit, one-hot, at the encoder's dense layer and at the
decoder's input. The loss is the conditional ELBO, -E_q log p(x|z,y) + beta KL(q(z|x,y) || p(z)).

A colour model is the mono subnet on R, G and B with one set of weights, each channel
conditioned on its own digit: the class label n = R + 10 G + 100 B gives R the ones, G the tens
and B the hundreds, so any number 000-999 can be asked for. ``models.conditional`` has the
generative classifier and the anomaly score built on it.
"""
from __future__ import annotations

import tf_keras

from .vae import VAE


@tf_keras.saving.register_keras_serializable(package="models")
class CVAE(VAE):
    kind = "cvae"
    conditional = True
