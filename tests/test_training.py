"""Training users can watch, resume and scale out: TensorBoard summaries, resuming after a
kill, MirroredStrategy and MultiWorkerMirroredStrategy on the CPU, the results page."""
import html.parser
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# A tiny model on 256 random binary images: the scenarios below run this in a fresh process
# where they must (logical devices and TF_CONFIG are set before TensorFlow starts; a kill
# takes the process with it), else in the test's process (train_here). ``runs``: several
# trainings in turn in one process, each ``[strategy, out]`` from the same seeds.
TRAIN = textwrap.dedent("""
    import json, os, signal, sys
    import numpy as np
    import tensorflow as tf
    args = json.loads(sys.argv[1])
    if args.get("logical_cpus"):
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args["logical_cpus"])
    import tf_keras
    import models
    from models import ModelConfig, build_model, fit_model

    class Kill(tf_keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == args.get("kill_after"):
                os.kill(os.getpid(), signal.SIGKILL)

    def train(strategy, out):
        strategy = {"one": lambda: tf.distribute.OneDeviceStrategy("/cpu:0"),
                    "mirrored": lambda: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
                    "multiworker": tf.distribute.MultiWorkerMirroredStrategy,
                    None: lambda: None}[strategy]()
        x = (np.random.default_rng(0).random((256, 28, 28, 1)) > 0.5).astype(np.float32)
        config = ModelConfig(kind=args.get("kind", "vae"), latent_dim=2, filters=(4, 8),
                             hidden_units=16)
        model = build_model(config, seed=0, strategy=strategy)
        fit_model(model, x, x[:32], epochs=args.get("epochs", 3), batch_size=32, seed=0,
                  verbose=0, decay_from=1, backup_dir=args.get("backup"),
                  tensorboard_dir=args.get("tensorboard"), callbacks=[Kill()])
        np.savez(out, *model.network_weights())

    for strategy, out in args.get("runs") or [(args.get("strategy"), args["out"])]:
        train(strategy, out)
""")


def _script_args(tmp_path, name, args):
    """``(where TRAIN saves the weights, its JSON argument)`` for a scenario ``name``."""
    out = tmp_path / f"{name}.npz"
    return out, json.dumps({**args, "out": str(out)})


def train(tmp_path, name, env=None, **args):
    out, script_args = _script_args(tmp_path, name, args)
    result = subprocess.run(
        [sys.executable, "-c", TRAIN, script_args],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        capture_output=True, text=True, timeout=600)
    return result, out


def train_here(monkeypatch, tmp_path, name, **args):
    """TRAIN in this process, for a scenario that needs no fresh TensorFlow (a start of one
    costs more than the training); the path of the weights it saved."""
    out, script_args = _script_args(tmp_path, name, args)
    monkeypatch.setattr(sys, "argv", ["-c", script_args])
    exec(TRAIN, {"__name__": "__main__"})
    return out


def weights(path):
    with np.load(path) as archive:
        return [archive[k] for k in sorted(archive.files, key=lambda k: int(k.split("_")[1]))]


@pytest.mark.slow
def test_a_killed_training_resumes_and_ends_like_an_uninterrupted_one(tmp_path, monkeypatch):
    # The uninterrupted run in this process; the killed one and its resumption each in a
    # fresh process, as a user's would be (a kill takes the process with it).
    whole_file = train_here(monkeypatch, tmp_path, "whole",
                            backup=str(tmp_path / "backup_whole"))
    killed, killed_file = train(tmp_path, "resumed", backup=str(tmp_path / "backup"),
                                kill_after=1)
    assert killed.returncode == -9 and not killed_file.exists()
    assert (tmp_path / "backup" / "checkpoint").is_file()
    resumed, _ = train(tmp_path, "resumed", backup=str(tmp_path / "backup"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from epoch 1" in resumed.stdout
    for a, b in zip(weights(whole_file), weights(killed_file), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_mirrored_training_on_two_cpu_devices_equals_one_device(tmp_path):
    # Both in one process (one TensorFlow start less): two logical CPUs, one device, then both.
    outs = {strategy: tmp_path / f"{strategy}.npz" for strategy in ("one", "mirrored")}
    result, _ = train(tmp_path, "both", kind="ae", logical_cpus=2, epochs=2,
                      runs=[(strategy, str(out)) for strategy, out in outs.items()])
    assert result.returncode == 0, result.stderr[-2000:]
    results = {strategy: weights(out) for strategy, out in outs.items()}
    for a, b in zip(results["one"], results["mirrored"], strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_to_identical_weights(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                             "index": index}})
        out = tmp_path / f"worker{index}.npz"
        processes.append((subprocess.Popen(
            [sys.executable, "-c", TRAIN, json.dumps({
                "kind": "ae", "strategy": "multiworker", "epochs": 1, "out": str(out),
                "backup": str(tmp_path / "backup")})],
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": tf_config},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), out))
    for process, _ in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-2000:]
    first, second = (weights(out) for _, out in processes)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_tensorboard_gets_the_loss_terms_and_image_grids(tmp_path, monkeypatch):
    import tensorflow as tf

    # TensorBoard needs no fresh TensorFlow.
    assert train_here(monkeypatch, tmp_path, "tb", epochs=2,
                      tensorboard=str(tmp_path / "tb")).is_file()
    tags = {}
    for event_file in (tmp_path / "tb").rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                tags.setdefault(value.tag, set()).add(event.step)
    for term in ("loss", "reconstruction", "kl"):
        assert f"epoch_{term}" in tags, sorted(tags)
    assert tags["generated"] == {1, 2} and len(tags["reconstructed"]) == 2


class _References(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.references, self.sections = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("img", "a") and not (attrs.get("src") or attrs.get("href", "#")).startswith(
                "#"):
            self.references.append(attrs.get("src") or attrs.get("href"))
        if tag == "section":
            self.sections.append(attrs["id"])


@pytest.mark.slow
def test_results_page_parses_and_every_reference_exists(mnist_dir, verifier, tmp_path):
    import importlib

    common = importlib.import_module("experiments.runs")
    results = tmp_path / "results"
    for row in ("ae_basic", "vae_anom"):
        common._CACHE.clear()
        importlib.import_module(f"experiments.{row}").main(["--quick", "--out", str(results / row)])
    page = (results / "index.html").read_text()
    parser = _References()
    parser.feed(page)
    assert parser.sections == ["ae_basic", "vae_anom"]
    assert "Anomaly scores" in page and "neg_iwae" in page
    assert any(ref.endswith(".png") for ref in parser.references)
    for reference in parser.references:
        assert (results / reference).is_file(), reference


def _tiny_fit(backup, epochs=1):
    from models import ModelConfig, build_model, fit_model

    x = (np.random.default_rng(0).random((64, 28, 28, 1)) > 0.5).astype(np.float32)
    model = build_model(ModelConfig(kind="vae", latent_dim=2, filters=(4, 8), hidden_units=8),
                        seed=0)
    return fit_model(model, x, None, epochs=epochs, batch_size=32, seed=0, verbose=0,
                     decay_from=1, backup_dir=str(backup))


def test_a_resumed_training_keeps_the_times_of_its_earlier_epochs(tmp_path):
    backup = tmp_path / "backup"
    first = _tiny_fit(backup, epochs=2)
    # A kill between the history's write and the checkpoint's leaves the history one epoch
    # ahead: the resumed training drops that entry.
    ahead = {key: values + [999.0] for key, values in first.items()}
    (backup / "history.json").write_text(json.dumps(ahead))
    resumed = _tiny_fit(backup, epochs=3)  # starts after epoch 2
    assert len(first["epoch_seconds"]) == 2 and len(resumed["epoch_seconds"]) == 3
    assert resumed["epoch_seconds"][:2] == first["epoch_seconds"]
    assert all(0 < seconds < 999 for seconds in resumed["epoch_seconds"])
    assert resumed["loss"][:2] == first["loss"] and 999.0 not in resumed["loss"]


@pytest.mark.parametrize("damage", ["checkpoint", "history"])
def test_a_damaged_checkpoint_is_refused_with_the_fix(tmp_path, damage):
    backup = tmp_path / "backup"
    _tiny_fit(backup, epochs=1)
    if damage == "checkpoint":
        data = next(backup.glob("ckpt-1.data-*"))
        data.write_bytes(data.read_bytes()[:100])
    else:
        (backup / "history.json").write_text('{"loss": [1.0')
    with pytest.raises(ValueError, match="is damaged.*delete that folder"):
        _tiny_fit(backup, epochs=2)


def test_a_training_record_from_before_a_config_field_was_added_keeps_its_checkpoints(
        tmp_path, capsys):
    from models import ModelConfig, zoo

    backup = tmp_path / "backup"
    backup.mkdir()
    config = ModelConfig(kind="vae", latent_dim=2)
    older = config.to_dict()
    del older["bayes_weight"]  # a field added later: the older record lacks it
    (backup / "training.json").write_text(json.dumps({"recipe": "r", "config": older}))
    (backup / "ckpt-1.index").write_text("kept")
    zoo._claim_backup(backup, {"recipe": "r", "config": config.to_dict()})
    assert "discarding" not in capsys.readouterr().out
    assert (backup / "ckpt-1.index").read_text() == "kept"
    zoo._claim_backup(backup, {"recipe": "r", "config": config.replace(latent_dim=3).to_dict()})
    assert "discarding the checkpoints" in capsys.readouterr().out


def test_a_checkpoint_of_another_schedule_is_not_resumed(tmp_path, capsys):
    """A recipe edited between two runs (its batch size or learning rate) trains afresh; a
    record from before the schedule was kept still counts as the same training's."""
    from models import zoo

    backup = tmp_path / "backup"
    identity = {"recipe": "r", "schedule": {"batch_size": 128, "learning_rate": "0.001"}}
    backup.mkdir()
    (backup / "training.json").write_text(json.dumps({"recipe": "r"}))
    (backup / "ckpt-1.index").write_text("kept")
    zoo._claim_backup(backup, identity)
    assert "discarding" not in capsys.readouterr().out
    assert (backup / "ckpt-1.index").read_text() == "kept"
    (backup / "training.json").write_text(json.dumps(identity))
    zoo._claim_backup(backup, {**identity, "schedule": {"batch_size": 64,
                                                        "learning_rate": "0.001"}})
    assert "discarding the checkpoints" in capsys.readouterr().out
    assert not (backup / "ckpt-1.index").exists()


def test_an_unreadable_training_record_discards_the_checkpoints(tmp_path, capsys):
    from models import zoo

    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "training.json").write_text('{"recipe": "vae_mo')  # truncated
    (backup / "ckpt-1.index").write_text("old")
    zoo._claim_backup(backup, {"recipe": "vae_mono_complete"})
    assert "discarding the checkpoints" in capsys.readouterr().out
    assert not (backup / "ckpt-1.index").exists()
    assert json.loads((backup / "training.json").read_text()) == {"recipe": "vae_mono_complete"}


def test_shifted_batches_move_each_image_by_whole_pixels_drawn_from_seed_epoch_and_step():
    from models.training import _epoch_batches

    digit = np.zeros((28, 28, 1), np.float32)
    digit[10:18, 12:15] = 1.0  # a bar well inside the border: every shift keeps it whole
    x = np.repeat(digit[np.newaxis], 32, axis=0)

    def batches(seed, first_epoch, binarise=False):
        return np.concatenate([b.numpy() for b in _epoch_batches(
            x, 8, seed, first_epoch, 2, binarise=binarise, shift_pixels=2)])

    whole = batches(seed=3, first_epoch=0)
    moves = set()
    for image in whole:
        rows, columns = np.nonzero(image[..., 0])
        assert image.sum() == digit.sum() and len(rows) == 24  # moved, not resampled
        moves.add((rows.min() - 10, columns.min() - 12))
    assert moves <= {(r, c) for r in range(-2, 3) for c in range(-2, 3)} and len(moves) > 10
    np.testing.assert_array_equal(whole[32:], batches(seed=3, first_epoch=1))  # resumed
    assert not np.array_equal(whole, batches(seed=4, first_epoch=0))
    # Binary draws from grey levels, then shifted: still binary, and a function of the seed.
    x = np.repeat(0.5 * digit[np.newaxis], 32, axis=0)
    drawn = batches(seed=3, first_epoch=0, binarise=True)
    assert set(np.unique(drawn)) == {0.0, 1.0}
    np.testing.assert_array_equal(drawn, batches(seed=3, first_epoch=0, binarise=True))
    assert 0.4 < drawn.sum() / (len(drawn) * digit.sum()) < 0.6  # half the bar's pixels


def test_fit_model_refuses_a_shift_it_cannot_make():
    from models import ModelConfig, build_model, fit_model

    model = build_model(ModelConfig(kind="vae", latent_dim=2, filters=(4, 8), hidden_units=0))
    for bad in (-1, 14, 1.5, True):
        with pytest.raises(ValueError, match="shift_pixels must be an integer from 0 to 13"):
            fit_model(model, np.zeros((4, 28, 28, 1), np.float32), epochs=1, shift_pixels=bad)


def test_dynamic_binarisation_draws_each_batch_from_seed_epoch_and_step_alone():
    from models.training import _epoch_batches

    grey = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)
    labels = np.arange(64) % 10

    def batches(seed, first_epoch, binarise=True):
        return [(b[0].numpy(), b[1].numpy()) for b in _epoch_batches(
            grey, 16, seed, first_epoch, 3, labels, binarise=binarise)]

    whole = batches(seed=1, first_epoch=0)
    assert len(whole) == 12
    for images, classes in whole:
        assert set(np.unique(images)) <= {0.0, 1.0} and classes.shape == (16,)
    resumed = batches(seed=1, first_epoch=1)  # a training resumed after epoch 1
    for (a, _), (b, _) in zip(whole[4:], resumed):
        np.testing.assert_array_equal(a, b)
    other = batches(seed=2, first_epoch=0)
    assert not np.array_equal(whole[0][0], other[0][0])
    plain = batches(seed=1, first_epoch=0, binarise=False)
    np.testing.assert_array_equal(np.concatenate([c for _, c in plain]),
                                  np.concatenate([c for _, c in whole]))
    drawn = np.concatenate([images for images, _ in whole])
    assert abs(drawn.mean() - grey.mean()) < 0.01
    # one grey image 64 times: every batch and every epoch draws other pixels
    same = [b.numpy() for b in _epoch_batches(np.repeat(grey[:1], 64, axis=0), 16, 1, 0, 2,
                                              binarise=True)]
    assert not any(np.array_equal(same[0], later) for later in same[1:])


def _weights_per_step(variables):
    """A callback keeping the values of ``variables(model)`` before the first training step
    (``seen[0]``) and after every step."""
    import tf_keras

    class Steps(tf_keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seen = [self.values()]

        def on_train_batch_end(self, batch, logs=None):
            self.seen.append(self.values())

        def values(self):
            return [v.numpy() for v in variables(self.model)]

    return Steps()


def _moving_average(seen, decay):
    """w_avg <- decay w_avg + (1 - decay) w over the steps' weights, from the initial ones."""
    average = seen[0]
    for weights in seen[1:]:
        average = [decay * a + (1 - decay) * w for a, w in zip(average, weights)]
    return average


def test_a_weight_average_is_the_moving_average_of_the_steps_and_resumes(tmp_path):
    from models import ModelConfig, build_model, fit_model

    x = (np.random.default_rng(0).random((64, 28, 28, 1)) > 0.5).astype(np.float32)

    def fit(epochs, backup=None, callbacks=()):
        model = build_model(ModelConfig(kind="vae", latent_dim=2, filters=(4, 8),
                                        hidden_units=8), seed=0)
        fit_model(model, x, None, epochs=epochs, batch_size=32, seed=0, verbose=0,
                  backup_dir=backup, callbacks=callbacks, average_weights=0.7)
        return model

    steps = _weights_per_step(lambda model: model.trainable_variables)
    model = fit(2, callbacks=[steps])
    assert len(steps.seen) == 5  # the initial weights, then 2 epochs of 2 steps
    average = _moving_average(steps.seen, 0.7)
    for expected, variable in zip(average, model.trainable_variables):
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(average[0], steps.seen[-1][0])  # not the last step's weights
    backup = tmp_path / "backup"
    fit(1, backup)
    for again in (fit(2, backup), fit(2, backup)):  # resumed after epoch 1, then after 2 of 2
        for a, b in zip(again.network_weights(), model.network_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_gan_averages_its_generator_and_keeps_its_discriminator_trained(tmp_path):
    from models import ModelConfig, build_model, fit_model

    x = np.random.default_rng(0).random((64, 28, 28, 1)).astype(np.float32)

    def fit(epochs, backup=None, callbacks=()):
        gan = build_model(ModelConfig(kind="gan", latent_dim=2, filters=(4, 8)), seed=0)
        fit_model(gan, x, epochs=epochs, batch_size=32, verbose=0, average_weights=0.7,
                  backup_dir=backup, callbacks=callbacks)
        return gan

    generator = _weights_per_step(lambda gan: gan.generator.trainable_variables)
    discriminator = _weights_per_step(lambda gan: gan.discriminator.trainable_variables)
    gan = fit(2, callbacks=[generator, discriminator])
    assert len(generator.seen) == 5
    average = _moving_average(generator.seen, 0.7)
    for expected, variable in zip(average, gan.generator.trainable_variables):
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-6)
    for last, variable in zip(discriminator.seen[-1], gan.discriminator.trainable_variables):
        np.testing.assert_array_equal(variable.numpy(), last)
    assert not np.allclose(average[0], generator.seen[-1][0])
    backup = tmp_path / "backup"
    fit(1, backup)
    for again in (fit(2, backup), fit(2, backup)):  # resumed after epoch 1, then after 2 of 2
        for a, b in zip(again.get_weights(), gan.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_the_training_step_is_traced_once(kind, monkeypatch):
    # Every optimizer's state exists before the first step (build_optimizers): a step that
    # creates variables would be traced twice, a second or more of each training.
    from models import ModelConfig, build_model, fit_model

    x = (np.random.default_rng(0).random((64, 28, 28, 1)) > 0.5).astype(np.float32)
    model = build_model(ModelConfig(kind=kind, latent_dim=2, filters=(4, 8), hidden_units=8))
    traced = []
    step = type(model).train_step
    monkeypatch.setattr(type(model), "train_step",
                        lambda self, data: traced.append(1) or step(self, data))
    fit_model(model, x, epochs=2, batch_size=32, verbose=0)
    assert len(traced) == 1


def test_fit_model_refuses_a_weight_average_it_cannot_keep():
    from models import ModelConfig, build_model, fit_model

    x = np.zeros((4, 28, 28, 1), np.float32)
    model = build_model(ModelConfig(kind="vae", latent_dim=2, filters=(4, 8), hidden_units=0))
    for bad in (1.0, -0.5, float("nan"), True, "0.9"):
        with pytest.raises(ValueError, match="average_weights must be 0 .off. or a decay"):
            fit_model(model, x, epochs=1, average_weights=bad)
    fit_model(model, x, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="chosen at a model's first training"):
        fit_model(model, x, epochs=1, average_weights=0.9)


def test_a_weight_average_keeps_how_the_user_compiled_the_model():
    from models import ModelConfig, build_model
    from models.training import _use_weight_average

    model = build_model(ModelConfig(kind="vae", latent_dim=2, filters=(4, 8), hidden_units=0))
    model.compile(optimizer=model.optimizer, run_eagerly=True, steps_per_execution=3)
    _use_weight_average(model, 0.9)
    assert model.optimizer.use_ema and model.optimizer.ema_momentum == 0.9
    assert model.run_eagerly and model.get_compile_config()["steps_per_execution"] == 3


def test_a_resumed_training_keeps_its_rate_schedule_and_a_gan_decays_both_rates(tmp_path):
    import tf_keras

    from models import ModelConfig, build_model, fit_model

    x = (np.random.default_rng(0).random((64, 28, 28, 1)) > 0.5).astype(np.float32)

    def rates(model):
        return [float(tf_keras.backend.get_value(optimizer.learning_rate))
                for optimizer in model.step_optimizers()]

    def fit(kind, epochs, backup=None):
        model = build_model(ModelConfig(kind=kind, latent_dim=2, filters=(4, 8),
                                        hidden_units=0), 1e-3, seed=0)
        fit_model(model, x, epochs=epochs, batch_size=32, seed=0, verbose=0, decay_from=1,
                  decay=0.5, backup_dir=backup)
        return rates(model)

    backup = str(tmp_path / "backup")
    fit("vae", 3, backup)  # the checkpoint holds the rate of epoch 3, a quarter of the first
    assert fit("vae", 4, backup) == pytest.approx([1e-3 / 8])  # not 1e-3 / 4 / 8
    assert fit("gan", 2) == pytest.approx([1e-3 / 2, 1e-3 / 2])
