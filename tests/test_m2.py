"""The M2 semi-supervised VAE (models/m2.py): the loss against its formula, unlabelled images
in training, the labelled set, the classifier, files, and the semi-supervised recipes."""
import math

import numpy as np
import pytest
import tensorflow as tf

from models import ModelConfig, build_model, fit_model, load_model, save_model, zoo
from models import m2
from models.augment import cut_out, shifted, warped
from models.m2 import UNLABELLED, semi_supervised_set


def tiny_m2(seed=0, **changes):
    config = ModelConfig(kind="m2", latent_dim=3, filters=(4, 8), hidden_units=16,
                         classifier_weight=5.0).replace(**changes)
    return build_model(config, seed=seed)


def digit_like(n, seed=0):
    """Images whose class is a bright column (class c: column 2 + 2c), labels (N,)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    x = (rng.random((n, 28, 28, 1)) < 0.05).astype(np.float32)
    for image, label in zip(x, labels):
        image[4:24, 2 + 2 * label] = 1.0
    return x, labels


def test_the_loss_is_the_labelled_and_unlabelled_bound_of_the_formula():
    model = tiny_m2()
    x, labels = digit_like(4)
    seed = tf.constant([3, 4])
    loss, reconstruction, kl, cross_entropy, _, known, pseudo_labelled = (
        t.numpy() for t in model.semi_supervised_terms(x, np.array([labels[0], -1, -1, labels[3]]),
                                                       seed=seed))
    np.testing.assert_array_equal(known, [1, 0, 0, 1])
    np.testing.assert_array_equal(pseudo_labelled, 0)  # evaluation: no pseudo-labels
    log_q = tf.nn.log_softmax(model.mono_classifier(x)).numpy()
    # The ten (image, label) pairs' -ELBO terms, drawn with the same seed in the same order.
    rows_r, rows_kl = model.loss_terms(np.repeat(x, 10, axis=0), seed=seed,
                                       labels=np.tile(np.arange(10), 4))
    rows_r, rows_kl = rows_r.numpy().reshape(4, 10), rows_kl.numpy().reshape(4, 10)
    neg_elbo = rows_r + rows_kl + math.log(10)
    for i in (0, 3):  # labelled: -ELBO(x, y) + alpha * cross-entropy
        y = labels[i]
        assert cross_entropy[i] == pytest.approx(-log_q[i, y], rel=1e-5)
        assert reconstruction[i] == pytest.approx(rows_r[i, y], rel=1e-5)
        assert loss[i] == pytest.approx(neg_elbo[i, y] - 5.0 * log_q[i, y], rel=1e-5)
    for i in (1, 2):  # unlabelled: sum_y q (-ELBO) - H(q)
        q = np.exp(log_q[i])
        assert kl[i] == pytest.approx((q * rows_kl[i]).sum(), rel=1e-5)
        assert loss[i] == pytest.approx((q * neg_elbo[i]).sum() + (q * log_q[i]).sum(),
                                        rel=1e-5)
        assert cross_entropy[i] == 0


def test_sure_unlabelled_images_add_the_pseudo_label_cross_entropy(monkeypatch):
    plain, pseudo = tiny_m2(), tiny_m2(consistency_weight=2.0)
    pseudo.set_weights(plain.get_weights())
    x, labels = digit_like(4)
    labels[1:3] = UNLABELLED
    seed = tf.constant([3, 4])

    def extra_loss():
        return (pseudo.semi_supervised_terms(x, labels, training=True, seed=seed)[0].numpy()
                - plain.semi_supervised_terms(x, labels, training=True, seed=seed)[0].numpy())

    np.testing.assert_allclose(extra_loss(), 0, atol=1e-4)  # an untrained classifier is unsure
    monkeypatch.setattr(m2, "PSEUDO_LABEL_CONFIDENCE", 0.0)  # every answer counts as sure
    fixed = tf.nn.softmax(plain.mono_classifier(x)).numpy().argmax(axis=-1)
    # The pseudo-labelled view: shifted with its own seed, rotated and scaled, a square cut out.
    assert m2.CUTOUT_PIXELS > 0 and m2.STRONG_DEGREES > 0 and m2.STRONG_SCALE > 0
    moved = shifted(tf.constant(x), tf.stack([-seed[0] - 1, seed[1]]), m2.SHIFT_PIXELS)
    moved = warped(moved, tf.stack([seed[1], seed[0]]), m2.STRONG_DEGREES, m2.STRONG_SCALE)
    moved = cut_out(moved, tf.stack([-seed[0] - 1, -seed[1] - 1]), m2.CUTOUT_PIXELS)
    log_q = tf.nn.log_softmax(plain.mono_classifier(moved)).numpy()
    expected = [0, -2.0 * log_q[1, fixed[1]], -2.0 * log_q[2, fixed[2]], 0]  # labelled: none
    np.testing.assert_allclose(extra_loss(), expected, rtol=1e-4, atol=1e-4)
    counted = pseudo.semi_supervised_terms(x, labels, training=True, seed=seed)[-1].numpy()
    np.testing.assert_array_equal(counted, [0, 1, 1, 0])
    # Evaluation (no shift, no pseudo-labels) adds nothing.
    np.testing.assert_allclose(pseudo.semi_supervised_terms(x, labels, seed=seed)[0].numpy(),
                               plain.semi_supervised_terms(x, labels, seed=seed)[0].numpy())


def test_an_unlabelled_image_learns_its_partner_s_given_or_sure_label():
    labels = tf.constant([UNLABELLED, 3, UNLABELLED, UNLABELLED, 2, UNLABELLED])
    q_fixed = np.full((6, 10), 0.05 / 9, np.float32)
    q_fixed[[0, 1, 2, 4, 5], [1, 1, 5, 0, 7]] = 0.95  # rows 0, 2 and 5 sure of 1, 5 and 7
    q_fixed[3] = 0.1  # row 3 unsure
    log_q = tf.nn.log_softmax(tf.random.stateless_normal((6, 10), seed=[1, 2])).numpy()
    terms = m2.partner_label_terms(labels, tf.constant(q_fixed), tf.constant(log_q)).numpy()
    # Pairs (0, 1), (2, 3), (4, 5): row 0 takes its partner's given 3, row 3 its partner's
    # sure 5, row 5 the given 2; labelled rows take none, and row 2's partner is unsure.
    expected = [-log_q[0, 3], 0, 0, -log_q[3, 5], 0, -log_q[5, 2]]
    np.testing.assert_allclose(terms, expected, rtol=1e-6)


def test_the_partners_labels_are_weighed_with_the_pseudo_labels_and_need_them(monkeypatch):
    with pytest.raises(ValueError, match="consistency_weight"):
        tiny_m2(neighbour_weight=1.0)
    alone, paired = tiny_m2(consistency_weight=2.0), tiny_m2(consistency_weight=2.0,
                                                             neighbour_weight=0.5)
    paired.set_network_weights(alone.network_weights())  # (its metrics: one more)
    x, labels = digit_like(4)
    labels[[0, 2]] = UNLABELLED
    seed = tf.constant([3, 4])
    monkeypatch.setattr(m2, "PSEUDO_LABEL_CONFIDENCE", 0.0)  # every answer counts as sure
    extra = (paired.semi_supervised_terms(x, labels, training=True, seed=seed)[0].numpy()
             - alone.semi_supervised_terms(x, labels, training=True, seed=seed)[0].numpy())
    assert extra[0] > 0 and extra[2] > 0  # unlabelled: the partner's label on its strong view
    np.testing.assert_allclose(extra[[1, 3]], 0, atol=1e-4)  # labelled: nothing more


def test_cut_out_zeroes_one_square_per_image_clipped_at_the_border():
    x = np.ones((200, 28, 28, 1), np.float32)
    cut = cut_out(tf.constant(x), tf.constant([5, 6]), 10).numpy()
    np.testing.assert_array_equal(cut, cut_out(tf.constant(x), tf.constant([5, 6]), 10).numpy())
    zeros = (cut == 0).sum(axis=(1, 2, 3))
    assert zeros.max() == 100 and 25 <= zeros.min() < 100  # clipped squares are smaller
    for image in cut[:20, :, :, 0]:
        rows, columns = np.nonzero(image == 0)
        assert (rows.max() - rows.min() + 1) * (columns.max() - columns.min() + 1) == len(rows)


def test_the_classifier_s_training_shifts_move_whole_pixels_within_the_bound():
    x = np.zeros((64, 28, 28, 1), np.float32)
    x[:, 10, 12] = 1.0
    moved = shifted(tf.constant(x), tf.constant([1, 2]), 2).numpy()
    spots = np.array([np.argwhere(image[..., 0])[0] for image in moved]) - [10, 12]
    assert np.all(moved.sum(axis=(1, 2, 3)) == 1) and np.abs(spots).max() == 2
    assert len({tuple(s) for s in spots}) > 10  # each image its own shift
    np.testing.assert_array_equal(moved, shifted(tf.constant(x), tf.constant([1, 2]), 2))


def test_the_warp_rotates_and_scales_about_the_centre_by_seed():
    x = np.zeros((4, 28, 28, 1), np.float32)
    x[:, 10:18, 13:15] = 1.0  # a vertical bar through the centre
    np.testing.assert_array_equal(warped(x, tf.constant([1, 2]), 0.0, 0.0).numpy(), x)
    out = warped(x, tf.constant([1, 2]), 90.0, 0.3).numpy()
    np.testing.assert_array_equal(out, warped(x, tf.constant([1, 2]), 90.0, 0.3).numpy())
    assert not np.array_equal(out, warped(x, tf.constant([3, 4]), 90.0, 0.3).numpy())
    assert np.all(out[:, 13:15, 13:15] > 0.5)  # the centre stays where it was
    mass = out.sum(axis=(1, 2, 3))  # area scales by the factor squared, within 1 +- 0.3
    assert np.all((mass > 0.7 ** 2 * x[0].sum() - 4) & (mass < 1.3 ** 2 * x[0].sum() + 4))
    assert not np.allclose(out, x)


def test_the_labelled_set_keeps_a_balanced_share_and_marks_the_rest():
    x, y = digit_like(2000, seed=1)
    images, labels = semi_supervised_set(x, y, 100, seed=0)
    assert len(images) == len(labels) > 2000
    np.testing.assert_array_equal(images[:2000], x)
    kept = labels[:2000] != UNLABELLED
    assert kept.sum() == 100 and np.bincount(y[:2000][kept], minlength=10).tolist() == [10] * 10
    np.testing.assert_array_equal(labels[:2000][kept], y[kept])
    assert np.all(labels[2000:] != UNLABELLED)
    assert 0.08 < np.mean(labels != UNLABELLED) < 0.17
    again, _ = semi_supervised_set(x, y, 100, seed=0)
    other, other_labels = semi_supervised_set(x, y, 100, seed=1)
    np.testing.assert_array_equal(images, again)
    assert not np.array_equal(labels[:2000], other_labels[:2000])
    with pytest.raises(ValueError, match="multiple of 10"):
        semi_supervised_set(x, y, 105)
    with pytest.raises(ValueError, match="labels"):
        semi_supervised_set(x, y[:10], 100)


def test_training_labels_may_be_unlabelled_but_not_out_of_range():
    model = tiny_m2()
    x, y = digit_like(64)
    y[::2] = UNLABELLED
    assert model.check_fit_labels(y, 64).tolist() == y.tolist()
    assert np.all(model.check_fit_labels(None, 64) == UNLABELLED)
    for bad in (np.where(y == UNLABELLED, 10, y), np.where(y == UNLABELLED, -2, y)):
        with pytest.raises(ValueError, match="0..9"):
            model.check_fit_labels(bad, 64)
    with pytest.raises(ValueError, match="labels for"):
        model.check_fit_labels(y[:10], 64)
    with pytest.raises(ValueError, match="mono"):
        tiny_m2(channels=3).check_fit_labels(y, 64)
    with pytest.raises(ValueError, match="0..9"):  # everywhere else a label is a class
        model.encode(x, labels=y)


@pytest.mark.slow  # trains for seconds
def test_unlabelled_images_train_the_classifier_and_the_file_keeps_it(tmp_path, monkeypatch):
    monkeypatch.setattr(m2, "SHIFT_PIXELS", 0)  # a shift would move a column into another class
    x, y = digit_like(1200, seed=2)
    x_test, y_test = digit_like(300, seed=3)
    images, labels = semi_supervised_set(x, y, 20, seed=0)
    model = tiny_m2(classifier_weight=50.0)  # (at 5 the classes collapse into one)
    history = fit_model(model, images, x_test, labels=labels, val_labels=y_test, epochs=8,
                        verbose=0)
    assert {"loss", "cross_entropy", "accuracy", "val_accuracy"} <= set(history)
    assert np.mean(model.classify(x_test) == y_test) > 0.5
    model.after_training(images, labels)
    assert sum(model.metadata["digit_counts"]) == len(images)
    path = tmp_path / "m2.keras"
    save_model(model, path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.class_probabilities(x_test),
                                  model.class_probabilities(x_test))
    assert len(loaded.network_weights()) == len(model.network_weights())
    np.testing.assert_array_equal(loaded.generate_images(4, seed=1),
                                  model.generate_images(4, seed=1))


def test_the_classifier_has_the_encoder_s_network_unless_its_own_sizes_are_given():
    def sizes(net):  # the kernels' shapes, in order
        return [tuple(w.shape) for w in net.weights if "kernel" in w.name]

    plain = tiny_m2()
    assert sizes(plain.mono_classifier)[:2] == sizes(plain.mono_encoder)[:2]
    wide = tiny_m2(classifier_filters=(6, 12), classifier_hidden_units=20)
    assert sizes(wide.mono_classifier) == [(3, 3, 1, 6), (3, 3, 6, 12), (49 * 12, 20), (20, 10)]
    assert sizes(wide.mono_encoder) == sizes(plain.mono_encoder)  # the encoder keeps its own
    assert ModelConfig.from_json(wide.config.to_json()) == wide.config
    with pytest.raises(ValueError, match="classifier_filters must be two positive integers"):
        wide.config.replace(classifier_filters=(6,))
    with pytest.raises(ValueError, match="classifier_hidden_units must be an integer >= 0"):
        wide.config.replace(classifier_hidden_units=-1)
    deep = tiny_m2(classifier_block_convs=1)  # an extra convolution per resolution
    assert sizes(deep.mono_classifier)[:4] == [(3, 3, 1, 4), (3, 3, 4, 4), (3, 3, 4, 8),
                                               (3, 3, 8, 8)]
    assert sizes(deep.mono_encoder) == sizes(plain.mono_encoder)
    assert ModelConfig.from_json(deep.config.to_json()) == deep.config
    older = {k: v for k, v in plain.config.to_dict().items() if k != "classifier_block_convs"}
    assert ModelConfig.from_dict(older) == plain.config  # files written before the field
    with pytest.raises(ValueError, match="classifier_block_convs must be an integer >= 0"):
        deep.config.replace(classifier_block_convs=-1)


def test_every_semi_supervised_recipe_keeps_a_balanced_share_of_labels():
    semi = [name for name, r in zoo.SHIPPED.items() if r.labelled is not None]
    for name in semi:
        plan = zoo.recipe(name)
        assert plan.config.kind == "m2" and plan.labelled % 10 == 0
    variants = {(zoo.recipe(n).labelled, zoo.recipe(n).label_seed,
                 zoo.recipe(n).config.consistency_weight) for n in semi}
    assert len(variants) == len(semi)
    assert sorted(zoo.recipe(n).labelled for n in semi) == [100] * 6 + [1000, 3000]
    assert sum(zoo.recipe(n).config.consistency_weight > 0 for n in semi) == 3
    with pytest.raises(ValueError, match="give labels="):
        zoo.train(semi[0], digit_like(200)[0], epochs=1, verbose=0)
