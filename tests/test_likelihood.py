"""Likelihood estimators against exact values, each other and their known orderings; AUCs."""
import numpy as np
import pytest
import tensorflow_probability as tfp
import tf_keras

from models import HEADS, ModelConfig, build_model, likelihood
from evaluation import contains_digit, evaluate_scores, save_curves
from models.likelihood import (elbo, iwae_log_likelihood, naive_prior_log_likelihood,
                               posterior_estimates, prior_log_likelihood, reconstruction_nll)
from stacked_mnist import distinct_channel_images


def tiny_vae(head="bernoulli", channels=1, latent_dim=2, seed=0):
    tf_keras.utils.set_random_seed(seed)
    return build_model(ModelConfig(kind="vae", head=head, channels=channels,
                                   latent_dim=latent_dim, filters=(4, 8)))


def images(n=4, channels=1, binary=True, seed=0):
    x = np.random.default_rng(seed).random((n, 28, 28, channels)).astype(np.float32)
    return (x > 0.5).astype(np.float32) if binary else x


def exact_log_px_1d(model, x, grid_points=4001, limit=8.0):
    """log p(x) = log int p(x|z) N(z; 0, 1) dz on a fine grid (latent_dim = 1, mono)."""
    z = np.linspace(-limit, limit, grid_points, dtype=np.float32)[:, None]
    dist = model.head.distribution(model.mono_pixel_params(z))
    log_prior = -0.5 * z[:, 0].astype(np.float64) ** 2 - 0.5 * np.log(2 * np.pi)
    step = 2 * limit / (grid_points - 1)
    values = []
    for image in model.head.targets(x):
        log_joint = dist.log_prob(image).numpy().astype(np.float64) + log_prior
        top = log_joint.max()
        values.append(top + np.log(np.sum(np.exp(log_joint - top)) * step))
    return np.array(values)


@pytest.mark.slow  # fits or trains for seconds
def test_estimators_match_the_exact_likelihood_of_a_1d_latent_model():
    model = tiny_vae(latent_dim=1)
    # Images the model finds plausible, so the posterior is not absurdly narrow.
    x = model.decode_images(model.sample_latents(3, seed=1), how="sample", seed=2)
    exact = exact_log_px_1d(model, x)
    np.testing.assert_allclose(prior_log_likelihood(model, x, num_samples=20_000), exact,
                               atol=0.01)
    assert np.all(elbo(model, x, num_samples=200) <= exact + 1e-3)
    # Importance sampling converges fast when the proposal is wider than the posterior (an
    # untrained decoder barely depends on z, so the posterior is close to N(0, 1)): make
    # q(z|x) = N(0, 1.5^2) for every x.
    latent_layer = model.mono_encoder.get_layer("latent_params")
    kernel, bias = latent_layer.get_weights()
    latent_layer.set_weights([np.zeros_like(kernel),
                              np.array([0.0, np.log(np.expm1(1.5))], np.float32)])
    np.testing.assert_allclose(iwae_log_likelihood(model, x, num_samples=2000), exact,
                               atol=0.01)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("head", HEADS)
def test_matrix_path_equals_naive_path(head, channels):
    model = tiny_vae(head, channels)
    x = images(3, channels, binary=False)
    fast = prior_log_likelihood(model, x, num_samples=500, sample_chunk=128)
    naive = naive_prior_log_likelihood(model, x, num_samples=500)
    np.testing.assert_allclose(fast, naive, rtol=1e-4)


def test_colour_likelihood_is_the_sum_of_channel_terms():
    colour, mono = tiny_vae(channels=3), tiny_vae(channels=1)
    mono.set_network_weights(colour.network_weights())
    x = images(3, channels=3)
    per_channel = sum(prior_log_likelihood(mono, x[..., c:c + 1], 300) for c in range(3))
    np.testing.assert_allclose(prior_log_likelihood(colour, x, 300), per_channel, rtol=1e-6)
    per_channel_posterior = [posterior_estimates(mono, x[..., c:c + 1], 50, seed=c)
                             for c in range(3)]
    colour_posterior = posterior_estimates(colour, x, 50)
    for name in ("elbo", "iwae"):  # per-channel estimates from different draws: close, not equal
        per_channel_sum = sum(p[name] for p in per_channel_posterior)
        np.testing.assert_allclose(colour_posterior[name], per_channel_sum, atol=5.0)
    per_channel_nll = sum(reconstruction_nll(mono, x[..., c:c + 1]) for c in range(3))
    np.testing.assert_allclose(reconstruction_nll(colour, x), per_channel_nll, rtol=1e-5)


def test_per_channel_terms_sum_to_the_colour_estimate():
    model = tiny_vae(channels=3)
    x = images(4, channels=3)
    for estimate in (lambda **kw: prior_log_likelihood(model, x, 200, **kw),
                     lambda **kw: iwae_log_likelihood(model, x, 20, seed=3, **kw),
                     lambda **kw: elbo(model, x, 20, seed=3, **kw),
                     lambda **kw: reconstruction_nll(model, x, **kw)):
        channels = estimate(per_channel=True)
        assert channels.shape == (4, 3)
        np.testing.assert_allclose(channels.sum(axis=1), estimate(), rtol=1e-6)


def test_identical_channel_images_are_scored_once_and_share_the_estimate():
    x = images(3, channels=3)
    x[1, ..., 2] = x[0, ..., 0]  # one digit reused, as stackedMNIST reuses MNIST test digits
    distinct, inverse, channels = distinct_channel_images(x)
    assert (len(distinct), channels) == (8, 3)
    np.testing.assert_array_equal(distinct[inverse].reshape(3, 3, 28, 28).transpose(0, 2, 3, 1),
                                  x)
    model = tiny_vae(channels=3)
    for estimate in (prior_log_likelihood(model, x, 200, per_channel=True),
                     iwae_log_likelihood(model, x, 20, per_channel=True)):
        assert estimate[1, 2] == estimate[0, 0]
    # Scoring once changes nothing for the deterministic estimate.
    np.testing.assert_allclose(prior_log_likelihood(model, x, 200),
                               naive_prior_log_likelihood(model, x, 200), rtol=1e-4)


@pytest.mark.slow  # fits or trains for seconds
def test_iwae_is_above_the_elbo_and_tightens_with_k():
    model = tiny_vae()
    x = images(6, binary=True)
    bound = np.mean(elbo(model, x, num_samples=500))
    iwae = {k: np.mean(iwae_log_likelihood(model, x, num_samples=k, seed=1)) for k in (1, 10, 200)}
    assert abs(iwae[1] - bound) < 2.0  # K = 1 is a one-sample ELBO
    assert bound <= iwae[10] <= iwae[200]


def test_iwae_blocks_do_not_change_the_estimate():
    model = tiny_vae()
    x = images(3)
    one_block = iwae_log_likelihood(model, x, num_samples=64, max_decodes=10_000)
    many_blocks = iwae_log_likelihood(model, x, num_samples=64, max_decodes=16)
    assert np.all(np.isfinite(many_blocks))
    np.testing.assert_allclose(one_block, many_blocks, atol=3.0)  # different draws, same target


def test_the_decode_batch_does_not_change_the_estimates(monkeypatch):
    """Codes are decoded DECODE_BATCH at a time; each row decodes alike in any batch."""
    model = tiny_vae()
    x = images(5)
    whole = posterior_estimates(model, x, num_samples=30)
    monkeypatch.setattr(likelihood, "DECODE_BATCH", 7)  # 150 codes: 21 full batches and 3
    for key, values in posterior_estimates(model, x, num_samples=30).items():
        np.testing.assert_array_equal(values, whole[key], err_msg=key)


def test_estimators_refuse_an_autoencoder():
    ae = build_model(ModelConfig(kind="ae", latent_dim=2, filters=(4, 8)))
    for estimator in (prior_log_likelihood, iwae_log_likelihood, elbo, posterior_estimates):
        with pytest.raises(ValueError, match="needs a model with a latent prior"):
            estimator(ae, images(1))
    assert reconstruction_nll(ae, images(2)).shape == (2,)


# ----------------------------------------------------------------------------------------------
# Anomaly evaluation
# ----------------------------------------------------------------------------------------------
def test_auc_of_perfect_reversed_and_random_scores(tmp_path):
    labels = np.array([0, 0, 1, 0, 1, 1, 0, 0], bool)
    perfect = labels.astype(float) + np.linspace(0, 0.1, 8)
    assert evaluate_scores(perfect, labels)["roc_auc"] == 1.0
    assert evaluate_scores(perfect, labels)["pr_auc"] == 1.0
    assert evaluate_scores(-perfect, labels)["roc_auc"] == 0.0
    youden = evaluate_scores(perfect, labels)
    assert youden["youden_tpr"] == 1.0 and youden["youden_fpr"] == 0.0
    rng = np.random.default_rng(0)
    many = rng.random(4000) < 0.2
    assert abs(evaluate_scores(rng.random(4000), many)["roc_auc"] - 0.5) < 0.05
    path = save_curves({"perfect": perfect, "reversed": -perfect}, labels, tmp_path / "c.png", "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_youden_threshold_is_a_real_score_even_for_a_useless_score():
    labels = np.array([0, 1, 0, 1], bool)
    result = evaluate_scores(-np.array([0.0, 1.0, 0.0, 1.0]), labels)  # reversed
    assert result["roc_auc"] == 0.0 and np.isfinite(result["youden_threshold"])


def test_running_logsumexp_survives_rows_that_start_at_minus_infinity():
    from models.likelihood import _LogSumExp

    running = _LogSumExp(2)
    running.add(np.array([[-np.inf, -np.inf], [0.0, 1.0]], np.float32))
    running.add(np.array([[0.0, -np.inf], [2.0, -np.inf]], np.float32))
    np.testing.assert_allclose(running.result(), [0.0, np.log(np.exp([0, 1, 2]).sum())])


def test_evaluate_scores_rejects_bad_input():
    with pytest.raises(ValueError, match="both"):
        evaluate_scores([1.0, 2.0], [True, True])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_scores([1.0, np.nan], [True, False])
    with pytest.raises(ValueError, match="equal"):
        evaluate_scores([1.0, 2.0, 3.0], [True, False])


def test_contains_digit():
    np.testing.assert_array_equal(contains_digit([8, 3, 0], 8, 1), [True, False, False])
    np.testing.assert_array_equal(contains_digit([8, 80, 800, 123, 888], 8, 3),
                                  [True, True, True, False, True])


def test_posterior_estimates_report_the_analytic_kl():
    model = tiny_vae(channels=3)
    x = images(4, channels=3)
    estimates = posterior_estimates(model, x, 5)
    posterior = model.encoder(x)
    expected = tfp.distributions.kl_divergence(posterior, model.prior).numpy()
    np.testing.assert_allclose(estimates["kl"], expected, rtol=1e-5)


def test_the_posterior_estimators_take_labels_for_the_cvae_and_the_prior_ones_name_them():
    from models.conditional import class_log_likelihoods
    from models.likelihood import (elbo, naive_prior_log_likelihood, prior_log_likelihood,
                                   reconstruction_nll)

    cvae = build_model(ModelConfig(kind="cvae", latent_dim=2, filters=(4, 8), hidden_units=16))
    x, labels = images(3), np.array([1, 7, 7])
    with pytest.raises(ValueError, match=r"pass labels=y.*class_log_likelihoods"):
        iwae_log_likelihood(cvae, x, num_samples=4)
    log_px_y = iwae_log_likelihood(cvae, x, num_samples=400, labels=labels)
    # The same quantity as the generative classifier's log p(x | y) under N(0, I).
    by_class = class_log_likelihoods(cvae, x, num_samples=400, prior="standard")
    np.testing.assert_allclose(log_px_y, by_class[np.arange(3), 0, labels], atol=1.0)
    assert np.all(elbo(cvae, x, num_samples=4, labels=labels) <= log_px_y + 1.0)
    assert reconstruction_nll(cvae, x, labels=labels).shape == (3,)
    for estimator in (prior_log_likelihood, naive_prior_log_likelihood):
        with pytest.raises(ValueError, match=r"unconditional models; .*"
                                             r"iwae_log_likelihood\(model, x, labels=y\)"):
            estimator(cvae, x, num_samples=10)
    with pytest.raises(ValueError, match="unconditional 'vae' model"):
        iwae_log_likelihood(tiny_vae(), x, num_samples=4, labels=labels)


def test_a_resumed_estimate_equals_an_uninterrupted_one(tmp_path):
    """Stopped after its first chunk (the state file holds it), the run resumes there and
    ends with the numbers of a run that was never stopped; another identity starts over."""
    from models.likelihood import resumable_posterior_estimates

    model = build_model(ModelConfig(kind="vae", latent_dim=2, filters=(4, 8), hidden_units=8),
                        seed=0)
    x = (np.random.default_rng(0).random((7, 28, 28, 1)) > 0.5).astype(np.float32)
    whole = resumable_posterior_estimates(model, x, 6, 3, tmp_path / "whole.npz", "a",
                                          chunk_images=3)
    assert all(np.all(np.isfinite(v)) and v.shape == (7,) for v in whole.values())

    class Stop(Exception):
        pass

    def stop_after_first(done, total, seconds, resumed):
        assert total == 7 and resumed == 0
        raise Stop

    with pytest.raises(Stop):
        resumable_posterior_estimates(model, x, 6, 3, tmp_path / "part.npz", "a",
                                      chunk_images=3, progress=stop_after_first)
    with np.load(tmp_path / "part.npz") as state:
        assert np.sum(np.isfinite(state["iwae"])) == 3
    calls = []
    resumed = resumable_posterior_estimates(model, x, 6, 3, tmp_path / "part.npz", "a",
                                            chunk_images=3, progress=lambda *a: calls.append(a))
    assert [c[0] for c in calls] == [6, 7]  # the first chunk was not estimated again
    assert [c[3] for c in calls] == [3, 3]  # and the progress says it was resumed
    for key in whole:
        np.testing.assert_array_equal(resumed[key], whole[key])
    other = resumable_posterior_estimates(model, x, 6, 4, tmp_path / "part.npz", "b",
                                          chunk_images=3, progress=lambda *a: calls.append(a))
    assert len(calls) == 5 and not np.array_equal(other["iwae"], whole["iwae"])
    (tmp_path / "bad.npz").write_bytes(b"not an archive")  # damaged: started over
    again = resumable_posterior_estimates(model, x, 6, 3, tmp_path / "bad.npz", "a",
                                          chunk_images=3)
    np.testing.assert_array_equal(again["iwae"], whole["iwae"])


def test_a_run_over_a_prefix_shares_its_finished_chunks_with_the_longer_run(tmp_path):
    """Chunk c draws alike in a run over 4 images and one over 7 (chunks of 3): the longer
    run starts from the shorter's first chunk, the shorter takes it back from the longer
    run's state and leaves that state whole; the 4th image, a chunk cut short, is drawn
    again."""
    from models.likelihood import resumable_posterior_estimates

    model = build_model(ModelConfig(kind="vae", latent_dim=2, filters=(4, 8), hidden_units=8),
                        seed=0)
    x = (np.random.default_rng(1).random((7, 28, 28, 1)) > 0.5).astype(np.float32)
    whole = resumable_posterior_estimates(model, x, 6, 3, tmp_path / "whole.npz", "a",
                                          chunk_images=3)
    state = tmp_path / "state.npz"
    calls = []
    short = resumable_posterior_estimates(model, x[:4], 6, 3, state, "a", chunk_images=3)
    np.testing.assert_array_equal(short["iwae"][:3], whole["iwae"][:3])
    longer = resumable_posterior_estimates(model, x, 6, 3, state, "a", chunk_images=3,
                                           progress=lambda *a: calls.append(a))
    assert [(c[0], c[3]) for c in calls] == [(6, 3), (7, 3)]  # images 4 to 7 drawn here
    for key in whole:
        np.testing.assert_array_equal(longer[key], whole[key])
    calls.clear()
    again = resumable_posterior_estimates(model, x[:4], 6, 3, state, "a", chunk_images=3,
                                          progress=lambda *a: calls.append(a))
    assert [(c[0], c[3]) for c in calls] == [(4, 3)]
    np.testing.assert_array_equal(again["iwae"], short["iwae"])
    with np.load(state) as kept:  # the longer run's state, not cut to 4 images
        np.testing.assert_array_equal(kept["iwae"], whole["iwae"])
    other = resumable_posterior_estimates(model, x, 6, 3, state, "a", chunk_images=2)
    assert not np.array_equal(other["iwae"], whole["iwae"])  # another chunk size: anew
