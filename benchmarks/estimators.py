"""Average test log p(x) of the shipped VAE by each estimator, side by side.

    python benchmarks/estimators.py                       # 500 test images, K as below
    python benchmarks/estimators.py --images 2000 --iwae-samples 1000

ELBO (analytic KL, expectation over the IWAE's samples), IWAE with K samples of q(z|x), and
the course's prior Monte Carlo with K samples of N(0, I), on a random subset of the
MONO_BINARY_COMPLETE test set. All in nats per image; higher is tighter (all three are
stochastic lower bounds on log p(x) on average).
"""
import argparse
import time


import numpy as np

from models import ModelFileError, load_model, zoo
from models.likelihood import posterior_estimates, prior_log_likelihood
from stacked_mnist import DataMode, StackedMNISTData


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model file (default: the shipped mono VAE)",
                        default=str(zoo.path("vae_mono_complete")))
    parser.add_argument("--images", type=int, default=500, help="random test images")
    parser.add_argument("--iwae-samples", type=int, default=5000)
    parser.add_argument("--prior-samples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        model = load_model(args.model)
    except ModelFileError as err:
        raise SystemExit(str(err)) from err
    x_test = StackedMNISTData(DataMode.MONO_BINARY_COMPLETE, seed=args.seed).get_full_data_set(
        training=False)[0]
    pick = np.random.default_rng(args.seed).choice(len(x_test), args.images, replace=False)
    x = x_test[pick]
    print(f"{args.model} (trained on {model.metadata.get('trained_on')}), "
          f"{args.images} test images")
    start = time.time()
    estimates = posterior_estimates(model, x, args.iwae_samples, args.seed)
    print(f"ELBO                         {np.mean(estimates['elbo']):9.3f} nats")
    print(f"IWAE, K = {args.iwae_samples:<6d}             {np.mean(estimates['iwae']):9.3f} nats"
          f"   ({time.time() - start:.0f} s for both)")
    start = time.time()
    prior = prior_log_likelihood(model, x, args.prior_samples, args.seed)
    print(f"prior Monte Carlo, K = {args.prior_samples:<6d}{np.mean(prior):9.3f} nats"
          f"   ({time.time() - start:.0f} s)")
    print(f"prior MC - ELBO: {np.mean(prior - estimates['elbo']):.3f} nats; "
          f"IWAE - ELBO: {np.mean(estimates['iwae'] - estimates['elbo']):.3f} nats")


if __name__ == "__main__":
    main()
