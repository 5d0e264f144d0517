"""Every experiment script runs end to end with --quick and writes sensible outputs."""
import dataclasses
import hashlib
import importlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import evaluation
import named_data
from experiments import cli, grading, runs
from models import SAMPLERS, ModelConfig, ModelFileError, build_model, load_model, load_sampler
from models import save_model, zoo

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BASIC = {"reconstruction_predictability", "reconstruction_accuracy", "judged_image",
         "test_reconstruction_nll_nats"}
GEN = {"quality_predictability", "coverage", "kl_class_frequencies_to_uniform_nats",
       "latent_distribution", "samples_file", "judged_image", "judged_image_precision",
       "real_test_images_quality_predictability", "real_test_images_coverage"}
ANOM = {"roc_auc", "pr_auc", "default_score", "scores", "top_k_share_of_8s"}
EXPECTED = {
    "ae_basic": (BASIC, ["reconstructions.png"]),
    "vae_basic": (BASIC | {"test_neg_elbo_nats", "test_kl_nats"}, ["reconstructions.png"]),
    "ae_gen": (GEN, ["generated.png", "generated_class_frequencies.png", "samples.npz"]),
    "vae_gen": (GEN, ["generated.png", "generated_class_frequencies.png", "samples.npz"]),
    "ae_anom": (ANOM, ["anomaly_curves.png", "top_anomalies.png"]),
    "vae_anom": (ANOM | {"mean_log_px_nats"}, ["anomaly_curves.png", "top_anomalies.png"]),
}


@pytest.fixture(autouse=True)
def fresh_run_cache(mnist_dir, verifier):
    """Each script starts as in a new process (runs caches data and models per run)."""
    runs._CACHE.clear()
    yield
    runs._CACHE.clear()


def run(row, tmp_path, *flags):
    out = tmp_path / row
    path = importlib.import_module(f"experiments.{row}").main(
        ["--quick", "--out", str(out), *flags])
    assert path == out / "metrics.json"
    metrics = json.loads(path.read_text())
    assert metrics["row"] == row and metrics["quick"] is True
    assert metrics["command"].startswith(f"python experiments/{row}.py --quick")
    return out, metrics


def check_section(metrics, keys, channels):
    assert keys <= set(metrics), keys - set(metrics)
    for key in ("reconstruction_predictability", "reconstruction_accuracy",
                "quality_predictability", "coverage", "roc_auc", "pr_auc"):
        if key in metrics:
            assert 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    if "coverage" in metrics:
        assert metrics["classes_covered"] == round(metrics["coverage"] * 10 ** channels)
        assert metrics["kl_class_frequencies_to_uniform_nats"] >= 0.0
    if "scores" in metrics:
        assert metrics["default_score"] in metrics["scores"]
        for result in metrics["scores"].values():
            assert 0.0 <= result["roc_auc"] <= 1.0 and 0.0 <= result["youden_fpr"] <= 1.0
    if "model" in metrics:
        assert metrics["model"]["quick"] is True  # --quick never touches saved_models/


def check_files(out, names, prefix=""):
    for name in names:
        data = (out / f"{prefix}{name}").read_bytes()
        if name.endswith(".png"):
            assert data[:8] == PNG_MAGIC, name


@pytest.mark.slow
@pytest.mark.parametrize("row", sorted(EXPECTED))
def test_mono_rows(row, tmp_path):
    keys, files = EXPECTED[row]
    out, metrics = run(row, tmp_path)
    check_section(metrics, keys, channels=1)
    check_files(out, files)
    if row.endswith("gen"):
        images = np.load(out / "samples.npz")["images"]
        assert images.shape[1:] == (28, 28, 1) and len(images) == metrics["samples"]
        assert images.min() >= 0.0 and images.max() <= 1.0
        np.testing.assert_allclose(images * 255, np.round(images * 255), atol=1e-3)  # 8-bit
    if row == "vae_anom":
        assert set(metrics["scores"]) == {"reconstruction_nll", "neg_elbo", "neg_iwae",
                                          "neg_prior_mc"}


@pytest.mark.slow
def test_the_rows_run_on_fashion_mnist_with_its_own_judge_and_models(tmp_path):
    fashion = named_data.get("fashion_mnist")
    out, basic = run("vae_basic", tmp_path, "--dataset", "fashion_mnist")
    assert basic["data"] == "FASHION_MNIST_FLOAT_COMPLETE" and basic["model"]["quick"]
    assert basic["tolerance"] == fashion.tolerance
    assert basic["original_test_images_accuracy"] > 0.6  # the Fashion judge on real garments
    x_test = np.asarray(fashion.load()[2])
    assert 0 < x_test.mean() < 1 and len(np.unique(x_test)) > 2  # grey levels
    out, gen = run("vae_gen", tmp_path, "--dataset", "fashion_mnist", "--latent", "flow")
    check_section(gen, GEN, channels=1)
    assert gen["real_test_images_coverage"] == 1.0
    assert gen["latent_flow"]["fitted_on"] == "FASHION_MNIST_FLOAT_COMPLETE"
    out, anom = run("vae_anom", tmp_path, "--dataset", "fashion_mnist")
    assert anom["anomaly"] == "test image contains a bag" and "top_k_share_of_Bags" in anom
    check_files(out, ["anomaly_curves.png", "top_anomalies.png"])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ae", "vae"])  # the families with grading rows
def test_stack_rows(kind, tmp_path):
    out, metrics = run(f"{kind}_stack", tmp_path, "--samples", "300")
    for section in ("basic", "gen", "anom"):
        check_section(metrics[section], EXPECTED[f"{kind}_{section}"][0], channels=3)
        check_files(out, EXPECTED[f"{kind}_{section}"][1], prefix="color_")
    assert metrics["basic"]["tolerance"] == 0.5
    seconds = metrics["section_seconds"]
    assert set(seconds) == {"basic", "gen", "anom"}
    # each figure is rounded to 0.1 s, so each may be up to 0.05 s above its true value
    assert 0 < sum(seconds.values()) <= metrics["wall_seconds"] + 0.05 * (len(seconds) + 1) + 1e-9
    assert np.load(out / "color_samples.npz")["images"].shape == (300, 28, 28, 3)
    assert metrics["anom"]["anomaly"].endswith("in any channel")
    scores = metrics["anom"]["scores"]
    assert metrics["anom"]["default_score"].startswith("max_channel_")
    assert set(scores) == {prefix + name for name in scores if not name.startswith("max_channel_")
                           for prefix in ("", "max_channel_")}


@pytest.mark.slow
def test_ae_generation_offers_every_latent_distribution(tmp_path):
    starts = {"fitted": "Gaussian fitted", "standard": "standard normal",
              "gmm": "Gaussian mixture", "flow": "masked autoregressive flow",
              "diffusion": "denoising diffusion model"}
    assert set(starts) == set(SAMPLERS)  # the choices are the sampler registry
    for latent, start in starts.items():  # one output folder: the quick AE is trained once
        _, metrics = run("ae_gen", tmp_path, "--latent", latent)
        assert metrics["latent_distribution"].startswith(start)
        for kind in zoo.EX_POST_KINDS:  # the ex-post samplers beside the model
            assert (f"latent_{kind}" in metrics) == (latent == kind)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["flow", "diffusion", "gmm"])
def test_vae_generation_from_an_ex_post_sampler(kind, tmp_path):
    out, metrics = run("vae_gen", tmp_path, "--latent", kind)
    check_section(metrics, EXPECTED["vae_gen"][0], channels=1)
    sampler = metrics[f"latent_{kind}"]
    assert sampler["codes"].startswith("z ~ q(z|x)") and sampler["epochs"] == 2
    model_file = Path(metrics["model"]["model_file"])
    assert Path(sampler[f"{kind}_file"]) == model_file.with_name(f"{model_file.stem}.{kind}.keras")
    assert sampler["model_sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    if kind == "gmm":  # a quick run's mixture is small; colder samples from the same file
        assert sampler["components"] == zoo.QUICK_GMM_COMPONENTS
        _, cold = run("vae_gen", tmp_path, "--latent", kind, "--temperature", "0.5")
        assert cold["latent_distribution"].endswith("temperature 0.5")
        assert cold["latent_gmm"]["model_sha256"] == sampler["model_sha256"]  # reused
        assert not metrics["latent_distribution"].endswith("temperature 1")
    with pytest.raises(SystemExit):  # the choices are the registered samplers
        run("vae_gen", tmp_path, "--latent", "maf")


def tiny_vae_run(out, folder):
    """``(args, model, info)``: a --quick vae_gen command line writing to ``out`` and a tiny
    VAE saved as ``folder``/m.keras, as a row sees them (for ``runs.get_latent_sampler``)."""
    args, _ = cli.parse_args("doc", "vae_gen", "vae", ["--quick", "--out", str(out)])
    model = build_model(ModelConfig(kind="vae", latent_dim=2, filters=(4, 8), hidden_units=0))
    path = save_model(model, Path(folder) / "m.keras")
    return args, model, {"model_file": str(path), "trained_on": "MONO_BINARY_COMPLETE"}


@pytest.mark.slow
def test_a_latent_sampler_is_reused_only_for_its_own_weights(tmp_path, capsys):
    """What a run does with the file beside the model, the same for every ex-post kind (the
    mixture here, the quickest to fit; every kind's file: the generation tests above)."""
    args, model, info = tiny_vae_run(tmp_path, tmp_path)
    path, mnist = Path(info["model_file"]), named_data.get("mnist")
    _, first = runs.get_latent_sampler(args, model, info, mnist, "gmm")
    assert "fitting the latent gmm" in capsys.readouterr().out
    _, again = runs.get_latent_sampler(args, model, info, mnist, "gmm")
    assert "loaded" in capsys.readouterr().out
    assert again["model_sha256"] == first["model_sha256"]
    save_model(model, path, {"retrained": True})  # another file: the mixture is fitted again
    _, refitted = runs.get_latent_sampler(args, model, info, mnist, "gmm")
    assert "fitted to other weights" in capsys.readouterr().out
    assert refitted["model_sha256"] != first["model_sha256"]
    sampler_path = tmp_path / "m.gmm.keras"
    sampler_path.write_bytes(sampler_path.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="m.gmm.keras.*Delete it to fit the gmm") as error:
        runs.get_latent_sampler(args, model, info, mnist, "gmm")
    assert "git checkout" not in str(error.value)  # not a shipped file: nothing to restore


@pytest.mark.slow
def test_a_run_fits_a_shipped_model_s_missing_sampler_into_runs_not_saved_models(
        tmp_path, monkeypatch, capsys):
    """Only train_all.py --ship writes saved_models/: `vae_gen.py --latent gmm` on a shipped
    model without a mixture keeps the one it fits in runs/samplers/, and the next run loads
    it from there."""
    shipped, cache = tmp_path / "saved_models", tmp_path / "runs"
    monkeypatch.setattr(zoo, "SAVED_MODELS", shipped)
    monkeypatch.setattr(zoo, "RUNS", cache)
    args, model, info = tiny_vae_run(tmp_path, shipped)
    _, first = runs.get_latent_sampler(args, model, info, named_data.get("mnist"), "gmm")
    assert [p.name for p in shipped.iterdir()] == ["m.keras"]
    assert Path(first["gmm_file"]) == cache / "samplers" / "m.gmm.keras"
    _, again = runs.get_latent_sampler(args, model, info, named_data.get("mnist"), "gmm")
    assert f"loaded {cache / 'samplers' / 'm.gmm.keras'}" in capsys.readouterr().out
    assert again["model_sha256"] == first["model_sha256"]
    (shipped / "m.gmm.keras").write_bytes(b"damaged")  # a shipped file: restore it from git
    with pytest.raises(ModelFileError, match="m.gmm.keras.*git checkout -- saved_models/"):
        runs.get_latent_sampler(args, model, info, named_data.get("mnist"), "gmm")


def test_a_flow_and_a_mixture_take_their_sizes_from_the_model_s_recipe(monkeypatch):
    model = build_model(ModelConfig(kind="vae", latent_dim=2, filters=(4, 8), hidden_units=0))
    model.metadata["recipe"] = "vae_fashion_complete"
    monkeypatch.setitem(zoo.SHIPPED, "vae_fashion_complete", dataclasses.replace(
        zoo.recipe("vae_fashion_complete"), flow_hidden_units=8, flow_epochs=1,
        gmm_components=3))
    x = (np.random.default_rng(0).random((64, 28, 28, 1)) > 0.5).astype(np.float32)
    flow = zoo.fit_sampler(model, x, verbose=0)
    assert (flow.hidden_units, flow.metadata["epochs"], len(flow.history["loss"])) == (8, 1, 1)
    assert zoo.fit_sampler(model, x, epochs=2, verbose=0).metadata["epochs"] == 2  # given: kept
    gmm = zoo.fit_sampler(model, x, x[:32], verbose=0, kind="gmm")
    assert (gmm.components, gmm.metadata["epochs"]) == (3, zoo.GMM_ITERATIONS)
    assert gmm.metadata["codes"] == "z ~ q(z|x), one draw" and "val_nll" in gmm.history
    assert zoo.fit_sampler(model, x, verbose=0, kind="gmm", quick=True).components == \
        zoo.QUICK_GMM_COMPONENTS
    # A model of no shipped recipe gets Recipe's defaults.
    assert zoo.sampler_settings("no_such_recipe") is zoo.Recipe
    assert (zoo.Recipe.flow_hidden_units, zoo.Recipe.flow_epochs) == (256, 20)


def test_bad_flags_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        importlib.import_module("experiments.vae_gen").main(["--quick", "--epochs", "0",
                                                 "--out", str(tmp_path)])
    assert "--epochs: must be an integer from 1 to" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        importlib.import_module("experiments.vae_gen").main(
            ["--head", "poisson", "--out", str(tmp_path)])
    for flags, message in ((["--set", "depth=3"], "unknown model setting 'depth'"),
                           (["--set", "latent_dim"], "KEY=VALUE"),
                           (["--set", "latent_dim=0"], "latent_dim must be"),
                           (["--ship"], "--ship replaces the shipped models"),
                           (["--retrain", "--ship", "--set", "beta=2"], "--ship")):
        with pytest.raises(SystemExit):
            importlib.import_module("experiments.vae_gen").main([*flags, "--out", str(tmp_path)])
        assert message in capsys.readouterr().err


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_set_trains_into_a_run_folder_and_never_touches_saved_models(tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setattr(zoo, "RUNS", tmp_path / "runs")
    shipped = _digests(zoo.SAVED_MODELS)
    flags = ["--set", "latent_dim=2", "hidden_units=0", "filters=[4, 8]", "--epochs", "1"]
    args, _ = cli.parse_args("doc", "vae_gen", "vae", flags)
    assert args.run_dir == tmp_path / "runs" / "vae-filters=_4,_8_-hidden_units=0-latent_dim=2"
    assert args.out == args.run_dir / "vae_gen"
    x = (np.random.default_rng(0).random((64, 28, 28, 1)) > 0.5).astype(np.float32)
    model, info = runs.get_model(args, named_data.get("mnist"), False, x, x[:16])
    assert model.config.latent_dim == 2 and info["epochs"] == 1 and info["settings"]
    saved = args.run_dir / "vae_mono_complete.keras"
    assert info["model_file"] == str(saved)
    assert json.loads(saved.with_suffix(".json").read_text())["config"]["latent_dim"] == 2
    assert "--set latent_dim=2" in (args.run_dir / "commands.txt").read_text()
    assert "training vae_mono_complete" in capsys.readouterr().out
    # The same command again reuses the run's model; the colour row loads its mono file.
    runs._CACHE.clear()
    again, _ = runs.get_model(cli.parse_args("doc", "vae_gen", "vae", flags)[0],
                              named_data.get("stacked_mnist"), False, x, x[:16])
    assert "loaded" in capsys.readouterr().out and again.config.channels == 3
    np.testing.assert_array_equal(again.network_weights()[0], model.network_weights()[0])
    assert _digests(zoo.SAVED_MODELS) == shipped


def test_run_all_keeps_rows_it_did_not_run_from_a_run_of_the_same_kind():
    run_all = importlib.import_module("experiments.run_all")
    previous = {"vae_gen": {"quick": False, "coverage": 1.0},
                "ae_basic": {"quick": False, "coverage": 0.5},
                "ae_gen": {"quick": True, "coverage": 0.1}}
    fresh = {"vae_basic": {"quick": False}, "vae_gen": {"quick": False, "coverage": 0.9}}
    merged = run_all.combined_metrics(previous, fresh, quick=False)
    assert list(merged) == ["ae_basic", "vae_basic", "vae_gen"]  # table order, no quick row
    assert merged["vae_gen"]["coverage"] == 0.9 and merged["ae_basic"]["coverage"] == 0.5
    assert list(run_all.combined_metrics(previous, {}, quick=True)) == ["ae_gen"]


def test_results_table_reports_each_measure_beside_its_target():
    metrics = {
        "vae_basic": {"reconstruction_accuracy": 0.9512, "reconstruction_predictability": 0.98,
                      "original_test_images_accuracy": 0.99, "wall_seconds": 31.4},
        "vae_anom": {"roc_auc": 0.97, "pr_auc": 0.8, "default_score": "neg_iwae",
                     "wall_seconds": 60.0},
    }
    lines = grading.results_table(metrics).splitlines()
    assert len(lines) == 2 + 2 + 1  # header, the two rows, wall times
    assert lines[2].startswith("| VAE-BASIC |")
    assert "| 95.1% / 98.0% | 99.0% | >= 95% |" in lines[2]  # beside real images' figure
    assert "(score: neg_iwae) | 0.970 / 0.800 |  | >= 0.95 |" in lines[3]
    assert "vae_basic 31 s, vae_anom 60 s" in lines[4]
    fashion = grading.results_table(metrics, named_data.get("fashion_mnist")).splitlines()
    assert f"tol {named_data.get('fashion_mnist').tolerance:g} |" in fashion[2]
    assert "| >= 95% of real | `python experiments/vae_basic.py --dataset fashion_mnist` |" \
        in fashion[2]
    assert "for the bags" in fashion[3] and "| reported |" in fashion[3]


@pytest.mark.slow
def test_train_all_quick_trains_into_a_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(zoo, "RUNS", tmp_path / "runs")
    monkeypatch.setitem(zoo.SHIPPED, "ae_mono_complete",  # a recipe's seed is the default
                        dataclasses.replace(zoo.SHIPPED["ae_mono_complete"], seed=3))
    shipped = _digests(zoo.SAVED_MODELS)
    importlib.import_module("experiments.train_all").main(["--quick", "--only", "ae_mono_complete"])
    run = tmp_path / "runs" / "train_all-quick"
    model = load_model(run / "ae_mono_complete.keras")
    assert model.metadata["epochs"] == 1 and model.metadata["train_images"] == 512
    assert model.metadata["seed"] == 3
    flow = load_sampler(run / "ae_mono_complete.flow.keras")
    assert flow.metadata["model_sha256"] == hashlib.sha256(
        (run / "ae_mono_complete.keras").read_bytes()).hexdigest()
    assert not (run / "ae_mono_complete.backup").exists()  # removed once the model is saved
    # The samplers alone, fitted again to the trained file: the model stays as it was.
    model_digest = hashlib.sha256((run / "ae_mono_complete.keras").read_bytes()).hexdigest()
    (run / "ae_mono_complete.flow.keras").unlink()
    importlib.import_module("experiments.train_all").main(
        ["--quick", "--only", "ae_mono_complete", "--samplers-only"])
    assert load_sampler(run / "ae_mono_complete.flow.keras").metadata["model_sha256"] == \
        model_digest == hashlib.sha256((run / "ae_mono_complete.keras").read_bytes()).hexdigest()
    assert _digests(zoo.SAVED_MODELS) == shipped
    capsys.readouterr()
    for flags, message in ((["--only", "vae_mono_complete"], "vae_mono_complete.keras is "
                            "missing: train it first"),  # nothing trained to fit to
                           (["--epochs", "3"], "--epochs would change nothing")):
        with pytest.raises(SystemExit):  # refused before any work
            importlib.import_module("experiments.train_all").main(
                ["--quick", "--samplers-only", *flags])
        assert message in capsys.readouterr().err


def test_a_known_error_ends_a_script_with_one_line_and_status_2(capsys):
    def broken():
        raise ValueError("images must have shape (N, 28, 28, 1)")

    with pytest.raises(SystemExit) as stop:
        cli.run_script(broken)
    assert stop.value.code == 2
    assert capsys.readouterr().err == "error: images must have shape (N, 28, 28, 1)\n"


@pytest.mark.parametrize("script", ["vae_beta", "vae_loglik", "vae_latent", "anomaly_loo",
                                    "anomaly_thresholds", "finetune", "tune",
                                    "generators", "semisupervised", "mode_collapse"])
def test_scripts_that_evaluate_shipped_models_offer_no_training_flags(script, capsys):
    for flag in (["--set", "beta=2"], ["--retrain"], ["--epochs", "3"], ["--head", "beta"]):
        with pytest.raises(SystemExit):
            importlib.import_module(f"experiments.{script}").main(flag)
        assert f"unrecognized arguments: {flag[0]}" in capsys.readouterr().err


def test_family_choices_come_from_the_registry_and_learned_prior_is_an_alias(tmp_path):
    families = ("vae", "flowprior_vae")
    out = ["--out", str(tmp_path)]
    run, _ = cli.parse_args("doc", "vae_gen", "vae", ["--learned-prior", *out], families=families)
    same, _ = cli.parse_args("doc", "vae_gen", "vae", ["--family", "flowprior_vae", *out],
                             families=families)
    assert run.family == same.family == "flowprior_vae"
    with pytest.raises(SystemExit):
        cli.parse_args("doc", "vae_gen", "vae", ["--family", "gan", *out], families=families)
    stacked, options = cli.parse_args(
        "doc", "vae_gen", "vae", ["--dataset", "stacked_mnist", *out],
        extra=lambda parser: parser.add_argument("--samples", type=cli.count, default=7))
    assert stacked.dataset.channels == 3
    assert options.samples == 7 and not hasattr(options, "seed")  # only the script's own
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.samples = 8
    mnist, stacked_mnist = named_data.get("mnist"), named_data.get("stacked_mnist")
    assert cli.output_name("vae_gen", "vae", "vae", mnist, "mnist") == "vae_gen"
    assert cli.output_name("vae_gen", "flowprior_vae", "vae", mnist,
                           "mnist") == "vae_gen-learned_prior"
    assert cli.output_name("vae_gen", "cvae", "vae", stacked_mnist,
                           "mnist") == "vae_gen-cvae-stacked_mnist"
    assert cli.output_name("vae_gen", "vae", "vae", mnist, "mnist",
                           latent="flow") == "vae_gen-latent_flow"


def test_every_recipe_names_its_data_set_and_held_out_class(mnist_dir):
    training_set = zoo.training_set
    for name, recipe in zoo.SHIPPED.items():
        assert recipe.dataset in named_data.DATASETS, name
        assert recipe.missing == (recipe.held_out is not None)
        entry = training_set(recipe)
        assert entry.data_name(recipe.missing) == recipe.data or "_WITHOUT_" in recipe.data
    without_3 = training_set(zoo.recipe(zoo.loo_name(3, "fashion")))
    assert without_3.name == "fashion_mnist" and without_3.anomaly_class == 3
    _, y_train, _, y_test = without_3.load(missing=True)
    assert 3 not in y_train and 3 in y_test and set(range(10)) - {3} <= set(y_train)
    assert training_set(zoo.recipe("vae_mono_missing")) == named_data.get("mnist")
    grey = training_set(zoo.recipe("acgan_mono_complete"))  # a recipe's own choice of images
    assert not grey.binary and grey.data_name() == "MONO_FLOAT_COMPLETE"
    stacks = training_set(zoo.recipe("gan_stacked_pack2_complete"))  # the VEEGAN protocol's
    assert stacks.channels == 3 and stacks.train_stacks == 128_000 and not stacks.binary
    assert set(zoo.names("fashion_mnist")) < set(zoo.SHIPPED)


def test_every_shipped_file_was_trained_by_its_recipe():
    """A recipe changed without training it again (or a file trained by another one) shows
    here: each file's config and training data are its recipe's."""
    from models.io import read_metadata

    for name, recipe in zoo.SHIPPED.items():
        path = zoo.path(name)
        assert path.is_file(), f"{name}: no {zoo.shown_path(path)}; {zoo.restore_hint(name)}"
        values, metadata = read_metadata(path)
        assert ModelConfig.from_dict(values) == recipe.config, name
        assert metadata["trained_on"] == recipe.data, name
        assert metadata["seed"] == recipe.seed, name  # train_all's default reproduces it
        for option in zoo.TRAINING_OPTIONS:
            assert metadata.get(option, 0) == getattr(recipe, option), name
        if recipe.flow:
            flow = load_sampler(zoo.sampler_path(path))
            assert flow.hidden_units == recipe.flow_hidden_units, name
            assert flow.metadata["epochs"] == recipe.flow_epochs, name
            assert flow.metadata["model_sha256"] == zoo.file_digest(path), name
        if recipe.gmm:
            gmm = load_sampler(zoo.sampler_path(path, "gmm"))
            assert gmm.components == recipe.gmm_components, name
            assert gmm.metadata["epochs"] == zoo.GMM_ITERATIONS, name
            assert gmm.metadata["history"]["converged"], name
            assert gmm.metadata["model_sha256"] == zoo.file_digest(path), name


def test_a_row_alias_is_a_recipe_of_the_images_its_name_promises():
    """``zoo.ROW_ALIASES``: a row's model that is another recipe's file is trained on the
    images the row's own name says (Fashion-MNIST without bags for its anomaly rows)."""
    for alias, name in zoo.ROW_ALIASES.items():
        assert alias not in zoo.SHIPPED  # the name of no file of its own
        kind, tag, which = alias.rsplit("_", 2)
        missing = which == "missing"
        assert zoo.shipped_name(kind, missing, tag) == name and zoo.has_recipe(kind, missing, tag)
        recipe = zoo.recipe(name)
        dataset = named_data.get(recipe.dataset)
        assert dataset.model_tag == tag and recipe.config.kind == kind
        assert recipe.held_out == (dataset.anomaly_class if missing else None)
        assert zoo.training_set(recipe) == dataset  # nor binarised otherwise


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(zoo.SHIPPED))
def test_every_shipped_file_loads(name):
    """The files outlive the code that wrote them: each still loads with today's classes (the
    M2 files once did not, after their family gained a training metric)."""
    model = zoo.load(name)
    assert model.config == zoo.recipe(name).config


def test_derived_seeds_are_named():
    assert cli.derive_seed(5, "main") == 5 and cli.derive_seed(5, "style_grid") == 6
    with pytest.raises(ValueError, match="unknown seed stream"):
        cli.derive_seed(5, "elsewhere")


def test_processes_sharing_a_quick_cache_folder_train_each_quick_model_once(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(runs.QUICK_CACHE_ENV, str(tmp_path / "cache"))
    run = SimpleNamespace(settings={}, seed=0, data_dir=None)
    trained = []

    def ask(folder, seed=0):
        monkeypatch.setattr(runs, "_QUICK_FILES", {})  # each time a process of its own
        path = tmp_path / folder / "quick.keras"

        def train():
            model = build_model(ModelConfig(latent_dim=2, filters=(4, 8), hidden_units=0))
            save_model(model, path)
            trained.append(folder)
            return model

        return path, runs._quick(SimpleNamespace(**{**vars(run), "seed": seed}),
                                 ("vae_mono_complete", "MONO_BINARY_COMPLETE"), 1, path, train)

    first, _ = ask("a")
    second, (model, info) = ask("b")
    assert trained == ["a"] and second.read_bytes() == first.read_bytes()
    assert "loaded a copy of" in capsys.readouterr().out
    assert info["model_file"].endswith("b/quick.keras")
    ask("c", seed=1)  # another seed: another model
    assert trained == ["a", "c"] and len(list((tmp_path / "cache").glob("*.keras"))) == 2


@pytest.mark.slow
def test_anomaly_loo_quick_run_on_fashion_mnist(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(runs.QUICK_CACHE_ENV, raising=False)  # this process's own copies only
    out, metrics = run("anomaly_loo", tmp_path, "--dataset", "fashion_mnist", "--classes", "8",
                       "1")
    # Run again in this process: its quick models are copies of those files, not trained again.
    runs._CACHE.clear()
    capsys.readouterr()
    again, second = run("anomaly_loo", tmp_path / "again", "--dataset", "fashion_mnist",
                        "--classes", "8")
    assert "loaded a copy of" in capsys.readouterr().out
    assert second["per_class"]["8"] == metrics["per_class"]["8"]
    name = f"quick_{zoo.loo_name(8, 'fashion')}.keras"
    assert (again / name).read_bytes() == (out / name).read_bytes()
    (out / name).write_bytes(b"replaced since")  # a changed file is never copied: trained again
    runs._CACHE.clear()
    _, third = run("anomaly_loo", tmp_path / "third", "--dataset", "fashion_mnist",
                   "--classes", "8")
    assert "loaded a copy of" not in capsys.readouterr().out
    assert third["per_class"]["8"] == metrics["per_class"]["8"]
    assert list(metrics["per_class"]) == ["1", "8"]
    for result in metrics["per_class"].values():
        assert 0.05 < result["anomaly_share"] < 0.2  # one class of ten, in the quick slice
        for score in ("neg_iwae", "reconstruction_nll"):
            assert 0 <= result[score]["roc_auc"] <= 1 and 0 <= result[score]["pr_auc"] <= 1
    worst = metrics["neg_iwae_roc_auc_worst"]
    assert worst == min(r["neg_iwae"]["roc_auc"] for r in metrics["per_class"].values())
    assert metrics["neg_iwae_roc_auc_worst_class"] in (1, 8)
    table = (out / "table.md").read_text().splitlines()
    assert table[2].startswith("| 1 Trouser |") and table[-1].startswith("| **worst** |")
    check_files(out, ["anomaly_loo.png"])


def test_anomaly_thresholds_quick_run_measures_every_rule_on_every_set(tmp_path):
    out, metrics = run("anomaly_thresholds", tmp_path)
    kinds = ["Fashion-MNIST images", "uniform noise", "blank", "inverted"]
    assert metrics["unseen_kinds"] == kinds and metrics["held_out_class"] == "8"
    assert list(metrics["scores"]) == ["VAE -IWAE", "VAE -ELBO", "VAE reconstruction NLL",
                                       "VAE -IWAE in bits - zlib bits", "AE reconstruction NLL"]
    split = metrics["split"]
    assert split["validation"] + split["test"] == runs.QUICK_TEST_IMAGES
    for label, result in metrics["scores"].items():
        assert list(result["rules"]) == list(evaluation.THRESHOLD_RULES)
        low, high = result["thresholds"]["normal_band"]
        assert low <= high
        for sets in result["rules"].values():
            assert list(sets) == ["validation", "test split", *kinds]
            for name, measures in sets.items():
                assert 0 <= measures["accuracy"] <= 1 and 0 <= measures["recall"] <= 1, name
        # noise is far from anything a model of digits has seen (the complexity correction
        # subtracts what zlib cannot compress: noise, most of all)
        if "zlib" not in label:
            assert result["roc_auc"]["uniform noise"] > 0.9, label
    table = (out / "table.md").read_text().splitlines()
    assert len(table) == 2 + 5 * len(evaluation.THRESHOLD_RULES)
    check_files(out, ["thresholds.png"])


def test_finetune_takes_the_data_set_s_classifier_plan_where_no_flag_is_given():
    from types import SimpleNamespace

    finetune = importlib.import_module("experiments.finetune")

    def plan(dataset, quick=False, **flags):
        opts = SimpleNamespace(**{**dict.fromkeys(("shift", "mirror", "hidden_units", "passes")),
                                  **flags})
        return finetune.dataset_plan(SimpleNamespace(dataset=SimpleNamespace(name=dataset),
                                                     quick=quick), opts)

    fashion = plan("fashion_mnist")
    assert fashion == finetune.CLASSIFIERS["fashion_mnist"]
    assert (fashion.mirror, fashion.hidden_units, fashion.passes) == (True, 256, 30)
    assert fashion.encoders["vae"] in zoo.SHIPPED
    changed = plan("fashion_mnist", quick=True, hidden_units=0, mirror=False, shift=0.0)
    assert (changed.hidden_units, changed.mirror, changed.shift) == (0, False, 0.0)
    assert changed.passes == finetune.QUICK["passes"]  # --quick caps the default as well
    assert plan("mnist") == finetune.ClassifierPlan(shift=0.1, mirror=False, hidden_units=0,
                                                    passes=10)


@pytest.mark.slow
def test_finetune_quick_run_compares_both_starts_on_the_same_labels(tmp_path):
    out, metrics = run("finetune", tmp_path, "--labels", "100", "60000", "1000", "--mirror",
                       "--hidden-units", "16")
    # MNIST's shifts, the head and the views the flags asked for
    assert (metrics["shift"], metrics["mirror"], metrics["hidden_units"]) == (0.1, True, 16)
    # --quick keeps 512 training images: 1,000 and 60,000 labels both mean all of them
    assert list(metrics["results"]) == ["100", str(runs.QUICK_IMAGES)]
    for result in metrics["results"].values():
        assert list(result) == ["fine-tuned", "from scratch"]
        assert result["fine-tuned"]["steps"] == result["from scratch"]["steps"]
        for start in result.values():
            assert 0 <= start["test_accuracy"] <= 1
    assert metrics["results"]["100"]["fine-tuned"]["steps"] == 10  # --quick's --min-steps
    assert (out / "table.md").read_text().count("\n") == 4
    check_files(out, ["finetune.png"])
    with pytest.raises(ValueError, match="multiples of 10"):
        importlib.import_module("experiments.finetune").main(
            ["--quick", "--out", str(tmp_path / "bad"), "--labels", "15"])
    with pytest.raises(ValueError, match="--shift must lie in"):
        importlib.import_module("experiments.finetune").main(
            ["--quick", "--out", str(tmp_path / "bad_shift"), "--shift", "0.5"])


@pytest.mark.slow
def test_tune_quick_run_stores_a_study_that_a_second_run_resumes(tmp_path):
    out, metrics = run("tune", tmp_path)
    assert metrics["trials"] == 2 and metrics["trials_before_this_run"] == 0
    assert metrics["completed"] + metrics["pruned"] + metrics["failed"] == 2
    assert set(metrics["best_knobs"]) == set(metrics["base_recipe_knobs"])
    assert metrics["base_recipe"] == "vae_binarised_complete"
    for label in ("best trial", "vae_binarised_complete"):
        result = metrics["cross_validation"][label]
        assert len(result["folds"]) == 2 and result["mean"] == pytest.approx(
            np.mean(result["folds"]))
    assert (out / "study.db").is_file()
    check_files(out, ["history.png"])
    runs._CACHE.clear()
    again = json.loads(importlib.import_module("experiments.tune").main(
        ["--quick", "--out", str(out), "--folds", "1"]).read_text())
    assert again["trials"] == 2 and again["trials_before_this_run"] == 2  # nothing left to run
    assert again["best_value_nats"] == metrics["best_value_nats"]
    assert again["cross_validation"] == {}


@pytest.mark.slow
def test_generators_quick_run_measures_every_shipped_generator(tmp_path):
    out, metrics = run("generators", tmp_path)
    names = list(metrics["generators"])
    assert names[:4] == ["VAE, N(0, I)", "VAE, fitted Gaussian", "VAE, Gaussian mixture",
                         "VAE, latent flow"]
    assert {"CVAE, balanced labels", "AE, Gaussian mixture"} <= set(names)
    floor = metrics["real_reference"]
    assert floor["frechet_distance"] >= 0 and 0 <= floor["recall"] <= 1
    for result in metrics["generators"].values():
        assert result["frechet_distance"] >= 0
        for key in ("quality", "coverage", "precision", "recall"):
            assert 0 <= result[key] <= 1, key
    assert len((out / "table.md").read_text().splitlines()) == 3 + len(names)
    check_files(out, ["generators.png"])


@pytest.mark.slow
def test_semisupervised_quick_run_measures_both_classifiers_and_the_samples(tmp_path):
    out, metrics = run("semisupervised", tmp_path)
    (name, result), = metrics["models"].items()  # --quick: one model
    assert result["labels_kept"] == zoo.recipe(name).labelled == 100
    for key in ("classifier_accuracy", "generative_classifier_accuracy"):
        assert 0 <= result[key] <= 1
    assert result["generative_classifier_images"] == 50
    assert 0 <= result["generation"]["conditional_accuracy"] <= 1
    table = (out / "table.md").read_text()
    assert "| M2, ours | 100 |" in table and table.count("published") == 3
    check_files(out, ["m2_digits.png"])


@pytest.mark.slow
def test_mode_collapse_quick_run_counts_modes_of_the_stacked_generators(tmp_path):
    out, metrics = run("mode_collapse", tmp_path)
    names = list(metrics["generators"])
    assert names == ["VAE, three mono subnets, N(0, I)", "VAE, one network on stacks, N(0, I)",
                     "GAN on stacks",
                     "GAN on stacks, packing 2 (PacGAN)"]  # no flow to load under --quick
    for result in metrics["generators"].values():
        assert 0 <= result["modes_confident"] <= result["modes"] <= min(1000, 500)
        assert result["kl_to_uniform_nats"] >= 0 and 0 <= result["quality"] <= 1
    assert len((out / "table.md").read_text().splitlines()) == 2 + len(names) + 3
    check_files(out, ["samples.png"])

def test_results_page_links_stay_relative_and_broken_metrics_are_listed(tmp_path):
    from experiments.results_page import write_index

    hostile = tmp_path / "javascript:alert(1)"
    hostile.mkdir()
    (hostile / "metrics.json").write_text(json.dumps({"command": "<script>x</script>"}))
    (hostile / "figure.png").write_bytes(PNG_MAGIC)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metrics.json").write_text("{not json")
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "metrics.json").write_text("[1, 2]")
    (tmp_path / "summary.json").write_text("{truncated")
    page = write_index(tmp_path).read_text()
    assert 'href="javascript' not in page and 'src="javascript' not in page
    assert 'href="./javascript%3Aalert%281%29/metrics.json"' in page
    assert "<script>" not in page
    assert page.count("metrics.json could not be read") == 2  # broken and list
    assert "summary.json could not be read" in page


def test_run_and_output_folders_are_confined(tmp_path, capsys):
    for bad in ("../../somewhere", "/abs/path", "../saved_models", ".hidden", "a/b"):
        with pytest.raises(ValueError, match="folder name under runs/"):
            zoo.run_folder(bad)
        for script, flags in (("train_all", ["--quick"]), ("vae_gen", ["--quick"])):
            with pytest.raises(SystemExit):
                importlib.import_module(f"experiments.{script}").main([*flags, "--run", bad])
            assert "folder name under runs/" in capsys.readouterr().err
    for bad in ("saved_models", str(zoo.SAVED_MODELS / "x"), str(zoo.REPO_ROOT),
                str(zoo.REPO_ROOT / "models")):
        with pytest.raises(SystemExit):
            importlib.import_module("experiments.vae_gen").main(["--quick", "--out", bad])
        assert "code or shipped-model folders" in capsys.readouterr().err


def test_training_setups_that_would_fail_later_are_refused_first(tmp_path, capsys, monkeypatch):
    from models.training import check_tf_config

    for text, match in (("", "needs the cluster"), ("{", "not valid JSON"),
                        ('{"cluster": {}}', '"cluster"'),
                        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", '
                         '"index": 3}}', '"task"')):
        with pytest.raises(ValueError, match=match):
            check_tf_config(text)
    good = '{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 1}}'
    assert check_tf_config(good)["task"]["index"] == 1
    monkeypatch.setenv("TF_CONFIG", "{")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for flags, message in ((["--distribute", "multiworker"], "not valid JSON"),
                           (["--tensorboard", str(a_file)], "is a file"),
                           (["--seed", str(2 ** 32)], "--seed: must be an integer from 0")):
        with pytest.raises(SystemExit):
            importlib.import_module("experiments.train_all").main(["--quick", *flags])
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("script, flags, message", [
    ("vae_gen", ["--dataset", "cifar"], "argument --dataset: invalid choice: 'cifar'"),
    ("vae_gen", ["--samples", "100001"], "--samples 100,001 is above its limit 100,000"),
    ("vae_anom", ["--prior-samples", str(10 ** 12)], "must be an integer from 1 to 1000000"),
    ("cvae", ["--per-digit", "10001"], "--per-digit 10,001 is above its limit"),
    ("cvae", ["--subset-k", "10", "20000"], "--subset-k 20,000 is above its limit"),
    ("vae_inference", ["--masks", "bogus"], "argument --masks: invalid choice"),
    ("vae_loglik", ["--images", "20000"], "--images 20,000 is above its limit 10,000"),
    ("train_all", ["--only", "bogus"], "argument --only: invalid choice"),
    ("train_all", ["--epochs", "20000"], "--epochs 20,000 is above its limit"),
    ("run_all", ["--rows", "bogus"], "argument --rows: invalid choice"),
    ("vae_gen", ["--latent", "diffusion", "--temperature", "nan"], "must be a finite number > 0"),
    ("vae_gen", ["--latent", "flow", "--temperature", "0.9"], "--latent flow has none"),
    ("ae_gen", ["--latent", "fitted", "--temperature", "0.9"], "a gmm or diffusion sampler"),
])
def test_every_flag_refusal_is_one_line_and_nothing_is_written(script, flags, message, capsys,
                                                               tmp_path):
    """argparse printed its usage text (up to 19 lines) above the error; counts had no upper
    bound (--prior-samples 10**12 ran out of memory inside TensorFlow, --per-digit 10**9
    inside numpy)."""
    out = [] if script in ("train_all", "run_all") else ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as stop:
        importlib.import_module(f"experiments.{script}").main([*flags, *out])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out").exists()


def test_library_os_errors_and_warnings_are_one_line_at_the_command_line(capsys):
    """A file where a folder belongs was a NotADirectoryError traceback (train_all --run);
    Python's warnings take two lines (the message and the source line)."""
    def fails():
        raise NotADirectoryError(20, "Not a directory", "results/a_file/x")

    with pytest.raises(SystemExit) as stop:
        cli.run_script(fails)
    assert stop.value.code == 2
    assert capsys.readouterr().err == "error: [Errno 20] Not a directory: 'results/a_file/x'\n"
    warning = cli._one_line_warning("the summary file is damaged;\n  starting over", UserWarning,
                                    "x.py", 1)
    assert warning == "warning: the summary file is damaged; starting over\n"


def test_a_damaged_state_file_is_ignored_with_a_warning(tmp_path):
    """run_all's results/summary.json that was a JSON list failed after every row had run
    (AttributeError), one not in UTF-8 likewise."""
    from atomic_io import read_json_object

    run_all = importlib.import_module("experiments.run_all")
    assert read_json_object(tmp_path / "none.json") is None
    for content in (b"[1, 2]", b"\xff\xfe{", b'{"vae_gen": '):
        (tmp_path / "summary.json").write_bytes(content)
        with pytest.warns(UserWarning, match="cannot be read.*starting over"):
            assert read_json_object(tmp_path / "summary.json") is None
    assert run_all.combined_metrics({"vae_gen": [1], "ae_gen": {"quick": True}}, {},
                                    quick=True) == {"ae_gen": {"quick": True}}


def test_results_page_does_not_read_a_huge_metrics_file(tmp_path, monkeypatch):
    """A metrics.json of gigabytes dropped under results/ was read whole into memory."""
    from experiments import results_page

    monkeypatch.setattr(results_page, "MAX_JSON_BYTES", 100)
    huge = tmp_path / "huge"
    huge.mkdir()
    (huge / "metrics.json").write_text(json.dumps({"command": "x" * 200}))
    (tmp_path / "small").mkdir()
    (tmp_path / "small" / "metrics.json").write_text(json.dumps({"command": "ok"}))
    page = results_page.write_index(tmp_path).read_text()
    assert "metrics.json could not be read (ValueError: 215 bytes, above the limit 100 " in page
    assert "<code>ok</code>" in page
