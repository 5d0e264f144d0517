"""VAE-LOGLIK: test log p(x) of shipped VAEs by importance sampling, side by side.

log p(x) ~ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K, z_k ~ q(z|x) (the
IWAE bound with K samples; models.likelihood.posterior_estimates), on the first --images
test images, with the ELBO and the KL from the same samples, the mean and its standard error.
For a learned prior p(z) is the model's own (the KL then is a Monte Carlo mean). Compares the
N(0, I) VAE with the VAE whose flow prior was learned with it by default.

On MNIST (binarised at 0.5) the numbers are a proper log-likelihood of those binary images,
but not comparable with the literature, which draws binary pixels from the grey levels:
``--dataset binarised_mnist`` is that data (its test set drawn once, see named_data), and its
table stands beside the published rows. The estimate is resumable: every 100 images the
results so far go to <out>/state/, and the same command started again goes on from there; a
run over more (or fewer) images starts from the finished images of the other, whose numbers
it would draw alike.

    python experiments/vae_loglik.py                       # K = 1,000 on 1,000 images, minutes
    python experiments/vae_loglik.py --models vae_mono_missing flowprior_vae_mono_missing
    python experiments/vae_loglik.py --dataset binarised_mnist --images 10000 --iwae-samples 5000
"""
import time

import numpy as np

import named_data
from experiments import cli
from experiments.cli import count
from experiments.outputs import write_metrics
from experiments.runs import load_data, shipped_or_quick
from models import zoo
from models.likelihood import resumable_posterior_estimates

QUICK = {"images": 20, "iwae_samples": 10}
DATASETS = ("mnist", "binarised_mnist")
# Test NLL in nats on dynamically binarised MNIST as published (not re-run here).
PUBLISHED = {
    "VAE, one stochastic layer (Burda et al. 2016, IWAE K = 5,000)": 86.76,
    "IWAE, one stochastic layer (Burda et al. 2016)": 84.78,
    "IWAE, two stochastic layers (Burda et al. 2016)": 82.90,
    "VAE with a VampPrior (Tomczak & Welling 2018, static binarisation)": 85.57,
    "ResNet VAE with a RealNVP prior (Xu et al. 2019)": 78.49,
}


def default_models(dataset: str):
    """The N(0, I) VAE and the learned-prior VAE of the data set, complete data."""
    tag = named_data.get(dataset).model_tag
    return [name for name in (f"vae_{tag}_complete", f"flowprior_vae_{tag}_complete")
            if name in zoo.SHIPPED]


def add_flags(parser) -> None:
    parser.add_argument("--models", nargs="+", choices=sorted(zoo.names()), default=None,
                        help="shipped models of the data set to compare (default: its N(0, I) "
                             "VAE and learned-prior VAE, complete data)")
    parser.add_argument("--images", type=count, default=1000,
                        help="first test images scored (default 1000)")
    parser.add_argument("--iwae-samples", type=count, default=1000,
                        help="importance samples K per image (default 1000)")


def main(argv=None):
    run, opts = cli.parse_args(__doc__, "vae_loglik", "vae", argv, extra=add_flags,
                               quick_caps=QUICK, trains=False, datasets=DATASETS)
    names = opts.models or default_models(run.dataset.name)
    wrong = [name for name in names if zoo.recipe(name).dataset != run.dataset.name]
    if wrong or not names:
        raise ValueError(f"--models of --dataset {run.dataset.name}: "
                         f"{', '.join(default_models(run.dataset.name)) or 'none shipped'}; "
                         f"got {', '.join(wrong) or 'none'}.")
    results = {}
    for name in names:
        missing = zoo.recipe(name).missing
        _, _, x_test, _ = load_data(run, run.dataset, missing)
        x = x_test[: opts.images]
        model = shipped_or_quick(run, name)
        if model.prior is None:
            raise ValueError(f"{name} is an {model.config.kind!r} model: it has no p(z).")
        model_file = run.out / f"quick_{name}.keras" if run.quick else zoo.path(name)
        identity = (f"{zoo.file_digest(model_file)} {run.dataset.data_name(missing)} test "
                    f"images from the first K={opts.iwae_samples} seed={run.seed}")
        start = time.perf_counter()

        def progress(done, total, seconds, resumed):
            left = seconds / (done - resumed) * (total - done) if done > resumed else 0
            print(f"  {name}: {done:,} / {total:,} images, {seconds / 60:.1f} min, about "
                  f"{left / 60:.1f} min left", flush=True)

        estimates = resumable_posterior_estimates(
            model, x, opts.iwae_samples, run.seed,
            run.out / "state" / f"{name}-K{opts.iwae_samples}.npz", identity,
            progress=progress)
        iwae = estimates["iwae"]
        results[name] = {
            "test_data": run.dataset.data_name(missing),
            "log_px_iwae_nats": float(np.mean(iwae)),
            "standard_error_nats": float(np.std(iwae, ddof=1) / np.sqrt(len(iwae)))
            if len(iwae) > 1 else None,
            "elbo_nats": float(np.mean(estimates["elbo"])),
            "kl_nats": float(np.mean(estimates["kl"])),
            "seconds_this_run": round(time.perf_counter() - start, 1),
        }
        print(f"{name}: log p(x) {results[name]['log_px_iwae_nats']:.2f} nats (IWAE, K = "
              f"{opts.iwae_samples}, {len(x):,} images), ELBO "
              f"{results[name]['elbo_nats']:.2f}, KL {results[name]['kl_nats']:.2f}",
              flush=True)
    summary = {"images": min(opts.images, len(x_test)), "iwae_samples": opts.iwae_samples,
               "models": results}
    if run.dataset.dynamic_binarisation:
        summary["published_test_nll_nats"] = PUBLISHED
    return write_metrics(run, summary)


if __name__ == "__main__":
    cli.run_script(main)
