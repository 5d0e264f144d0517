"""README's Python examples run as written, in a fresh process (so they cannot rot)."""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def python_blocks(section: str) -> list:
    """The ```python blocks of a README section (## heading), dedented."""
    text = (REPO_ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```", body, flags=re.S | re.M)
    return [textwrap.dedent(code) for _, code in blocks]


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_use_it_from_python_runs(mnist_dir, tmp_path):
    blocks = python_blocks("Use it from Python")
    assert len(blocks) == 3
    result = run_python("\n".join(blocks), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    mean_log_px = float(re.search(r"mean log p\(x\) of 100 test digits: (\S+) nats",
                                  result.stdout).group(1))
    assert -130 < mean_log_px < -60  # a trained VAE on binary MNIST
    quality = float(re.search(r"colour quality from the flow: (\S+);", result.stdout).group(1))
    assert quality > 0.8
    assert result.stdout.strip().endswith("1000")  # the small model's train_images
    assert (tmp_path / "my_runs" / "vae_2d.keras").is_file()


def test_extend_it_runs(tmp_path):
    blocks = python_blocks("Extend it")
    assert len(blocks) == 1
    code = blocks[0] + textwrap.dedent("""
        import numpy as np
        x = np.zeros((2, 28, 28, 1), np.float32)
        reconstruction, penalty = model.loss_terms(x)
        assert penalty.shape == (2,)
        models.save(model, "sparse.keras")
        loaded = models.load_model("sparse.keras")
        assert type(loaded).__name__ == "SparseAE" and loaded.config.beta == 0.1
        print("ok")
    """)
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_a_shipped_file_loads_with_only_keras_and_import_models(tmp_path):
    """Fresh process: `import models` + tf_keras's loader, nothing else of ours."""
    code = textwrap.dedent(f"""
        import numpy as np
        import tf_keras
        import models
        model = tf_keras.models.load_model({str(REPO_ROOT / 'saved_models' /
                                               'vae_mono_complete.keras')!r}, safe_mode=True)
        z = np.zeros((2, 1, model.config.latent_dim), np.float32)
        images = model.decode_images(z)
        assert images.shape == (2, 28, 28, 1) and 0 <= images.min() <= images.max() <= 1
        print(type(model).__name__, model.metadata["trained_on"])
    """)
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "VAE MONO_BINARY_COMPLETE"
