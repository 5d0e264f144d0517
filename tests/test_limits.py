"""Bounded resources: a model, sampler or judge file is checked against the documented limits
(keras_files.LIMITS, MAX_MEMBER_BYTES) before anything is built from it. Tiny models: seconds."""
import json
import zipfile

import pytest

import keras_files
from models import (FAMILIES, ModelConfig, ModelFileError, build_model, load_model, load_sampler,
                    make_sampler, save)
from models.io import check_archive, read_metadata


def rewrite(source, target, edit):
    """Copy the .keras archive ``source`` to ``target`` with ``edit`` applied to its config."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        for name in archive.namelist():
            data = archive.read(name)
            if name == "config.json":
                config = json.loads(data)
                edit(config["config"])
                data = json.dumps(config).encode()
            out.writestr(name, data)
    return target


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    model = build_model(ModelConfig(kind="vae", latent_dim=3, filters=(4, 8), hidden_units=16))
    return save(model, tmp_path_factory.mktemp("limits") / "tiny.keras")


@pytest.mark.parametrize("changes, message", [
    ({"filters": [32, 10_000_000]}, r"filters\[1\] = 10,000,000 is above the limit 1,024"),
    ({"latent_dim": 40_000}, "latent_dim = 40,000 is above the limit 1,024"),
    ({"hidden_units": 10 ** 6}, "hidden_units = 1,000,000 is above the limit 8,192"),
    ({"block_convs": 1000}, "block_convs = 1,000 is above the limit 16"),
    ({"categorical_bins": 10 ** 5}, "categorical_bins = 100,000 is above the limit 256"),
    # Each size within its limit, together far too many parameters.
    ({"filters": [1024, 1024], "hidden_units": 4096},
     "parameter count the config implies = .* above the limit 50,000,000"),
])
def test_a_model_file_asking_for_too_much_is_refused_before_the_build(model_file, tmp_path,
                                                                      changes, message):
    bad = rewrite(model_file, tmp_path / "bad.keras",
                  lambda config: config["config"].update(changes))
    with pytest.raises(ValueError, match=message):
        check_archive(bad)
    with pytest.raises(ValueError, match=message):
        read_metadata(bad)
    with pytest.raises(ModelFileError, match=f"bad.keras cannot be loaded: .*{message}"):
        load_model(bad)
    with pytest.raises(ValueError, match=message):  # --set and code: the same limits
        ModelConfig().replace(**changes)


def test_the_parameter_estimate_bounds_every_family_and_the_shipped_configs():
    for kind in FAMILIES:  # the GAN's estimate too
        config = ModelConfig(kind=kind, latent_dim=3, filters=(4, 8), hidden_units=16,
                             head="categorical", categorical_bins=4, block_convs=1)
        model = build_model(config)
        assert sum(w.size for w in model.network_weights()) <= config.parameter_count()
    wide = ModelConfig(kind="m2", latent_dim=3, filters=(4, 8), hidden_units=0,
                       classifier_filters=(8, 16), classifier_hidden_units=32,
                       classifier_block_convs=2)
    assert sum(w.size for w in build_model(wide).network_weights()) <= wide.parameter_count()
    # the classifier's extra convolutions are counted exactly
    plain = wide.replace(classifier_block_convs=0)
    assert (wide.parameter_count() - plain.parameter_count()
            == build_model(wide).mono_classifier.count_params()
            - build_model(plain).mono_classifier.count_params())
    # The largest shipped model (vae_mono_complete) is far inside the limit.
    shipped = ModelConfig(kind="vae", latent_dim=8, filters=(32, 64), hidden_units=256,
                          block_convs=1)
    assert shipped.parameter_count() < keras_files.LIMITS["parameters"] / 10


@pytest.mark.parametrize("kind, changes, message", [
    ("fitted", {"latent_dim": 40_000}, "latent_dim = 40,000 is above the limit 1,024"),
    ("gmm", {"components": 10 ** 6}, "components = 1,000,000 is above the limit 1,024"),
    ("flow", {"hidden_units": 10 ** 5}, "hidden_units = 100,000 is above the limit 8,192"),
    ("flow", {"layers": 10 ** 4}, "layers = 10,000 is above the limit 64"),
    ("gmm", {"latent_dim": 1000, "components": 100},
     "parameter count the sampler's sizes imply = .* above the limit 50,000,000"),
])
def test_a_sampler_file_asking_for_too_much_is_refused_before_the_build(tmp_path, kind, changes,
                                                                        message):
    sampler = make_sampler(kind, latent_dim=2, **({"layers": 1, "hidden_units": 4}
                                                  if kind == "flow" else {}))
    good = save(sampler, tmp_path / "good.keras")
    bad = rewrite(good, tmp_path / "bad.keras", lambda config: config.update(changes))
    with pytest.raises(ModelFileError, match=f"bad.keras cannot be loaded: .*{message}"):
        load_sampler(bad)
    with pytest.raises(ValueError, match=message):
        make_sampler(kind, **{"latent_dim": 2, **changes})


def test_archive_members_may_not_inflate_beyond_their_limit(model_file, tmp_path,
                                                            monkeypatch):
    # A member that deflates well: 1 MB of zeros in 1 kB. The limits are lowered to keep the
    # test small; the shipped limits are 256 MB for the weights and 1 MB for the config.
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(model_file) as archive, \
            zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for name in archive.namelist():
            data = archive.read(name)
            out.writestr(name, data if name != "metadata.json" else data + b" " * 2 ** 20)
    assert bomb.stat().st_size < 2 ** 20
    with pytest.raises(ModelFileError, match=r"metadata.json inflates to 1,048,6\d\d bytes, "
                                             r"above the limit 65,536"):
        load_model(bomb)
    monkeypatch.setitem(keras_files.MAX_MEMBER_BYTES, "model.weights.h5", 10_000)
    with pytest.raises(ValueError, match="model.weights.h5 inflates to .* above the limit 10,000"):
        keras_files.read_config(model_file)


def test_the_shipped_files_are_within_the_limits():
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[1] / "saved_models").glob("*.keras")):
        if path.name in ("verification_net.keras", "fashion_net.keras"):
            keras_files.read_config(path)  # the judges: their own architecture, tested there
        else:
            check_archive(path)
