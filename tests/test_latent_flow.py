"""The ex-post latent prior: shapes, a closed-form fit, reproducible samples, its file."""
import numpy as np
import pytest

from models import ModelConfig, build_model
from models.latent_flow import FlowFileError, LatentFlow

SMALL = dict(layers=2, hidden_units=32)


def gaussian_codes(n, mean, scale, seed):
    return (mean + scale * np.random.default_rng(seed).standard_normal((n, len(mean)))).astype(
        np.float32)


@pytest.fixture(scope="module")
def fitted():
    """A small flow fitted to N(mean, diag(scale^2)) codes, with held-out codes."""
    mean, scale = np.array([3.0, -1.0]), np.array([0.5, 2.0])
    flow = LatentFlow(2, **SMALL, seed=0)
    val = gaussian_codes(2000, mean, scale, seed=1)
    flow.fit(gaussian_codes(4000, mean, scale, seed=0), val_mean=val, epochs=30, verbose=0)
    return flow, mean, scale, val


def test_shapes_and_bad_codes():
    flow = LatentFlow(3, **SMALL)
    assert flow.sample(7, seed=0).shape == (7, 3)
    assert flow.log_prob(np.zeros((5, 3))).shape == (5,)
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        flow.log_prob(np.zeros((5, 4)))
    with pytest.raises(ValueError, match="NaN"):
        flow.log_prob(np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="scale must have the shape"):
        flow.fit(np.zeros((4, 3)), np.ones((4, 2)), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="positive"):
        LatentFlow(0)


def test_fit_reaches_the_entropy_of_a_gaussian(fitted):
    """The NLL of held-out Gaussian codes approaches the closed-form entropy."""
    flow, mean, scale, val = fitted
    entropy = 0.5 * len(mean) * np.log(2 * np.pi * np.e) + np.sum(np.log(scale))
    nll = -flow.log_prob(val).mean()
    assert nll == pytest.approx(flow.history["val_loss"][-1], abs=1e-4)
    assert abs(nll - entropy) < 0.1, (nll, entropy)
    assert flow.history["val_standard_normal"][-1] > entropy + 3  # N(0, I) fits badly
    samples = flow.sample(4000, seed=0)
    np.testing.assert_allclose(samples.mean(axis=0), mean, atol=0.15)
    np.testing.assert_allclose(samples.std(axis=0), scale, rtol=0.1)


def test_samples_are_reproducible(fitted):
    flow = fitted[0]
    np.testing.assert_array_equal(flow.sample(50, seed=3), flow.sample(50, seed=3))
    assert not np.array_equal(flow.sample(50, seed=3), flow.sample(50, seed=4))


def test_posterior_noise_widens_the_fit():
    """With a scale, every epoch draws z ~ N(mean, scale^2): the fit covers the spread."""
    means = np.zeros((4000, 2), np.float32)
    flow = LatentFlow(2, **SMALL)
    flow.fit(means, np.full_like(means, 2.0), epochs=20, learning_rate=1e-2, verbose=0)
    np.testing.assert_allclose(flow.sample(4000, seed=0).std(axis=0), 2.0, rtol=0.15)


def test_file_round_trip_and_errors(fitted, tmp_path):
    flow = fitted[0]
    path = flow.save(tmp_path / "f.flow.npz", {"model_sha256": "abc"})
    loaded, metadata = LatentFlow.load(path)
    assert metadata == {"model_sha256": "abc"}
    assert (loaded.latent_dim, loaded.layers, loaded.hidden_units) == (2, 2, 32)
    z = flow.sample(20, seed=1)
    np.testing.assert_array_equal(loaded.log_prob(z), flow.log_prob(z))
    np.testing.assert_array_equal(loaded.sample(20, seed=1), z)
    assert [p.name for p in tmp_path.iterdir()] == ["f.flow.npz"]  # no temporary file left

    with pytest.raises(FlowFileError, match="does not exist"):
        LatentFlow.load(tmp_path / "absent.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(path.read_bytes()[:200])
    with pytest.raises(FlowFileError, match="corrupt"):
        LatentFlow.load(corrupt)
    other = LatentFlow(3, **SMALL).save(tmp_path / "other.npz")
    arrays = dict(np.load(other))
    arrays["settings"] = np.array('{"latent_dim": 2, "layers": 2, "hidden_units": 32}')
    np.savez(tmp_path / "mismatch.npz", **arrays)
    with pytest.raises(FlowFileError, match="do not fit its settings"):
        LatentFlow.load(tmp_path / "mismatch.npz")


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_model_code_distribution(kind):
    model = build_model(ModelConfig(kind=kind, latent_dim=3, filters=(4, 8)))
    x = (np.random.default_rng(0).random((6, 28, 28, 1)) > 0.5).astype(np.float32)
    mean, scale = model.mono_code_distribution(x)
    np.testing.assert_allclose(mean, model.encode(x)[:, 0], rtol=1e-5, atol=1e-6)
    if kind == "ae":
        assert scale is None
    else:
        posterior = model.encoder(x)
        np.testing.assert_allclose(scale, posterior.stddev().numpy()[:, 0], rtol=1e-5)


def test_codes_far_from_the_origin_are_standardised():
    """AE codes reach tens: the flow standardises them and its NLL stays finite."""
    codes = gaussian_codes(3000, np.array([40.0, -25.0, 60.0]), np.array([15.0, 5.0, 30.0]), 0)
    flow = LatentFlow(3, **SMALL)
    history = flow.fit(codes, epochs=3, verbose=0)
    assert np.all(np.isfinite(history["loss"]))
    np.testing.assert_allclose(flow.code_mean.numpy(), codes.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(flow.sample(3000, seed=0).mean(axis=0), codes.mean(axis=0),
                               atol=3.0)


def test_seeded_initialisation():
    def first_weights(seed):
        return LatentFlow(2, **SMALL, seed=seed).weights()[2]  # after mean and std
    np.testing.assert_array_equal(first_weights(5), first_weights(5))
    assert not np.array_equal(first_weights(5), first_weights(6))
