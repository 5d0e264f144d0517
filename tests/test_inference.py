"""Per-image posterior fits, masked ELBOs, completion and IWAE under a given q
(models/inference.py), and a --quick run of experiments/vae_inference.py. Tiny untrained
models: seconds."""
import importlib
import json

import numpy as np
import pytest
import tf_keras

import models
from models import inference
from models.likelihood import posterior_estimates
from stacked_mnist import fold_channels

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_vae(channels=1, head="bernoulli", latent_dim=3, seed=0):
    return models.build_model(models.ModelConfig(kind="vae", latent_dim=latent_dim,
                                                 filters=(4, 8), hidden_units=16,
                                                 channels=channels, head=head), seed=seed)


@pytest.fixture(scope="module")
def vae():
    return tiny_vae()


def digits(n=6, channels=1, seed=0):
    """Binary images with some structure (a blob per image), not pure noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:28, :28]
    x = np.zeros((n, 28, 28, channels), np.float32)
    for i in range(n):
        for c in range(channels):
            r, k = rng.integers(6, 22, size=2)
            x[i, ..., c] = (np.hypot(rows - r, cols - k) < rng.integers(4, 9)).astype(np.float32)
    return x


# ---------------------------------------------------------------------------------------------
@pytest.mark.slow  # fits or trains for seconds
def test_the_optimisation_raises_the_elbo(vae):
    x = digits(8)
    fit = inference.fit_posteriors(vae, x, steps=40, init="random", eval_samples=64)
    assert fit.mean.shape == fit.scale.shape == (8, 1, 3) and np.all(fit.scale > 0)
    assert fit.elbo.shape == fit.initial_elbo.shape == (8,) and fit.trace.shape == (41,)
    assert np.all(fit.elbo > fit.initial_elbo)
    assert fit.trace[-1] > fit.trace[0] + 1.0
    # The reported ELBO is the one proposal_estimates gives for the fitted q.
    again = inference.masked_elbo(vae, x, fit.mean, fit.scale, num_samples=2000)
    np.testing.assert_allclose(again, fit.elbo, atol=0.5)


@pytest.mark.slow  # fits or trains for seconds
def test_encoder_init_starts_at_the_encoders_elbo_and_refinement_keeps_the_better(vae):
    x = digits(6)
    mean, scale = vae.mono_code_distribution(x)
    start = inference.fit_posteriors(vae, x, steps=0, init="encoder", eval_samples=500)
    np.testing.assert_array_equal(start.mean[:, 0], mean)
    np.testing.assert_allclose(start.scale[:, 0], scale, rtol=1e-6)
    np.testing.assert_allclose(start.elbo, start.initial_elbo)
    # The encoder's ELBO as models.likelihood estimates it (its own q(z|x), its own noise).
    reference = posterior_estimates(vae, x, num_samples=4000)
    np.testing.assert_allclose(start.initial_elbo, reference["elbo"], atol=0.3)
    estimates = inference.proposal_estimates(vae, x, start.mean, start.scale, num_samples=10)
    np.testing.assert_allclose(estimates["kl"], reference["kl"], rtol=1e-5)  # analytic both
    refined = inference.fit_posteriors(vae, x, steps=20, init="encoder", eval_samples=64,
                                       keep_better=True)
    assert np.all(refined.elbo >= refined.initial_elbo)
    back = refined.reverted[:, 0]
    np.testing.assert_array_equal(refined.mean[back], start.mean[back])
    with pytest.raises(ValueError, match="eval_samples"):
        inference.fit_posteriors(vae, x, steps=1, init="encoder", eval_samples=0,
                                 keep_better=True)


def test_the_masked_elbo_ignores_missing_pixels(vae):
    x = digits(5)
    mask = inference.make_mask("left_half", len(x))
    other = np.where(mask > 0, x, 1.0 - x)  # every missing pixel changed
    mean = np.random.default_rng(1).standard_normal((5, 1, 3)).astype(np.float32)
    scale = np.full((5, 1, 3), 0.5, np.float32)
    for a, b in ((x, other), (other, x)):
        np.testing.assert_array_equal(
            inference.proposal_estimates(vae, a, mean, scale, mask, num_samples=20)["iwae"],
            inference.proposal_estimates(vae, b, mean, scale, mask, num_samples=20)["iwae"])
    np.testing.assert_array_equal(inference.masked_elbo(vae, x, mean, scale, mask),
                                  inference.masked_elbo(vae, other, mean, scale, mask))
    assert not np.allclose(inference.masked_elbo(vae, x, mean, scale),
                           inference.masked_elbo(vae, other, mean, scale))
    # The whole fit sees the observed pixels only.
    fits = [inference.fit_posteriors(vae, a, mask, steps=5, init="random", eval_samples=8)
            for a in (x, other)]
    np.testing.assert_array_equal(fits[0].mean, fits[1].mean)
    np.testing.assert_array_equal(fits[0].elbo, fits[1].elbo)
    # No pixel observed: the ELBO is -KL(q || p(z)).
    estimates = inference.proposal_estimates(vae, x, mean, scale, np.zeros((28, 28)), 10)
    np.testing.assert_allclose(estimates["elbo"], -estimates["kl"], rtol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_completion_leaves_observed_pixels_untouched(channels):
    model = tiny_vae(channels)
    x = digits(4, channels)
    for name in inference.MASKS:
        mask = inference.make_mask(name, len(x), channels=channels)
        filled, fit = inference.complete(model, x, mask, steps=3, search_samples=300)
        observed = mask > 0
        assert filled.shape == x.shape and filled.dtype == np.float32
        np.testing.assert_array_equal(filled[observed], x[observed])  # bit for bit
        decoded = model.decode_images(fit.mean)
        np.testing.assert_array_equal(filled[~observed], decoded[~observed])
    baseline, _ = inference.complete(model, x, mask, steps=0, init="encoder")
    codes, _ = model.mono_code_distribution(fold_channels(x * mask)[0])
    expected = model.decode_images(codes.reshape(len(x), channels, -1))
    np.testing.assert_array_equal(baseline, np.where(mask > 0, x, expected))


@pytest.mark.slow  # fits or trains for seconds
def test_colour_completion_is_the_mono_completion_of_each_channel():
    mono = tiny_vae(1)
    colour = tiny_vae(3)
    colour.set_network_weights(mono.network_weights())
    x = digits(3, channels=3)
    mask = inference.make_mask("random_50", len(x), channels=3, seed=4)
    filled, fit = inference.complete(colour, x, mask, steps=4, search_samples=200)
    mono_filled, mono_fit = inference.complete(mono, fold_channels(x)[0],
                                               fold_channels(mask)[0], steps=4,
                                               search_samples=200)
    np.testing.assert_allclose(fold_channels(filled)[0], mono_filled, atol=1e-5)
    np.testing.assert_allclose(fit.mean.reshape(-1, 3), mono_fit.mean[:, 0], atol=1e-5)


def test_a_fit_does_not_depend_on_the_batch_size(vae):
    x = digits(7)
    whole = inference.fit_posteriors(vae, x, steps=6, eval_samples=4)
    pieces = inference.fit_posteriors(vae, x, steps=6, eval_samples=4, batch_size=3)
    np.testing.assert_allclose(pieces.mean, whole.mean, atol=1e-5)
    np.testing.assert_allclose(pieces.trace, whole.trace, rtol=1e-5)


def test_iwae_under_a_wide_proposal_matches_the_exact_likelihood():
    """latent_dim 1: log p(x_obs) = log int p(x_obs | z) N(z; 0, 1) dz on a grid."""
    model = tiny_vae(latent_dim=1)
    x = model.decode_images(model.sample_latents(3, seed=1), how="sample", seed=2)
    mask = inference.make_mask("top_half", 3)
    z = np.linspace(-8, 8, 4001, dtype=np.float32)[:, None]
    dist = model.head.distribution(model.mono_pixel_params(z)).distribution
    exact = []
    for image, observed in zip(x, mask):
        log_px = np.sum(dist.log_prob(image).numpy() * observed, axis=(1, 2, 3))
        log_joint = log_px.astype(np.float64) - 0.5 * z[:, 0] ** 2 - 0.5 * np.log(2 * np.pi)
        top = log_joint.max()
        exact.append(top + np.log(np.sum(np.exp(log_joint - top)) * (16 / 4000)))
    mean, scale = np.zeros((3, 1, 1), np.float32), np.full((3, 1, 1), 1.5, np.float32)
    estimates = inference.proposal_estimates(model, x, mean, scale, mask, num_samples=4000)
    np.testing.assert_allclose(estimates["iwae"], exact, atol=0.02)
    assert np.all(estimates["elbo"] <= np.array(exact) + 1e-3)


@pytest.mark.parametrize("head", models.HEADS)
def test_prior_search_finds_the_best_prior_draw(head):
    """The matrix form of the masked log-joint against log_prob of every draw."""
    model = tiny_vae(head=head, latent_dim=2)
    x = digits(4)
    x = np.clip(x * 0.8 + 0.1 * np.random.default_rng(0).random(x.shape), 0, 1).astype(
        np.float32)
    mask = inference.make_mask("random_50", 4, seed=3)
    found = inference.prior_search(model, x, mask, num_samples=300, seed=5)
    z, _, _, _ = inference._prior_table(model, 300, 5)
    dist = model.head.distribution(model.mono_pixel_params(z)).distribution
    targets = model.head.targets(x).numpy()
    for i in range(len(x)):
        log_joint = (np.sum(dist.log_prob(targets[i]).numpy() * mask[i], axis=(1, 2, 3))
                     - 0.5 * np.sum(z ** 2, axis=1))
        np.testing.assert_array_equal(found[i, 0], z[np.argmax(log_joint)])


def test_masks():
    counts = {"left_half": 392, "top_half": 392, "random_50": 392, "centre_square": 640}
    for name, observed in counts.items():
        mask = inference.make_mask(name, 3, channels=3, seed=1)
        assert mask.shape == (3, 28, 28, 3) and set(np.unique(mask)) == {0.0, 1.0}
        assert np.all(mask.sum(axis=(1, 2)) == observed)
        assert np.all(mask == mask[..., :1])  # the same on every channel
    assert not inference.make_mask("left_half", 1)[0, :, 14:].any()
    assert not inference.make_mask("centre_square", 1)[0, 8:20, 8:20].any()
    random = inference.make_mask("random_50", 2, seed=1)
    assert not np.array_equal(random[0], random[1])
    np.testing.assert_array_equal(random, inference.make_mask("random_50", 2, seed=1))
    assert not np.array_equal(random, inference.make_mask("random_50", 2, seed=2))


def test_steps_to_converge():
    trace = np.concatenate([np.linspace(-100, -50, 30), np.full(40, -50.0)])
    assert inference.steps_to_converge(trace, tolerance=0.1, window=10) == 48
    assert inference.steps_to_converge(np.linspace(-100, 0, 100), 0.1, 10) is None
    assert inference.steps_to_converge([1.0, 2.0], 0.1, 10) is None


def test_bad_input_is_refused(vae):
    x = digits(2)
    cases = [
        (lambda: inference.fit_posteriors(vae, x * 255), "values must lie in \\[0, 1\\]"),
        (lambda: inference.fit_posteriors(vae, x[..., 0][..., None].repeat(3, -1)),
         "shape \\(N, 28, 28\\) or \\(N, 28, 28, 1\\)"),
        (lambda: inference.fit_posteriors(vae, x, init="kmeans"), "init must be one of"),
        (lambda: inference.fit_posteriors(vae, x, steps=-1), "steps must be an integer"),
        (lambda: inference.fit_posteriors(vae, x, steps=2.5), "steps must be an integer"),
        (lambda: inference.fit_posteriors(vae, x, samples=0), "samples must be"),
        (lambda: inference.fit_posteriors(vae, x, seed=-1), "seed must be"),
        (lambda: inference.fit_posteriors(vae, x, learning_rate=0), "learning_rate must be"),
        (lambda: inference.fit_posteriors(vae, x, learning_rate=float("nan")),
         "learning_rate must be"),
        (lambda: inference.fit_posteriors(vae, x, mask=np.ones((27, 28))), "mask must have"),
        (lambda: inference.fit_posteriors(vae, x, mask=np.ones((3, 28, 28))), "mask must have"),
        (lambda: inference.fit_posteriors(vae, x, mask=np.full((28, 28), 0.5)),
         "0 \\(missing\\) or 1"),
        (lambda: inference.fit_posteriors(vae, x, mask=np.full((28, 28), "a")),
         "booleans or 0/1"),
        (lambda: inference.complete(vae, x, np.ones((28, 28)), how="median"), "image kind"),
        (lambda: inference.proposal_estimates(vae, x, np.zeros((2, 1, 3)),
                                              np.zeros((2, 1, 3))), "scale must be positive"),
        (lambda: inference.proposal_estimates(vae, x, np.zeros((3, 1, 3)),
                                              np.ones((3, 1, 3))), "one row per image"),
        (lambda: inference.proposal_estimates(vae, x, np.zeros((2, 1, 4)),
                                              np.ones((2, 1, 4))), "mean must have shape"),
        (lambda: inference.proposal_estimates(vae, x, np.full((2, 1, 3), np.nan),
                                              np.ones((2, 1, 3))), "NaN"),
        (lambda: inference.make_mask("bottom_half", 2), "mask must be one of"),
        (lambda: inference.make_mask("left_half", 0), "count must be"),
        (lambda: inference.fill(x, np.ones((28, 28)), 2.0), "fill values"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    ae = models.build_model(models.ModelConfig(kind="ae", latent_dim=3, filters=(4, 8),
                                               hidden_units=16), seed=0)
    with pytest.raises(ValueError, match="latent prior"):
        inference.fit_posteriors(ae, x)
    with pytest.raises(ValueError, match="GenerativeModel"):
        inference.complete(tf_keras.Sequential(), x, np.ones((28, 28)))


def test_masks_of_every_accepted_shape_agree(vae):
    x = digits(2)
    full = inference.make_mask("top_half", 2)
    for mask in (full[0, ..., 0], full[0], full[..., 0], full, full.astype(bool)):
        np.testing.assert_array_equal(inference.check_mask(mask, x.shape), full)


# ---------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def fresh_run_cache():
    """Each script run starts as in a new process (common caches data and models per run)."""
    common = importlib.import_module("experiments.runs")
    common._CACHE.clear()
    yield
    common._CACHE.clear()


@pytest.mark.slow
def test_quick_run_of_the_script(tmp_path, mnist_dir, verifier):
    out = tmp_path / "vae_inference"
    path = importlib.import_module("experiments.vae_inference").main(["--quick", "--out", str(out)])
    assert path == out / "metrics.json"
    metrics = json.loads(path.read_text())
    assert metrics["row"] == "vae_inference" and metrics["quick"] is True
    assert metrics["command"].startswith("python experiments/vae_inference.py --quick")
    section = metrics["inference"]
    assert set(section["q"]) == {"encoder", "random", "search", "refined"}
    assert 0 <= section["refined_at_least_encoder_share"] <= 1
    assert 0 <= section["encoder_free_reconstruction_accuracy"] <= 1
    assert section["model"]["quick"] is True  # --quick never touches saved_models/
    for name in ("random", "search", "refined"):
        assert section["q"][name]["steps"] >= 1 and section["q"][name]["images_per_second"] > 0
    completion = metrics["completion"]
    for kind, channels, tolerance in (("mono", 1, 0.8), ("colour", 3, 0.5)):
        result = completion[kind]
        assert result["tolerance"] == tolerance
        assert set(result["accuracy"]) == set(inference.MASKS)
        for accuracies in result["accuracy"].values():
            assert set(accuracies) == {"fitted", "zeros", "train_mean", "encoder"}
            assert all(0 <= a <= 1 for a in accuracies.values())
        stored = np.load(out / ("color_completions.npz" if channels == 3 else
                                "completions.npz"))
        per_mask = result["images_per_mask"]
        assert stored["images"].shape == (4 * per_mask, 28, 28, channels)
        assert stored["labels"].shape == stored["masks"].shape == (4 * per_mask,)
        assert set(stored["masks"]) == set(inference.MASKS)
        assert stored["labels"].max() < 10 ** channels
        assert 0 <= stored["images"].min() and stored["images"].max() <= 1
    assert completion["colour"]["images_per_mask"] * 3 == completion["mono"]["images_per_mask"]
    seconds = metrics["section_seconds"]
    assert 0 < seconds["total"] <= metrics["wall_seconds"] + 0.1
    for name in ("elbo_vs_step.png", "completions.png", "color_completions.png",
                 "completion_accuracy.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC


# ---------------------------------------------------------------------------------------------
# Every family: the learned prior (no closed-form KL) and the CVAE (refused, naming what to use)
def test_the_learned_prior_vae_fits_completes_and_estimates_with_a_monte_carlo_kl():
    """TFP has no KL from a Gaussian to a flow: it used to end in NotImplementedError."""
    model = models.build_model(models.ModelConfig(kind="flowprior_vae", latent_dim=3,
                                                  filters=(4, 8), hidden_units=16))
    x = digits(4)
    fit = inference.fit_posteriors(model, x, steps=3, eval_samples=8)
    assert np.all(np.isfinite(fit.trace)) and np.all(np.isfinite(fit.elbo))
    filled, _ = inference.complete(model, x, inference.make_mask("left_half", 4), steps=2,
                                   search_samples=64)
    assert filled.shape == x.shape and np.all(np.isfinite(filled))
    # The Monte Carlo KL under the encoder's q is the one the model's own estimator reports.
    mean, scale = inference.encoder_q(model, x)
    mine = inference.proposal_estimates(model, x, mean, scale, num_samples=2000,
                                        antithetic=False)
    reference = posterior_estimates(model, x, num_samples=2000)
    assert np.all(np.isfinite(mine["kl"]))
    np.testing.assert_allclose(mine["kl"], reference["kl"], atol=0.15)
    np.testing.assert_allclose(mine["elbo"], reference["elbo"], atol=1.0)


def test_the_vae_keeps_its_analytic_kl(vae):
    x = digits(3)
    mean, scale = inference.encoder_q(vae, x)
    estimates = inference.proposal_estimates(vae, x, mean, scale, num_samples=4)
    q = inference._q(mean.reshape(-1, 3), scale.reshape(-1, 3))
    np.testing.assert_allclose(estimates["kl"], q.kl_divergence(vae.latent_prior(1)).numpy(),
                               rtol=1e-5)


def test_inference_and_completion_refuse_the_cvae_in_one_line_naming_what_to_use():
    cvae = models.build_model(models.ModelConfig(kind="cvae", latent_dim=3, filters=(4, 8),
                                                 hidden_units=16))
    x = digits(2)
    mask = inference.make_mask("left_half", 2)
    calls = {
        "fit_posteriors": lambda: inference.fit_posteriors(cvae, x, steps=1),
        "complete": lambda: inference.complete(cvae, x, mask),
        "prior_search": lambda: inference.prior_search(cvae, x, num_samples=10),
        "encoder_q": lambda: inference.encoder_q(cvae, x),
        "proposal_estimates": lambda: inference.proposal_estimates(
            cvae, x, np.zeros((2, 1, 3)), np.ones((2, 1, 3)), num_samples=2),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=f"{name} works with unconditional models") as info:
            call()
        message = str(info.value)
        assert "\n" not in message and "class_log_likelihoods" in message
        assert "vae_mono_complete" in message


def test_every_estimator_takes_labels_for_the_cvae_or_refuses_them_in_one_line():
    """labels= used to be a TypeError (an unexpected keyword) for the inference functions and
    the prior estimator: now each takes it and says what to use for the CVAE instead, and an
    unconditional model refuses labels as everywhere else."""
    from models.likelihood import naive_prior_log_likelihood, prior_log_likelihood

    tiny = dict(latent_dim=3, filters=(4, 8), hidden_units=16)
    cvae = models.build_model(models.ModelConfig(kind="cvae", **tiny))
    vae = models.build_model(models.ModelConfig(kind="vae", **tiny))
    x, labels = digits(2), np.array([1, 7])
    q = (np.zeros((2, 1, 3)), np.ones((2, 1, 3)))
    calls = {
        "fit_posteriors": lambda m: inference.fit_posteriors(m, x, steps=1, labels=labels),
        "complete": lambda m: inference.complete(m, x, inference.make_mask("left_half", 2),
                                                 labels=labels),
        "prior_search": lambda m: inference.prior_search(m, x, num_samples=10, labels=labels),
        "encoder_q": lambda m: inference.encoder_q(m, x, labels=labels),
        "proposal_estimates": lambda m: inference.proposal_estimates(m, x, *q, num_samples=2,
                                                                     labels=labels),
        "masked_elbo": lambda m: inference.masked_elbo(m, x, *q, num_samples=2, labels=labels),
        "proposal_iwae": lambda m: inference.proposal_iwae(m, x, *q, num_samples=2,
                                                           labels=labels),
        "prior_log_likelihood": lambda m: prior_log_likelihood(m, x, 10, labels=labels),
        "naive_prior_log_likelihood": lambda m: naive_prior_log_likelihood(m, x, 10,
                                                                           labels=labels),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError) as info:
            call(cvae)
        message = str(info.value)
        assert "\n" not in message and "iwae_log_likelihood" in message, (name, message)
        assert "labels=y" in message, (name, message)
        with pytest.raises(ValueError, match="labels were given to an unconditional 'vae'"):
            call(vae)
