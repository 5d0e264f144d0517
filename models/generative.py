"""AE and VAE built from functional Keras parts with tfp.layers distributions.

    model = GenerativeModel(ModelConfig(kind="vae", latent_dim=16, channels=1, head="bernoulli"))
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3))
    fit_model(model, x_train, x_val, epochs=10)
    images = model.generate_images(100, seed=0)      # (100, 28, 28, C) in [0, 1]

Parts (all functional ``tf_keras.Model``s; the weights live only in the two mono subnets):
  encoder         x (N, 28, 28, C) -> VAE: q(z|x), a tfp.layers Independent Normal with event
                  shape (C, d); AE: the code z (N, C, d)
  decoder_params  z (N, C, d) -> per-pixel parameters (N, 28, 28, C, P)
  decoder         z (N, C, d) -> p(x|z), a tfp.layers distribution with event shape (28, 28, C)

Loss per image, in nats: AE -log p(x|z(x)); VAE -ELBO = -E_q log p(x|z) + beta KL(q || N(0, I)).
The KL is analytic (``tfd.kl_divergence`` of two diagonal Gaussians): exact, and no Monte Carlo
noise in the gradient or in the logged value. The reconstruction term uses one sample of q.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from stacked_mnist import distinct_channel_images, unfold_channels

from .config import ModelConfig
from .heads import make_head
from .networks import FoldImages, FoldLatent, UnfoldParams, UnfoldRows, mono_decoder, mono_encoder

tfd = tfp.distributions
tfpl = tfp.layers

POSTERIOR_MIN_SCALE = 1e-4


class GenerativeModel(tf_keras.Model):
    """An AE or a VAE for mono (C = 1) or colour (C = 3) images; see the module docstring."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(name=f"{config.kind}_{config.channels}ch", **kwargs)
        self.config = config
        self.head = make_head(config)
        channels, latent_dim = config.channels, config.latent_dim
        self.is_vae = config.kind == "vae"

        self.mono_encoder = mono_encoder(config, outputs_per_latent=2 if self.is_vae else 1)
        self.mono_decoder = mono_decoder(config, self.head.params_per_pixel)

        x_in = tf_keras.Input((28, 28, channels), name="image")
        latent_params = UnfoldRows(channels)(self.mono_encoder(FoldImages()(x_in)))
        self.encoder_params = tf_keras.Model(x_in, latent_params, name="encoder_params")
        if self.is_vae:
            latent = tfpl.DistributionLambda(self._posterior, name="q_z_given_x")(latent_params)
        else:
            latent = latent_params
        self.encoder = tf_keras.Model(x_in, latent, name="encoder")

        z_in = tf_keras.Input((channels, latent_dim), name="latent")
        pixel_params = UnfoldParams(channels)(self.mono_decoder(FoldLatent()(z_in)))
        self.decoder_params = tf_keras.Model(z_in, pixel_params, name="decoder_params")
        self.decoder = tf_keras.Model(z_in, self.head.layer()(pixel_params), name="decoder")

        self.prior = tfd.Independent(
            tfd.Normal(tf.zeros((channels, latent_dim)), tf.ones((channels, latent_dim))), 2
        )
        self.trackers = {
            name: tf_keras.metrics.Mean(name=name) for name in ("loss", "reconstruction", "kl")
        }

    # The subnets hold every learned parameter; Model.get_weights() would also return the
    # metric trackers' state, which does not belong in a model file.
    def network_weights(self) -> list:
        return self.mono_encoder.get_weights() + self.mono_decoder.get_weights()

    def set_network_weights(self, weights: list) -> None:
        split = len(self.mono_encoder.weights)
        self.mono_encoder.set_weights(weights[:split])
        self.mono_decoder.set_weights(weights[split:])

    def _posterior(self, params):
        d = self.config.latent_dim
        scale = tf.nn.softplus(params[..., d:]) + POSTERIOR_MIN_SCALE
        return tfd.Independent(tfd.Normal(params[..., :d], scale), 2)

    # ---------------------------------------------------------------------------------------
    # The loss and Keras' training hooks
    # ---------------------------------------------------------------------------------------
    def loss_terms(self, x, training: bool = False):
        """``(reconstruction, kl)``, each (N,) in nats: -log p(x|z) and KL(q(z|x) || p(z))."""
        x = tf.convert_to_tensor(x, tf.float32)
        if self.is_vae:
            posterior = self.encoder(x, training=training)
            z = posterior.sample()
            kl = tfd.kl_divergence(posterior, self.prior)
        else:
            z = self.encoder(x, training=training)
            kl = tf.zeros(tf.shape(x)[:1])
        reconstruction = -self.decoder(z, training=training).log_prob(self.head.targets(x))
        return reconstruction, kl

    def call(self, x, training=False):
        """The reconstruction distribution p(x | z(x)) (z sampled from q for a VAE)."""
        latent = self.encoder(x, training=training)
        return self.decoder(tf.convert_to_tensor(latent), training=training)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _record(self, reconstruction, kl):
        per_image = reconstruction + self.config.beta * kl
        # Per-image updates, like the two terms, so the logged loss = reconstruction + beta KL.
        self.trackers["loss"].update_state(per_image)
        loss = tf.reduce_mean(per_image)
        self.trackers["reconstruction"].update_state(reconstruction)
        self.trackers["kl"].update_state(kl)
        return loss

    def train_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        with tf.GradientTape() as tape:
            reconstruction, kl = self.loss_terms(x, training=True)
            loss = self._record(reconstruction, kl)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def test_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        self._record(*self.loss_terms(x, training=False))
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    # ---------------------------------------------------------------------------------------
    # Compiled pieces for evaluation (eager Keras calls are several times slower on a CPU)
    # ---------------------------------------------------------------------------------------
    @tf.function(reduce_retracing=True)
    def code(self, x):
        """(N, 28, 28, C) -> (N, C, d): the AE code, or the VAE's posterior mean."""
        return self.encoder_params(x, training=False)[..., : self.config.latent_dim]

    @tf.function(reduce_retracing=True)
    def mono_latent_params(self, mono_x):
        """The mono subnet: (B, 28, 28, 1) -> latent parameters (B, 1, k * d)."""
        return self.mono_encoder(mono_x, training=False)[:, tf.newaxis, :]

    @tf.function(reduce_retracing=True)
    def mono_code(self, mono_x):
        """The mono subnet: (B, 28, 28, 1) -> the AE code or VAE posterior mean (B, d)."""
        return self.mono_encoder(mono_x, training=False)[:, : self.config.latent_dim]

    @tf.function(reduce_retracing=True)
    def mono_pixel_params(self, z):
        """The mono subnet: (B, d) -> head parameters (B, 28, 28, 1, P)."""
        return self.mono_decoder(z, training=False)[:, :, :, tf.newaxis, :]

    @tf.function(reduce_retracing=True)
    def _mono_reconstructions(self, mono_x, how: str, seed):
        """The mono subnets and head: (B, 28, 28, 1) -> ``(images (B, 28, 28, 1), -log p(x | z)
        (B,))`` with z the AE code or the VAE's posterior mean, one decoder pass for both."""
        distribution = self.head.distribution(self.mono_pixel_params(self.mono_code(mono_x)))
        return (self.head.image(distribution, how, seed=seed),
                -distribution.log_prob(self.head.targets(mono_x)))

    @tf.function(reduce_retracing=True)
    def _mono_images(self, mono_z, how: str, seed):
        """The mono subnet and head: (B, d) -> (B, 28, 28, 1) images (how: mean | mode | sample)."""
        return self.head.image(self.head.distribution(self.mono_pixel_params(mono_z)), how,
                               seed=seed)

    # ---------------------------------------------------------------------------------------
    # Using a trained model (numpy in, numpy out, batched)
    # ---------------------------------------------------------------------------------------
    def encode(self, x, batch_size: int = 1000) -> np.ndarray:
        """Codes (N, C, d): the AE code, or the posterior mean of the VAE."""
        return in_batches(self.code, x, batch_size)

    def mono_code_distribution(self, mono_x, batch_size: int = 2000):
        """``(mean, scale)`` of the codes of mono images (M, 28, 28, 1), each (M, d): the VAE's
        q(z|x); the AE's code with scale None (it is deterministic)."""
        params = in_batches(self.mono_latent_params, mono_x, batch_size)  # (M, 1, k * d)
        if not self.is_vae:
            return params[:, 0], None
        posterior = self._posterior(params)
        return posterior.mean().numpy()[:, 0], posterior.stddev().numpy()[:, 0]

    def decode_images(self, z, how: str = "mean", seed: Optional[int] = None,
                      batch_size: int = 5000) -> np.ndarray:
        """Images (N, 28, 28, C) in [0, 1] from codes (N, C, d); how = mean | mode | sample."""
        z = np.asarray(z, np.float32).reshape(-1, self.config.channels, self.config.latent_dim)
        mono_z = z.reshape(-1, self.config.latent_dim)  # channel c of image n at row n * C + c
        return unfold_channels(self._decode_mono(mono_z, how, seed, batch_size),
                                self.config.channels)

    def reconstruct_images(self, x, how: str = "mean", seed: Optional[int] = None,
                           batch_size: int = 5000) -> np.ndarray:
        """decode(encode(x)) with the posterior mean as code; (N, 28, 28, C) in [0, 1]."""
        return self.reconstruct(x, how, seed, batch_size)[0]

    def reconstruct(self, x, how: str = "mean", seed: Optional[int] = None,
                    batch_size: int = 5000) -> Tuple[np.ndarray, np.ndarray]:
        """``(reconstructions (N, 28, 28, C) in [0, 1], -log p(x | z) per channel (N, C))``
        from one pass: z is the AE code or the VAE's posterior mean; how = mean | mode | sample.

        The mono subnets run once per distinct channel image (a stacked test set holds each
        MNIST test digit about three times); copies share their reconstruction.
        """
        distinct, inverse, channels = distinct_channel_images(x)
        if channels != self.config.channels:
            raise ValueError(f"expected images with {self.config.channels} channel(s), got "
                             f"{channels}.")
        images, nll = _in_seeded_batches(self._mono_reconstructions, distinct, how, seed,
                                         batch_size)
        nll = nll.astype(np.float64)[inverse].reshape(-1, channels)
        return unfold_channels(images[inverse], channels), nll

    def _decode_mono(self, mono_z, how: str, seed: Optional[int], batch_size: int) -> np.ndarray:
        """(M, d) mono codes -> (M, 28, 28, 1) images, in batches of ``batch_size`` codes."""
        return _in_seeded_batches(self._mono_images, mono_z, how, seed, batch_size)

    def sample_prior(self, count: int, seed: int = 0) -> np.ndarray:
        """z ~ N(0, I), shape (count, C, d); every channel's latent drawn independently."""
        rng = np.random.default_rng(seed)
        shape = (count, self.config.channels, self.config.latent_dim)
        return rng.standard_normal(shape).astype(np.float32)

    def generate_images(self, count: int, how: str = "mean", seed: int = 0) -> np.ndarray:
        """VAE generation: decode z ~ N(0, I); the encoder is never used."""
        return self.decode_images(self.sample_prior(count, seed), how=how, seed=seed)


def in_batches(fn, x, batch_size: int) -> np.ndarray:
    """``fn`` (a compiled TensorFlow function) over float32 ``x`` in batches, as one array."""
    x = np.asarray(x, np.float32)
    return np.concatenate(
        [np.asarray(fn(tf.constant(x[i : i + batch_size]))) for i in range(0, len(x), batch_size)]
    )


def _in_seeded_batches(fn, x, how: str, seed: Optional[int], batch_size: int):
    """``fn(batch, how, batch_seed)`` over ``x`` in batches, the outputs concatenated (a tuple
    of arrays when ``fn`` returns a tuple). Batch i gets the stateless seed (seed, i): the same
    (seed, batch_size) gives the same images, and different batches get different noise."""
    base_seed = 0 if seed is None else int(seed)
    outputs = [fn(tf.constant(x[start:start + batch_size]), how,
                  tf.constant([base_seed, index], tf.int32))
               for index, start in enumerate(range(0, len(x), batch_size))]
    if outputs and isinstance(outputs[0], tuple):
        return tuple(np.concatenate([part.numpy() for part in parts]) for parts in zip(*outputs))
    return np.concatenate([output.numpy() for output in outputs])


def build_model(config: ModelConfig, learning_rate: float = 1e-3) -> GenerativeModel:
    """A compiled model with built weights (so it can be saved or loaded into at once)."""
    model = GenerativeModel(config)
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate))
    model(tf.zeros((1, 28, 28, config.channels)))
    return model


def fit_model(model: GenerativeModel, x_train, x_val=None, epochs: int = 10,
              batch_size: int = 128, seed: int = 0, verbose: int = 1,
              decay_from: Optional[int] = None, decay: float = 0.8, initial_epoch: int = 0):
    """Train with a progress bar; logs loss, reconstruction and KL (nats per image).

    From epoch ``decay_from`` on (counting from 0), the learning rate shrinks by ``decay`` per
    epoch; ``initial_epoch`` resumes a run (the schedule counts absolute epochs).
    """
    tf_keras.utils.set_random_seed(seed + initial_epoch)
    train = (
        tf.data.Dataset.from_tensor_slices(np.asarray(x_train, np.float32))
        .shuffle(len(x_train), seed=seed)
        .batch(batch_size)
        .prefetch(2)
    )
    val = None
    if x_val is not None:
        val = tf.data.Dataset.from_tensor_slices(np.asarray(x_val, np.float32)).batch(1000)
    callbacks = []
    if decay_from is not None:
        base = float(tf_keras.backend.get_value(model.optimizer.learning_rate))
        callbacks.append(tf_keras.callbacks.LearningRateScheduler(
            lambda epoch: base * decay ** max(0, epoch + 1 - decay_from)))
    return model.fit(train, validation_data=val, epochs=epochs, verbose=verbose,
                     callbacks=callbacks, initial_epoch=initial_epoch)
