"""The VAE with a learned flow prior (models/flowprior.py): the prior is a proper density, the
Monte Carlo KL agrees with the closed form when the flow is the identity, it trains with the
model and travels in the file; the --learned-prior rows and the beta sweep's --quick run."""
import importlib
import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from models import ModelConfig, build_model, fit_model, load_model, save_model
from models.likelihood import posterior_estimates

tfd = tfp.distributions


def tiny(latent_dim=3, channels=1, seed=0):
    return build_model(ModelConfig(kind="flowprior_vae", latent_dim=latent_dim, filters=(4, 8),
                                   hidden_units=16, channels=channels), seed=seed)


def randomise_prior(model, seed=0, scale=1.0):
    """Prior weights far from the initial ones, the MADE masks kept: each weight times a
    random factor (the masked kernel entries stay zero)."""
    rng = np.random.default_rng(seed)
    for network in model.prior_networks:
        network.set_weights([(w * scale * rng.standard_normal(w.shape)).astype(np.float32)
                             for w in network.get_weights()])


def zero_prior(model):
    for network in model.prior_networks:
        network.set_weights([np.zeros_like(w) for w in network.get_weights()])


@pytest.mark.slow  # fits or trains for seconds
def test_log_density_of_its_own_samples_is_the_change_of_variables_formula():
    model = tiny(latent_dim=3)
    randomise_prior(model)
    u = tf.constant(np.random.default_rng(1).standard_normal((64, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(u)
        z = model.prior_bijector.forward(u)
    jacobian = tape.batch_jacobian(z, u)  # (64, 3, 3)
    reference = (tfd.MultivariateNormalDiag(tf.zeros(3)).log_prob(u)
                 - tf.math.log(tf.abs(tf.linalg.det(jacobian))))
    log_prob = model.latent_prior(1).log_prob(z[:, tf.newaxis, :])
    np.testing.assert_allclose(log_prob.numpy(), reference.numpy(), rtol=1e-4, atol=1e-4)
    # prior_codes draws exactly these pushed-forward normals.
    codes = model.prior_codes(64, seed=5)
    u5 = np.random.default_rng(5).standard_normal((64, 3)).astype(np.float32)
    np.testing.assert_allclose(codes, model.prior_bijector.forward(u5).numpy(), rtol=1e-5)


def test_the_prior_density_integrates_to_one():
    model = tiny(latent_dim=2)
    randomise_prior(model, scale=0.7)
    samples = model.prior_codes(20_000, seed=0)
    low, high = np.percentile(samples, 0.01, axis=0) - 3, np.percentile(samples, 99.99, axis=0) + 3
    axes = [np.linspace(low[i], high[i], 400) for i in range(2)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2).astype(np.float32)
    density = np.exp(model.latent_prior(1).log_prob(grid[:, np.newaxis, :]).numpy())
    cell = (axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])
    assert abs(density.sum() * cell - 1.0) < 0.02


@pytest.mark.slow  # fits or trains for seconds
def test_monte_carlo_kl_equals_the_analytic_kl_when_the_flow_is_the_identity():
    model = tiny(latent_dim=3)
    zero_prior(model)  # shift 0, log scale 0 in every layer: p(z) = N(0, I)
    x = (np.random.default_rng(0).random((4, 28, 28, 1)) > 0.6).astype(np.float32)
    posterior = model.encoder(x)
    z = posterior.sample(50_000, seed=(1, 2))
    monte_carlo = model.kl_divergence(posterior, z).numpy()
    standard = tfd.Independent(tfd.Normal(tf.zeros((1, 3)), tf.ones((1, 3))), 2)
    analytic = tfd.kl_divergence(posterior, standard).numpy()
    per_sample = (posterior.log_prob(z) - model.latent_prior(1).log_prob(z)).numpy()
    error = 4 * per_sample.std(axis=0) / np.sqrt(len(per_sample))
    assert np.all(np.abs(monte_carlo - analytic) <= error)
    # Zero networks leave the coordinate reversals between the layers: N(0, I), reordered.
    u = np.random.default_rng(3).standard_normal((10, 3))
    reversals = len(model.prior_networks) - 1
    np.testing.assert_allclose(model.prior_codes(10, seed=3),
                               u[:, ::-1] if reversals % 2 else u, rtol=1e-6)


@pytest.mark.slow
def test_the_prior_trains_with_the_model_and_travels_in_the_file(tmp_path):
    model = tiny()
    x = (np.random.default_rng(0).random((32, 28, 28, 1)) > 0.6).astype(np.float32)
    before = model.prior_weights()
    fit_model(model, x, epochs=1, batch_size=16, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.prior_weights()))
    path = save_model(model, tmp_path / "fp.keras")
    for channels in (1, 3):
        loaded = load_model(path, channels=channels)
        for a, b in zip(model.prior_weights(), loaded.prior_weights()):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.generate_images(3, seed=1),
                                  model.with_channels(3).generate_images(3, seed=1))
    estimates = posterior_estimates(model, x[:3], num_samples=50, seed=0)
    assert np.all(estimates["kl"] > -1.0) and np.all(estimates["iwae"] >= estimates["elbo"] - 1)


@pytest.fixture
def fresh_cache(mnist_dir, verifier):
    common = importlib.import_module("experiments.runs")
    common._CACHE.clear()
    yield
    common._CACHE.clear()


@pytest.mark.slow
def test_generation_row_with_the_learned_prior(fresh_cache, tmp_path):
    out = tmp_path / "vae_gen"
    path = importlib.import_module("experiments.vae_gen").main(["--quick", "--out", str(out),
                                                    "--learned-prior"])
    metrics = json.loads(path.read_text())
    assert metrics["latent_distribution"].startswith("the flow prior learned with the model")
    assert metrics["model"]["recipe"] == "flowprior_vae_mono_complete"


@pytest.mark.slow
def test_beta_sweep_quick_run(fresh_cache, tmp_path):
    out = tmp_path / "vae_beta"
    path = importlib.import_module("experiments.vae_beta").main(["--quick", "--out", str(out),
                                                     "--betas", "1", "4"])
    metrics = json.loads(path.read_text())
    assert set(metrics["betas"]) == {"1", "4"}
    for row in metrics["betas"].values():
        assert row["test_neg_elbo_nats"] == pytest.approx(row["rate_nats"]
                                                          + row["distortion_nats"])
        assert 0 <= row["active_units"] <= 16
        assert 0 <= row["mono"]["quality"] <= 1 and 0 <= row["colour"]["coverage"] <= 1
        assert 0 <= row["anomaly_roc_auc"] <= 1
    for name in ("beta_curves.png", "beta_traversals.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_loglik_comparison_quick_run(fresh_cache, tmp_path):
    out = tmp_path / "vae_loglik"
    path = importlib.import_module("experiments.vae_loglik").main(["--quick", "--out", str(out)])
    metrics = json.loads(path.read_text())
    assert set(metrics["models"]) == {"vae_mono_complete", "flowprior_vae_mono_complete"}
    for row in metrics["models"].values():
        assert row["log_px_iwae_nats"] >= row["elbo_nats"] - 1.0
        assert row["standard_error_nats"] > 0
    assert len(list((out / "state").glob("*.npz"))) == 2
    # The same command again resumes from the state files: nothing left to estimate.
    again = json.loads(importlib.import_module("experiments.vae_loglik").main(
        ["--quick", "--out", str(out)]).read_text())
    for name, row in again["models"].items():
        assert row["log_px_iwae_nats"] == metrics["models"][name]["log_px_iwae_nats"]
    with pytest.raises(ValueError, match="--models of --dataset mnist: vae_mono_complete"):
        importlib.import_module("experiments.vae_loglik").main(
            ["--quick", "--out", str(tmp_path / "x"), "--models", "vae_fashion_complete"])
