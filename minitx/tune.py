"""Hyperparameter search with optuna (an optional dependency: ``pip install optuna``).

Each trial trains a classifier with a learning rate, batch size and embedding size drawn from `SEARCH_SPACE`
and scores it by its final validation accuracy. Trials whose accuracy after an epoch is below the median of
earlier trials at that epoch are stopped early (optuna's median pruner), which is what makes a few dozen
trials on IMDb-synth or XOR fit in minutes on a laptop.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .classify import Dataset, TrainingDiverged, TrainSettings, train_classifier
from .config import ClassifierConfig

# Name -> (kind, choices or (low, high)). Embedding sizes are multiples of 4 so that 4 heads divide them.
SEARCH_SPACE: dict[str, tuple[str, Any]] = {
    "lr": ("log", (1e-4, 1e-1)),
    "batch": ("choice", (4, 8, 16, 32, 64, 128)),
    "emb": ("choice", (4, 8, 16, 32, 64, 128, 300)),
}


def require_optuna():
    """Import optuna, or say how to install it."""
    try:
        import optuna
    except ModuleNotFoundError as error:
        raise RuntimeError("hyperparameter tuning needs optuna: pip install optuna") from error
    return optuna


def embeddings_for_heads(choices: tuple[int, ...], heads: int) -> tuple[int, ...]:
    """The embedding sizes among ``choices`` that ``heads`` divides; none is an error."""
    fitting = tuple(emb for emb in choices if emb % heads == 0)
    if not fitting:
        raise ValueError(f"no embedding size in {list(choices)} is divisible by heads={heads}: "
                         "choose other --heads or leave 'emb' out of --search")
    return fitting


def suggest(trial, space: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """Draw one value per searched name from an optuna trial."""
    values = {}
    for name, (kind, choices) in space.items():
        if kind == "log":
            values[name] = trial.suggest_float(name, *choices, log=True)
        elif kind == "choice":
            values[name] = trial.suggest_categorical(name, list(choices))
        else:
            raise ValueError(f"search kind must be 'log' or 'choice', got {kind!r} for {name}")
    return values


def tune(config: ClassifierConfig, data: Dataset, settings: TrainSettings, *, trials: int = 20,
         timeout: float | None = None, space: dict[str, tuple[str, Any]] | None = None, seed: int = 0):
    """Search ``space`` (default `SEARCH_SPACE`) around ``config`` and ``settings``; return the optuna study.

    ``emb`` changes the model config, the other names the train settings. The sampler is seeded, so a CPU
    search repeats exactly. ``study.best_params`` and ``study.best_value`` hold the answer.
    """
    optuna = require_optuna()
    space = SEARCH_SPACE if space is None else space
    unknown = set(space) - {"emb"} - set(settings.to_dict())
    if "emb" in space and config.attention == "full":  # heads must divide the embedding
        kind, choices = space["emb"]
        space = {**space, "emb": (kind, embeddings_for_heads(choices, config.heads))}
    if unknown:
        raise ValueError(f"cannot search {sorted(unknown)}: only 'emb' and TrainSettings fields can be tuned")

    def objective(trial) -> float:
        values = suggest(trial, space)
        trial_config = replace(config, emb=values.pop("emb", config.emb))
        trial_settings = replace(settings, **values, progress=False)

        def report(epoch: int, accuracy: float) -> None:
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        return train_classifier(trial_config, data, trial_settings, on_epoch=report).accuracy

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1))
    # a diverged trial is a failed one (its value None in the study), not the end of the search
    study.optimize(objective, n_trials=trials, timeout=timeout, show_progress_bar=settings.progress,
                   catch=(TrainingDiverged,))
    return study
