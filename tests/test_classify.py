"""The classification trainer: it learns, it masks padding, it repeats exactly under a seed."""

import math
import os

import pytest
import torch

import minitx.classify as classify
from minitx.classify import (
    Dataset,
    TrainSettings,
    evaluate,
    load_checkpoint,
    load_dataset,
    mean_std,
    model_config,
    save_checkpoint,
    train_classifier,
)
from minitx.data import pad_batch
from minitx.nn import Classifier
from minitx.runtime import warmup_decay
from minitx.tracking import RunLog

SHORT = os.environ.get("MINITX_SHORT") == "1"


pytestmark = pytest.mark.usefixtures("one_thread")   # see conftest.py


def small(name: str, n: int = 2000, **kwargs) -> Dataset:
    return load_dataset(name, ntrain=n, nval=n // 2, **kwargs)


def quick(**overrides) -> TrainSettings:
    return TrainSettings(**{"epochs": 1, "lr": 1e-2, "batch": 32, "max_len": None, "progress": False,
                            "device": "cpu", **overrides})


def test_xor_with_positions_is_solved_in_seconds():
    data = small("xor", 3000)
    config = model_config("simple", vocab=len(data.i2w), emb=16, pool="select", positions=True, max_len=2)
    result = train_classifier(config, data, quick(epochs=3, batch=16))
    assert result.accuracy == 1.0
    assert result.train_loss[-1] < result.train_loss[0]


def test_loss_falls_on_synth_with_max_pool():
    data = small("synth", 1500)
    config = model_config("baseline", vocab=len(data.i2w), emb=16, pool="max")
    result = train_classifier(config, data, quick(epochs=3, lr=3e-2))
    assert result.train_loss[-1] < 0.75 * result.train_loss[0]
    assert result.accuracy > 0.9


def test_epoch_train_loss_is_per_example_like_the_validation_loss():
    """Token-budget batches hold 12 short reviews or 1 long one: the epoch's loss must still be the mean over
    examples (what `evaluate` gives), not the mean of the batch means, which weighs each long review 12 times
    as much as a short one. Long and short reviews have different labels, so their losses differ. A learning
    rate of 1e-9 keeps the model still, so the two numbers measure the same function."""
    generator = torch.Generator().manual_seed(0)
    short = [torch.randint(4, 20, (2,), generator=generator).tolist() for _ in range(48)]
    long = [torch.randint(4, 20, (24,), generator=generator).tolist() for _ in range(8)]
    i2w = [".pad", ".start", ".end", ".unk"] + [f"w{i}" for i in range(4, 20)]
    train = (short + long, [0] * len(short) + [1] * len(long))
    data = Dataset("lengths", train, train, i2w, {w: i for i, w in enumerate(i2w)}, classes=2)
    config = model_config("baseline", vocab=len(i2w), emb=16, pool="max")
    result = train_classifier(config, data, quick(lr=1e-9, tokens=24))
    _, train_loss = evaluate(result.model, data.train, pad_idx=data.pad_idx, max_len=None,
                             device=torch.device("cpu"))
    assert result.train_loss[0] == pytest.approx(train_loss, rel=1e-4)


@pytest.mark.parametrize(("warmup", "first_lr"), [(2, 0.5), (0, 1.0)])   # warmup's first step: half the rate
def test_logged_learning_rate_is_the_one_each_step_used_and_decay_ends_at_ten_percent(warmup, first_lr):
    """--decay without --warmup decays too (the schedule was only made when there was a warmup)."""
    data = small("xor", 64)
    config = model_config("baseline", vocab=len(data.i2w), emb=8, pool="max")
    log = RunLog(None, {})
    train_classifier(config, data, quick(batch=16, lr=1.0, warmup=warmup, decay=True, log_every=1), log=log)
    steps = len(log.series["train/lr"])
    factor = warmup_decay(warmup, steps, final_fraction=0.1)
    assert [lr for _, lr in log.series["train/lr"]] == pytest.approx([factor(k) for k in range(steps)])
    assert log.series["train/lr"][0][1] == pytest.approx(first_lr)
    assert log.series["train/lr"][-1][1] == pytest.approx(0.1)          # the last step at the floor


def test_training_logs_every_log_every_steps_and_at_the_end_of_each_epoch():
    """``log_every`` sets how often the loss is read and logged (loss, tokens/s and lr together), and the
    epoch's last step always logs; syncing every step would still pass every other test."""
    data = small("xor", 64)                                          # 64 examples in batches of 8: 8 steps
    config = model_config("baseline", vocab=len(data.i2w), emb=8, pool="max")
    log = RunLog(None, {})
    train_classifier(config, data, quick(batch=8, epochs=2, log_every=3), log=log)
    for name in ("train/loss", "train/tokens_per_s", "train/lr"):
        assert [step for step, _ in log.series[name]] == [3, 6, 8, 11, 14, 16], name


@pytest.mark.parametrize(("warmup", "total"), [(0, 1), (3, 4), (0, 2), (2, 10)])
def test_warmup_decay_reaches_the_floor_on_the_last_step_however_short_the_run(warmup, total):
    factor = warmup_decay(warmup, total, final_fraction=0.1)
    assert factor(total - 1) == pytest.approx(0.1)          # a one-step run, or warmup ending on the last step
    peak_step = warmup - 1 if warmup else 0                 # the end of warmup, or the first step without it
    if peak_step < total - 1:
        assert factor(peak_step) == pytest.approx(1.0)


def test_empty_splits_are_clear_errors():
    data = small("xor", 64)
    empty = Dataset("empty", ([], []), data.val, data.i2w, data.w2i, classes=2)
    config = model_config("baseline", vocab=len(data.i2w), emb=8, pool="max")
    with pytest.raises(ValueError, match="need examples: 0 and"):
        train_classifier(config, empty, quick())
    with pytest.raises(ValueError, match="no examples"):
        evaluate(Classifier(config), ([], []), pad_idx=data.pad_idx, max_len=None, device=torch.device("cpu"))


def test_what_is_not_a_classifier_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        load_checkpoint(tmp_path)                                                     # a directory
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "metrics.json").write_text('{"final_val_accuracy": 0.5}')                 # torch: UnpicklingError
    (tmp_path / "notes.pt").write_text("hello, not a checkpoint\n")                      # torch: KeyError
    for name in ("metrics.json", "notes.pt"):
        with pytest.raises(ValueError, match="not a readable checkpoint: it is not one torch.save wrote"):
            load_checkpoint(tmp_path / name)
    torch.save({"config": {"vocab": 5, "context": 8}, "data": "toy", "state_dict": {}}, tmp_path / "lm.pt")
    with pytest.raises(ValueError, match="not a classifier's model.pt"):
        load_checkpoint(tmp_path / "lm.pt")


def test_seeded_cpu_runs_repeat_exactly_and_seeds_differ():
    data = small("synth", 500)
    config = model_config("full", vocab=len(data.i2w), emb=16, heads=2, pool="select")

    def run(seed):
        result = train_classifier(config, data, quick(epochs=2, seed=seed, batch=16, warmup=5, decay=True, clip=1.0))
        return result.val_loss, [p.detach().clone() for p in result.model.parameters()]

    (loss_a, params_a), (loss_b, params_b), (loss_c, _) = run(3), run(3), run(4)
    assert loss_a == loss_b
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b, strict=True))
    assert loss_a != loss_c


def test_padding_does_not_change_predictions():
    """The same sequences, padded to different lengths inside a batch, must give the same logits."""
    data = small("synth", 200)
    config = model_config("transformer", vocab=len(data.i2w), emb=16, heads=2, depth=2, pool="mean")
    model = train_classifier(config, data, quick(batch=64)).model.eval()
    short, long = [3, 4, 5], [3, 4, 5, 6, 7, 8, 9]
    from minitx.data import pad_batch

    alone, mask_alone = pad_batch([short], data.pad_idx)
    padded, mask_padded = pad_batch([short, long], data.pad_idx)
    torch.testing.assert_close(model(alone, mask_alone)[0], model(padded, mask_padded)[0])


def test_evaluate_counts_accuracy_and_loss():
    data = small("xor", 200)
    config = model_config("baseline", vocab=len(data.i2w), emb=4, pool="select")
    model = train_classifier(config, data, quick()).model
    x, y = data.val
    tokens, mask = pad_batch(x, data.pad_idx)
    with torch.no_grad():
        logits = model(tokens, mask)
    labels = torch.tensor(y)
    for batch in (256, 7):   # one batch, then 15 uneven ones: sums over examples, not means of batch means
        accuracy, loss = evaluate(model, data.val, pad_idx=data.pad_idx, max_len=None, device=torch.device("cpu"),
                                  batch=batch)
        assert accuracy == pytest.approx((logits.argmax(-1) == labels).float().mean().item())
        assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-5)


def test_token_budget_batches_train_too():
    data = small("synth", 500)
    config = model_config("baseline", vocab=len(data.i2w), emb=8, pool="max")
    result = train_classifier(config, data, quick(tokens=64))
    assert result.steps >= 500 * 6 // 64


@pytest.mark.parametrize("kind", ["baseline", "transformer"])
def test_reviews_that_tokenise_to_nothing_train_and_evaluate(kind):
    """A review of only punctuation ("10/10") is an empty sequence; a token budget puts all of them in one
    batch, which pad_batch made (b, 0) and the models refused. Now they pool to zeros like padding."""
    i2w = [".pad", ".start", ".end", ".unk", "good", "bad"]
    train = ([[], [4], [], [5, 5], [4, 4, 4]], [1, 0, 0, 1, 0])
    data = Dataset("empties", train, ([[], []], [0, 1]), i2w, {w: i for i, w in enumerate(i2w)}, classes=2)
    result = train_classifier(model_config(kind, vocab=len(i2w), emb=8, heads=2), data, quick(tokens=2))
    accuracy, loss = evaluate(result.model, data.val, pad_idx=0, max_len=None, device=torch.device("cpu"))
    assert accuracy in (0.0, 0.5, 1.0) and math.isfinite(loss)


def test_start_token_is_prepended():
    plain, with_start = small("xor", 100), small("xor", 100, start_token=True)
    start = plain.w2i[".start"]
    assert all(s == [start, *p] for s, p in zip(with_start.train[0], plain.train[0], strict=True))


def test_checkpoint_round_trip(tmp_path):
    data = small("xor", 100)
    config = model_config("full", vocab=len(data.i2w), emb=8, heads=2, pool="select", positions=True, max_len=2)
    model = train_classifier(config, data, quick()).model
    save_checkpoint(tmp_path / "model.pt", model, "xor")
    loaded, name = load_checkpoint(tmp_path / "model.pt")
    tokens = torch.tensor(data.val[0][:8])
    assert name == "xor"
    assert not loaded.training                                   # eval mode, as the docstring says (no dropout)
    torch.testing.assert_close(loaded(tokens), model.eval()(tokens))


def test_a_failed_checkpoint_save_leaves_the_earlier_checkpoint_whole(tmp_path, monkeypatch):
    """save_checkpoint writes beside the file and renames: a crash mid-write keeps the last good model.pt."""
    config = model_config("baseline", vocab=6, emb=4, pool="max")
    save_checkpoint(tmp_path / "model.pt", Classifier(config), "xor")
    before = (tmp_path / "model.pt").read_bytes()

    def crash(payload, file):
        with open(file, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "model.pt", Classifier(config), "xor")
    assert (tmp_path / "model.pt").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]                # and no temporary file is left


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="unknown model"):
        model_config("lstm", vocab=10)
    with pytest.raises(ValueError, match="lr must be positive"):
        TrainSettings(lr=0).validate()
    with pytest.raises(ValueError, match="max_len must be positive"):          # 0 is the CLI's "no cut": None here
        TrainSettings(max_len=0).validate()
    with pytest.raises(ValueError, match="warmup must be >= 0"):
        TrainSettings(warmup=-1).validate()
    with pytest.raises(FileNotFoundError, match="No data file"):
        load_dataset("imdb", path=tmp_path / "missing.pkl.gz")
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_mean_std():
    assert mean_std([1.0]) == (1.0, 0.0)
    mean, std = mean_std([1.0, 2.0, 3.0])
    assert mean == 2.0 and std == pytest.approx(1.0)


@pytest.mark.slow
def test_full_attention_beats_simple_on_xor_without_positions():
    """Q7: multi-head attention can represent XOR from the first position; simple attention cannot (<= 0.75)."""
    data = small("xor", 2000 if SHORT else 5000)
    settings = quick(epochs=2 if SHORT else 3, lr=1e-2, batch=16)
    simple = train_classifier(model_config("simple", vocab=len(data.i2w), emb=16, pool="select"), data, settings)
    full = train_classifier(model_config("full", vocab=len(data.i2w), emb=16, heads=4, pool="select"), data,
                            settings)
    assert simple.accuracy <= 0.76
    assert full.accuracy > 0.95


def test_classifier_optimizer_steps_on_clipped_gradients(step_gradient_norms):
    import minitx.runtime

    norms = step_gradient_norms(minitx.runtime)
    data = small("xor", 64)
    config = classify.model_config("baseline", vocab=len(data.i2w), emb=8, pool="max")
    classify.train_classifier(config, data, quick(batch=16, clip=1e-3))
    assert norms and max(norms) <= 1e-3 * (1 + 1e-4)


def test_warmup_without_decay_stays_at_the_peak():
    data = small("xor", 64)
    config = classify.model_config("baseline", vocab=len(data.i2w), emb=8, pool="max")
    log = RunLog(None, {})
    classify.train_classifier(config, data, quick(batch=16, lr=1.0, warmup=2, log_every=1), log=log)
    lrs = [lr for _, lr in log.series["train/lr"]]
    assert lrs[:2] == pytest.approx([0.5, 1.0]) and lrs[2:] == pytest.approx([1.0] * (len(lrs) - 2))


def test_evaluate_cuts_to_max_len_and_restores_training_mode():
    data = small("synth", 40)
    config = classify.model_config("full", vocab=len(data.i2w), emb=8, heads=2, positions=True, max_len=512)
    model = classify.Classifier(config, torch.Generator().manual_seed(0)).train()
    cpu = torch.device("cpu")
    cut = ([s[:3] for s in data.val[0]], data.val[1])
    got = classify.evaluate(model, data.val, pad_idx=data.pad_idx, max_len=3, device=cpu)
    assert model.training
    classify.evaluate(model.eval(), data.val, pad_idx=data.pad_idx, max_len=3, device=cpu)
    assert not model.training                                   # restored, not switched to training
    model.train()
    expected = classify.evaluate(model, cut, pad_idx=data.pad_idx, max_len=None, device=cpu)
    assert got == pytest.approx(expected)
    assert got != pytest.approx(classify.evaluate(model, data.val, pad_idx=data.pad_idx, max_len=None, device=cpu))


def test_an_empty_validation_set_is_refused():
    from minitx.classify import load_dataset
    with pytest.raises(ValueError, match="ntrain and nval must be positive numbers of instances, got 10 and 0"):
        load_dataset("xor", ntrain=10, nval=0)
