"""VAE-LOGLIK: test log p(x) of shipped VAEs by importance sampling, side by side.

log p(x) ~ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K, z_k ~ q(z|x) (the
IWAE bound with K samples; models.likelihood.posterior_estimates), on the first --images
MNIST test images (binary), with the ELBO and the KL from the same samples. For a learned prior
p(z) is the model's own (the KL then is a Monte Carlo mean). Compares the N(0, I) VAE with the
VAE whose flow prior was learned with it by default.

    python experiments/vae_loglik.py                       # K = 1,000 on 1,000 images, minutes
    python experiments/vae_loglik.py --models vae_mono_missing flowprior_vae_mono_missing
"""
import time

import numpy as np

from experiments import cli
from experiments.cli import count
from experiments.outputs import write_metrics
from experiments.runs import load_data, shipped_or_quick
from models import zoo
from models.likelihood import posterior_estimates

QUICK = {"images": 20, "iwae_samples": 10}


def add_flags(parser) -> None:
    parser.add_argument("--models", nargs="+", choices=sorted(zoo.names("mnist")),
                        default=["vae_mono_complete", "flowprior_vae_mono_complete"],
                        help="shipped models to compare (default: the N(0, I) VAE and the "
                             "learned-prior VAE, complete data)")
    parser.add_argument("--images", type=count, default=1000,
                        help="first test images scored (default 1000)")
    parser.add_argument("--iwae-samples", type=count, default=1000,
                        help="importance samples K per image (default 1000)")


def main(argv=None):
    run, opts = cli.parse_args(__doc__, "vae_loglik", "vae", argv, extra=add_flags,
                               quick_caps=QUICK, trains=False, datasets=("mnist",))
    results = {}
    for name in opts.models:
        missing = zoo.recipe(name).missing
        _, _, x_test, _ = load_data(run, run.dataset, missing)
        model = shipped_or_quick(run, name, run.dataset, missing)
        if model.prior is None:
            raise ValueError(f"{name} is an {model.config.kind!r} model: it has no p(z).")
        start = time.perf_counter()
        estimates = posterior_estimates(model, x_test[: opts.images], opts.iwae_samples,
                                        run.seed)
        results[name] = {
            "test_data": run.dataset.data_name(missing),
            "log_px_iwae_nats": float(np.mean(estimates["iwae"])),
            "elbo_nats": float(np.mean(estimates["elbo"])),
            "kl_nats": float(np.mean(estimates["kl"])),
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(f"{name}: log p(x) {results[name]['log_px_iwae_nats']:.2f} nats (IWAE, K = "
              f"{opts.iwae_samples}), ELBO {results[name]['elbo_nats']:.2f}, KL "
              f"{results[name]['kl_nats']:.2f}", flush=True)
    return write_metrics(run, {"images": min(opts.images, len(x_test)),
                               "iwae_samples": opts.iwae_samples, "models": results})


if __name__ == "__main__":
    cli.run_script(main)
