"""The experiment scripts: thin layers over the library (``models``, ``named_data``,
``evaluation``), one per grading row and per analysis. ``run_all.py`` is the main job.

Shared parts, by concern:
  cli.py      the command line: shared flags -> a ``Run`` and the script's own options, seeds
              derived by name, one clear line and exit status 2 for a known error
  runs.py     data and models of a run: the shipped model, or one trained into runs/<run>/
  outputs.py  metrics.json, figures, samples files
  rows.py     the three kinds of grading row (basic, gen, anom) and the STACK rows
  grading.py  the grading table the main job prints and the results page shows

Every script runs as ``python experiments/<script>.py`` or ``python -m experiments.<script>``
once the project is installed (README: ``pip install -r requirements.txt``).
"""
import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow without its start-up chatter (oneDNN, CUDA probes) and retracing
    warnings, unless the user has set TF_CPP_MIN_LOG_LEVEL: then their setting rules.

    The chatter is written by native code before any log level applies, so the process's
    stderr goes to a temporary file during the import and is replayed if the import fails.
    """
    if "tensorflow" in sys.modules:  # imported already (a notebook, a test session)
        return
    # tf.keras as Keras 2 (the tf-keras package, which every module here imports explicitly
    # for tfp.layers): TensorFlow's import then skips loading Keras 3, about 4 s of start-up.
    # Only before TensorFlow is imported: set later, it sends tf.keras down a path that
    # TensorFlow Probability's import then fails on.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the device probes print here, not later
            tf.get_logger().setLevel("ERROR")
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


_import_tensorflow_quietly()
