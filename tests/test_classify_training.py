"""What a mutation review found unchecked in minitx.classify: the token-budget path's cut, --final, the
divergence check, seeds, the summary, the cut in training."""

import gzip
import math
import pickle
import types
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

import minitx.classify as classify
from minitx.classify import (
    Dataset,
    TrainingDiverged,
    TrainResult,
    TrainSettings,
    load_dataset,
    model_config,
    train_classifier,
    train_seeds,
)
from minitx.data import SPECIALS, load_imdb_synth, token_budget_batches


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def quick(**overrides) -> TrainSettings:
    return TrainSettings(**{"epochs": 1, "lr": 1e-2, "batch": 32, "max_len": None, "progress": False,
                            "device": "cpu", **overrides})


def long_and_short() -> Dataset:
    """Sequences of 2 to 40 tokens (labels alternate), so a cut at 4 changes the token-budget batches."""
    i2w = [*SPECIALS, "a", "b"]
    x = [[4 + (i + j) % 2 for j in range(2 + i % 39)] for i in range(120)]
    x.sort(key=len)
    y = [i % 2 for i in range(120)]
    return Dataset("made", (x, y), (x[:20], y[:20]), i2w, {w: i for i, w in enumerate(i2w)}, classes=2)


def test_token_budget_training_counts_lengths_after_the_max_len_cut():
    """With --tokens and --max-len, a batch holds as many cut sequences as the budget allows: counting the
    uncut lengths made small batches and many more steps."""
    data = long_and_short()
    config = model_config("baseline", vocab=len(data.i2w), emb=8, pool="max")
    result = train_classifier(config, data, quick(tokens=32, max_len=4, epochs=2))
    cut = [min(len(s), 4) for s in data.train[0]]
    assert result.steps == 2 * len(token_budget_batches(cut, 32, shuffle=False))


def test_training_batches_are_cut_to_max_len(monkeypatch):
    """A model with a position table of max_len rows trains on data longer than that: the training batches
    must be cut as evaluation's are (uncut they overran the table; without positions the cut was ignored)."""
    data = long_and_short()
    config = model_config("full", vocab=len(data.i2w), emb=8, heads=2, positions=True, pool="mean", max_len=4)
    seen = []
    original = classify.make_batch

    def spy(*args, **kwargs):
        batch = original(*args, **kwargs)
        seen.append(batch[0].shape[1])
        return batch

    monkeypatch.setattr(classify, "make_batch", spy)
    train_classifier(config, data, quick(max_len=4))
    assert seen and max(seen) <= 4


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_loss_that_is_not_finite_stops_training(monkeypatch, bad):
    """No test made train_classifier itself raise TrainingDiverged (the tuner's test fakes it): a NaN or an
    infinite loss must stop the run with that error, before it is validated and reported as a result."""
    data = load_dataset("xor", ntrain=64, nval=32)
    config = model_config("baseline", vocab=len(data.i2w), emb=8, pool="max")

    def cross_entropy(logits, labels, *args, **kwargs):
        loss = F.cross_entropy(logits, labels, *args, **kwargs)
        return loss * bad if torch.is_grad_enabled() else loss              # training only

    monkeypatch.setattr(classify, "F", types.SimpleNamespace(cross_entropy=cross_entropy))
    with pytest.raises(TrainingDiverged, match="diverged"):
        train_classifier(config, data, quick(batch=64))              # one step: an inf is not followed by NaNs


def test_an_empty_validation_set_is_refused_before_training():
    """An empty validation split failed only after a whole epoch, inside evaluate."""
    data = load_dataset("xor", ntrain=64, nval=32)
    empty = Dataset("empty", data.train, ([], []), data.i2w, data.w2i, classes=2)
    config = model_config("baseline", vocab=len(data.i2w), emb=8, pool="max")
    with pytest.raises(ValueError, match="need examples: 64 and 0"):
        train_classifier(config, empty, quick())


def test_load_dataset_passes_its_seed():
    """load_dataset(seed=...) for synth/xor must draw that seed's data, not seed 0's."""
    for seed in (0, 1):
        data = load_dataset("synth", ntrain=50, nval=20, seed=seed)
        (x, y), (xv, yv), _, _ = load_imdb_synth(ntrain=50, ntest=20, seed=seed)
        assert (data.train, data.val) == ((x, y), (xv, yv))
    assert load_dataset("synth", ntrain=50, nval=20, seed=1).train != load_dataset("synth", ntrain=50, nval=20).train


@pytest.mark.parametrize(("path", "loader"), [("imdb.word.pkl.gz", "load_imdb"), ("reviews.tsv.gz", "load_imdb_raw")])
def test_load_dataset_passes_seed_final_and_vocab_to_the_imdb_loaders(monkeypatch, path, loader):
    """The seed draws IMDb's validation split: load_dataset('imdb', seed=1) must not draw seed 0's (the
    course's pickle and the raw reviews each have their own loader)."""
    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        raise LookupError("stop")

    monkeypatch.setattr(classify, loader, spy)
    with pytest.raises(LookupError):
        load_dataset("imdb", path=path, seed=3, final=True, vocab=7)
    assert (seen["seed"], seen["final"], seen["voc"]) == (3, True, 7)


def test_train_seeds_trains_once_per_seed():
    """train_seeds must give each run its own seed (the runs equal single runs with those seeds)."""
    data = load_dataset("xor", ntrain=64, nval=32)
    config = model_config("baseline", vocab=len(data.i2w), emb=8, pool="max")
    results = train_seeds(config, data, quick(), seeds=[3, 4])
    for seed, result in zip([3, 4], results, strict=True):
        alone = train_classifier(config, data, quick(seed=seed))
        assert result.val_loss == alone.val_loss
    assert results[0].val_loss != results[1].val_loss


def test_on_epoch_gets_each_epochs_validation_accuracy():
    """The tuner's pruner judges a trial by what on_epoch hands it: the validation accuracy, epoch by epoch."""
    data = load_dataset("xor", ntrain=64, nval=32)
    config = model_config("baseline", vocab=len(data.i2w), emb=8, pool="max")
    seen = []
    result = train_classifier(config, data, quick(epochs=2), on_epoch=lambda *args: seen.append(args))
    assert seen == [(1, result.val_accuracy[0]), (2, result.val_accuracy[1])]


def test_summary_best_is_the_maximum_over_epochs():
    """best_val_accuracy is the best epoch's, final_val_accuracy the last epoch's."""
    accuracies = [0.5, 0.9, 0.7]
    result = TrainResult(model=None, val_accuracy=accuracies, val_loss=[1.0, 0.5, 0.6], train_loss=[1.0] * 3)
    summary = result.summary()
    assert summary["best_val_accuracy"] == max(accuracies) and summary["final_val_accuracy"] == accuracies[-1]
    assert [e["val_accuracy"] for e in summary["epochs"]] == accuracies


def imdb_pickle(tmp_path):
    """A course-layout pickle of 12 train and 9 test reviews (every review distinct)."""
    i2w = [*SPECIALS, "good", "bad", "film"]
    seqs = {"train": [[4, 5] * (1 + i) for i in range(12)], "test": [[6, 4] * (1 + i) for i in range(9)]}
    labels = {"train": [i % 2 for i in range(12)], "test": [(i // 2) % 2 for i in range(9)]}
    path = tmp_path / "imdb.word.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps((seqs, labels, i2w, {w: i for i, w in enumerate(i2w)}))))
    return path, seqs, labels


def test_final_imdb_validates_on_the_test_split(tmp_path):
    """load_dataset('imdb', final=True) must hold out the test reviews (it drew a validation split instead,
    which on this small file is an error)."""
    path, seqs, labels = imdb_pickle(tmp_path)
    data = load_dataset("imdb", path=path, final=True)

    def pairs(x, y):
        return Counter(zip(map(tuple, x), y, strict=True))

    assert pairs(*data.val) == pairs(seqs["test"], labels["test"])
    assert pairs(*data.train) == pairs(seqs["train"], labels["train"])


def test_training_a_classifier_leaves_the_callers_random_state_alone_and_repeats():
    """train_classifier reseeded random, NumPy and torch: a caller's later draws repeated after every run."""
    import random

    import numpy as np
    data = long_and_short()
    config = model_config("transformer", vocab=len(data.i2w), emb=8, heads=2, depth=1, dropout=0.3)
    states = random.getstate(), np.random.get_state()[1].copy(), torch.random.get_rng_state()
    first = train_classifier(config, data, quick(seed=3))
    assert random.getstate() == states[0] and np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.random.get_rng_state(), states[2])
    torch.rand(5)                                          # the caller draws: the next run repeats all the same
    second = train_classifier(config, data, quick(seed=3))
    assert first.val_loss == second.val_loss and first.train_loss == second.train_loss
