"""Shared test setup (the project is installed: README): data locations, cached data sets,
the verification net.

MNIST is read from ``$MNIST_DIR`` (CI sets it). Without it the tests fall back to
``<repo>/../shared/data/mnist`` and skip, saying why, if neither holds the data. Every other
registered data set's variable falls back the same way (``../shared/data/<name>``).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# Before anything can import TensorFlow.
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

# The suite runs one worker per core (-n 2 on two cores): a pool of two threads then waits at
# every barrier for a thread whose core the other worker holds. OpenBLAS's eigh of a 256 x 256
# covariance (the Frechet distance) took 1.5 s instead of 0.03 s, scikit-learn's t-SNE of 200
# points 40 s instead of 1.3 s. The suite's arrays are small, where a second thread gains
# nothing. Set before numpy loads OpenBLAS, and inherited by the scripts the tests start;
# TensorFlow uses neither (its own thread pool copes). A value the caller set is kept.
ONE_THREAD_PER_WORKER = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
for _variable in ONE_THREAD_PER_WORKER:
    os.environ.setdefault(_variable, "1")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent

# The processes of one test run share their --quick models (experiments.runs: the first to
# need one trains it): the controlling process names a folder before the workers start, and
# they inherit it. Removed at the end of the run.
_QUICK_CACHE, _OWN_QUICK_CACHE = "QUICK_MODEL_CACHE", None
if "PYTEST_XDIST_WORKER" not in os.environ and _QUICK_CACHE not in os.environ:
    _OWN_QUICK_CACHE = tempfile.mkdtemp(prefix="quick-models-")
    os.environ[_QUICK_CACHE] = _OWN_QUICK_CACHE


def pytest_unconfigure(config):
    if _OWN_QUICK_CACHE:
        shutil.rmtree(_OWN_QUICK_CACHE, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def one_thread_per_worker():
    """OpenBLAS and scikit-learn's OpenMP on one thread in the test process (see
    ONE_THREAD_PER_WORKER; the environment may come too late if something loaded them before
    this file). The limit applies to the calling (main) thread, the tests' thread."""
    import sklearn.manifold  # noqa: F401  (loads the OpenMP runtime the limit applies to)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"), \
            threadpool_limits(limits=1, user_api="blas"):
        yield


_FALLBACK_MNIST_DIR = (REPO_ROOT / ".." / "shared" / "data" / "mnist").resolve()
_USED_FALLBACK = not os.environ.get("MNIST_DIR")
if _USED_FALLBACK:
    os.environ["MNIST_DIR"] = str(_FALLBACK_MNIST_DIR)

# Absolute, for the tests' symlinks and for scripts run from other folders: the README's
# command gives a relative path.
MNIST_DIR = Path(os.environ["MNIST_DIR"]).expanduser().resolve()
os.environ["MNIST_DIR"] = str(MNIST_DIR)


def _shared_data_fallbacks() -> None:
    import named_data  # numpy only: no TensorFlow yet

    for name in named_data.names(channels=1):
        source = named_data.get(name).source
        folder = REPO_ROOT / ".." / "shared" / "data" / source.keras_name.replace("_", "-")
        os.environ.setdefault(source.env_var, str(folder.resolve()))


_shared_data_fallbacks()
MNIST_BASE_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _mnist_missing_reason():
    """None if MNIST_DIR holds the four IDX files (plain or .gz), else why not."""
    if not MNIST_DIR.is_dir():
        source = "MNIST_DIR is unset and the fallback" if _USED_FALLBACK else "MNIST_DIR"
        return (
            f"MNIST not found: {source} {MNIST_DIR} is not a directory (set MNIST_DIR to a "
            "directory holding the four MNIST IDX files, plain or .gz)"
        )
    missing = [
        name
        for name in MNIST_BASE_NAMES
        if not (MNIST_DIR / name).is_file() and not (MNIST_DIR / (name + ".gz")).is_file()
    ]
    if missing:
        return f"MNIST not found: {MNIST_DIR} lacks {', '.join(missing)}[.gz]"
    return None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The directory holding the real MNIST files; skips the test if there is none."""
    reason = _mnist_missing_reason()
    if reason:
        pytest.skip(reason)
    return MNIST_DIR


@pytest.fixture(scope="session")
def data_for(mnist_dir):
    """``data_for(mode)`` -> StackedMNISTData(mode, seed=0), built once per mode and session."""
    from stacked_mnist import StackedMNISTData

    cache = {}

    def get(mode):
        if mode not in cache:
            cache[mode] = StackedMNISTData(mode, seed=0, mnist_dir=str(mnist_dir))
        return cache[mode]

    yield get
    cache.clear()


@pytest.fixture(scope="session")
def weights_path() -> Path:
    from verification_net import DEFAULT_WEIGHTS

    return Path(DEFAULT_WEIGHTS)


@pytest.fixture(scope="session")
def verifier(weights_path):
    """VerificationNet with the shipped weights; skips if they are not there yet."""
    if not weights_path.is_file():
        pytest.skip(
            f"shipped weights {weights_path.relative_to(REPO_ROOT)} are missing "
            "(create them with `python verification_net.py`)"
        )
    from verification_net import VerificationNet

    return VerificationNet()


# The fast lane (-m "not slow") keeps at least one case of every unit test: the mono case of
# the AE and VAE families with Bernoulli pixels. The grid's other cases (the CVAE and the
# flow-prior VAE, colour models, the other heads, stacked data) run in the whole suite only;
# end-to-end runs and unit tests that fit for seconds carry @pytest.mark.slow themselves.
SLOW_PARAMETERS = {"cvae", "flowprior_vae", "stacked_mnist"}


def _slow_case(item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    values = {str(value) for value in params.values()}
    return bool(values & SLOW_PARAMETERS or params.get("channels") == 3
                or params.get("head", "bernoulli") != "bernoulli"
                or any(value.startswith("DataMode.COLOR") for value in values))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _slow_case(item):
            item.add_marker(pytest.mark.slow)
