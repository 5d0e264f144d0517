"""The conditional VAE: labels through every part, the channel order of colour labels, the
generative classifier and anomaly score (models/conditional.py), and experiments/cvae.py."""
import importlib
import json

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp

from models import (ModelConfig, build_model, conditional, fit_model, likelihood, load_model,
                    make_sampler, save_model)
from models.conditional import (MAX_SHIFT, class_log_likelihoods, class_posterior,
                                log_class_prior, marginal_log_likelihood,
                                mixture_log_likelihoods, moved)
from models.networks import FoldLabels
from stacked_mnist import DataMode, channel_digits, distinct_channel_images, fold_channels



def tiny_cvae(channels=1, seed=0, **settings):
    return build_model(ModelConfig(kind="cvae", latent_dim=3, filters=(4, 8), hidden_units=16,
                                   channels=channels, **settings), seed=seed)


def binary_images(n, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, 28, 28, channels)) > 0.7).astype(np.float32)


def test_the_label_changes_what_the_decoder_draws():
    model = tiny_cvae()
    z = model.sample_latents(6, seed=0)
    fours = model.decode_images(z, labels=np.full(6, 4))
    sevens = model.decode_images(z, labels=np.full(6, 7))
    assert np.abs(fours - sevens).max() > 1e-3
    np.testing.assert_array_equal(fours, model.decode_images(z, labels=np.full(6, 4)))
    # The encoder sees the label too.
    x = binary_images(6)
    assert np.abs(model.encode(x, labels=np.full(6, 4))
                  - model.encode(x, labels=np.full(6, 7))).max() > 1e-4


@pytest.mark.slow  # fits or trains for seconds
def test_colour_labels_split_into_channel_digits_in_the_folding_order(data_for):
    # Each folded channel image of a stacked test image is an MNIST test digit whose own label
    # must be the digit channel_digits gives that row (R ones, G tens, B hundreds).
    mono_x, mono_y = data_for(DataMode.MONO_BINARY_COMPLETE).get_full_data_set(training=False)
    colour_x, colour_y = data_for(DataMode.COLOR_BINARY_COMPLETE).get_full_data_set(
        training=False)
    label_of = {image.tobytes(): label for image, label in zip(mono_x, mono_y)}
    folded, channels = fold_channels(colour_x[:300])
    rows = channel_digits(colour_y[:300], channels).reshape(-1)
    found = [label_of.get(image.tobytes()) for image in folded]
    assert sum(f is not None for f in found) > 0.95 * len(found)
    assert all(f is None or f == r for f, r in zip(found, rows))
    # The model's layer folds labels the same way.
    one_hot = FoldLabels(3)(tf.constant(colour_y[:300])).numpy()
    np.testing.assert_array_equal(one_hot.argmax(axis=1), rows)
    assert channel_digits(np.array([386]), 3).tolist() == [[6, 8, 3]]


def test_a_colour_number_is_drawn_digit_by_digit():
    mono = tiny_cvae(1)
    colour = mono.with_channels(3)
    z = colour.sample_latents(2, seed=3)
    drawn = colour.decode_images(z, labels=[386, 910])
    for c, digits in enumerate(([6, 0], [8, 1], [3, 9])):
        np.testing.assert_allclose(drawn[..., c:c + 1],
                                   mono.decode_images(z[:, c], labels=digits), atol=1e-5)


@pytest.mark.slow  # fits or trains for seconds
def test_labels_are_required_checked_and_used_in_training():
    model = tiny_cvae()
    x = binary_images(16)
    with pytest.raises(ValueError, match="needs labels"):
        model.encode(x)
    with pytest.raises(ValueError, match="needs labels"):
        fit_model(model, x, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="0..9"):
        model.encode(x, labels=np.full(16, 10))
    with pytest.raises(ValueError, match="15 labels for 16 images"):
        model.encode(x, labels=np.zeros(15, int))
    before = [w.numpy() for w in model.trainable_weights]
    history = fit_model(model, x, x[:4], epochs=1, batch_size=8, verbose=0,
                        labels=np.arange(16) % 10, val_labels=np.arange(4))
    assert {"loss", "val_loss"} <= set(history)
    assert all(not np.array_equal(a, b.numpy()) for a, b in zip(before,
                                                                model.trainable_weights))
    vae = build_model(ModelConfig(kind="vae", latent_dim=3, filters=(4, 8)))
    with pytest.raises(ValueError, match="unconditional"):
        vae.encode(x, labels=np.zeros(16, int))


def test_the_bayes_term_is_the_cross_entropy_of_the_model_s_own_bayes_rule():
    weight = 2.5
    model = tiny_cvae(beta=0.5, bayes_weight=weight)
    x, labels, seed = binary_images(6), np.array([0, 3, 3, 9, 5, 1]), tf.constant([4, 2])
    reconstruction, kl = (t.numpy().astype(np.float64)
                          for t in model.every_digit_terms(x, seed=seed))
    assert reconstruction.shape == kl.shape == (6, 10)
    # Column y is the ELBO's terms under label y: one decode per image and digit.
    elbo = -(reconstruction + kl)
    rows = np.arange(6)
    cross_entropy = logsumexp(elbo, axis=1) - elbo[rows, labels]
    expected = (reconstruction[rows, labels] + 0.5 * kl[rows, labels] + weight * cross_entropy)
    loss = model.batch_loss(tf.constant(x), tf.constant(labels), training=False, seed=seed)
    np.testing.assert_allclose(loss.numpy(), expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(model.trackers["bayes_cross_entropy"].result().numpy(),
                               cross_entropy.mean(), rtol=1e-5)
    np.testing.assert_allclose(model.trackers["reconstruction"].result().numpy(),
                               reconstruction[rows, labels].mean(), rtol=1e-5)
    np.testing.assert_allclose(model.trackers["kl"].result().numpy(), kl[rows, labels].mean(),
                               rtol=1e-5)
    again = model.every_digit_terms(x.astype(np.float64), seed=seed)[0].numpy()  # any float
    np.testing.assert_allclose(again, reconstruction, rtol=1e-5)
    # Its colour copy evaluates the conditional ELBO (the rule's term is over ten digits).
    colour = model.with_channels(3)
    assert not colour.trains_bayes_rule and "bayes_cross_entropy" not in colour.trackers
    result = colour.evaluate(binary_images(3, channels=3), np.array([123, 5, 999]), verbose=0,
                             return_dict=True)
    assert np.isfinite(result["loss"])
    # Without the weight: the conditional ELBO alone, and no cross-entropy tracker.
    assert "bayes_cross_entropy" not in tiny_cvae().trackers
    with pytest.raises(ValueError, match="bayes_weight trains a cvae"):
        ModelConfig(kind="vae", bayes_weight=1.0)
    with pytest.raises(ValueError, match="bayes_weight must be a number >= 0"):
        ModelConfig(kind="cvae", bayes_weight=-1.0)


@pytest.mark.slow  # trains for seconds
def test_training_with_the_bayes_term_sharpens_the_bayes_rule_and_is_saved(data_for, tmp_path):
    config = ModelConfig(kind="cvae", latent_dim=3, filters=(4, 8), hidden_units=16)
    x, labels = data_for(DataMode.MONO_BINARY_COMPLETE).get_full_data_set(training=True)
    x, labels = x[:400], labels[:400]
    with pytest.raises(ValueError, match="trains on mono images"):
        fit_model(build_model(config.replace(channels=3, bayes_weight=1.0)),
                  binary_images(8, channels=3), epochs=1, verbose=0, labels=np.arange(8))
    cross_entropies = {}
    for weight in (0.0, 10.0):
        model = build_model(config.replace(bayes_weight=weight), seed=0, learning_rate=1e-2)
        history = fit_model(model, x, x[:20], epochs=4, batch_size=20, verbose=0, seed=0,
                            labels=labels, val_labels=labels[:20])
        log_lik = class_log_likelihoods(model, x, num_samples=1, prior="standard")[:, 0]
        cross_entropies[weight] = np.mean(
            logsumexp(log_lik, axis=1) - log_lik[np.arange(len(x)), labels])
    assert {"bayes_cross_entropy", "val_bayes_cross_entropy"} <= set(history)
    # The term trains the classifier's own rule: on its training images it is much surer.
    assert cross_entropies[10.0] < 0.5 * cross_entropies[0.0]
    save_model(model, tmp_path / "hybrid.keras")
    assert load_model(tmp_path / "hybrid.keras").config.bayes_weight == 10.0


def test_without_labels_the_cvae_generates_from_balanced_seeded_labels():
    mono, colour = tiny_cvae(), tiny_cvae(3)
    labels = mono.generation_labels(25, seed=4)
    assert sorted(np.bincount(labels, minlength=10)) == [2] * 5 + [3] * 5  # balanced
    np.testing.assert_array_equal(labels, mono.generation_labels(25, seed=4))
    assert not np.array_equal(labels, mono.generation_labels(25, seed=5))
    np.testing.assert_array_equal(mono.generate_images(25, seed=4),
                                  mono.generate_images(25, seed=4, labels=labels))
    assert len(set(colour.generation_labels(1000, seed=0))) == 1000  # every number once
    assert colour.generate_images(3, seed=0).shape == (3, 28, 28, 3)
    vae = build_model(ModelConfig(kind="vae", latent_dim=3, filters=(4, 8)))
    with pytest.raises(ValueError, match="unconditional"):
        vae.generate_images(2, labels=[1, 2])


def test_requested_labels_must_match_the_count_and_style_noise_must_be_finite():
    """generate_images(2, labels=[0, 1, 2]) returned three images; NaN style noise gave NaN
    codes."""
    model = tiny_cvae()
    with pytest.raises(ValueError, match="got 3 labels for 2 images"):
        model.generate_images(2, labels=[0, 1, 2])
    with pytest.raises(ValueError, match="got 1 labels for 2 images"):
        model.generate_images(2, labels=[4], sampler=make_sampler("standard", 3))
    with pytest.raises(ValueError, match="noise contains NaN"):
        model.class_codes([0, 1], noise=np.full((2, 3), np.nan))
    assert model.generate_images(2, labels=[0, 1]).shape == (2, 28, 28, 1)


def test_the_class_prior_is_the_extra_state_and_fitted_after_training():
    model = tiny_cvae()
    extra = model.extra_state_variables()
    assert [v.name.split(":")[0] for v in extra] == ["class_means", "class_scale_tril"]
    assert extra[0] is model.class_means and extra[1] is model.class_scale_tril
    weights = model.network_weights()
    assert len(weights) == len(model.mono_encoder.weights) + len(model.mono_decoder.weights) + 2
    x, y = binary_images(60, seed=2), np.arange(60) % 10
    model.after_training(x, y, seed=0)
    assert model.metadata["digit_counts"] == [6] * 10
    assert model.metadata["class_prior"]["digits_fitted"] == list(range(10))
    other = tiny_cvae(seed=1)
    other.set_network_weights(model.network_weights())
    for a, b in zip(other.class_prior_weights(), model.class_prior_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="weight arrays"):
        other.set_network_weights(weights[:-1])
    with pytest.raises(ValueError, match="needs labels"):
        model.after_training(x)


def test_the_classifier_posterior_sums_to_one_and_respects_the_prior():
    model = tiny_cvae()
    x = binary_images(7)
    log_lik = class_log_likelihoods(model, x, num_samples=4, seed=0)
    assert log_lik.shape == (7, 1, 10) and np.all(np.isfinite(log_lik))
    counts = [5, 5, 5, 5, 5, 5, 5, 5, 0, 5]  # trained without 8s: p(8) = 0
    posterior = class_posterior(log_lik, log_class_prior(counts))
    np.testing.assert_allclose(posterior.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(posterior[..., 8] == 0.0)
    uniform = class_posterior(log_lik, log_class_prior())
    np.testing.assert_allclose(uniform.sum(axis=-1), 1.0, rtol=1e-12)
    # log p(x) = log sum_y p(x|y) p(y), and a seed fixes the estimate.
    np.testing.assert_allclose(
        marginal_log_likelihood(log_lik, log_class_prior()),
        np.log(np.exp(log_lik.astype(np.float64)).mean(axis=-1)), rtol=1e-9)
    np.testing.assert_array_equal(log_lik, class_log_likelihoods(model, x, num_samples=4))
    with pytest.raises(ValueError, match="conditional"):
        class_log_likelihoods(build_model(ModelConfig(kind="vae", latent_dim=3,
                                                      filters=(4, 8))), x)
    with pytest.raises(ValueError, match="10 counts"):
        log_class_prior([1, 2, 3])


def test_class_estimates_of_colour_images_are_those_of_their_channels():
    mono = tiny_cvae(1)
    colour = mono.with_channels(3)
    x = binary_images(4, channels=3, seed=1)
    per_channel = class_log_likelihoods(colour, x, num_samples=3, seed=2)
    folded = class_log_likelihoods(mono, fold_channels(x)[0], num_samples=3, seed=2)
    np.testing.assert_allclose(per_channel.reshape(-1, 10), folded[:, 0], rtol=1e-5)


def test_the_decode_batch_does_not_change_the_class_estimates(monkeypatch):
    model = tiny_cvae()
    x = binary_images(4)
    whole = class_log_likelihoods(model, x, num_samples=3)
    monkeypatch.setattr(likelihood, "DECODE_BATCH", 16)  # 120 codes: 7 full batches and 8
    np.testing.assert_array_equal(class_log_likelihoods(model, x, num_samples=3), whole)


def test_importance_sampling_tightens_towards_log_p_x_given_y():
    # The IWAE bound grows with K on average: K = 200 >= K = 1 (the ELBO) per label.
    model = tiny_cvae()
    x = binary_images(5)
    one = np.mean([class_log_likelihoods(model, x, num_samples=1, seed=s) for s in range(20)],
                  axis=0)
    many = class_log_likelihoods(model, x, num_samples=200, seed=0)
    assert np.all(many >= one - 0.05)


def test_an_image_moves_by_whole_pixels_and_zeros_move_in():
    x = np.zeros((1, 28, 28, 1), np.float32)
    x[0, 0, 5, 0], x[0, 10, 27, 0] = 1.0, 2.0
    down_left = moved(x, 2, -3)
    assert down_left.shape == x.shape
    assert down_left[0, 2, 2, 0] == 1.0 and down_left[0, 12, 24, 0] == 2.0
    assert down_left.sum() == 3.0 and not down_left[0, :2].any() and not down_left[0, :, 25:].any()
    np.testing.assert_array_equal(moved(down_left, -2, 3), x)  # nothing was cut
    np.testing.assert_array_equal(moved(x, 0, 0), x)


def test_the_digit_s_position_as_a_latent_averages_the_moves_likelihoods():
    # max_shift = 1: log of the mean over the 9 moves' p(x | y), the unmoved images first with
    # the streams of max_shift = 0, then each move with streams of its own (one per block).
    model = tiny_cvae()
    x = distinct_channel_images(binary_images(3))[0]  # in the order the estimate blocks them
    moves = [(0, 0)] + [(r, c) for r in (-1, 0, 1) for c in (-1, 0, 1) if (r, c) != (0, 0)]
    each = np.stack([
        np.concatenate([conditional._class_block(
            model, tf.constant(moved(x, r, c)[start:start + 2]), 2,
            tf.constant([4, 2 * number + index], tf.int32), "class")
            for index, start in enumerate((0, 2))])
        for number, (r, c) in enumerate(moves)])
    position = class_log_likelihoods(model, x, num_samples=2, seed=4, max_decodes=40,
                                     max_shift=1)[:, 0]
    np.testing.assert_allclose(position, logsumexp(each, axis=0) - np.log(9), rtol=1e-6)
    np.testing.assert_allclose(each[0], class_log_likelihoods(
        model, x, num_samples=2, seed=4, max_decodes=40)[:, 0], rtol=1e-6)
    assert not np.allclose(each[0], each[1])  # the moves matter
    for bad in (-1, MAX_SHIFT + 1, 1.5):
        with pytest.raises(ValueError, match="max_shift"):
            class_log_likelihoods(model, x, max_shift=bad)


def test_an_equal_mixture_averages_the_components_likelihoods():
    first = np.log(np.array([[0.2, 0.5], [1e-300, 0.3]]))
    second = np.log(np.array([[0.4, 0.1], [1e-300, 0.3]]))
    np.testing.assert_allclose(np.exp(mixture_log_likelihoods([first, second])),
                               [[0.3, 0.3], [1e-300, 0.3]], rtol=1e-12)
    np.testing.assert_array_equal(mixture_log_likelihoods([first]), first)
    for bad in ([], [first, first[:1]], first[0]):
        with pytest.raises(ValueError, match="one array of log p"):
            mixture_log_likelihoods(bad)


@pytest.mark.slow  # fits or trains for seconds
def test_the_class_prior_is_fitted_per_digit_drawn_from_and_saved(tmp_path):
    model = tiny_cvae()
    x, digits = binary_images(60, seed=2), np.arange(60) % 10
    digits[digits == 8] = 3  # no 8 among the training images
    standard = model.class_prior_weights()
    np.testing.assert_array_equal(standard[1][0], np.eye(3))  # N(0, I) until fitted
    model.fit_class_prior(x, digits, seed=0)
    means, trils = model.class_prior_weights()
    assert model.metadata["class_prior"]["digits_fitted"] == [0, 1, 2, 3, 4, 5, 6, 7, 9]
    np.testing.assert_array_equal(means[8], 0.0)  # no images: N(0, I) kept
    np.testing.assert_array_equal(trils[8], np.eye(3))
    mean, scale = model.mono_code_distribution(x, digits=digits)
    draw = mean + scale * np.random.default_rng(0).standard_normal(mean.shape)
    np.testing.assert_allclose(means[3], draw[digits == 3].mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(trils[3] @ trils[3].T, np.cov(draw[digits == 3], rowvar=False),
                               rtol=1e-3, atol=1e-5)
    codes = model.class_codes(np.full(4000, 3), seed=1)
    assert codes.shape == (4000, 1, 3)
    np.testing.assert_allclose(codes[:, 0].mean(axis=0), means[3], atol=0.15)
    colour = model.with_channels(3)  # the class prior travels with the weights
    z = colour.class_codes(np.array([386]), seed=0)
    assert z.shape == (1, 3, 3)
    path = save_model(model, tmp_path / "cvae.keras")
    for a, b in zip(load_model(path).class_prior_weights(), (means, trils)):
        np.testing.assert_array_equal(a, b)
    # Both priors give log p(x | y) estimates; the class prior's differ.
    by_class = class_log_likelihoods(model, x[:3], num_samples=2, seed=0)
    standard = class_log_likelihoods(model, x[:3], num_samples=2, seed=0, prior="standard")
    assert not np.allclose(by_class, standard)
    with pytest.raises(ValueError, match="prior must be"):
        class_log_likelihoods(model, x[:3], prior="flat")


@pytest.mark.slow
def test_cvae_quick_run(mnist_dir, verifier, tmp_path):
    common = importlib.import_module("experiments.runs")
    common._CACHE.clear()
    out = tmp_path / "cvae"
    path = importlib.import_module("experiments.cvae").main(["--quick", "--out", str(out)])
    common._CACHE.clear()
    metrics = json.loads(path.read_text())
    assert metrics["row"] == "cvae" and metrics["quick"] is True
    assert set(metrics["section_seconds"]) == {"generate_mono", "generate_colour", "classify",
                                               "classify_bayes_trained", "classify_position",
                                               "anomaly"}
    position = metrics["classify_position"]
    assert position["models"] == ["cvae_bayes_mono_complete", "cvae_bayes_mono_complete_seed1"]
    assert position["max_shift"] == 1 and position["images"] == common.QUICK_TEST_IMAGES
    assert list(position["accuracy_each"]) == position["models"]
    assert all(0 <= position[f"accuracy_{rule}"] <= 1 for rule in ("mixture", "ensemble"))
    assert all(0 <= accuracy <= 1 for accuracy in position["accuracy_each"].values())
    for key, labels in (("generate_mono", 10), ("generate_colour", 1000)):
        section = metrics[key]
        for judged in (section, section.get("with_standard_normal_z", section)):
            assert 0 <= judged["conditional_accuracy"] <= judged["quality_predictability"] <= 1
        assert section["labels"] == labels
        prefix = "" if labels == 10 else "color_"
        with np.load(out / f"{prefix}samples.npz") as samples:
            assert samples["images"].shape[0] == samples["requested_labels"].shape[0]
            assert samples["images"].shape[0] == section["samples"]
            assert set(samples["requested_labels"]) == set(range(labels))
    assert metrics["classify_bayes_trained"]["model"] == "cvae_bayes_mono_complete"
    for classify in (metrics["classify"], metrics["classify_bayes_trained"]):
        assert [(run["num_samples"], run["prior"]) for run in classify["runs"].values()] == [
            (1, "class"), (3, "class"), (1, "standard")]
        assert all(0 <= run["accuracy"] <= 1 for run in classify["runs"].values())
        assert np.sum(classify["confusion_matrix_rows_true_columns_predicted"]) == (
            common.QUICK_TEST_IMAGES)
        assert set(classify["non_digits"]) >= {"test_digits", "uniform_noise", "constant"}
    anomaly = metrics["anomaly"]
    for part in ("mono", "colour_worst_channel"):
        assert set(anomaly[part]) == {"neg_log_sum_y", "neg_max_y"}
        assert 0 <= anomaly[part]["neg_log_sum_y"]["roc_auc"] <= 1
    for name in ("cvae_digits.png", "cvae_style_transfer.png", "cvae_confusion.png",
                 "cvae_bayes_confusion.png",
                 "cvae_anomaly_curves.png", "color_cvae_anomaly_curves.png",
                 "color_cvae_numbers.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("counts", [[5] * 9 + [np.nan], [5] * 9 + [np.inf], [5] * 9 + [-1],
                                    [0] * 10, [5] * 9, [5] * 9 + ["x"], [5] * 9 + [None]],
                         ids=["nan", "inf", "negative", "zeros", "nine", "string", "none"])
def test_log_class_prior_refuses_counts_that_would_give_nan(counts):
    """One NaN in a CVAE file's digit_counts used to give NaN priors (classifier at 8 %)."""
    with pytest.raises(ValueError, match="digit_counts must be 10 counts, finite and >= 0"):
        log_class_prior(counts)


def test_posterior_and_marginal_refuse_nan_and_accept_an_unseen_digit():
    log_lik = np.zeros((2, 1, 10))
    prior = log_class_prior([1] * 8 + [0, 1])  # no 8s in training: log p(8) = -inf
    posterior = class_posterior(log_lik, prior)
    assert np.all(np.isfinite(posterior)) and np.all(posterior[..., 8] == 0)
    bad_lik = log_lik.copy()
    bad_lik[0, 0, 3] = np.nan
    for function in (class_posterior, marginal_log_likelihood):
        with pytest.raises(ValueError, match="log_lik must be finite"):
            function(bad_lik, prior)
        with pytest.raises(ValueError, match="log_prior must be log p"):
            function(log_lik, np.full(10, -np.inf))
        with pytest.raises(ValueError, match="log_prior must be log p"):
            function(log_lik, np.where(np.arange(10) == 2, np.nan, prior))
