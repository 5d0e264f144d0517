"""README's Python examples run as written, in a fresh process (so they cannot rot)."""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def python_blocks(section: str) -> list:
    """The ```python blocks of a README section (## heading), dedented."""
    text = (REPO_ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```", body, flags=re.S | re.M)
    return [textwrap.dedent(code) for _, code in blocks]


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    # No PYTHONPATH: the project is installed (requirements.txt ends with `-e .`), and the
    # README's code must run from any folder as a user's would.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


# A shipped file loads with tf_keras's own loader after `import models` and nothing else of
# ours: run first in the README's process (one TensorFlow start less than a process of its own).
PLAIN_LOAD = f"""
import numpy as np
import tf_keras
import models
model = tf_keras.models.load_model({str(REPO_ROOT / 'saved_models' /
                                       'vae_mono_complete.keras')!r}, safe_mode=True)
z = np.zeros((2, 1, model.config.latent_dim), np.float32)
images = model.decode_images(z)
assert images.shape == (2, 28, 28, 1) and 0 <= images.min() <= images.max() <= 1
print("plain load:", type(model).__name__, model.metadata["trained_on"])
"""


@pytest.mark.slow  # a fresh TensorFlow process, shipped models, MNIST
def test_use_it_from_python_runs_after_a_plain_load(mnist_dir, tmp_path):
    blocks = python_blocks("Use it from Python")
    assert len(blocks) == 3
    result = run_python("\n".join([PLAIN_LOAD, *blocks]), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("plain load: VAE MONO_BINARY_COMPLETE\n")
    mean_log_px = float(re.search(r"mean log p\(x\) of 100 test digits: (\S+) nats",
                                  result.stdout).group(1))
    assert -130 < mean_log_px < -60  # a trained VAE on binary MNIST
    quality, coverage = map(float, re.search(r"quality (\S+), coverage (\S+)\n",
                                             result.stdout).groups())
    assert quality > 0.7 and coverage == 1.0  # VAE-GEN: 85.6 % / 100 % on 10,000 samples
    quality = float(re.search(r"colour quality from the flow: (\S+);", result.stdout).group(1))
    assert quality > 0.8
    assert result.stdout.strip().endswith("1000")  # the small model's train_images
    assert (tmp_path / "my_runs" / "vae_2d.keras").is_file()


# What each "Extend it" block must have done, checked right after it runs (same process).
EXTENSION_CHECKS = (
    # (a) a family: trains, saves and loads as itself
    """
    import numpy as np
    x = np.zeros((2, 28, 28, 1), np.float32)
    reconstruction, penalty = model.loss_terms(x)
    assert penalty.shape == (2,)
    before = [w.numpy().copy() for w in model.trainable_weights]
    digits = (np.random.default_rng(0).random((64, 28, 28, 1)) > 0.5).astype(np.float32)
    history = models.fit_model(model, digits, epochs=1, batch_size=32, verbose=0)
    assert np.isfinite(history["loss"][-1])
    assert any(not np.array_equal(b, w.numpy())
               for b, w in zip(before, model.trainable_weights))
    models.save(model, "sparse.keras")
    loaded = models.load_model("sparse.keras")
    assert type(loaded).__name__ == "SparseAE" and loaded.config.beta == 0.1
    print("family ok")
    """,
    # (b) a sampler: fits codes, samples (count, d), finite log q(z), survives its file
    """
    codes = np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32)
    box = models.make_sampler("box", latent_dim=3).fit(codes, seed=0)
    z = box.sample(7, seed=1)
    assert z.shape == (7, 3) and z.dtype == np.float32
    log_q = box.log_prob(z)
    assert log_q.shape == (7,) and np.all(np.isfinite(log_q))
    models.save(box, "box.keras")
    again = models.load_sampler("box.keras")
    assert type(again).__name__ == "UniformBox" and again.fitted
    np.testing.assert_allclose(again.low.numpy(), codes.min(axis=0))
    np.testing.assert_allclose(again.log_prob(z), log_q)
    np.testing.assert_array_equal(again.sample(7, seed=1), z)
    print("sampler ok")
    """,
    # (c) a data set: found by name, labels the 9s, and its training set lacks them
    """
    entry = named_data.get("mnist_no_9s")
    assert entry is no_9s and entry.anomaly_class == 9 and entry.tolerance == 0.8
    assert is_anomaly.any() and np.array_equal(is_anomaly, np.asarray(y_test) == 9)
    assert not np.any(np.asarray(y_train) == 9) and len(x_train) == len(y_train)
    print("data set ok")
    """,
)


@pytest.mark.slow  # a fresh TensorFlow process, shipped models, MNIST
def test_extend_it_runs(mnist_dir, tmp_path):
    blocks = python_blocks("Extend it")
    assert len(blocks) == 3  # a family, a latent sampler, a data set
    code = "\n".join(block + textwrap.dedent(check)
                     for block, check in zip(blocks, EXTENSION_CHECKS))
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    done = [line for line in result.stdout.splitlines() if line.endswith(" ok")]
    assert done == ["family ok", "sampler ok", "data set ok"], result.stdout[-3000:]
