"""What a mutation review found unchecked in the hyperparameter search (minitx.tune and ``python -m minitx tune``).

The trials here train nothing: a stand-in for train_classifier records what each trial was given and returns
accuracies computed from it, so what the search does with its draws is checked in milliseconds."""

import json
import time
from dataclasses import replace

import pytest

import minitx.tune
from minitx.__main__ import main
from minitx.classify import TrainResult, TrainSettings, load_dataset, model_config
from minitx.tune import SEARCH_SPACE, tune

optuna = pytest.importorskip("optuna")
BASE = ["--data", "xor", "--ntrain", "40", "--nval", "20", "--epochs", "2", "--quiet", "--device", "cpu"]


def score(emb: int, lr: float, batch: int) -> float:
    """A made-up best accuracy in [0.1, 0.9), different for different settings."""
    return 0.1 + (emb * 7 + batch * 3 + lr * 1e4) % 80 / 100


def curve(emb: int, lr: float, batch: int) -> list[float]:
    """Per-epoch accuracies: rising to the best, then a last epoch a little below it."""
    best = score(emb, lr, batch)
    return [best / 2, best, best - 0.05]


@pytest.fixture
def fake_training(monkeypatch):
    calls = []

    def train(config, data, settings, *, on_epoch=None, log=None):
        assert settings.progress is False, "a trial draws no progress bars beside the search's own"
        calls.append({"emb": config.emb, "lr": settings.lr, "batch": settings.batch})
        accuracies = curve(config.emb, settings.lr, settings.batch)
        for epoch, accuracy in enumerate(accuracies, start=1):
            on_epoch(epoch, accuracy)
        return TrainResult(model=None, val_accuracy=accuracies, val_loss=[1.0] * 3, train_loss=[1.0] * 3)

    monkeypatch.setattr(minitx.tune, "train_classifier", train)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return calls


def base():
    data = load_dataset("xor", ntrain=40, nval=20)
    return model_config("full", vocab=len(data.i2w), emb=16, heads=2), data, TrainSettings(progress=False)


def test_each_trial_trains_with_its_draws_and_scores_its_final_accuracy(fake_training):
    """A trial must train with the lr, batch and emb it drew (they were drawn, logged, and not used), report
    every epoch to the pruner, and score the final epoch's accuracy (the docstring's objective)."""
    config, data, settings = base()
    study = tune(config, data, settings, trials=12, seed=0)
    assert [t.params for t in study.trials] == fake_training
    for trial in study.trials:
        accuracies = curve(trial.params["emb"], trial.params["lr"], trial.params["batch"])
        reported = list(trial.intermediate_values.values())
        assert reported == accuracies[:len(reported)] and reported
        if trial.state.name == "COMPLETE":
            assert trial.value == accuracies[-1] and reported == accuracies
    assert {t.state.name for t in study.trials} == {"COMPLETE", "PRUNED"}, "the median pruner stops some trials"
    assert all(t.state.name == "COMPLETE" for t in study.trials[:5]), "but none of the first five"


@pytest.mark.parametrize(("attention", "heads", "embs"), [("full", 8, (8, 16, 32, 64, 128)),
                                                          ("simple", 7, SEARCH_SPACE["emb"][1])])
def test_lr_is_searched_on_a_log_scale_and_emb_among_sizes_the_heads_divide(fake_training, attention, heads, embs):
    """lr from 1e-4 to 1e-1 on a log scale (drawn uniformly, nine in ten would be above 1e-2); only
    multi-head attention needs its heads to divide emb (simple attention has no heads: every size goes)."""
    _, data, settings = base()
    config = model_config(attention, vocab=len(data.i2w), emb=16, heads=heads)
    distributions = tune(config, data, settings, trials=1).trials[0].distributions
    assert distributions["lr"].log and (distributions["lr"].low, distributions["lr"].high) == (1e-4, 1e-1)
    assert tuple(distributions["emb"].choices) == embs


@pytest.mark.parametrize(("space", "message"), [({"dropout": ("choice", (0.0, 0.1))}, r"cannot search \['dropout'\]"),
                                                ({"lr": ("uniform", (0.1, 0.2))}, "search kind must be")],
                         ids=["unknown name", "unknown kind"])
def test_the_api_refuses_what_it_cannot_search(fake_training, space, message):
    config, data, settings = base()
    with pytest.raises(ValueError, match=message):
        tune(config, data, settings, trials=1, space=space)


@pytest.mark.parametrize("progress", [False, True])
def test_the_search_draws_its_progress_bar_only_when_asked(fake_training, capfd, progress):
    config, data, settings = base()
    tune(config, data, replace(settings, progress=progress), trials=2)
    assert ("Best trial" in capfd.readouterr().err) == progress


def test_a_seeded_search_repeats_and_another_seed_differs(fake_training):
    config, data, settings = base()
    runs = [[t.params for t in tune(config, data, settings, trials=4, seed=seed).trials] for seed in (5, 5, 6)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def tune_json(tmp_path, name, *flags):
    out = tmp_path / name
    assert main(["tune", *BASE, "--model", "full", "--heads", "2", *flags, "--out", str(out)]) == 0
    return json.loads((out / "tune.json").read_text())


def test_the_command_searches_only_what_search_names(fake_training, tmp_path):
    result = tune_json(tmp_path, "lr-only", "--search", " lr, ", "--trials", "3", "--pos")   # spaces are ignored
    assert all(set(t["params"]) == {"lr"} for t in result["trials"])
    assert {c["batch"] for c in fake_training} == {64} and {c["emb"] for c in fake_training} == {300}
    assert (result["positions"], result["pool"], result["epochs"]) == (True, "mean", 2)   # what stayed fixed


def test_the_command_passes_its_seed_to_the_sampler(fake_training, tmp_path):
    runs = [[t["params"] for t in tune_json(tmp_path, f"run{i}", "--trials", "3", "--seed", str(seed))["trials"]]
            for i, seed in enumerate((1, 1, 2))]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_the_command_passes_its_timeout(monkeypatch, tmp_path):
    """--timeout must stop starting trials: 15 trials of 0.2 s each do not fit in 0.5 s."""
    def slow(config, data, settings, *, on_epoch=None, log=None):
        time.sleep(0.2)
        return TrainResult(model=None, val_accuracy=[0.5], val_loss=[1.0], train_loss=[1.0])

    monkeypatch.setattr(minitx.tune, "train_classifier", slow)
    result = tune_json(tmp_path, "timed", "--trials", "15", "--timeout", "0.5")
    assert 1 <= len(result["trials"]) < 15
