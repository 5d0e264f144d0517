"""Retrain every shipped model from scratch (the verification net is separate).

    python experiments/train_all.py            # AE and VAE x complete and missing, mono
    python experiments/train_all.py --only vae

Writes saved_models/{ae,vae}_mono_{complete,missing}.npz; the colour rows reuse these weights
(the colour model is the mono subnet run on each channel). Each model trained on complete data
also gets its ex-post latent prior fitted again, saved_models/{ae,vae}_mono_complete.flow.npz
(the generation rows' --latent flow; about 2 minutes each).
"""
import argparse
import time

from common import DEFAULT_EPOCHS, get_latent_flow, get_model, load_data, mode_for


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("ae", "vae"), help="train one kind only")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    parser.add_argument("--mnist-dir", default=None, help="MNIST IDX directory")
    args = parser.parse_args(argv)
    for kind in ("vae", "ae"):
        if args.only not in (None, kind):
            continue
        for missing in (False, True):
            run = argparse.Namespace(kind=kind, head="bernoulli", quick=False, retrain=True,
                                     epochs=DEFAULT_EPOCHS[kind], seed=args.seed,
                                     mnist_dir=args.mnist_dir, out=None)
            x_train, _, x_test, _ = load_data(mode_for(1, missing), run)
            start = time.time()
            model, info = get_model(run, 1, missing, x_train, x_test)
            print(f"{info['model_file']}: {time.time() - start:.0f} s, final "
                  f"{ {k: v[-1] for k, v in info['history'].items()} }", flush=True)
            if not missing:
                _, flow_info = get_latent_flow(run, model, info)
                print(f"{flow_info['flow_file']}: {flow_info['fit_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
