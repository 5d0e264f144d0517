"""Latent tools: paths, grids, per-dimension statistics, probes; the vae_latent script."""
import importlib
import json

import numpy as np
import pytest
from scipy.stats import norm

from models import ModelConfig, build_model
from models.latent import (activity, interpolate, kl_per_dimension, normal_grid, pca_2d,
                           probe_accuracies, traverse, tsne_2d)



def test_constant_grid_units_are_the_dead_ones():
    from experiments.vae_latent import constant_grid_share

    model = build_model(ModelConfig(kind="vae", latent_dim=2, filters=(4, 8), hidden_units=0),
                        seed=0)
    codes = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    # Zero biases: each unit's ReLU(w . z) is positive on half the codes, none is constant.
    assert constant_grid_share(model, codes) == 0.0
    grid = [layer for layer in model.mono_decoder.layers if layer.name.startswith("dense")][-1]
    kernel, bias = grid.get_weights()
    kernel[:, :49], bias[:49] = 0.0, -1.0  # 49 of the 7 x 7 x 8 units: ReLU(-1) = 0, dead
    grid.set_weights([kernel, bias])
    assert constant_grid_share(model, codes) == 49 / (7 * 7 * 8)


@pytest.mark.parametrize("path", ["linear", "spherical"])
def test_interpolation_endpoints_are_the_endpoints_decodings(path):
    model = build_model(ModelConfig(kind="vae", latent_dim=3, filters=(4, 8), hidden_units=16),
                        seed=0)
    a, b = np.array([1.0, -2.0, 0.5]), np.array([-0.3, 0.7, 2.0])
    z = interpolate(a, b, steps=10, path=path)
    assert z.shape == (10, 3)
    np.testing.assert_allclose(z[0], a, atol=1e-6)
    np.testing.assert_allclose(z[-1], b, atol=1e-6)
    images = model.decode_images(z)
    np.testing.assert_allclose(images[[0, -1]], model.decode_images(np.stack([a, b])),
                               atol=1e-6)
    if path == "spherical":  # the norm moves linearly from |a| to |b|
        np.testing.assert_allclose(np.linalg.norm(z, axis=1),
                                   np.linspace(np.linalg.norm(a), np.linalg.norm(b), 10),
                                   rtol=1e-5)
    with pytest.raises(ValueError, match="path"):
        interpolate(a, b, path="cubic")
    with pytest.raises(ValueError, match="one shape"):
        interpolate(a, b[:2])


def test_traversal_grid_and_statistics():
    codes = traverse(np.array([0.5, -1.0]), [-3, 0, 3])
    assert codes.shape == (2, 3, 2)
    np.testing.assert_array_equal(codes[0, :, 0], [-3, 0, 3])
    np.testing.assert_array_equal(codes[0, :, 1], -1.0)  # the other dimension stays
    grid = normal_grid(4)
    assert grid.shape == (4, 4, 2)
    np.testing.assert_allclose(grid[0, :, 0], norm.ppf((np.arange(4) + 0.5) / 4), rtol=1e-6)
    assert grid[0, 0, 1] > grid[-1, 0, 1]  # the top row is up
    means = np.stack([np.random.default_rng(0).normal(size=1000), np.full(1000, 0.3)], axis=1)
    variance, active = activity(means)
    assert active.tolist() == [True, False] and variance[1] < 1e-12
    # KL(N(m, s^2) || N(0, 1)) in closed form, and 0 for the prior itself.
    np.testing.assert_allclose(kl_per_dimension([[0.0, 1.0]], [[1.0, 2.0]]),
                               [0.0, 0.5 * (4 + 1 - 1) - np.log(2)])


def test_probes_separate_separable_codes_and_not_noise():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 600)
    centres = rng.normal(scale=5, size=(10, 4))
    codes = centres[labels] + rng.normal(size=(600, 4))
    good = probe_accuracies(codes[:400], labels[:400], codes[400:], labels[400:])
    noise = probe_accuracies(rng.normal(size=(400, 4)), labels[:400], rng.normal(size=(200, 4)),
                             labels[400:])
    assert good["linear_probe_accuracy"] > 0.9 and good["knn5_accuracy"] > 0.9
    assert noise["linear_probe_accuracy"] < 0.3 and noise["knn5_accuracy"] < 0.3
    (train_2d, test_2d), explained = pca_2d(codes[:400], codes[400:])
    assert train_2d.shape == (400, 2) and test_2d.shape == (200, 2)
    assert 0 < explained.sum() <= 1


@pytest.mark.slow
def test_vae_latent_quick_run(mnist_dir, verifier, tmp_path):
    common = importlib.import_module("experiments.runs")
    common._CACHE.clear()
    out = tmp_path / "vae_latent"
    path = importlib.import_module("experiments.vae_latent").main(["--quick", "--out", str(out)])
    metrics = json.loads(path.read_text())
    assert set(metrics["section_seconds"]) == {"2d", "maps", "maps_2d", "interpolate",
                                               "traverse"}
    for name in ("vae_2d", "vae_8d"):
        assert 0 <= metrics["latent_2d"][name]["reconstruction_accuracy"] <= 1
    assert 0 <= metrics["latent_2d"]["vae_2d"]["constant_grid_units"] <= 1
    assert set(metrics["maps"]) == {"vae_8d", "ae", "vae_2d", "pixels", "pixels_pca_2d"}
    maps_2d = metrics["maps_2d"]
    assert maps_2d["train_images"] == maps_2d["test_images"] == 100  # --quick's t-SNE points
    for name in ("ae_2d", "vae_2d", "pixels_pca_2d", "pixels_tsne_2d"):
        assert 0 <= maps_2d[name]["knn5_accuracy"] <= 1
        assert 0 <= maps_2d[name]["linear_probe_accuracy"] <= 1
    assert metrics["interpolate"]["pairs"] == 20
    assert len(metrics["traverse"]["active"]) == 8
    for figure in ("latent_2d_scatter", "latent_2d_manifold", "vae_8d_pca", "vae_8d_tsne",
                   "ae_tsne", "latent_maps_2d", "interpolation", "traversal"):
        assert (out / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"
    common._CACHE.clear()


NAN3 = np.array([0.0, np.nan, 1.0])


@pytest.mark.parametrize("call, message", [
    (lambda: interpolate(NAN3, np.zeros(3)), "z_start contains NaN"),
    (lambda: interpolate(np.zeros(3), np.full(3, np.inf)), "z_end contains NaN or infinite"),
    (lambda: traverse(np.zeros(3), [np.nan, 1.0]), "values contains NaN"),
    (lambda: traverse(np.zeros(3), []), "values needs at least 1"),
    (lambda: activity(np.full((5, 3), np.nan)), "means contains NaN"),
    (lambda: activity(np.zeros((0, 3))), "means needs at least 1"),
    (lambda: kl_per_dimension(np.zeros((5, 3)), np.zeros((5, 3))), "scales must be positive"),
    (lambda: kl_per_dimension(np.zeros((5, 3)), -np.ones((5, 3))), "scales must be positive"),
    (lambda: kl_per_dimension(np.zeros((5, 3)), np.ones((4, 3))), "shape of means"),
    (lambda: pca_2d(np.full((5, 3), np.nan)), "train_codes contains NaN"),
    (lambda: tsne_2d(np.zeros((4, 3))), "same point"),
    (lambda: tsne_2d(np.zeros((1, 3))), "at least 2"),
    (lambda: probe_accuracies(np.zeros((6, 2)), np.arange(5), np.zeros((2, 2)), np.arange(2)),
     "train_labels must hold one label per code"),
])
def test_latent_tools_refuse_nan_empty_and_degenerate_input(call, message):
    """NaN in gave NaN out; two identical codes crashed the interpreter inside t-SNE."""
    with pytest.raises(ValueError, match=message):
        call()
