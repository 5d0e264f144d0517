"""The base of every model family: functional Keras parts with tfp.layers distributions.

    model = build_model(ModelConfig(kind="vae", latent_dim=16, channels=1, head="bernoulli"))
    fit_model(model, x_train, x_val, epochs=10)
    images = model.generate_images(100, seed=0)      # (100, 28, 28, C) in [0, 1]

A conditional family (``conditional = True``, the CVAE) also gives every part the class labels
(N,) of the images (0..9 mono, R + 10 G + 100 B colour): ``model.encoder([x, labels])``,
``model.decoder([z, labels])``, and ``labels=`` on every numpy helper and on ``fit_model``.
Each channel's subnet sees its own digit, one-hot. The labels' plumbing is the family's (the
conditioning hooks below); this base class only refuses labels.

Parts (all functional ``tf_keras.Model``s; the weights live only in the two mono subnets):
  encoder         x (N, 28, 28, C) -> the family's latent: VAE q(z|x), a tfp.layers
                  Independent Normal with event shape (C, d); AE the code z (N, C, d)
  decoder_params  z (N, C, d) -> per-pixel parameters (N, 28, 28, C, P)
  decoder         z (N, C, d) -> p(x|z), a tfp.layers distribution with event shape (28, 28, C)

Loss per image, in nats: -log p(x|z) + beta * the family's divergence (VAE: the analytic
KL(q(z|x) || N(0, I)), so the loss is the negative ELBO; AE: none). The divergence and the
codes generation draws come from one prior object per model (``model.z_prior``, priors.py).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras

from stacked_mnist import distinct_channel_images, unfold_channels

from .batching import in_batches, in_seeded_batches
from .checks import check_count, check_finite_output, check_images, check_latents, check_seed
from .config import ModelConfig
from .family_base import FamilyModel
from .heads import IMAGE_KINDS, make_head
from .neighbours import neighbour_term
from .networks import FoldImages, FoldLatent, UnfoldParams, UnfoldRows, mono_decoder, mono_encoder
from .priors import LatentPrior
from .samplers import LatentSampler
from .trackers import trackers


class GenerativeModel(FamilyModel):
    """The shared base of the model families (see ``families.py``): mono or colour images,
    the channel folding, batching, encode / decode / generate, the loss and the Keras hooks.

    A family fixes ``kind`` (its registry key) and overrides what differs: how many latent
    parameters the encoder emits per dimension, the layer that turns them into the latent
    (``latent_layer``), how a code is drawn from it (``draw_code``), its prior object
    (``make_prior``: the KL and the codes generation draws), state beyond the subnets
    (``extra_state_variables``, default the prior's), what happens after training
    (``after_training``), the conditioning hooks, and the latent sampler generation uses by
    default. ``metadata`` (training data, epochs, seconds, seed ...) travels in the model file.
    """

    latent_params_per_dim = 1

    def __init__(self, config: ModelConfig, metadata: Optional[dict] = None, **kwargs):
        super().__init__(config, metadata, **kwargs)
        self.head = make_head(config)
        channels, latent_dim = config.channels, config.latent_dim

        self.mono_encoder = mono_encoder(config, self.latent_params_per_dim, self.conditional)
        self.mono_decoder = mono_decoder(config, self.head.params_per_pixel, self.conditional)

        x_in = tf_keras.Input((28, 28, channels), name="image")
        inputs, mono_inputs = self.part_inputs(x_in, FoldImages()(x_in))
        latent_params = UnfoldRows(channels)(self.mono_encoder(mono_inputs))
        self.encoder_params = tf_keras.Model(inputs, latent_params, name="encoder_params")
        latent_layer = self.latent_layer()
        latent = latent_layer(latent_params) if latent_layer is not None else latent_params
        self.encoder = tf_keras.Model(inputs, latent, name="encoder")

        z_in = tf_keras.Input((channels, latent_dim), name="latent")
        inputs, mono_inputs = self.part_inputs(z_in, FoldLatent()(z_in))
        pixel_params = UnfoldParams(channels)(self.mono_decoder(mono_inputs))
        self.decoder_params = tf_keras.Model(inputs, pixel_params, name="decoder_params")
        self.decoder = tf_keras.Model(inputs, self.head.layer()(pixel_params), name="decoder")

        self.trackers = trackers(("loss", "reconstruction", "kl")
                                 + (("neighbour",) if config.neighbour_weight else ()))
        # A plain object, not tracked by Keras: a family with prior state keeps its variables as
        # attributes of the model as well, under the names its files store them by.
        self.z_prior = self.make_prior()
        self.built = True  # every weight exists: the subnets are built functional models

    # ---------------------------------------------------------------------------------------
    # What a family overrides
    # ---------------------------------------------------------------------------------------
    def latent_layer(self):
        """A layer from latent parameters (N, C, k * d) to the latent, or None (the
        parameters are the code)."""
        return None

    def draw_code(self, latent, seed=None):
        """A code z (N, C, d) from the encoder's output (a sample for a stochastic latent;
        ``seed``, a stateless seed of shape [2], fixes its noise)."""
        return latent

    def make_prior(self) -> LatentPrior:
        """The family's prior object (made once, at the end of ``__init__``, as ``z_prior``):
        p(z) for the loss's divergence and the codes generation draws. The base (the AE) has
        none: no divergence, and N(0, I) codes as generation's default."""
        return LatentPrior(self.config.latent_dim)

    def kl_divergence(self, latent, z):
        """(N,) nats: the divergence from the prior that the loss weighs by beta, given the
        encoder's output and the code drawn from it (samples (K, N, C, d) give the K-sample
        Monte Carlo mean, for families whose KL has no closed form). The prior's, by default."""
        return self.z_prior.kl(latent, z)

    @property
    def prior(self):
        """p(z) of one image, event shape (C, d), or None when the family has no prior."""
        return self.latent_prior()

    def latent_prior(self, channels: Optional[int] = None):
        """p(z) with event shape (channels, d) (default: the model's channels), or None."""
        return self.z_prior.distribution(channels or self.config.channels)

    def code_distribution_from_params(self, params):
        """``(mean, scale or None)`` of the codes from latent parameters (..., k * d)."""
        return params[..., : self.config.latent_dim], None

    def prior_codes(self, count: int, seed: int = 0) -> np.ndarray:
        """(count, d) codes of one channel from the family's prior (for an AE, which has no
        prior, N(0, I): the generation default)."""
        return self.z_prior.sample(count, seed=seed)

    def extra_state_variables(self) -> list:
        """The variables of the model's state beyond the two subnets (a learned or fitted
        prior's: the flow, the class prior), in file order; ``network_weights`` ends with
        them. Default: the prior object's."""
        return self.z_prior.state_variables()

    def after_training(self, x_train, labels=None, seed: int = 0) -> None:
        """What a family does once its networks are trained (``zoo.train`` calls it), e.g. fit
        a prior to the training codes; x_train (N, 28, 28, C), labels (N,) if conditional.
        The base does nothing (it checks that an unconditional model got no labels)."""
        self.check_labels(labels, len(x_train))

    # ---------------------------------------------------------------------------------------
    # Conditioning hooks: an unconditional model refuses labels; a conditional family (cvae.py)
    # overrides these to take them (checked), feed them to its parts and subnets, and draw
    # labels for generation.
    # ---------------------------------------------------------------------------------------
    def part_inputs(self, first, folded):
        """``(inputs of a part, inputs of its mono subnet)`` for the part's first Keras input
        (images or codes) and its folded form; a conditional family adds the labels."""
        return first, folded

    def split_inputs(self, inputs):
        """``call``'s inputs -> ``(images, labels or None)``."""
        return inputs, None

    def _batch(self, data):
        """Keras' batch -> ``(images, labels or None)``; an unconditional model ignores what
        follows the images (``fit(x, x)`` style)."""
        return (data[0] if isinstance(data, (tuple, list)) else data), None

    def model_inputs(self, first, labels=None):
        """What ``encoder``, ``encoder_params``, ``decoder`` and ``decoder_params`` take: the
        images or codes (with the class labels (N,) for a conditional model)."""
        self._refuse_labels(labels)
        return first

    def mono_inputs(self, first, digits=None):
        """What the mono subnets take: images or codes (with one-hot digits if conditional)."""
        self._refuse_labels(digits)
        return first

    def check_labels(self, labels, count: int, channels: Optional[int] = None):
        """Class labels for ``count`` images of ``channels`` channels (default the model's)
        as int64 (N,); None for an unconditional model (which must get none)."""
        self._refuse_labels(labels)
        return None

    def check_fit_labels(self, labels, count: int):
        """The labels of ``count`` training images as ``fit_model`` takes them: the class
        labels of ``check_labels`` (a semi-supervised family also takes "unlabelled")."""
        return self.check_labels(labels, count)

    def mono_digits(self, labels, count: int):
        """Checked class labels of ``count`` images -> the digit of each folded channel image
        (count * C,) in ``fold_channels`` order; None for an unconditional model."""
        return self.check_labels(labels, count)

    def distinct_mono_images(self, x, digits):
        """``(mono images to run, inverse, channels)`` for images (N, 28, 28, C): each
        distinct channel image once (a stacked test set holds each MNIST test digit about
        three times), ``mono[inverse]`` the channel images in ``fold_channels`` order."""
        return distinct_channel_images(x)

    def generation_labels(self, count: int, seed: int, labels=None):
        """The labels ``generate_images`` decodes ``count`` codes with: the ones given (none
        for an unconditional model)."""
        return labels

    def _refuse_labels(self, labels) -> None:
        if labels is not None:
            raise ValueError(f"labels were given to an unconditional {self.kind!r} model; "
                             "only a conditional family (cvae) takes them.")

    # ---------------------------------------------------------------------------------------
    # Files (the config and metadata: family_base.py)
    # ---------------------------------------------------------------------------------------
    def with_channels(self, channels: int) -> "GenerativeModel":
        """The same weights as a mono (1) or colour (3) model, compiled."""
        other = type(self)(self.config.replace(channels=channels), metadata=self.metadata)
        other.set_network_weights(self.network_weights())
        other.compile(optimizer=tf_keras.optimizers.Adam(1e-3))
        return other

    def networks(self) -> list:
        """The mono subnets that hold the networks' weights, in file order: the encoder's and
        the decoder's (a family with a third network adds it); ``network_weights`` and
        ``set_network_weights`` (family_base.py) go over them, then ``extra_state_variables``."""
        return [self.mono_encoder, self.mono_decoder]

    # ---------------------------------------------------------------------------------------
    # The loss and Keras' training hooks
    # ---------------------------------------------------------------------------------------
    def loss_terms(self, x, training: bool = False, seed=None, labels=None):
        """``(reconstruction, kl)``, each (N,) in nats: -log p(x|z) and KL(q(z|x) || p(z))."""
        return self._terms_and_latent(x, training, seed, labels)[:2]

    def _terms_and_latent(self, x, training: bool, seed, labels):
        """``loss_terms`` and the encoder's output they came from."""
        x = tf.convert_to_tensor(x, tf.float32)
        latent = self.encoder(self.model_inputs(x, labels), training=training)
        z = self.draw_code(latent, seed)
        decoded = self.decoder(self.model_inputs(z, labels), training=training)
        return -decoded.log_prob(self.head.targets(x)), self.kl_divergence(latent, z), latent

    def code_means(self, latent):
        """The codes (N, C, d) that stand for the images of the encoder's output: the code
        itself (a VAE: the posterior mean)."""
        return latent

    def call(self, inputs, training=False):
        """The reconstruction distribution p(x | z(x)) (z sampled from q for a VAE); inputs:
        the images, or (images, labels) for a conditional model."""
        x, labels = self.split_inputs(inputs)
        latent = self.encoder(self.model_inputs(x, labels), training=training)
        return self.decoder(self.model_inputs(self.draw_code(latent), labels), training=training)

    def _record(self, reconstruction, kl, extra_per_image=0.0):
        per_image = reconstruction + self.config.beta * kl + extra_per_image
        # Per-image updates, like the terms, so the logged loss = reconstruction + beta KL
        # (+ a family's extra term, recorded by the family).
        self.trackers["loss"].update_state(per_image)
        # The mean over the global batch: under a tf.distribute strategy every replica divides
        # its sum by the global batch size, and the replicas' gradients are summed.
        loss = tf.nn.compute_average_loss(per_image)
        self.trackers["reconstruction"].update_state(reconstruction)
        self.trackers["kl"].update_state(kl)
        return loss

    def batch_loss(self, x, labels, training: bool, seed=None):
        """The loss of a batch (its mean over the global batch), every term recorded in the
        trackers: what ``train_step`` minimises and ``test_step`` reports. A family with
        another objective overrides this. In training, a model with ``neighbour_weight``
        adds its neighbour term (``models.neighbours``; ``fit_model`` batches it in pairs)."""
        if not (training and self.config.neighbour_weight):
            return self._record(*self.loss_terms(x, training=training, seed=seed,
                                                 labels=labels))
        reconstruction, kl, latent = self._terms_and_latent(x, training, seed, labels)
        codes = tf.reshape(self.code_means(latent), [tf.shape(reconstruction)[0], -1])
        term = neighbour_term(codes, self.config.neighbour_scale)
        self.trackers["neighbour"].update_state(term)
        return self._record(reconstruction, kl, self.config.neighbour_weight * term)

    def train_step(self, data):
        x, labels = self._batch(data)
        with tf.GradientTape() as tape:
            loss = self.batch_loss(x, labels, training=True, seed=self._step_seed())
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def test_step(self, data):
        x, labels = self._batch(data)
        self.batch_loss(x, labels, training=False)
        return {name: tracker.result() for name, tracker in self.trackers.items()
                if name != "neighbour"}  # a training term: held-out images come unpaired

    # ---------------------------------------------------------------------------------------
    # Compiled pieces for evaluation (eager Keras calls are several times slower on a CPU)
    # ---------------------------------------------------------------------------------------
    # A conditional model's functions take one more argument: the class labels (N,) of the
    # images, or for the mono subnets the digits (B,) of the channel images.
    @tf.function(reduce_retracing=True)
    def code(self, x, labels=None):
        """(N, 28, 28, C) -> (N, C, d): the AE code, or the VAE's posterior mean."""
        params = self.encoder_params(self.model_inputs(x, labels), training=False)
        return params[..., : self.config.latent_dim]

    @tf.function(reduce_retracing=True)
    def mono_latent_params(self, mono_x, digits=None):
        """The mono subnet: (B, 28, 28, 1) -> latent parameters (B, 1, k * d)."""
        return self.mono_encoder(self.mono_inputs(mono_x, digits), training=False)[:, tf.newaxis]

    @tf.function(reduce_retracing=True)
    def mono_code(self, mono_x, digits=None):
        """The mono subnet: (B, 28, 28, 1) -> the AE code or VAE posterior mean (B, d)."""
        params = self.mono_encoder(self.mono_inputs(mono_x, digits), training=False)
        return params[:, : self.config.latent_dim]

    @tf.function(reduce_retracing=True)
    def mono_pixel_params(self, z, digits=None):
        """The mono subnet: (B, d) -> head parameters (B, 28, 28, 1, P)."""
        params = self.mono_decoder(self.mono_inputs(z, digits), training=False)
        return params[:, :, :, tf.newaxis, :]

    @tf.function(reduce_retracing=True)
    def _mono_reconstructions(self, mono_x, how: str, seed, digits=None):
        """The mono subnets and head: (B, 28, 28, 1) -> ``(images (B, 28, 28, 1), -log p(x | z)
        (B,))`` with z the AE code or the VAE's posterior mean, one decoder pass for both."""
        distribution = self.head.distribution(
            self.mono_pixel_params(self.mono_code(mono_x, digits), digits))
        return (self.head.image(distribution, how, seed=seed),
                -distribution.log_prob(self.head.targets(mono_x)))

    @tf.function(reduce_retracing=True)
    def _mono_images(self, mono_z, how: str, seed, digits=None):
        """The mono subnet and head: (B, d) -> (B, 28, 28, 1) images (how: mean | mode | sample)."""
        return self.head.image(self.head.distribution(self.mono_pixel_params(mono_z, digits)),
                               how, seed=seed)

    # ---------------------------------------------------------------------------------------
    # Using a trained model (numpy in, numpy out, batched)
    # ---------------------------------------------------------------------------------------
    def encode(self, x, batch_size: int = 1000, labels=None) -> np.ndarray:
        """Codes (N, C, d): the AE code, or the posterior mean of the VAE."""
        x = check_images(x, self.config.channels)
        labels = self.check_labels(labels, len(x))
        return in_batches(self.code, x, check_count("batch_size", batch_size), labels)

    def mono_code_distribution(self, mono_x, batch_size: int = 2000, digits=None):
        """``(mean, scale)`` of the codes of mono images (M, 28, 28, 1), each (M, d): the VAE's
        q(z|x); the AE's code with scale None (it is deterministic). ``digits`` (M,): the
        images' labels, for a conditional model."""
        mono_x = check_images(mono_x, 1, "mono images")
        digits = self.check_labels(digits, len(mono_x), channels=1)
        params = in_batches(self.mono_latent_params, mono_x,
                            check_count("batch_size", batch_size), digits)[:, 0]  # (M, k * d)
        mean, scale = self.code_distribution_from_params(params)
        return np.asarray(mean), None if scale is None else np.asarray(scale)

    def decode_images(self, z, how: str = "mean", seed: Optional[int] = None,
                      batch_size: int = 5000, labels=None) -> np.ndarray:
        """Images (N, 28, 28, C) in [0, 1] from codes (N, C, d); how = mean | mode | sample."""
        z = check_latents(z, self.config.channels, self.config.latent_dim)
        _check_options(how, seed, batch_size)
        digits = self.mono_digits(labels, len(z))
        mono_z = z.reshape(-1, self.config.latent_dim)  # channel c of image n at row n * C + c
        images = check_finite_output(
            in_seeded_batches(self._mono_images, mono_z, how, seed, batch_size, digits),
            "images")
        return unfold_channels(images, self.config.channels)

    def reconstruct_images(self, x, how: str = "mean", seed: Optional[int] = None,
                           batch_size: int = 5000, labels=None) -> np.ndarray:
        """decode(encode(x)) with the posterior mean as code; (N, 28, 28, C) in [0, 1]."""
        return self.reconstruct(x, how, seed, batch_size, labels=labels)[0]

    def reconstruct(self, x, how: str = "mean", seed: Optional[int] = None,
                    batch_size: int = 5000, labels=None) -> Tuple[np.ndarray, np.ndarray]:
        """``(reconstructions (N, 28, 28, C) in [0, 1], -log p(x | z) per channel (N, C))``
        from one pass: z is the AE code or the VAE's posterior mean; how = mean | mode | sample.

        The mono subnets run once per distinct channel image (``distinct_mono_images``: a
        stacked test set holds each MNIST test digit about three times); copies share their
        reconstruction. (A conditional model runs once per channel image: its digit is part
        of the input.)
        """
        x = check_images(x, self.config.channels)
        _check_options(how, seed, batch_size)
        digits = self.mono_digits(labels, len(x))
        distinct, inverse, channels = self.distinct_mono_images(x, digits)
        images, nll = in_seeded_batches(self._mono_reconstructions, distinct, how, seed,
                                         batch_size, digits)
        check_finite_output(images, "reconstructions")
        check_finite_output(nll, "reconstruction log-likelihoods")
        nll = nll.astype(np.float64)[inverse].reshape(-1, channels)
        return unfold_channels(images[inverse], channels), nll

    def sample_latents(self, count: int, sampler=None, seed: int = 0) -> np.ndarray:
        """(count, C, d) codes for generation, every channel's latent drawn independently
        from ``sampler`` (a ``models.samplers`` object; default the family's prior,
        ``prior_codes``)."""
        if sampler is not None and not isinstance(sampler, LatentSampler):
            raise TypeError(f"sampler must be a models.LatentSampler (models.make_sampler(kind, "
                            f"d).fit(codes), models.load_sampler(path)) or None for the "
                            f"family's prior; got {type(sampler).__name__} {sampler!r:.40}.")
        if sampler is not None and sampler.latent_dim != self.config.latent_dim:
            raise ValueError(f"the sampler draws {sampler.latent_dim}-dimensional codes, the "
                             f"model's latent has {self.config.latent_dim} dimensions.")
        count, seed = check_count("count", count), check_seed(seed)
        draw = self.prior_codes if sampler is None else sampler.sample
        z = draw(count * self.config.channels, seed=seed)
        return z.reshape(count, self.config.channels, self.config.latent_dim)

    def generate_images(self, count: int, how: str = "mean", seed: int = 0,
                        sampler=None, labels=None) -> np.ndarray:
        """Decode ``count`` codes from ``sampler`` (default the prior, ``prior_codes``; an AE wants
        one fitted to its codes: ``samplers.make_sampler("fitted", d).fit(codes)``). The
        encoder is never used. A conditional model draws the requested ``labels`` (count,),
        or balanced ones when none are given (``generation_labels``)."""
        z = self.sample_latents(count, sampler, seed)
        return self.decode_images(z, how=how, seed=seed,
                                  labels=self.generation_labels(count, seed, labels))


def _check_options(how: str, seed: Optional[int], batch_size: int) -> None:
    if how not in IMAGE_KINDS:
        raise ValueError(f"image kind must be one of {IMAGE_KINDS}, got {how!r}.")
    if seed is not None:
        check_seed(seed)
    check_count("batch_size", batch_size)
