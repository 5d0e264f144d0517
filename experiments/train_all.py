"""Train the shipped models again from their recipes (the verification net is separate).

    python experiments/train_all.py                          # every recipe, into runs/train_all/
    python experiments/train_all.py --only vae_mono_complete --seed 1
    python experiments/train_all.py --ship                   # replace saved_models/ (explicit)

The recipes are ``models.zoo.SHIPPED``. Those marked for it (the grading rows' complete-data
AE and VAE) also get their ex-post latent prior fitted again, a flow beside the model file
(the generation rows' --latent flow; about 2 minutes each). Without --ship nothing in
saved_models/ changes; the rows use a run's models with
`python experiments/<row>.py --run train_all`.
"""
import argparse
import shutil
import time
from pathlib import Path

import common
from models import FAMILIES, save, zoo
from models.training import distribution_strategy, worker_suffix
from stacked_mnist import DataMode


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
    parser.add_argument("--quick", action="store_true",
                        help="a few hundred images, one epoch (flows: two), into "
                             "runs/train_all-quick/ (for tests; seconds)")
    common.add_training_flags(parser)
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.seed < 0:
        parser.error("--seed must be an integer >= 0")
    common.check_training_flags(parser, args)
    if args.ship and args.quick:
        parser.error("--quick models are throw-aways; they are never shipped")
    if args.quick:
        args.epochs = 1
    run_dir = zoo.run_folder(args.run or zoo.run_name("train_all-quick" if args.quick
                                                      else "train_all", seed=args.seed))
    for name in args.only or sorted(zoo.SHIPPED, reverse=True):  # the VAEs first
        recipe = zoo.recipe(name)
        x_train, y_train, x_test, y_test = common.load_data(DataMode[recipe.data], args)
        conditional = FAMILIES[recipe.config.kind].conditional  # trained with the labels
        path = zoo.path(name) if args.ship else run_dir / f"{name}.keras"
        print(f"training {name} on {recipe.data} for {args.epochs or recipe.epochs} epochs "
              f"-> {path}", flush=True)
        backup = zoo.backup_folder(path)  # resumed when the command runs again
        strategy = distribution_strategy(args.distribute)
        model = zoo.train(name, x_train, x_test, epochs=args.epochs, seed=args.seed,
                          verbose=common.progress_verbosity(args), backup_dir=backup,
                          strategy=strategy, tensorboard_dir=Path(args.tensorboard) / name
                          if args.tensorboard else None,
                          labels=y_train if conditional else None,
                          val_labels=y_test if conditional else None)
        suffix = worker_suffix(strategy)
        if suffix:  # another worker of a cluster: the chief writes the model files
            print(f"worker {suffix[1:]} done; the chief saves {path}")
            shutil.rmtree(str(backup) + suffix, ignore_errors=True)
            continue
        save(model, path)
        shutil.rmtree(backup, ignore_errors=True)
        print(f"{path}: {model.metadata['train_seconds']:.0f} s, final "
              f"{ {k: v[-1] for k, v in model.metadata['history'].items()} }", flush=True)
        if recipe.flow:
            start = time.time()
            flow = zoo.fit_flow(model, x_train, x_test, seed=args.seed,
                                epochs=2 if args.quick else zoo.FLOW_EPOCHS,
                                verbose=common.progress_verbosity(args))
            flow.metadata["fitted_on"] = recipe.data
            flow_path = zoo.save_flow(flow, path)
            print(f"{flow_path}: {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
