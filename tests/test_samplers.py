"""Latent samplers: one interface, closed forms, the flow's fit, files, and the model codes."""
import numpy as np
import pytest
import tf_keras
from scipy.stats import multivariate_normal

from models import ENCODER_FAMILIES, SAMPLERS, ModelConfig, ModelFileError, build_model
from models import load_sampler, make_sampler, save

SMALL_FLOW = dict(layers=2, hidden_units=32)


def gaussian_codes(n, mean, scale, seed):
    return (mean + scale * np.random.default_rng(seed).standard_normal((n, len(mean)))).astype(
        np.float32)


SMALL = {"flow": SMALL_FLOW, "diffusion": dict(steps=20, hidden_units=16, blocks=1)}


def small(kind, latent_dim=2):
    return make_sampler(kind, latent_dim, **SMALL.get(kind, {}))


FIT_OPTIONS = {"flow": dict(epochs=2, verbose=0), "diffusion": dict(epochs=2, verbose=0)}


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
def test_interface_shapes_files_and_bad_input(kind, tmp_path):
    codes = gaussian_codes(500, np.array([1.0, -2.0]), np.array([0.5, 2.0]), seed=0)
    sampler = small(kind).fit(codes, seed=0, **FIT_OPTIONS.get(kind, {}))
    assert sampler.fitted
    z = sampler.sample(7, seed=1)
    assert z.shape == (7, 2) and z.dtype == np.float32
    np.testing.assert_array_equal(z, sampler.sample(7, seed=1))
    assert not np.array_equal(z, sampler.sample(7, seed=2))
    if kind == "diffusion":  # no exact density: refused, not approximated
        with pytest.raises(NotImplementedError, match="no exact log-density.*'flow'"):
            sampler.log_prob(z)
        log_p = None
    else:
        log_p = sampler.log_prob(z)
        assert log_p.shape == (7,) and np.all(np.isfinite(log_p))
    # The file: tf_keras's own loader and ours give the same sampler.
    path = save(sampler, tmp_path / "s.keras", {"note": "test"})
    for loaded in (tf_keras.models.load_model(path, safe_mode=True), load_sampler(path)):
        assert type(loaded) is type(sampler) and loaded.metadata == {"note": "test"}
        np.testing.assert_array_equal(loaded.sample(7, seed=1), z)
        if log_p is not None:
            np.testing.assert_allclose(loaded.log_prob(z), log_p, rtol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        sampler.log_prob(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        sampler.log_prob(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="scales must have the shape"):
        small(kind).fit(codes, np.ones((4, 2)))
    with pytest.raises(ValueError, match="positive"):
        make_sampler(kind, 0)


def test_unfitted_samplers_and_unknown_names_are_refused():
    with pytest.raises(ValueError, match="not been fitted"):
        make_sampler("gmm", 2).sample(3)
    assert make_sampler("standard", 2).sample(3).shape == (3, 2)  # nothing to fit
    with pytest.raises(ValueError, match="unknown sampler 'maf'"):
        make_sampler("maf", 2)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_sampler("absent.keras")


def test_closed_forms_of_the_gaussian_samplers():
    mean, covariance = np.array([1.0, -2.0]), np.array([[1.0, 0.6], [0.6, 2.0]])
    codes = np.random.default_rng(0).multivariate_normal(mean, covariance, 20_000)
    z = np.random.default_rng(1).normal(size=(10, 2))
    standard = make_sampler("standard", 2)
    np.testing.assert_allclose(standard.log_prob(z),
                               multivariate_normal(np.zeros(2)).logpdf(z), rtol=1e-6)
    fitted = make_sampler("fitted", 2).fit(codes)
    reference = multivariate_normal(codes.astype(np.float32).mean(0),
                                    np.cov(codes.astype(np.float32), rowvar=False))
    np.testing.assert_allclose(fitted.log_prob(z), reference.logpdf(z), rtol=1e-5)
    # One mixture component is the fitted Gaussian (EM's covariance has the 1/N estimator).
    one = make_sampler("gmm", 2, components=1).fit(codes)
    np.testing.assert_allclose(one.log_prob(z), fitted.log_prob(z), rtol=1e-3)
    samples = fitted.sample(20_000, seed=0)
    np.testing.assert_allclose(np.cov(samples, rowvar=False), covariance, atol=0.1)


def test_a_mixture_finds_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[-6.0, 0.0], [6.0, 0.0]])
    codes = centres[rng.integers(0, 2, 4000)] + 0.3 * rng.normal(size=(4000, 2))
    held_out = centres[rng.integers(0, 2, 1000)] + 0.3 * rng.normal(size=(1000, 2))
    gmm = make_sampler("gmm", 2, components=2).fit(codes, validation=(held_out, None))
    samples = gmm.sample(2000, seed=0)
    assert np.mean(np.abs(np.abs(samples[:, 0]) - 6.0) < 1.5) > 0.95  # none in the gap
    assert gmm.log_prob(np.array([[0.0, 0.0]]))[0] < gmm.log_prob(centres).min() - 20
    # Its history: EM converged; the NLL of a 0.3-wide Gaussian in 2-d plus log 2 for the
    # choice of cluster, on the codes and held-out ones alike.
    nll = np.log(2 * np.pi * 0.3 ** 2) + 1 + np.log(2)
    assert gmm.history["converged"] and gmm.history["iterations"] >= 1
    np.testing.assert_allclose([gmm.history["nll"], gmm.history["val_nll"]], nll, atol=0.1)
    # Kept in float32, each covariance as its packed Cholesky factor: the parameter count.
    assert all(v.dtype == "float32" for v in (gmm.means, gmm.mixture_weights,
                                              gmm.packed_cholesky))
    assert sum(int(np.prod(v.shape)) for v in (gmm.means, gmm.mixture_weights,
                                               gmm.packed_cholesky)) == \
        SAMPLERS["gmm"].parameter_count(2, components=2)
    # A colder mixture draws nearer its means: the spread scales with the temperature.
    spread = np.std(np.abs(samples[:, 0]) - 6.0)
    gmm.temperature = 0.5
    np.testing.assert_allclose(np.std(np.abs(gmm.sample(2000, seed=0)[:, 0]) - 6.0),
                               0.5 * spread, rtol=0.1)
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        make_sampler("gmm", 2, temperature=-1)


@pytest.fixture(scope="module")
def fitted_flow():
    """A small flow fitted to N(mean, diag(scale^2)) codes, with held-out codes."""
    mean, scale = np.array([3.0, -1.0]), np.array([0.5, 2.0])
    val = gaussian_codes(2000, mean, scale, seed=1)
    flow = small("flow").fit(gaussian_codes(4000, mean, scale, seed=0), validation=(val, None),
                             epochs=30, verbose=0)
    return flow, mean, scale, val


@pytest.mark.slow  # fits or trains for seconds
def test_flow_reaches_the_entropy_of_a_gaussian(fitted_flow):
    """The NLL of held-out Gaussian codes approaches the closed-form entropy."""
    flow, mean, scale, val = fitted_flow
    entropy = 0.5 * len(mean) * np.log(2 * np.pi * np.e) + np.sum(np.log(scale))
    nll = -flow.log_prob(val).mean()
    assert nll == pytest.approx(flow.history["val_loss"][-1], abs=1e-4)
    assert abs(nll - entropy) < 0.1, (nll, entropy)
    assert flow.history["val_standard_normal"][-1] > entropy + 3  # N(0, I) fits badly
    samples = flow.sample(4000, seed=0)
    np.testing.assert_allclose(samples.mean(axis=0), mean, atol=0.15)
    np.testing.assert_allclose(samples.std(axis=0), scale, rtol=0.1)


@pytest.mark.slow  # fits or trains for seconds
def test_posterior_noise_widens_the_flow():
    """With scales, every epoch draws z ~ N(mean, scale^2): the fit covers the spread."""
    means = np.zeros((4000, 2), np.float32)
    flow = small("flow").fit(means, np.full_like(means, 2.0), epochs=20, learning_rate=1e-2,
                             verbose=0)
    np.testing.assert_allclose(flow.sample(4000, seed=0).std(axis=0), 2.0, rtol=0.15)


@pytest.mark.slow  # fits or trains for seconds
def test_flow_standardises_codes_far_from_the_origin():
    """AE codes reach tens: the flow standardises them and its NLL stays finite."""
    codes = gaussian_codes(3000, np.array([40.0, -25.0, 60.0]), np.array([15.0, 5.0, 30.0]), 0)
    flow = small("flow", 3).fit(codes, epochs=3, verbose=0)
    assert np.all(np.isfinite(flow.history["loss"]))
    np.testing.assert_allclose(flow.code_mean.numpy(), codes.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(flow.sample(3000, seed=0).mean(axis=0), codes.mean(axis=0),
                               atol=3.0)


@pytest.mark.slow  # fits or trains for seconds
def test_flow_initialisation_is_seeded():
    def first_kernel(seed):
        return make_sampler("flow", 2, init_seed=seed, **SMALL_FLOW).networks[0].get_weights()[0]
    np.testing.assert_array_equal(first_kernel(5), first_kernel(5))
    assert not np.array_equal(first_kernel(5), first_kernel(6))


@pytest.mark.parametrize("kind", sorted(ENCODER_FAMILIES))
def test_model_code_distribution(kind):
    model = build_model(ModelConfig(kind=kind, latent_dim=3, filters=(4, 8)))
    x = (np.random.default_rng(0).random((6, 28, 28, 1)) > 0.5).astype(np.float32)
    y = np.arange(6) if model.conditional else None
    mean, scale = model.mono_code_distribution(x, digits=y)
    np.testing.assert_allclose(mean, model.encode(x, labels=y)[:, 0], rtol=1e-5, atol=1e-6)
    if model.prior is None:
        assert scale is None
    else:
        posterior = model.encoder(model.model_inputs(x, y))
        np.testing.assert_allclose(scale, posterior.stddev().numpy()[:, 0], rtol=1e-5)


def test_models_generate_from_any_sampler():
    model = build_model(ModelConfig(kind="ae", latent_dim=3, filters=(4, 8), channels=3))
    codes = model.encode(np.random.default_rng(0).random((50, 28, 28, 3)).astype(np.float32))
    gmm = make_sampler("gmm", 3, components=2).fit(codes.reshape(-1, 3))
    assert model.generate_images(4, sampler=gmm, seed=0).shape == (4, 28, 28, 3)
    z = model.sample_latents(4, gmm, seed=0)  # channel latents are consecutive draws
    np.testing.assert_array_equal(z.reshape(-1, 3), gmm.sample(12, seed=0))
    with pytest.raises(ValueError, match="3 dimensions"):
        model.sample_latents(2, make_sampler("standard", 5))


def test_the_fitted_gaussian_refuses_too_few_codes_and_regularises_a_singular_covariance():
    """Fewer codes than dimensions used to give NaN log-densities or a late SVD failure."""
    sampler = make_sampler("fitted", latent_dim=4)
    for count in (1, 4):
        with pytest.raises(ValueError, match="needs at least 5 codes, got"):
            sampler.fit(np.ones((count, 4), np.float32))
    assert not sampler.fitted
    codes = gaussian_codes(200, np.zeros(4), np.ones(4), seed=0)
    codes[:, 2] = 1.5  # a dead latent dimension: a singular covariance
    with pytest.warns(UserWarning, match="covariance is singular"):
        sampler.fit(codes)
    assert sampler.metadata["covariance_ridge"] > 0
    assert np.all(np.isfinite(sampler.log_prob(codes[:10])))
    assert np.all(np.isfinite(sampler.sample(10)))


@pytest.mark.parametrize("kind, settings, needed", [
    ("fitted", {}, 5), ("gmm", {"components": 3}, 15),
    ("flow", {"layers": 1, "hidden_units": 8}, 5)])
def test_samplers_refuse_too_few_codes_for_what_they_fit(kind, settings, needed):
    """A mixture of 10 full-covariance Gaussians fitted to 15 codes of 8 dimensions, or a flow
    to 3, used to return log-densities that looked like any other."""
    sampler = make_sampler(kind, 4, **settings)
    codes = np.random.default_rng(0).normal(size=(needed - 1, 4))
    with pytest.raises(ValueError, match=f"needs at least {needed} codes, got {needed - 1} "
                                         r"\(of 4 dimensions\).*'standard' sampler"):
        sampler.fit(codes)
    assert not sampler.fitted


@pytest.mark.parametrize("kind", ["fitted", "gmm", "flow", "diffusion"])
def test_samplers_refuse_codes_that_are_all_one_point(kind):
    """The flow fitted to identical codes gave log p = -inf; the Gaussian a ridge of 1e-18."""
    sampler = make_sampler(kind, 2, **({"components": 2} if kind == "gmm" else SMALL.get(kind, {})))
    with pytest.raises(ValueError, match="all 40 codes are the same point"):
        sampler.fit(np.ones((40, 2)))
    with pytest.raises(ValueError, match="same point"):
        sampler.fit(np.ones((40, 2)), scales=np.zeros((40, 2)))


def test_flow_fit_options_and_the_sampler_argument_are_checked():
    flow = make_sampler("flow", 2, layers=1, hidden_units=8)
    codes = np.random.default_rng(0).normal(size=(20, 2))
    for options, message in (({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"),
                             ({"learning_rate": float("nan")}, "learning_rate")):
        with pytest.raises(ValueError, match=message):
            flow.fit(codes, verbose=0, **options)
    assert not flow.fitted
    model = build_model(ModelConfig(latent_dim=2, filters=(4, 8), hidden_units=8))
    with pytest.raises(TypeError, match="sampler must be a models.LatentSampler"):
        model.generate_images(2, sampler="flow")


def test_the_diffusion_sampler_follows_a_curved_cloud():
    """Codes on a ring of radius 3 around (5, 5): the diffusion model's samples lie on it, where
    a Gaussian fitted to them fills the middle; colder noise (temperature) narrows them."""
    angle = np.random.default_rng(0).uniform(0, 2 * np.pi, 4000)
    ring = np.stack([np.cos(angle), np.sin(angle)], axis=1) * 3 + 5
    codes = gaussian_codes(4000, np.zeros(2), np.full(2, 0.1), seed=1) + ring.astype(np.float32)

    def distance_to_ring(sampler):
        return np.abs(np.linalg.norm(sampler.sample(2000, seed=1) - 5, axis=1) - 3)

    diffusion = make_sampler("diffusion", 2, steps=100, hidden_units=64, blocks=2)
    diffusion.fit(codes, seed=0, epochs=60, batch_size=128, verbose=0)
    assert len(diffusion.history["loss"]) == 60 and diffusion.metadata == {}
    assert np.median(distance_to_ring(diffusion)) < 0.2
    assert np.median(distance_to_ring(make_sampler("fitted", 2).fit(codes))) > 0.8
    spread = distance_to_ring(diffusion).std()
    diffusion.temperature = 0.5
    assert distance_to_ring(diffusion).std() < spread
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        make_sampler("diffusion", 2, temperature=0)
    with pytest.raises(ValueError, match="steps = 20,000 is above the limit"):
        make_sampler("diffusion", 2, steps=20_000)
