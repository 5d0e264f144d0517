"""Model library: shapes, parameter sharing, training behaviour, save/load, closed forms."""
import functools
import json
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from models import ENCODER_FAMILIES, HEADS, ModelConfig, ModelFileError, build_model, load_model
from models import save_model
from models.heads import make_head

tfd = tfp.distributions
TINY = dict(latent_dim=3, filters=(4, 8))


def tiny(kind="vae", head="bernoulli", channels=1, **changes):
    return build_model(ModelConfig(kind=kind, head=head, channels=channels, **TINY, **changes))


@functools.lru_cache(maxsize=None)
def shared(kind: str, head: str, channels: int):
    """One tiny model per (family, head, channels) for the tests that only read it (or only
    set its weights): building and tracing a model costs more than most of the tests."""
    return tiny(kind, head, channels)


def images(n=5, channels=1, binary=True, seed=0):
    x = np.random.default_rng(seed).random((n, 28, 28, channels)).astype(np.float32)
    return (x > 0.5).astype(np.float32) if binary else x


def labels_for(model, n, seed=0):
    """Class labels for n images if the model is conditional (its helpers need them), else
    None: the generic tests run every family."""
    if not model.conditional:
        return None
    return np.random.default_rng(seed).integers(0, 10 ** model.config.channels, n)


def _grid():
    """Every family with every head, once each, mono or colour in turn: each family and each
    head meet both channel counts (every pair of the three is covered, at half the cases of
    the full product); the plain families' Bernoulli models are mono (the fast lane's)."""
    conditional_or_learned = {"cvae", "flowprior_vae"}
    return [(kind, head, 1 + 2 * ((i + (kind in conditional_or_learned)) % 2))
            for kind in sorted(ENCODER_FAMILIES) for i, head in enumerate(HEADS)]


GRID = _grid()


@pytest.mark.parametrize("kind, head, channels", GRID)
def test_shapes(kind, head, channels):
    model = shared(kind, head, channels)
    x, y = images(4, channels), labels_for(model, 4)
    latent = model.encoder(model.model_inputs(x, y))
    if model.prior is not None:  # a distribution over codes
        assert latent.batch_shape == (4,) and latent.event_shape == (channels, 3)
    else:
        assert latent.shape == (4, channels, 3)
    code = model.encode(x, labels=y)
    assert code.shape == (4, channels, 3)
    dist = model.decoder(model.model_inputs(code, y))
    assert dist.batch_shape == (4,) and dist.event_shape == (28, 28, channels)
    assert dist.sample().shape == (4, 28, 28, channels)
    assert dist.log_prob(model.head.targets(x)).shape == (4,)
    assert model.decoder_params(model.model_inputs(code, y)).shape == (
        4, 28, 28, channels, model.head.params_per_pixel)
    for how in ("mean", "mode", "sample"):
        picture = model.reconstruct_images(x, how=how, labels=y)
        assert picture.shape == (4, 28, 28, channels)
        assert picture.min() >= 0.0 and picture.max() <= 1.0
    reconstruction, kl = model.loss_terms(x, labels=y)
    assert reconstruction.shape == (4,) and kl.shape == (4,)
    assert model.sample_latents(7, seed=1).shape == (7, channels, 3)
    with pytest.raises(ValueError, match="image kind"):
        model.decode_images(model.sample_latents(2), how="median", labels=labels_for(model, 2))


@pytest.mark.parametrize("head", ["bernoulli", "normal"])
@pytest.mark.parametrize("kind", sorted(ENCODER_FAMILIES))
def test_reconstruct_gives_the_images_and_their_nll_from_one_pass(kind, head):
    model = shared(kind, head, 3)
    x = np.concatenate([images(3, 3, binary=False)] * 2)  # copies share one pass
    y = labels_for(model, 3)
    y = None if y is None else np.concatenate([y, y])
    pictures, nll = model.reconstruct(x, how="mode", labels=y)
    np.testing.assert_array_equal(pictures, model.reconstruct_images(x, how="mode", labels=y))
    assert nll.shape == (6, 3)
    np.testing.assert_array_equal(nll[:3], nll[3:])
    # The channels' NLLs sum to -log p(x | z) of the decoder distribution at the code.
    code = model.encode(x, labels=y)
    expected = -model.decoder(model.model_inputs(code, y)).log_prob(
        model.head.targets(x)).numpy()
    np.testing.assert_allclose(nll.sum(axis=1), expected, rtol=1e-4)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("kind", sorted(ENCODER_FAMILIES))
def test_colour_model_shares_the_mono_weights(kind, head):
    mono, colour = shared(kind, head, 1), shared(kind, head, 3)
    assert mono.count_params() == colour.count_params()
    colour.set_network_weights(mono.network_weights())
    x = images(3, channels=3, binary=False)
    y3, y5 = labels_for(colour, 3), labels_for(colour, 5)

    def digit(labels, c):  # a conditional channel's label: its own digit (R ones, G tens ...)
        return None if labels is None else labels // 10 ** c % 10

    # Channel c of the colour reconstruction is the mono reconstruction of channel c.
    colour_mean = colour.reconstruct_images(x, labels=y3)
    for c in range(3):
        np.testing.assert_allclose(
            colour_mean[..., c:c + 1],
            mono.reconstruct_images(x[..., c:c + 1], labels=digit(y3, c)), atol=1e-5)
    # Likewise for decoding: channel c of a colour image is decoded from its own latent.
    z = colour.sample_latents(5, seed=0)
    decoded = colour.decode_images(z, how="mean", batch_size=4, labels=y5)  # split channels
    for c in range(3):
        np.testing.assert_allclose(decoded[..., c:c + 1],
                                   mono.decode_images(z[:, c:c + 1], labels=digit(y5, c)),
                                   atol=1e-5)


def test_generation_samples_each_channel_independently():
    model = tiny("vae", channels=3)
    z = model.sample_latents(2000, seed=0)
    correlation = np.corrcoef(z[:, 0, 0], z[:, 1, 0])[0, 1]
    assert abs(correlation) < 0.1
    assert model.generate_images(6, seed=0).shape == (6, 28, 28, 3)
    np.testing.assert_array_equal(model.generate_images(4, how="sample", seed=3),
                                  model.generate_images(4, how="sample", seed=3))


@pytest.mark.parametrize("kind", sorted(ENCODER_FAMILIES))
def test_train_step_changes_weights_and_evaluation_does_not(kind):
    model = tiny(kind)
    x, y = images(16), labels_for(model, 16)
    data = x if y is None else (x, y)
    before = model.network_weights()
    model.evaluate(*((x,) if y is None else (x, y)), batch_size=8, verbose=0)
    model.reconstruct_images(x, labels=y)
    for old, new in zip(before, model.network_weights()):
        np.testing.assert_array_equal(old, new)
    trainable = [w.numpy() for w in model.trainable_weights]  # (a CVAE's class prior is fitted)
    history = model.fit(tf.data.Dataset.from_tensor_slices(data).batch(8), epochs=1, verbose=0)
    assert set(history.history) == {metric.name for metric in model.metrics}
    assert {"loss", "reconstruction", "kl"} <= set(history.history)
    assert all(not np.array_equal(old, new.numpy())
               for old, new in zip(trainable, model.trainable_weights))


@pytest.mark.parametrize("kind, head, channels", GRID)
def test_keras_file_round_trip(tmp_path, kind, head, channels):
    model = shared(kind, head, channels)
    path = save_model(model, tmp_path / "m.keras", {"trained_on": "test"})
    # Keras' own loader reads it (the classes are registered by `import models`).
    loaded = tf_keras.models.load_model(path, safe_mode=True)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert loaded.metadata == {"trained_on": "test"}
    x, y = images(4, channels), labels_for(model, 4)
    np.testing.assert_array_equal(loaded.reconstruct_images(x, labels=y),
                                  model.reconstruct_images(x, labels=y))
    z, y = model.sample_latents(3), labels_for(model, 3)
    np.testing.assert_array_equal(loaded.decode_images(z, "sample", seed=1, labels=y),
                                  model.decode_images(z, "sample", seed=1, labels=y))
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary left


def test_mono_file_loads_as_a_colour_model(tmp_path):
    model = tiny("vae")
    path = save_model(model, tmp_path / "m.keras")
    colour = load_model(path, channels=3)
    assert colour.config.channels == 3 and colour.count_params() == model.count_params()
    x = images(2, 3)
    np.testing.assert_allclose(colour.reconstruct_images(x)[..., 1:2],
                               model.reconstruct_images(x[..., 1:2]), atol=1e-6)


def test_model_files_hold_plain_configs_and_float32_weights(tmp_path):
    path = save_model(tiny("vae"), tmp_path / "m.keras")
    with zipfile.ZipFile(path) as archive:
        assert set(archive.namelist()) == {"config.json", "metadata.json", "model.weights.h5"}
        config = json.loads(archive.read("config.json"))
    assert config["registered_name"] == "models>VAE"
    assert config["config"]["config"]["latent_dim"] == 3  # the ModelConfig, plain values
    assert "optimizer" not in json.dumps(config)
    assert all(w.dtype == np.float32 for w in load_model(path).network_weights())


def test_model_file_errors(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist.*git checkout"):
        load_model(tmp_path / "absent.keras", hint="Restore it with `git checkout`.")
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError, match="garbage.keras.*not a .keras zip"):
        load_model(garbage)
    good = save_model(tiny(), tmp_path / "good.keras")
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    with pytest.raises(ModelFileError, match="truncated.keras"):
        load_model(truncated)
    with pytest.raises(ValueError, match=".keras"):
        save_model(tiny(), tmp_path / "model.npz")


def _rewrite_config(source, target, change):
    """Copy a .keras archive with its config.json changed by ``change(config)``."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def test_files_that_could_run_code_are_refused(tmp_path):
    marker = tmp_path / "ran"
    marker_name = str(marker)
    # A Lambda layer whose function writes the marker, saved by Keras as .keras and as HDF5
    # under a .keras name (the legacy loader would unpickle its bytecode).
    inputs = tf_keras.Input((2,))
    outputs = tf_keras.layers.Lambda(lambda t: t + len(open(marker_name, "w").name))(inputs)
    lambda_model = tf_keras.Model(inputs, outputs)
    lambda_file = tmp_path / "lambda.keras"
    lambda_model.save(lambda_file)
    hdf5_file = tmp_path / "hdf5.keras"
    with pytest.warns(UserWarning, match="legacy"):
        lambda_model.save(tmp_path / "lambda.h5")
    (tmp_path / "lambda.h5").rename(hdf5_file)
    if marker.exists():
        marker.unlink()  # tracing the model at save time ran it once
    good = save_model(tiny(), tmp_path / "good.keras")
    unregistered = _rewrite_config(good, tmp_path / "unregistered.keras", lambda c: c.update(
        registered_name="evil>Payload", class_name="Payload"))
    other_module = _rewrite_config(good, tmp_path / "module.keras",
                                   lambda c: c.update(module="antigravity"))
    nested = _rewrite_config(good, tmp_path / "nested.keras", lambda c: c["config"].update(
        metadata={"class_name": "Lambda", "config": {}}))
    for path in (lambda_file, hdf5_file, unregistered, other_module, nested):
        with pytest.raises(ModelFileError):
            load_model(path)
    assert not marker.exists()


def test_nan_weights_are_neither_saved_nor_loaded(tmp_path):
    model = tiny()
    good = save_model(model, tmp_path / "good.keras")
    weights = model.network_weights()
    weights[0] = np.full_like(weights[0], np.nan)
    model.set_network_weights(weights)
    with pytest.raises(ValueError, match="NaN"):
        save_model(model, tmp_path / "nan.keras")
    assert not (tmp_path / "nan.keras").exists()
    # The same NaN weights written into an archive by hand.
    import h5py

    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes(good.read_bytes())
    with zipfile.ZipFile(good) as archive, zipfile.ZipFile(damaged, "w") as out:
        for name in archive.namelist():
            data = archive.read(name)
            if name == "model.weights.h5":
                local = tmp_path / "w.h5"
                local.write_bytes(data)
                with h5py.File(local, "r+") as h5:
                    def poison(_, item):
                        if isinstance(item, h5py.Dataset) and item.dtype.kind == "f":
                            item[...] = np.nan
                    h5.visititems(poison)
                data = local.read_bytes()
            out.writestr(name, data)
    with pytest.raises(ModelFileError, match="NaN"):
        load_model(damaged)


def test_block_convs_add_same_resolution_convolutions_to_both_networks():
    plain, deeper = tiny("vae"), tiny("vae", block_convs=1)
    x = images(2)
    assert deeper.decoder_params(deeper.encode(x)).shape == plain.decoder_params(
        plain.encode(x)).shape
    # one 3x3 convolution per resolution and network: (f*f*9 + f) weights for f = 4 and 8
    extra = 2 * sum(f * f * 9 + f for f in TINY["filters"])
    assert deeper.count_params() - plain.count_params() == extra


@pytest.mark.parametrize("maps", [1, 2, 16])
def test_few_maps_convolution_is_the_convolution_and_keeps_the_file_layout(maps):
    from models.networks import FEW_MAPS, few_maps_convolution
    fast = few_maps_convolution(tf_keras.layers.Conv2D(maps, 3, padding="same"))
    plain = tf_keras.layers.Conv2D(maps, 3, padding="same")
    x = tf.random.stateless_normal((3, 28, 28, 8), seed=[0, 1])
    plain(x)
    fast(x)
    plain.set_weights([w + 0.1 for w in plain.get_weights()])  # a bias of zero hides nothing
    fast.set_weights(plain.get_weights())
    np.testing.assert_allclose(fast(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-5)
    assert type(fast) is tf_keras.layers.Conv2D  # model files name weights after the class
    assert ("convolution_op" in vars(fast)) == (maps <= FEW_MAPS)
    decoder = shared("vae", "bernoulli", 1).mono_decoder.get_layer("pixel_params")
    assert type(decoder) is tf_keras.layers.Conv2D and "convolution_op" in vars(decoder)


def test_dense_activation_reaches_every_dense_layer_and_keeps_the_weights():
    relu, elu = tiny("vae"), tiny("vae", dense_activation="elu")
    assert relu.count_params() == elu.count_params()
    dense = [layer for net in (elu.mono_encoder, elu.mono_decoder) for layer in net.layers
             if isinstance(layer, tf_keras.layers.Dense) and layer.name != "latent_params"]
    assert len(dense) == 3 and all(layer.activation is tf_keras.activations.elu for layer in dense)


def test_config_validation_and_json():
    config = ModelConfig(kind="ae", head="categorical", categorical_bins=4, filters=[8, 16])
    assert ModelConfig.from_json(config.to_json()) == config
    for bad in (dict(kind="gam"), dict(head="poisson"), dict(channels=2), dict(latent_dim=0),
                dict(categorical_bins=1), dict(normal_scale=0.0), dict(filters=(8,)),
                dict(beta=-1.0), dict(block_convs=-1), dict(dense_activation="tanh"),
                dict(pack=0)):
        with pytest.raises(ValueError):
            ModelConfig(**bad)
    with pytest.raises(ValueError, match="Unknown"):
        ModelConfig.from_json('{"kind": "vae", "depth": 3}')
    for bad in (dict(latent_dim=2.5), dict(latent_dim="8"), dict(hidden_units=True),
                dict(beta=float("nan")), dict(filters=(8.5, 16))):
        with pytest.raises(ValueError):
            ModelConfig(**bad)


def test_settings_from_the_command_line_are_parsed_and_checked():
    config = ModelConfig().with_settings({"latent_dim": "2", "beta": "4", "head": "beta",
                                          "filters": "[8, 16]", "normal_scale": "null"})
    assert (config.latent_dim, config.beta, config.head, config.filters) == (2, 4.0, "beta",
                                                                            (8, 16))
    with pytest.raises(ValueError, match="unknown model setting 'depth'"):
        ModelConfig().with_settings({"depth": "3"})
    with pytest.raises(ValueError, match="latent_dim"):
        ModelConfig().with_settings({"latent_dim": "two"})


@pytest.mark.parametrize("kind", sorted(ENCODER_FAMILIES))
def test_one_prior_object_serves_the_kl_and_generation_and_holds_the_extra_state(kind):
    model = tiny(kind, channels=3)
    np.testing.assert_array_equal(model.prior_codes(7, seed=2), model.z_prior.sample(7, seed=2))
    z = model.sample_latents(4, seed=1)
    np.testing.assert_array_equal(z, model.z_prior.sample(12, seed=1).reshape(4, 3, 3))
    x, y = images(4, 3), labels_for(model, 4)
    latent = model.encoder(model.model_inputs(x, y))
    code = model.draw_code(latent, seed=tf.constant([1, 2]))
    np.testing.assert_array_equal(model.kl_divergence(latent, code),
                                  model.z_prior.kl(latent, code))
    assert (model.prior is None) == (model.z_prior.distribution(3) is None)
    extra = [v.numpy() for v in model.extra_state_variables()]
    subnets = [w for net in model.networks() for w in net.get_weights()]
    assert model.networks()[:2] == [model.mono_encoder, model.mono_decoder]
    weights = model.network_weights()
    assert len(weights) == len(subnets) + len(extra)
    for a, b in zip(weights, subnets + extra):  # the subnets first, then the extra state
        np.testing.assert_array_equal(a, b)
    model.after_training(x, y, seed=0)  # every family has the hook
    if not model.conditional:
        with pytest.raises(ValueError, match="unconditional"):
            model.after_training(x, np.zeros(4, int))
        with pytest.raises(ValueError, match="unconditional"):
            model.generate_images(2, labels=[0, 1])
    assert model.generate_images(2, seed=0).shape == (2, 28, 28, 3)  # labels optional


# ----------------------------------------------------------------------------------------------
# Closed forms
# ----------------------------------------------------------------------------------------------
def test_kl_closed_forms():
    model = tiny("vae", channels=3)
    assert float(tfd.kl_divergence(model.prior, model.prior)) == 0.0
    rng = np.random.default_rng(0)
    params = rng.normal(size=(2, 3, 6)).astype(np.float32)  # (N, C, 2d)
    posterior = model.posterior(tf.constant(params))
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


@pytest.mark.slow  # fits or trains for seconds
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


def test_the_continuous_bernoulli_is_a_density_on_grey_levels_and_the_bernoulli_is_not():
    """Integrated over a pixel's grey levels [0, 1] (trapezoid rule, 401 points), the
    continuous Bernoulli's density is 1 for any logit l; the Bernoulli's exp(log_prob) of a
    grey level integrates to (e^l - 1) / (l (1 + e^l)) (0.5 at l = 0, 0.38 at l = 2): no
    density, so its "log p(x)" of grey images is no log-likelihood."""
    logits = np.array([-4.0, -1.0, 0.5, 2.0, 6.0], np.float32)
    grid = np.linspace(0.0, 1.0, 401, dtype=np.float32)
    params = tf.reshape(tf.tile(tf.constant(logits)[:, None], [1, 784]), (5, 28, 28, 1, 1))

    def mass(head):
        pixels = make_head(ModelConfig(head=head)).distribution(params).distribution
        density = np.exp(np.stack([pixels.log_prob(tf.fill(pixels.batch_shape, v)).numpy()
                                   [:, 0, 0, 0] for v in grid]))
        return np.trapezoid(density, grid, axis=0)

    np.testing.assert_allclose(mass("continuous_bernoulli"), 1.0, atol=1e-4)
    closed_form = np.expm1(logits) / (logits * (1 + np.exp(logits)))
    np.testing.assert_allclose(mass("bernoulli"), closed_form, rtol=1e-4)


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
    with pytest.raises(ValueError, match=r"shape \(N, 28, 28\) or \(N, 28, 28, 1\)"):
        mono.reconstruct_images(x)
