"""TUNE: a recipe search with Optuna on a short proxy, then k-fold cross-validation.

Each trial trains a VAE on a proxy of the real training (--train-images of the training set
for --proxy-epochs epochs) with knobs drawn by Optuna's TPE sampler (latent size, extra
convolutions, dense layer, learning rate, batch size; the rest is the data set's shipped VAE
recipe, or MNIST's) and scores it by the -ELBO (nats per image) of held-out training images
(never the test set). After every epoch a median pruner may stop a trial that is worse than
the median of the trials before it at that epoch. The study lives in a SQLite file in the
output folder: the same command started again resumes it (trials already run are kept;
--trials counts them). --timeout bounds one run's search in seconds. The best knobs and the
base recipe's are then cross-validated on the proxy slice (--folds folds, each model trained
on the other folds): mean and spread of the held-out -ELBO, so a lucky trial shows.

Writes results/tune[-<dataset>]/study.db, history.png (every trial's score, pruned ones
marked), table.md and metrics.json.

    python experiments/tune.py                               # binarised MNIST, 20 trials
    python experiments/tune.py --trials 40 --timeout 3600    # more trials, resumed
    python experiments/tune.py --quick                       # tiny, seconds
"""
import time

import numpy as np

from atomic_io import atomic_path, save_figure
from experiments import cli
from experiments.cli import count
from experiments.outputs import write_metrics
from experiments.runs import load_data
from models import build_model, fit_model, zoo

QUICK = {"trials": 2, "proxy_epochs": 1, "train_images": 400, "folds": 2}
DATASETS = ("binarised_mnist", "mnist", "fashion_mnist")


def base_recipe(dataset) -> str:
    """The recipe whose config the knobs change and that the best trial is checked against:
    the data set's shipped VAE, else MNIST's (a data set without one yet, the search's
    reason to run)."""
    tag = dataset.model_tag if zoo.has_recipe("vae", False, dataset.model_tag) else "mono"
    return zoo.shipped_name("vae", False, tag)
HELD_OUT_SHARE = 0.2  # of the proxy slice, scores the trials
SPACE = {  # knob: choices (a tuple) or a log-uniform range (a pair in a list)
    "latent_dim": (8, 16, 32, 48),
    "block_convs": (0, 1),
    "hidden_units": (0, 64, 256),
    "learning_rate": [3e-4, 3e-3],
    "batch_size": (64, 128, 256),
}
RECIPE_KNOBS = ("learning_rate", "batch_size")  # the others are ModelConfig settings


def add_flags(parser) -> None:
    parser.add_argument("--trials", type=count, default=20,
                        help="trials in the study, those of earlier runs included (default 20)")
    parser.add_argument("--timeout", type=count, default=None,
                        help="seconds this run may search (default: no limit)")
    parser.add_argument("--proxy-epochs", type=count, default=3,
                        help="epochs of a proxy training (default 3)")
    parser.add_argument("--train-images", type=count, default=12_000,
                        help="training images of the proxy (default 12000)")
    parser.add_argument("--folds", type=count, default=5,
                        help="folds of the cross-validation (default 5; 1: none)")


def suggest(trial) -> dict:
    """The knobs of one trial, drawn from SPACE."""
    return {name: (trial.suggest_float(name, *choices, log=True) if isinstance(choices, list)
                   else trial.suggest_categorical(name, choices))
            for name, choices in SPACE.items()}


def held_out_elbo(base_config, knobs: dict, x_train, x_val, epochs: int, seed: int,
                  binarise: bool, report=None) -> float:
    """-ELBO (nats per image) of ``x_val`` after training on ``x_train`` with ``knobs``;
    ``report(epoch, value)`` after every epoch (it may stop the training by returning
    True)."""
    import tf_keras

    settings = {k: v for k, v in knobs.items() if k not in RECIPE_KNOBS}
    config = base_config.with_settings(settings)
    model = build_model(config, knobs["learning_rate"], seed=seed)

    class Report(tf_keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if report is not None and report(epoch, float(logs["val_loss"])):
                self.model.stop_training = True

    history = fit_model(model, x_train, x_val, epochs=epochs, batch_size=knobs["batch_size"],
                        seed=seed, verbose=0, callbacks=[Report()], binarise=binarise)
    return float(history["val_loss"][-1])


def cross_validate(base_config, knobs: dict, x, folds: int, epochs: int, seed: int,
                   binarise: bool) -> dict:
    """Held-out -ELBO of each of ``folds`` models, each trained on the other folds."""
    parts = np.array_split(np.random.default_rng(seed).permutation(len(x)), folds)
    values = [held_out_elbo(base_config, knobs, x[np.concatenate(parts[:i] + parts[i + 1:])],
                            x[part], epochs, seed, binarise)
              for i, part in enumerate(parts)]
    return {"folds": values, "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


def save_history(trials, path, title: str) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4))
    for state, style in (("COMPLETE", "o"), ("PRUNED", "x")):
        # a pruned trial's last score is its last reported one
        points = [(t.number, t.value if t.value is not None
                   else t.intermediate_values[max(t.intermediate_values)])
                  for t in trials if t.state.name == state
                  and (t.value is not None or t.intermediate_values)]
        if points:
            ax.plot(*zip(*points), style, label=f"{state.lower()} (last score)")
    done = [(t.number, t.value) for t in trials if t.state.name == "COMPLETE"]
    if done:
        numbers, values = zip(*done)
        ax.step(numbers, np.minimum.accumulate(values), where="post", color="k", lw=1,
                label="best so far")
    ax.set(xlabel="trial", ylabel="held-out -ELBO (nats)", title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main(argv=None):
    import optuna

    run, opts = cli.parse_args(__doc__, "tune", "vae", argv, extra=add_flags,
                               quick_caps=QUICK, trains=False, datasets=DATASETS)
    dataset = run.dataset
    if opts.folds > 1 and opts.train_images < 10 * opts.folds:
        raise ValueError(f"--train-images {opts.train_images} is too few for --folds "
                         f"{opts.folds}: give at least 10 images per fold.")
    x_train = load_data(run, dataset)[0]
    x = x_train[np.random.default_rng(run.seed).permutation(len(x_train))[:opts.train_images]]
    cut = int(round(len(x) * (1 - HELD_OUT_SHARE)))
    base_name = base_recipe(dataset)
    shipped = zoo.recipe(base_name)
    base = shipped.config
    binarise = dataset.dynamic_binarisation

    def objective(trial):
        def report(epoch, value):
            trial.report(value, epoch)
            return trial.should_prune()

        value = held_out_elbo(base, suggest(trial), x[:cut], x[cut:], opts.proxy_epochs,
                              run.seed, binarise, report)
        if trial.should_prune():
            raise optuna.TrialPruned()
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{run.out / 'study.db'}"
    run.out.mkdir(parents=True, exist_ok=True)
    proxy = f"{dataset.name}-{len(x)}images-{opts.proxy_epochs}epochs-seed{run.seed}"
    study = optuna.create_study(
        study_name=proxy, storage=storage, load_if_exists=True, direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=run.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
    earlier = len(study.trials)
    start = time.time()

    def progress(study, trial):
        value = "pruned" if trial.value is None else f"{trial.value:.2f} nats"
        best = (f"; best so far {study.best_value:.2f}"
                if any(t.state.name == "COMPLETE" for t in study.trials) else "")
        print(f"trial {trial.number}: {value}, {trial.params}{best}", flush=True)

    remaining = max(0, opts.trials - earlier)
    if remaining:
        study.optimize(objective, n_trials=remaining, timeout=opts.timeout,
                       callbacks=[progress])
    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not finished:
        raise ValueError(f"no trial of the study in {run.out / 'study.db'} finished; run it "
                         "again with more --trials or a longer --timeout.")
    best = study.best_trial
    recipe_knobs = {**{k: getattr(base, k) for k in SPACE if k not in RECIPE_KNOBS},
                    "learning_rate": shipped.learning_rate, "batch_size": shipped.batch_size}
    validation = {}
    if opts.folds > 1:
        for label, knobs in (("best trial", best.params), (base_name, recipe_knobs)):
            validation[label] = cross_validate(base, knobs, x, opts.folds,
                                               opts.proxy_epochs, run.seed, binarise)
            print(f"{label}: {validation[label]['mean']:.2f} +- "
                  f"{validation[label]['std']:.2f} nats over {opts.folds} folds", flush=True)
    ranked = sorted(finished, key=lambda t: t.value)
    lines = ["| trial | held-out -ELBO (nats) | " + " | ".join(SPACE) + " |",
             "| ---: | ---: | " + " | ".join("---" for _ in SPACE) + " |"]
    lines += [f"| {t.number} | {t.value:.2f} | "
              + " | ".join(f"{t.params[k]:.2g}" if isinstance(t.params[k], float)
                           else str(t.params[k]) for k in SPACE) + " |" for t in ranked[:10]]
    table = "\n".join(lines) + "\n"
    with atomic_path(run.out / "table.md") as tmp:
        tmp.write_text(table)
    print(table)
    save_history(study.trials, run.out / "history.png",
                 f"{dataset.title}: recipe search on {len(x):,} images, "
                 f"{opts.proxy_epochs} epochs")
    counts = {state: sum(t.state.name == state for t in study.trials)
              for state in ("COMPLETE", "PRUNED", "FAIL")}
    return write_metrics(run, {
        "study": proxy, "storage": str(run.out / "study.db"),
        "trials": len(study.trials), "trials_before_this_run": earlier,
        "completed": counts["COMPLETE"], "pruned": counts["PRUNED"], "failed": counts["FAIL"],
        "search_seconds_this_run": round(time.time() - start, 1),
        "space": {k: list(v) if isinstance(v, tuple) else {"log_uniform": v}
                  for k, v in SPACE.items()},
        "best_trial": best.number, "best_value_nats": best.value, "best_knobs": best.params,
        "base_recipe": base_name, "base_recipe_knobs": recipe_knobs,
        "cross_validation": validation,
        "top_trials": [{"trial": t.number, "value": t.value, "knobs": t.params}
                       for t in ranked[:10]],
    })


if __name__ == "__main__":
    cli.run_script(main)
