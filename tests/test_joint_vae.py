"""The joint-channel VAE (models.joint_vae): its loss against the formula, training,
generation by seed and its file. Seconds."""
import numpy as np
import pytest
import tensorflow as tf

from models import ModelConfig, build_model, fit_model, load_model, save


def tiny(**changes):
    config = ModelConfig(kind="joint_vae", channels=3, latent_dim=3, filters=(4, 8),
                         hidden_units=0).replace(**changes)
    return build_model(config, 1e-2, seed=0)


def test_the_loss_terms_are_the_bernoulli_likelihood_and_the_normal_kl():
    model = tiny()
    x = (np.random.default_rng(0).random((5, 28, 28, 3)) > 0.7).astype(np.float32)
    seed = tf.constant([1, 2])
    reconstruction, kl = model.loss_terms(x, False, seed)
    q = model.posterior(x)
    loc, scale = q.distribution.loc.numpy(), q.distribution.scale.numpy()
    np.testing.assert_allclose(kl.numpy(), np.sum(0.5 * (loc ** 2 + scale ** 2 - 1)
                                                  - np.log(scale), axis=1), rtol=1e-4)
    z = q.sample(seed=seed)
    logits = model.decoder(z).numpy()  # one logit per pixel and channel
    assert logits.shape == (5, 28, 28, 3)
    expected = np.sum(np.maximum(logits, 0) - logits * x + np.log1p(np.exp(-abs(logits))),
                      axis=(1, 2, 3))
    np.testing.assert_allclose(reconstruction.numpy(), expected, rtol=1e-4)


def test_a_tiny_joint_vae_trains_generates_by_seed_and_round_trips(tmp_path):
    model = tiny()
    real = np.zeros((60, 28, 28, 3), np.float32)
    real[:, 4:24, 10:18] = 1.0  # one bar in every channel
    history = fit_model(model, real, real[:20], epochs=3, batch_size=20, seed=0, verbose=0)
    assert history["loss"][-1] < history["loss"][0]
    images = model.generate_images(6, seed=2)
    assert images.shape == (6, 28, 28, 3) and 0 <= images.min() and images.max() <= 1
    np.testing.assert_array_equal(images, model.generate_images(6, seed=2))
    sampled = model.generate_images(6, how="sample", seed=2)
    assert set(np.unique(sampled)) <= {0.0, 1.0}
    reconstructed = model.reconstruct_images(real[:4])
    assert reconstructed.shape == (4, 28, 28, 3)
    assert np.abs(reconstructed - real[:4]).mean() < np.abs(0.5 - real[:4]).mean()
    loaded = load_model(save(model, tmp_path / "joint.keras"))
    np.testing.assert_allclose(loaded.generate_images(6, seed=2), images, atol=1e-6)
    assert sum(w.size for w in loaded.network_weights()) <= model.config.parameter_count()
    with pytest.raises(ValueError, match="not conditional"):
        model.generate_images(2, labels=[1, 2])
