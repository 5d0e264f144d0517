"""Train the shipped models again from their recipes (the verification net is separate).

    python experiments/train_all.py                          # all four, into runs/train_all/
    python experiments/train_all.py --only vae_mono_complete --seed 1
    python experiments/train_all.py --ship                   # replace saved_models/ (explicit)

Each model trained on complete data also gets its ex-post latent prior fitted again, a flow
beside the model file (the generation rows' --latent flow; about 2 minutes each). Without
--ship nothing in saved_models/ changes; the rows use a run's models with
`python experiments/<row>.py --run train_all`.
"""
import argparse
import time

import common
from models import zoo


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(zoo.SHIPPED),
                        help="train these models only")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs for every model (default: each recipe's)")
    parser.add_argument("--run", default=None,
                        help="run folder under runs/ (default train_all, or train_all-seed=S)")
    parser.add_argument("--ship", action="store_true",
                        help="write the models to saved_models/, replacing the shipped ones")
    parser.add_argument("--mnist-dir", default=None, help="MNIST IDX directory")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    run_dir = zoo.run_folder(args.run or zoo.run_name("train_all", seed=args.seed))
    for name in args.only or sorted(zoo.SHIPPED, reverse=True):  # the VAEs first
        kind, _, data = name.split("_")
        flags = ["--retrain", "--seed", str(args.seed)]
        flags += ["--ship"] if args.ship else ["--run", run_dir.name]
        flags += ["--epochs", str(args.epochs)] if args.epochs else []
        flags += ["--mnist-dir", args.mnist_dir] if args.mnist_dir else []
        run = common.parse_args(__doc__, "train_all", kind, flags)
        missing = data == "missing"
        x_train, _, x_test, _ = common.load_data(common.mode_for(1, missing), run)
        start = time.time()
        model, info = common.get_model(run, 1, missing, x_train, x_test)
        print(f"{info['model_file']}: {time.time() - start:.0f} s, final "
              f"{ {k: v[-1] for k, v in info['history'].items()} }", flush=True)
        if not missing:
            _, flow_info = common.get_latent_flow(run, model, info)
            print(f"{flow_info['flow_file']}: {flow_info['fit_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
