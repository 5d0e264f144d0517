"""Shared test setup (the project is installed: README): data locations, cached data sets,
the verification net.

MNIST is read from ``$MNIST_DIR`` (CI sets it). Without it the tests fall back to
``<repo>/../shared/data/mnist`` and skip, saying why, if neither holds the data. Every other
registered data set's variable falls back the same way (``../shared/data/<name>``).
"""
from __future__ import annotations

import os
from pathlib import Path

# Before anything can import TensorFlow.
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent

_FALLBACK_MNIST_DIR = (REPO_ROOT / ".." / "shared" / "data" / "mnist").resolve()
_USED_FALLBACK = not os.environ.get("MNIST_DIR")
if _USED_FALLBACK:
    os.environ["MNIST_DIR"] = str(_FALLBACK_MNIST_DIR)

MNIST_DIR = Path(os.environ["MNIST_DIR"]).expanduser()


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
# flow-prior VAE, colour models, the other heads, stacked data) and the unit tests that train
# or fit for seconds run in the whole suite only. (End-to-end script runs carry
# @pytest.mark.slow themselves.)
SLOW_PARAMETERS = {"cvae", "flowprior_vae", "stacked_mnist"}
SLOW_UNIT_TESTS = {
    "test_colour_labels_split_into_channel_digits_in_the_folding_order",
    "test_labels_are_required_checked_and_used_in_training",
    "test_the_class_prior_is_fitted_per_digit_drawn_from_and_saved",
    "test_log_density_of_its_own_samples_is_the_change_of_variables_formula",
    "test_monte_carlo_kl_equals_the_analytic_kl_when_the_flow_is_the_identity",
    "test_colour_completion_is_the_mono_completion_of_each_channel",
    "test_encoder_init_starts_at_the_encoders_elbo_and_refinement_keeps_the_better",
    "test_the_optimisation_raises_the_elbo",
    "test_estimators_match_the_exact_likelihood_of_a_1d_latent_model",
    "test_iwae_is_above_the_elbo_and_tightens_with_k",
    "test_continuous_heads_are_finite_on_exact_zero_and_one",
    "test_an_entry_is_the_course_api_underneath",
    "test_flow_initialisation_is_seeded",
    "test_flow_reaches_the_entropy_of_a_gaussian",
    "test_flow_standardises_codes_far_from_the_origin",
    "test_posterior_noise_widens_the_flow",
    "test_same_seed_same_data_different_seed_different_data",
    "test_keras_file_round_trip_and_suffix",
    "test_old_weights_file_still_loads_and_suffixless_names_find_it",
    "test_predictability_and_coverage_of_stacked_images",
    "test_save_writes_the_format_of_the_name_and_it_loads_back",
}


def _slow_case(item) -> bool:
    if item.originalname in SLOW_UNIT_TESTS:
        return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    values = {str(value) for value in params.values()}
    return bool(values & SLOW_PARAMETERS or params.get("channels") == 3
                or params.get("head", "bernoulli") != "bernoulli"
                or any(value.startswith("DataMode.COLOR") for value in values))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _slow_case(item):
            item.add_marker(pytest.mark.slow)
