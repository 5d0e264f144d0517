"""No silent wrong answers: bad input to the library and the scripts fails at once, saying
what to do; damaged models never yield a metric; every training is a function of its seed."""
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from atomic_io import atomic_path
from models import ModelConfig, build_model, make_sampler
from models.likelihood import (elbo, iwae_log_likelihood, posterior_estimates,
                               prior_log_likelihood, reconstruction_nll)

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO_ROOT / "experiments"
TINY = dict(latent_dim=3, filters=(4, 8), hidden_units=16)


def tiny(channels=1, kind="vae"):
    return build_model(ModelConfig(kind=kind, channels=channels, **TINY), seed=0)


def images(n=4, channels=1, seed=0):
    return (np.random.default_rng(seed).random((n, 28, 28, channels)) > 0.5).astype(np.float32)


ESTIMATORS = {
    "encode": lambda m, x: m.encode(x),
    "reconstruct": lambda m, x: m.reconstruct(x),
    "reconstruction_nll": lambda m, x: reconstruction_nll(m, x),
    "prior_log_likelihood": lambda m, x: prior_log_likelihood(m, x, num_samples=10),
    "iwae_log_likelihood": lambda m, x: iwae_log_likelihood(m, x, num_samples=2),
    "elbo": lambda m, x: elbo(m, x),
}
BAD_IMAGES = {
    "0-255 floats": (images() * 255, r"\[0, 1\].*Scale uint8"),
    "uint8": (images().astype(np.uint8) * 255, r"\[0, 1\]"),
    "NaN": (np.full((2, 28, 28, 1), np.nan, np.float32), "NaN"),
    "two channels": (np.zeros((4, 28, 28, 2), np.float32), "shape"),
    "three channels on mono": (np.zeros((4, 28, 28, 3), np.float32), "shape"),
    "empty": (np.zeros((0, 28, 28, 1), np.float32), "no images"),
    "strings": (np.full((1, 28, 28, 1), "a"), "real numbers"),
}


@pytest.mark.parametrize("bad", sorted(BAD_IMAGES))
@pytest.mark.parametrize("entry", sorted(ESTIMATORS))
def test_models_and_estimators_check_their_images(entry, bad):
    x, message = BAD_IMAGES[bad]
    with pytest.raises(ValueError, match=message):
        ESTIMATORS[entry](tiny(), x)


def test_latents_are_checked():
    mono, colour = tiny(), tiny(channels=3)
    assert mono.decode_images(np.zeros((2, 3))).shape == (2, 28, 28, 1)  # (N, d) for mono
    for model, z, message in ((mono, np.zeros((4, 8)), "shape"),
                              (colour, np.zeros((4, 1, 3)), r"\(N, 3, 3\)"),
                              (colour, np.zeros((4, 3)), "shape"),
                              (mono, np.full((2, 1, 3), np.nan), "NaN"),
                              (mono, np.full((2, 1, 3), np.inf), "infinite"),
                              (mono, np.zeros((0, 1, 3)), "no codes")):
        with pytest.raises(ValueError, match=message):
            model.decode_images(z)
    with pytest.raises(ValueError, match="image kind"):
        mono.decode_images(np.zeros((1, 3)), how="median")


def test_counts_and_seeds_are_checked():
    model, x = tiny(), images(2)
    for call, message in (
            (lambda: prior_log_likelihood(model, x, num_samples=0), "num_samples"),
            (lambda: posterior_estimates(model, x, num_samples=-1), "num_samples"),
            (lambda: posterior_estimates(model, x, max_decodes=0), "max_decodes"),
            (lambda: prior_log_likelihood(model, x, sample_chunk=2.5), "sample_chunk"),
            (lambda: model.generate_images(-1), "count"),
            (lambda: model.generate_images(2, seed=-3), "seed"),
            (lambda: model.encode(x, batch_size=0), "batch_size"),
            (lambda: elbo(model, x, seed=-1), "seed"),
            (lambda: make_sampler("standard", 2).sample(-1), "count")):
        with pytest.raises(ValueError, match=message):
            call()


def test_learning_rates_and_traces_are_checked():
    """A NaN learning rate built a model that trained to NaN; a NaN ELBO trace 'never
    converged' (None) instead of failing."""
    from models.inference import steps_to_converge, steps_to_fraction

    config = ModelConfig(kind="vae", **TINY)
    for rate in (float("nan"), 0, -1e-3, float("inf"), "1e-3"):
        with pytest.raises(ValueError, match="learning_rate must be a positive number"):
            build_model(config, learning_rate=rate)
    with pytest.raises(ValueError, match="trace contains NaN"):
        steps_to_converge([np.nan] * 20)
    with pytest.raises(ValueError, match="tolerance must be a positive number"):
        steps_to_converge(np.arange(30.0), tolerance=float("nan"))
    with pytest.raises(ValueError, match="fraction must lie in"):
        steps_to_fraction(np.arange(5.0), fraction=2)
    assert steps_to_converge(np.ones(30)) == 19 and steps_to_fraction(np.arange(5.0)) == 4


def test_non_finite_outputs_are_an_error_never_a_metric():
    model = tiny()
    weights = model.network_weights()
    model.set_network_weights([np.full_like(w, np.nan) for w in weights])
    with pytest.raises(FloatingPointError, match="not finite.*git checkout"):
        model.generate_images(3)
    with pytest.raises(FloatingPointError, match="not finite"):
        model.reconstruct(images(2))


@pytest.mark.slow
def test_training_is_a_function_of_its_seed():
    from models import zoo

    x = images(64)
    first, again, other = (zoo.train("vae_mono_missing", x, epochs=1, seed=seed, verbose=0,
                                     settings=TINY) for seed in (3, 3, 4))
    for a, b in zip(first.network_weights(), again.network_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.network_weights()[0], other.network_weights()[0])


def _run(row, out, *flags, cwd=None):
    """A script in a fresh process, as a user runs it."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, str(EXPERIMENTS / f"{row}.py"), "--quick",
                           "--out", str(out), *flags], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def _without_times(value):
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items()
                if "seconds" not in k and k not in ("command", "model_file", "samples_file")}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


@pytest.mark.slow
def test_two_quick_runs_with_one_seed_give_identical_metrics(mnist_dir, tmp_path):
    # One in a fresh process, one in this process (whatever ran in it before): a seed must
    # fix the numbers whatever the process did before the run.
    done = _run("vae_anom", tmp_path / "a", "--seed", "0")
    assert done.returncode == 0, done.stderr[-2000:]
    runs = importlib.import_module("experiments.runs")
    runs._CACHE.clear()
    importlib.import_module("experiments.vae_anom").main(
        ["--quick", "--out", str(tmp_path / "b"), "--seed", "0"])
    runs._CACHE.clear()
    a, b = (_without_times(json.loads((tmp_path / name / "metrics.json").read_text()))
            for name in ("a", "b"))
    assert a == b


@pytest.mark.slow
def test_relative_out_with_the_flow_is_relative_to_the_current_folder(mnist_dir, tmp_path,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = importlib.import_module("experiments.runs")
    runs._CACHE.clear()
    importlib.import_module("experiments.vae_gen").main(
        ["--quick", "--out", "rel/out", "--latent", "flow"])
    runs._CACHE.clear()
    out = tmp_path / "rel" / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    model_file = out / "quick_model_mono_binary_complete.keras"
    assert Path(metrics["model"]["model_file"]) == model_file
    assert (out / "quick_model_mono_binary_complete.flow.keras").is_file()
    import hashlib
    assert metrics["latent_flow"]["model_sha256"] == hashlib.sha256(
        model_file.read_bytes()).hexdigest()
    assert not list((REPO_ROOT / "saved_models").glob("quick_model*"))


def test_bad_output_folders_are_refused_before_any_work(tmp_path, capsys):
    vae_gen = importlib.import_module("experiments.vae_gen")
    a_file = tmp_path / "file"
    a_file.write_text("")
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o500)
    busy = tmp_path / "busy"
    busy.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (busy / ".run.lock").write_text(str(sleeper.pid))
        cases = ((a_file, "is a file"), (busy, f"another run (process {sleeper.pid})"))
        if os.geteuid() != 0:  # root writes into read-only folders
            cases += ((read_only, "not a writable folder"),)
        for out, message in cases:
            with pytest.raises(SystemExit):
                vae_gen.main(["--quick", "--out", str(out)])
            assert message in capsys.readouterr().err
    finally:
        sleeper.kill()
        sleeper.wait()
    with pytest.raises(SystemExit):
        vae_gen.main(["--quick", "--seed", "-1", "--out", str(tmp_path / "x")])
    assert "--seed: must be an integer from 0 to" in capsys.readouterr().err


def test_a_killed_writers_temporary_file_is_cleaned_up(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".model.keras.{dead.pid}.abc.keras"
    stale.write_bytes(b"half a file")
    alive = tmp_path / f".model.keras.{os.getpid()}.def.keras"  # a live writer's: kept
    alive.write_bytes(b"being written")
    with atomic_path(tmp_path / "model.keras") as tmp:
        tmp.write_bytes(b"whole")
    assert not stale.exists() and alive.exists()
    assert (tmp_path / "model.keras").read_bytes() == b"whole"


def test_atomic_writes_name_a_file_where_a_folder_belongs(tmp_path):
    """models.save(model, "a_file/m.keras") said "[Errno 17] File exists: 'a_file'"."""
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    with pytest.raises(NotADirectoryError, match=f"{a_file} is a file, not a folder"):
        with atomic_path(a_file / "sub" / "m.keras"):
            pass
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        with atomic_path(tmp_path):
            pass


def test_verification_net_and_stacked_mnist_commands_refuse_in_one_line(tmp_path, capsys):
    """verification_net.py printed the usage text, took --seed -1 and --epochs 10**9, and would
    train for minutes before finding --file unwritable; stacked_mnist.py ended in a
    traceback without data."""
    verification_net = importlib.import_module("verification_net")
    for argv, message in ((["--seed", "-1"], "--seed: must be an integer from 0 to"),
                          (["--epochs", "20000"], "--epochs 20,000 is above its limit"),
                          (["--dataset", "cifar"], "invalid choice: 'cifar'")):
        with pytest.raises(SystemExit) as stop:
            verification_net.main(argv)
        lines = capsys.readouterr().err.splitlines()
        assert stop.value.code == 2 and len(lines) == 1 and message in lines[0], lines
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    with pytest.raises(SystemExit), pytest.warns(UserWarning, match="not found"):
        verification_net.main(["--file", str(a_file / "judge.keras")])  # would train
    assert f"the folder of --file {a_file} is a file, not a folder" in capsys.readouterr().err
    assert not list(tmp_path.glob("**/*.keras"))
    a_folder = tmp_path / "judge.keras"
    a_folder.mkdir()
    with pytest.raises(SystemExit), pytest.warns(UserWarning):
        verification_net.main(["--file", str(a_folder)])
    assert f"--file {a_folder} is a folder" in capsys.readouterr().err
    result = subprocess.run([sys.executable, str(REPO_ROOT / "stacked_mnist.py")], cwd=tmp_path,
                            env={**os.environ, "MNIST_DIR": str(tmp_path / "none")},
                            capture_output=True, text=True)
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 1, lines
    assert f"MNIST directory {tmp_path / 'none'} does not exist" in lines[0]
