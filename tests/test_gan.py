"""The GAN (models.gan, models.gan_networks) and the AC-GAN (models.acgan): the networks' shapes
and ranges, the order PacGAN's packing puts images in, refusals, and tiny GANs that train,
generate by seed (and by digit) and rebuild from their config. Seconds."""
from __future__ import annotations

import numpy as np
import pytest

from models.gan_networks import gan_discriminator, gan_generator, pack_images


@pytest.mark.parametrize("channels", [1, 3])
def test_the_generator_makes_images_the_discriminator_judges(channels):
    generator = gan_generator(5, channels, filters=(4, 8))
    z = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    images = generator(z, training=False).numpy()
    assert images.shape == (6, 28, 28, channels)
    assert images.min() > 0 and images.max() < 1
    for pack in (1, 2, 3):
        logits = gan_discriminator(channels, pack, filters=(4, 8))(pack_images(images, pack))
        assert logits.shape == (6 // pack, 1)


def test_extra_convolutions_keep_the_shapes_and_are_counted_exactly():
    from models import ModelConfig, build_model

    plain = ModelConfig(kind="gan", latent_dim=5, channels=3, filters=(4, 8), pack=2)
    for blocks in (1, 2):
        config = plain.replace(block_convs=blocks)
        gan = build_model(config, seed=0)
        images = gan.generate_images(4, seed=0)
        assert images.shape == (4, 28, 28, 3)
        assert gan.discriminator(pack_images(images, 2)).shape == (2, 1)
        added = sum(w.size for w in gan.network_weights()) - sum(
            w.size for w in build_model(plain, seed=0).network_weights())
        assert added == config.parameter_count() - plain.parameter_count()
        convs = [layer for net in gan.networks() for layer in net.layers
                 if type(layer).__name__ == "Conv2D" and layer.kernel_size == (3, 3)]
        assert len(convs) == 4 * blocks  # two resolutions in each network


def test_packing_puts_each_group_side_by_side_in_the_channels():
    images = np.arange(4 * 28 * 28 * 3, dtype=np.float32).reshape(4, 28, 28, 3)
    packed = pack_images(images, 2).numpy()
    assert packed.shape == (2, 28, 28, 6)
    for group in range(2):
        for member in range(2):
            np.testing.assert_array_equal(packed[group, ..., 3 * member:3 * member + 3],
                                          images[2 * group + member])
    np.testing.assert_array_equal(pack_images(images, 1).numpy(), images)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        gan_generator(5, 2)
    with pytest.raises(ValueError, match="pack must be an integer >= 1"):
        gan_discriminator(1, 0)
    with pytest.raises(ValueError, match="filters must be two"):
        gan_generator(5, 1, filters=(4,))
    with pytest.raises(ValueError, match="block_convs must be an integer >= 0"):
        gan_discriminator(1, 1, block_convs=-1)
    with pytest.raises(Exception, match="multiple of the packing degree"):
        pack_images(np.zeros((3, 28, 28, 1), np.float32), 2)


def test_a_tiny_gan_trains_generates_by_seed_and_round_trips_through_its_file(tmp_path):
    from models import ModelConfig, ModelFileError, build_model, fit_model, load_model, save

    config = ModelConfig(kind="gan", latent_dim=4, channels=3, filters=(4, 8), pack=2)
    gan = build_model(config, 1e-3, seed=0)
    real = (np.random.default_rng(0).random((70, 28, 28, 3)) > 0.7).astype(np.float32)
    history = fit_model(gan, real, real[:20], epochs=2, batch_size=25, seed=0, verbose=0)
    for name in ("discriminator_loss", "generator_loss", "real_scored_real"):
        for logged in (name, f"val_{name}"):
            assert len(history[logged]) == 2 and np.all(np.isfinite(history[logged]))
    images = gan.generate_images(7, seed=3)
    assert images.shape == (7, 28, 28, 3) and 0 <= images.min() and images.max() <= 1
    np.testing.assert_array_equal(images, gan.generate_images(7, seed=3))
    assert not np.array_equal(images, gan.generate_images(7, seed=4))
    path = save(gan, tmp_path / "gan.keras")
    loaded = load_model(path)
    assert loaded.config == config
    np.testing.assert_allclose(loaded.generate_images(7, seed=3), images, atol=1e-6)
    with pytest.raises(ModelFileError, match="no 1-channel version"):
        load_model(path, channels=1)
    with pytest.raises(ValueError, match="not conditional"):
        gan.generate_images(2, labels=[1, 2])
    with pytest.raises(ValueError, match="holds"):
        loaded.set_network_weights(gan.network_weights()[:-1])
    # the same seed trains the same GAN
    again = build_model(config, 1e-3, seed=0)
    fit_model(again, real, epochs=2, batch_size=25, seed=0, verbose=0)
    np.testing.assert_allclose(again.generate_images(7, seed=3), images, atol=1e-6)


def test_the_rows_refuse_a_fitted_sampler_for_a_model_without_an_encoder():
    from types import SimpleNamespace

    from experiments.rows import generator_for
    from models import ModelConfig, build_model

    gan = build_model(ModelConfig(kind="gan", latent_dim=4, filters=(4, 8)))
    assert gan.default_sampler == "standard" and "N(0, I)" in gan.prior_description
    for latent in ("fitted", "gmm", "flow"):
        with pytest.raises(ValueError, match=f"--latent {latent} fits a sampler to the codes "
                                             "of an encoder; a gan model has none"):
            generator_for(None, None, SimpleNamespace(latent=latent), gan, None, None)


def test_the_conditional_networks_take_the_digit_and_classify_beside_the_verdict():
    generator = gan_generator(5, 1, filters=(4, 8), classes=10)
    z = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    images = generator([z, np.eye(10, dtype=np.float32)[[0, 1, 2, 3, 4, 5]]]).numpy()
    assert images.shape == (6, 28, 28, 1)
    other = generator([z, np.eye(10, dtype=np.float32)[[5, 4, 3, 2, 1, 0]]]).numpy()
    assert not np.allclose(images, other)  # the label reaches the image
    logits, classes = gan_discriminator(1, 1, filters=(4, 8), classes=10)(images)
    assert logits.shape == (6, 1) and classes.shape == (6, 10)
    with pytest.raises(ValueError, match="pack must be 1"):
        gan_discriminator(1, 2, filters=(4, 8), classes=10)


def test_a_tiny_acgan_trains_on_labels_generates_digits_by_seed_and_round_trips(tmp_path):
    from models import ModelConfig, ModelFileError, build_model, fit_model, load_model, save

    config = ModelConfig(kind="acgan", latent_dim=4, filters=(4, 8))
    gan = build_model(config, 1e-3, seed=0)
    assert sum(w.size for w in gan.network_weights()) == config.parameter_count()
    rng = np.random.default_rng(0)
    real = (rng.random((70, 28, 28, 1)) > 0.7).astype(np.float32)
    digits = rng.integers(0, 10, 70)
    history = fit_model(gan, real, real[:20], epochs=2, batch_size=25, seed=0, verbose=0,
                        labels=digits, val_labels=digits[:20])
    for name in ("discriminator_loss", "generator_loss", "real_class_cross_entropy",
                 "fake_class_cross_entropy"):
        for logged in (name, f"val_{name}"):
            assert len(history[logged]) == 2 and np.all(np.isfinite(history[logged]))
    balanced = gan.generate_images(20, seed=3)
    assert balanced.shape == (20, 28, 28, 1) and 0 <= balanced.min() and balanced.max() <= 1
    np.testing.assert_array_equal(balanced, gan.generate_images(20, seed=3))
    sevens = gan.generate_images(3, seed=3, labels=[7, 7, 7])
    assert not np.allclose(sevens, gan.generate_images(3, seed=3, labels=[1, 1, 1]))
    loaded = load_model(save(gan, tmp_path / "acgan.keras"))
    assert loaded.config == config and loaded.conditional
    np.testing.assert_allclose(loaded.generate_images(20, seed=3), balanced, atol=1e-6)
    with pytest.raises(ModelFileError, match="no 3-channel version"):
        load_model(tmp_path / "acgan.keras", channels=3)
    with pytest.raises(ValueError, match="give the images' digit labels"):
        fit_model(gan, real, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="got 2 labels for 3 images"):
        gan.generate_images(3, labels=[1, 2])
    with pytest.raises(ValueError, match=r"labels must be integer class labels in 0\.\.9"):
        gan.generate_images(2, labels=[1, 10])
    for bad in (dict(channels=3), dict(pack=2)):
        with pytest.raises(ValueError, match="single mono images"):
            build_model(config.replace(**bad))
