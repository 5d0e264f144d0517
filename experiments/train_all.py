"""Train the shipped models again from their recipes (the verification net is separate).

    python experiments/train_all.py                          # every recipe, into runs/train_all/
    python experiments/train_all.py --only vae_mono_complete --seed 1
    python experiments/train_all.py --ship                   # replace saved_models/ (explicit)
    python experiments/train_all.py --dataset fashion_mnist  # one data set's recipes only

The recipes are ``models.zoo.SHIPPED``; each trains with the run seed of its shipped file
(``Recipe.seed``: its weights and, for stacks, its training stacks) unless --seed sets one for
all. Those marked for it (the grading rows' complete-data AE and VAE) also get their ex-post
latent prior fitted again, a flow beside the model file (the generation rows' --latent flow;
the recipe's ``flow_epochs``: about 2 minutes each, 5 for the Fashion-MNIST ones), and those
marked ``gmm`` a Gaussian mixture too (--latent gmm; about 2 minutes); --samplers-only fits
those samplers again to the trained files without training. Without
--ship nothing in saved_models/ changes; the rows use a run's models with
`python experiments/<row>.py --run train_all`.
"""
import dataclasses
import shutil
from pathlib import Path

import named_data
from experiments import cli
from experiments.runs import load_data
from models import FAMILIES, load_model, save, zoo
from models.training import distribution_strategy, worker_suffix


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(zoo.SHIPPED),
                        help="train these models only")
    parser.add_argument("--seed", type=cli.seed_value, default=None,
                        help="run seed (default: each recipe's, the seed of its shipped file)")
    parser.add_argument("--epochs", type=cli.count, default=None,
                        help="epochs for every model (default: each recipe's)")
    parser.add_argument("--run", type=cli.folder_name, default=None,
                        help="run folder under runs/ (default train_all, or train_all-seed=S)")
    parser.add_argument("--ship", action="store_true",
                        help="write the models to saved_models/, replacing the shipped ones")
    parser.add_argument("--samplers-only", action="store_true",
                        help="train nothing: fit the recipes' ex-post samplers (flow, gmm) again "
                             "to their trained files (saved_models/ with --ship, else the run "
                             "folder's)")
    parser.add_argument("--quick", action="store_true",
                        help="a few hundred images, one epoch (flows: two), into "
                             "runs/train_all-quick/ (for tests; seconds)")
    cli.add_training_flags(parser)
    cli.add_debug_flag(parser)
    parser.add_argument("--dataset", choices=sorted({r.dataset for r in zoo.SHIPPED.values()}),
                        default=None, help="train only the recipes of this data set (default: "
                                           "every recipe, each on its own data set)")
    parser.add_argument("--data-dir", "--mnist-dir", dest="data_dir", default=None,
                        help="with --dataset: the directory of its IDX files (default: its "
                             "environment variable, then the keras download)")
    args = parser.parse_args(argv)
    cli.check_count_limits(parser, {"epochs": args.epochs})
    cli.check_training_flags(parser, args.distribute, args.tensorboard)
    if args.data_dir and not args.dataset:
        parser.error("--data-dir needs --dataset: the recipes train on several data sets")
    if args.ship and args.quick:
        parser.error("--quick models are throw-aways; they are never shipped")
    training_flags = [flag for flag, given in (("--epochs", args.epochs is not None),
                                               ("--tensorboard", args.tensorboard),
                                               ("--distribute", args.distribute != "none"))
                      if given]
    if args.samplers_only and training_flags:
        parser.error(f"--samplers-only trains nothing, so {', '.join(training_flags)} would "
                     "change nothing: leave them out")
    epochs = 1 if args.quick else args.epochs
    # What the library's data and training helpers need of this command line (the seed of the
    # run folder's name; each recipe draws its data with its own, below).
    run = cli.Run(row="train_all", family="", dataset=named_data.get(args.dataset or "mnist"),
                  seed=args.seed or 0, out=Path.cwd(), command="", quick=args.quick,
                  data_dir=args.data_dir)
    run_dir = zoo.run_folder(args.run or zoo.run_name("train_all-quick" if args.quick
                                                      else "train_all", seed=run.seed))
    if not args.ship:  # before any training: the folder the models are written to
        cli.check_writable_folder(parser, run_dir, "--run")
    def model_file(name):
        return zoo.path(name) if args.ship else run_dir / f"{name}.keras"

    names = args.only or sorted(zoo.names(args.dataset), reverse=True)  # the VAEs first
    if args.samplers_only:
        names = [name for name in names if zoo.recipe(name).ex_post_samplers]
        for name in names:  # before any fitting: every file is there
            path = model_file(name)
            if not path.is_file():
                parser.error(f"--samplers-only fits samplers to trained files; {path} is "
                             "missing: train it first (without --samplers-only)"
                             + ("" if args.ship else ", or add --ship for the shipped one"))
    for name in names:
        recipe = zoo.recipe(name)
        seed = recipe.seed if args.seed is None else args.seed
        x_train, y_train, x_test, y_test = load_data(dataclasses.replace(run, seed=seed),
                                                     zoo.training_set(recipe), recipe.missing)
        conditional = FAMILIES[recipe.config.kind].conditional  # trained with the labels
        path = model_file(name)
        if args.samplers_only:
            fit_samplers(load_model(path), path, recipe, x_train, x_test, seed,
                         run.progress_verbosity, args.quick)
            continue
        print(f"training {name} on {recipe.data} for {epochs or recipe.epochs} epochs "
              f"-> {path}", flush=True)
        backup = zoo.backup_folder(path)  # resumed when the command runs again
        strategy = distribution_strategy(args.distribute)
        model = zoo.train(name, x_train, x_test, epochs=epochs, seed=seed,
                          verbose=run.progress_verbosity, backup_dir=backup,
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
        fit_samplers(model, path, recipe, x_train, x_test, seed, run.progress_verbosity,
                     args.quick)


def fit_samplers(model, path, recipe, x_train, x_test, seed, verbose, quick) -> None:
    """The recipe's ex-post samplers fitted to the model file at ``path`` and saved beside it."""
    for kind in recipe.ex_post_samplers:
        sampler, sampler_path = zoo.fit_beside(model, path, x_train, x_test, recipe.data, kind,
                                               seed=seed, verbose=verbose, quick=quick)
        print(f"{sampler_path}: {sampler.metadata['fit_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    cli.run_script(main)
