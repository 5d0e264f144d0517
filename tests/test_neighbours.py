"""The neighbour term (models/neighbours.py): the k-NN graph, the paired batches and the loss."""
import numpy as np
import pytest
import tensorflow as tf

from models import ModelConfig, build_model, fit_model, load_model, save_model
from models.neighbours import neighbour_graph, neighbour_term, paired_indices
from models.training import _epoch_batches
from stacked_mnist import DataMode

TINY = dict(latent_dim=2, filters=(4, 8), hidden_units=16)


def line_images(positions):
    """One image per position: a single pixel at that grey level (points on a line)."""
    images = np.zeros((len(positions), 28, 28, 1), np.float32)
    images[:, 14, 14, 0] = positions
    return images


def test_the_graph_lists_each_image_s_nearest_others_nearest_first():
    graph = neighbour_graph(line_images([0.0, 0.1, 0.3, 0.36, 0.9]), k=2)
    np.testing.assert_array_equal(graph, [[1, 2], [0, 2], [3, 1], [2, 1], [3, 2]])
    with pytest.raises(ValueError, match="k must be below the number of images"):
        neighbour_graph(line_images([0.0, 0.5]), k=2)


def test_real_digits_neighbours_are_mostly_the_same_digit(data_for):
    x, y = data_for(DataMode.MONO_BINARY_COMPLETE).get_full_data_set(training=True)
    x, y = x[:2000], y[:2000]
    graph = neighbour_graph(x, k=5)
    assert graph.shape == (2000, 5) and not np.any(graph == np.arange(2000)[:, None])
    assert np.mean(y[graph] == y[:, None]) > 0.8  # 2,000 images; 95.6 % among all 60,000


def test_the_term_is_the_cross_entropy_of_finding_the_partner():
    scale = 2.0
    codes = np.array([[0.0], [0.0], [10.0], [10.0]], np.float32)  # pairs (0, 1) and (2, 3)
    other = 1.0 / (1.0 + 100.0 / scale ** 2)  # the Student-t weight 10 apart
    expected = -np.log(1.0 / (1.0 + 2 * other))
    np.testing.assert_allclose(neighbour_term(codes, scale), [expected] * 4, rtol=1e-5)
    swapped = codes[[0, 2, 1, 3]]  # partners now 10 apart
    assert np.all(neighbour_term(swapped, scale).numpy() > expected + 1)
    with pytest.raises(ValueError, match="neighbour_scale must be a positive number"):
        neighbour_term(codes, 0.0)


def test_paired_batches_follow_the_graph_and_repeat_with_the_seed():
    graph = np.array([[1, 2], [2, 3], [3, 0], [0, 1], [1, 2], [0, 3]], np.int64)
    pairs = paired_indices(tf.constant([4, 0, 5]), tf.constant(graph), tf.constant([1, 2],
                                                                                 tf.int64))
    pairs = pairs.numpy()
    assert list(pairs[0::2]) == [4, 0, 5]
    assert all(partner in graph[anchor] for anchor, partner in zip(pairs[0::2], pairs[1::2]))

    images = line_images(np.linspace(0, 1, 6))

    def epochs(first):
        batches = _epoch_batches(images, 4, 7, first, 3, graph=graph)
        return [b.numpy()[:, 14, 14, 0] for b in batches]

    whole = epochs(0)
    assert len(whole) == 9 and all(len(b) in (2, 4) for b in whole)  # 3 steps of 2 anchors
    for batch in whole:
        anchors = np.rint(batch[0::2] * 5).astype(int)
        partners = np.rint(batch[1::2] * 5).astype(int)
        assert all(p in graph[a] for a, p in zip(anchors, partners))
    resumed = epochs(1)
    for a, b in zip(whole[3:], resumed):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # trains for seconds
def test_a_model_with_the_term_trains_on_pairs_and_keeps_its_config(data_for, tmp_path):
    data = data_for(DataMode.MONO_BINARY_COMPLETE)
    x_train, x_test = (data.get_full_data_set(training=t)[0] for t in (True, False))
    model = build_model(ModelConfig(kind="vae", neighbour_weight=10.0, neighbour_scale=0.5,
                                    neighbours=5, **TINY), seed=0)
    history = fit_model(model, x_train[:256], x_test[:64], epochs=2, batch_size=32, verbose=0)
    assert "neighbour" in history and "val_neighbour" not in history
    assert history["neighbour"][1] < history["neighbour"][0]
    np.testing.assert_allclose(  # the logged loss holds the weighted term
        history["loss"][1],
        history["reconstruction"][1] + history["kl"][1] + 10.0 * history["neighbour"][1],
        rtol=1e-4)
    path = tmp_path / "vae.keras"
    save_model(model, path)
    loaded = load_model(path)
    assert (loaded.config.neighbour_weight, loaded.config.neighbour_scale,
            loaded.config.neighbours) == (10.0, 0.5, 5)
    np.testing.assert_allclose(loaded.encode(x_test[:8]), model.encode(x_test[:8]))


def test_the_term_is_refused_where_it_cannot_work():
    with pytest.raises(ValueError, match="neighbour_weight trains a vae, ae, m2 model on pairs"):
        ModelConfig(kind="cvae", neighbour_weight=1.0)
    with pytest.raises(ValueError, match="neighbour_scale must be a positive number"):
        ModelConfig(neighbour_scale=-1.0)
    with pytest.raises(ValueError, match="neighbours must be"):
        ModelConfig(neighbours=0)
    # A kernel width with no term to use it was silently ignored.
    with pytest.raises(ValueError, match="m2 model learns its partners' labels.*change nothing"):
        ModelConfig(kind="m2", consistency_weight=1.0, neighbour_weight=1.0, neighbour_scale=0.1)
    with pytest.raises(ValueError, match="neighbour_weight is 0: 0.1 would change nothing"):
        ModelConfig(kind="vae", neighbour_scale=0.1)
    assert ModelConfig(kind="vae", neighbour_weight=1.0, neighbour_scale=0.1).neighbour_scale == 0.1
    model = build_model(ModelConfig(kind="ae", neighbour_weight=1.0, **TINY))
    images = line_images(np.linspace(0, 1, 16))
    with pytest.raises(ValueError, match="batch_size must be an even number >= 4"):
        fit_model(model, images, epochs=1, batch_size=5, verbose=0)
