"""Model library: shapes, parameter sharing, training behaviour, save/load, closed forms."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from models import HEADS, ModelConfig, ModelFileError, build_model, load_model, save_model
from models.heads import make_head

tfd = tfp.distributions
TINY = dict(latent_dim=3, filters=(4, 8))


def tiny(kind="vae", head="bernoulli", channels=1, **changes):
    return build_model(ModelConfig(kind=kind, head=head, channels=channels, **TINY, **changes))


def images(n=5, channels=1, binary=True, seed=0):
    x = np.random.default_rng(seed).random((n, 28, 28, channels)).astype(np.float32)
    return (x > 0.5).astype(np.float32) if binary else x


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_shapes(kind, head, channels):
    model = tiny(kind, head, channels)
    x = images(4, channels)
    latent = model.encoder(x)
    if kind == "vae":
        assert latent.batch_shape == (4,) and latent.event_shape == (channels, 3)
    else:
        assert latent.shape == (4, channels, 3)
    assert model.encode(x).shape == (4, channels, 3)
    dist = model.decoder(model.encode(x))
    assert dist.batch_shape == (4,) and dist.event_shape == (28, 28, channels)
    assert dist.sample().shape == (4, 28, 28, channels)
    assert dist.log_prob(model.head.targets(x)).shape == (4,)
    assert model.decoder_params(model.encode(x)).shape == (
        4, 28, 28, channels, model.head.params_per_pixel)
    for how in ("mean", "mode", "sample"):
        picture = model.reconstruct_images(x, how=how)
        assert picture.shape == (4, 28, 28, channels)
        assert picture.min() >= 0.0 and picture.max() <= 1.0
    reconstruction, kl = model.loss_terms(x)
    assert reconstruction.shape == (4,) and kl.shape == (4,)
    assert model.sample_prior(7, seed=1).shape == (7, channels, 3)
    with pytest.raises(ValueError, match="image kind"):
        model.decode_images(model.sample_prior(2), how="median")


@pytest.mark.parametrize("head", ["bernoulli", "normal"])
@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_reconstruct_gives_the_images_and_their_nll_from_one_pass(kind, head):
    model = tiny(kind, head, channels=3)
    x = np.concatenate([images(3, 3, binary=False)] * 2)  # copies share one pass
    pictures, nll = model.reconstruct(x, how="mode")
    np.testing.assert_array_equal(pictures, model.reconstruct_images(x, how="mode"))
    assert nll.shape == (6, 3)
    np.testing.assert_array_equal(nll[:3], nll[3:])
    # The channels' NLLs sum to -log p(x | z) of the decoder distribution at the code.
    expected = -model.decoder(model.encode(x)).log_prob(model.head.targets(x)).numpy()
    np.testing.assert_allclose(nll.sum(axis=1), expected, rtol=1e-4)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_colour_model_shares_the_mono_weights(kind, head):
    mono, colour = tiny(kind, head, 1), tiny(kind, head, 3)
    assert mono.count_params() == colour.count_params()
    colour.set_network_weights(mono.network_weights())
    x = images(3, channels=3, binary=False)
    # Channel c of the colour reconstruction is the mono reconstruction of channel c.
    colour_mean = colour.reconstruct_images(x)
    for c in range(3):
        np.testing.assert_allclose(colour_mean[..., c:c + 1],
                                   mono.reconstruct_images(x[..., c:c + 1]), atol=1e-5)
    # Likewise for decoding: channel c of a colour image is decoded from its own latent.
    z = colour.sample_prior(5, seed=0)
    decoded = colour.decode_images(z, how="mean", batch_size=4)  # batches split the channels
    for c in range(3):
        np.testing.assert_allclose(decoded[..., c:c + 1], mono.decode_images(z[:, c:c + 1]),
                                   atol=1e-5)


def test_generation_samples_each_channel_independently():
    model = tiny("vae", channels=3)
    z = model.sample_prior(2000, seed=0)
    correlation = np.corrcoef(z[:, 0, 0], z[:, 1, 0])[0, 1]
    assert abs(correlation) < 0.1
    assert model.generate_images(6, seed=0).shape == (6, 28, 28, 3)
    np.testing.assert_array_equal(model.generate_images(4, how="sample", seed=3),
                                  model.generate_images(4, how="sample", seed=3))


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_train_step_changes_weights_and_evaluation_does_not(kind):
    model = tiny(kind)
    x = images(16)
    before = model.network_weights()
    model.evaluate(x, batch_size=8, verbose=0)
    model.reconstruct_images(x)
    for old, new in zip(before, model.network_weights()):
        np.testing.assert_array_equal(old, new)
    history = model.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), epochs=1, verbose=0)
    assert set(history.history) == {"loss", "reconstruction", "kl"}
    changed = [not np.array_equal(old, new) for old, new in zip(before, model.network_weights())]
    assert all(changed)


@pytest.mark.parametrize("head", HEADS)
def test_save_load_round_trip(tmp_path, head):
    model = tiny("vae", head, channels=1)
    path = save_model(model, tmp_path / "m.npz", {"trained_on": "test"})
    loaded, metadata = load_model(path)
    assert loaded.config == model.config and metadata == {"trained_on": "test"}
    x = images(4)
    np.testing.assert_array_equal(loaded.reconstruct_images(x), model.reconstruct_images(x))
    z = model.sample_prior(3)
    np.testing.assert_array_equal(loaded.decode_images(z, "sample", seed=1),
                                  model.decode_images(z, "sample", seed=1))
    colour, _ = load_model(path, channels=3)  # the shared subnet loads as a colour model
    assert colour.config.channels == 3 and colour.count_params() == model.count_params()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary left


def test_model_file_errors(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "absent.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError, match="corrupt"):
        load_model(garbage)
    good = save_model(tiny(), tmp_path / "good.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(ModelFileError, match="corrupt"):
        load_model(truncated)
    # A file whose weights do not fit its config.
    other = save_model(build_model(ModelConfig(kind="vae", latent_dim=5, filters=(4, 8))),
                       tmp_path / "other.npz")
    data = dict(np.load(other))
    data["config"] = np.array(ModelConfig(kind="vae", **TINY).to_json())
    mismatched = tmp_path / "mismatched.npz"
    np.savez(mismatched, **data)
    with pytest.raises(ModelFileError, match="do not fit"):
        load_model(mismatched)


def test_block_convs_add_same_resolution_convolutions_to_both_networks():
    plain, deeper = tiny("vae"), tiny("vae", block_convs=1)
    x = images(2)
    assert deeper.decoder_params(deeper.encode(x)).shape == plain.decoder_params(
        plain.encode(x)).shape
    # one 3x3 convolution per resolution and network: (f*f*9 + f) weights for f = 4 and 8
    extra = 2 * sum(f * f * 9 + f for f in TINY["filters"])
    assert deeper.count_params() - plain.count_params() == extra


def test_config_validation_and_json():
    config = ModelConfig(kind="ae", head="categorical", categorical_bins=4, filters=[8, 16])
    assert ModelConfig.from_json(config.to_json()) == config
    for bad in (dict(kind="gan"), dict(head="poisson"), dict(channels=2), dict(latent_dim=0),
                dict(categorical_bins=1), dict(normal_scale=0.0), dict(filters=(8,)),
                dict(beta=-1.0), dict(block_convs=-1)):
        with pytest.raises(ValueError):
            ModelConfig(**bad)
    with pytest.raises(ValueError, match="Unknown"):
        ModelConfig.from_json('{"kind": "vae", "depth": 3}')


# ----------------------------------------------------------------------------------------------
# Closed forms
# ----------------------------------------------------------------------------------------------
def test_kl_closed_forms():
    model = tiny("vae", channels=3)
    assert float(tfd.kl_divergence(model.prior, model.prior)) == 0.0
    rng = np.random.default_rng(0)
    params = rng.normal(size=(2, 3, 6)).astype(np.float32)  # (N, C, 2d)
    posterior = model._posterior(tf.constant(params))
    loc = params[..., :3]
    scale = np.log1p(np.exp(params[..., 3:])) + 1e-4
    expected = 0.5 * np.sum(scale ** 2 + loc ** 2 - 1.0 - 2.0 * np.log(scale), axis=(1, 2))
    np.testing.assert_allclose(tfd.kl_divergence(posterior, model.prior), expected, rtol=1e-5)


def test_bernoulli_log_likelihood_formula():
    head = make_head(ModelConfig(head="bernoulli"))
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(2, 28, 28, 1)).astype(np.float64)
    x = (rng.random((2, 28, 28, 1)) > 0.5).astype(np.float32)
    p = 1.0 / (1.0 + np.exp(-logits))
    expected = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2, 3))
    got = head.distribution(tf.constant(logits[..., None], tf.float32)).log_prob(x)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_categorical_log_likelihood_formula():
    head = make_head(ModelConfig(head="categorical", categorical_bins=4))
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(1, 28, 28, 1, 4))
    x = rng.random((1, 28, 28, 1)).astype(np.float32)
    bins = np.minimum(np.floor(x * 4), 3).astype(int)
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = np.take_along_axis(log_softmax, bins[..., None], axis=-1).sum()
    got = head.distribution(tf.constant(logits, tf.float32)).log_prob(head.targets(x))
    np.testing.assert_allclose(float(got[0]), expected, rtol=1e-5)


@pytest.mark.parametrize("head", ["beta", "normal"])
def test_continuous_heads_are_finite_on_exact_zero_and_one(head):
    model = tiny("vae", head)
    x = images(4, binary=True)  # every pixel is exactly 0 or 1
    reconstruction, kl = model.loss_terms(x)
    assert np.all(np.isfinite(reconstruction)) and np.all(np.isfinite(kl))
    history = model.fit(tf.data.Dataset.from_tensor_slices(x).batch(4), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize("head", HEADS + ("normal_fixed",))
def test_linear_form_equals_log_prob(head):
    config = (ModelConfig(head="normal", normal_scale=0.2) if head == "normal_fixed"
              else ModelConfig(head=head, categorical_bins=5))
    model_head = make_head(config)
    rng = np.random.default_rng(3)
    params = tf.constant(rng.normal(size=(3, 28, 28, 1, model_head.params_per_pixel)),
                         tf.float32)
    targets = model_head.targets(rng.random((2, 28, 28, 1)).astype(np.float32))
    weights, constants = model_head.linear_form(params)
    table = model_head.features(targets).numpy() @ weights.numpy().T + constants.numpy()
    direct = np.stack([model_head.distribution(params).log_prob(t).numpy() for t in targets])
    np.testing.assert_allclose(table, direct, rtol=1e-4)


def test_colour_reconstruction_is_the_mono_reconstruction_of_each_channel():
    colour, mono = tiny("vae", channels=3), tiny("vae")
    mono.set_network_weights(colour.network_weights())
    x = images(4, channels=3)
    x[3] = x[0]  # repeated images share their reconstruction
    recon = colour.reconstruct_images(x, how="mode")
    assert recon.shape == (4, 28, 28, 3)
    for c in range(3):
        np.testing.assert_array_equal(recon[..., c:c + 1], mono.reconstruct_images(
            x[..., c:c + 1], how="mode"))
    with pytest.raises(ValueError, match="channel"):
        mono.reconstruct_images(x)


def test_half_precision_file_is_half_the_size_and_loads_as_float32(tmp_path):
    model = tiny("vae")
    full = save_model(model, tmp_path / "full.npz")
    half = save_model(model, tmp_path / "half.npz", weight_dtype="float16")
    assert half.stat().st_size < 0.7 * full.stat().st_size
    loaded, _ = load_model(half)
    for saved, original in zip(loaded.network_weights(), model.network_weights()):
        assert saved.dtype == np.float32
        np.testing.assert_array_equal(saved, original.astype(np.float16).astype(np.float32))
