"""The language-model trainer: per-token loss, run files, exact resume, NaN handling, config checks."""

import json
import math
import signal
import warnings

import pytest
import torch

import minitx.lm_train as lm_train
from minitx import LMConfig
from minitx.checkpoint import load_checkpoint, save_checkpoint
from minitx.lm_train import CHECKPOINT, LMTrainSettings, Schedule, lm_loss, train_lm
from minitx.tracking import RunLog

V = 9
CONFIG = LMConfig(vocab=V, emb=16, heads=2, depth=1, context=8)
STREAM = torch.randint(0, V, (400,), generator=torch.Generator().manual_seed(0))


def settings(**changes) -> LMTrainSettings:
    base = dict(batch=4, steps=6, lr=1e-2, warmup=2, log_every=1, eval_every=3, eval_batches=2, sample_every=3,
                sample_length=5, seed_length=4, checkpoint_every=1, final_eval="exact")
    return LMTrainSettings(**{**base, **changes})


def run(out=None, resume=False, stream=STREAM, config=CONFIG, **changes):
    return train_lm(config, stream, stream[:100], settings(**changes), i2c=[str(i) for i in range(V)], out=out,
                    resume=resume, quiet=True)


def test_the_loss_is_the_mean_over_every_position():
    """Random logits against a loop over positions: each of the b * t positions weighs 1 / (b * t)."""
    generator = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(3, 5, V, generator=generator), torch.randint(0, V, (3, 5), generator=generator)
    logits[2, 4] *= 20                                                   # one position far worse than the rest
    nats = [-torch.log_softmax(logits[i, j], dim=-1)[targets[i, j]] for i in range(3) for j in range(5)]
    assert lm_loss(logits, targets).item() == pytest.approx(torch.stack(nats).mean().item(), rel=1e-6)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (8, 2)])
def test_the_loss_is_per_token(shape):
    """Uniform logits cost ln V nats per token whatever the batch size and length."""
    logits, targets = torch.zeros(*shape, V), torch.randint(0, V, shape)
    assert lm_loss(logits, targets).item() == pytest.approx(math.log(V))


def test_schedule_warms_up_then_decays_by_steps_or_by_clock():
    schedule = Schedule(warmup=10, steps=100, final_fraction=0.1)
    assert schedule.factor(0, 0) == pytest.approx(0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(0))), rel=1e-3)
    assert schedule.factor(9, 0) > schedule.factor(50, 0) > schedule.factor(99, 0) >= 0.1
    assert schedule.factor(100, 0) == pytest.approx(0.1)
    timed = Schedule(warmup=10, steps=10**9, time_limit_s=60, final_fraction=0.1)
    assert timed.progress(20, 30) == pytest.approx(0.5) and timed.factor(20, 60) == pytest.approx(0.1)
    # on the clock, warmup ends after 5% of the time even if fewer than `warmup` steps were taken
    assert timed.factor(2, 0) == pytest.approx(0.3, rel=1e-3) and timed.factor(2, 3) == pytest.approx(1, rel=1e-2)


def test_a_run_writes_metrics_plots_and_a_checkpoint(tmp_path):
    result = run(out=tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [step for step, _ in metrics["series"]["val/bits"]] == [3, 6]
    # each estimate's standard error beside it: the windows' spread, positive, well under the estimate itself
    assert [step for step, _ in metrics["series"]["val/bits_stderr"]] == [3, 6]
    assert all(0 < error < bits / 2 for (_, bits), (_, error)
               in zip(metrics["series"]["val/bits"], metrics["series"]["val/bits_stderr"], strict=True))
    assert len(metrics["series"]["train/bits"]) == 6 and len(metrics["series"]["grad_norm"]) == 6
    assert metrics["final_exact_bits"] == pytest.approx(result.summary["final_exact_bits"])
    assert [s[0] for s in metrics["samples"]] == [3, 6] and all(len(s[2]) == 9 for s in metrics["samples"])
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())
    payload = load_checkpoint(tmp_path / CHECKPOINT)                    # weights_only=True
    assert payload["step"] == 6 and payload["config"] == CONFIG.to_dict()


@pytest.mark.parametrize(("batch", "eval_batches", "spread"), [(4, 2, True), (1, 1, False)])
def test_the_printed_estimate_carries_two_standard_errors_where_it_has_a_spread(capsys, batch, eval_batches, spread):
    """A single window has no spread (NaN): its line leaves the ± out rather than print "± nan"."""
    train_lm(CONFIG, STREAM, STREAM[:100], settings(batch=batch, eval_batches=eval_batches, steps=3),
             i2c=[str(i) for i in range(V)], quiet=False)
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step 3: validation")]
    assert "nan" not in line and ("± " in line) == spread and ("± two standard errors" in line) == spread


@pytest.mark.parametrize(("steps", "evaluations", "samples"),
                         [(6, [2, 3, 4, 6], [2, 4, 6]), (5, [2, 3, 4, 5], [2, 4, 5])])
def test_evaluations_and_samples_fall_where_asked_whatever_the_logging_interval(steps, evaluations, samples):
    """The last step is evaluated and sampled also off the --eval-every / --sample-every grid (steps=5)."""
    result = run(steps=steps, log_every=4, eval_every=3, sample_every=2, final_eval="none")
    assert [step for step, _ in result.log.series["val/bits"]] == evaluations
    assert [step for step, *_ in result.samples] == samples


def test_the_loss_goes_down_on_a_learnable_stream():
    result = run(stream=torch.arange(400) % V, steps=30, eval_every=30, sample_every=30, log_every=10,
                 final_eval="none")
    series = result.log.series["train/bits"]
    assert series[-1][1] < series[0][1] / 2


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, monkeypatch, dropout):
    """With dropout the masks come from torch's global generator: it must be restored too."""
    config = LMConfig(**{**CONFIG.to_dict(), "dropout": dropout})
    whole = run(out=tmp_path / "whole", final_eval="none", config=config)

    real_save = lm_train.save_checkpoint

    def save_then_crash(path, payload):
        real_save(path, payload)
        if payload["step"] == 4:
            raise Interrupt

    monkeypatch.setattr(lm_train, "save_checkpoint", save_then_crash)
    with pytest.raises(Interrupt):
        run(out=tmp_path / "split", final_eval="none", config=config)
    monkeypatch.setattr(lm_train, "save_checkpoint", real_save)
    resumed = run(out=tmp_path / "split", resume=True, final_eval="none", config=config)

    assert resumed.step == 6
    assert resumed.log.series["train/bits"] == whole.log.series["train/bits"]   # every step's loss, equal
    # the evaluation windows and sample seeds continue their streams too: step 6 is not step 0 again
    assert resumed.log.series["val/bits"] == whole.log.series["val/bits"]
    samples = [json.loads((tmp_path / name / "metrics.json").read_text())["samples"] for name in ("split", "whole")]
    assert samples[0] == samples[1]
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_a_resumed_run_counts_on_from_the_saved_training_time(tmp_path):
    """The clock (time limits, the schedule on the clock, train_time_s) continues from the checkpoint's."""
    run(out=tmp_path, steps=3, final_eval="none")
    saved = load_checkpoint(tmp_path / CHECKPOINT)
    save_checkpoint(tmp_path / CHECKPOINT, {**saved, "elapsed_s": 1000.0})
    with pytest.warns(UserWarning, match=r"other training settings than the run's \(steps 3 -> 6\)"):
        resumed = run(out=tmp_path, resume=True, steps=6, final_eval="none")
    assert resumed.step == 6 and 1000.0 <= resumed.summary["train_time_s"] < 1100.0


def test_a_resumed_runs_wall_time_counts_its_earlier_sessions(tmp_path):
    """metrics.json's wall_time_s is the whole run's, not only the last session's."""
    run(out=tmp_path, steps=3, final_eval="none")
    saved = load_checkpoint(tmp_path / CHECKPOINT)
    assert 0.0 < saved["wall_s"] < 60.0
    save_checkpoint(tmp_path / CHECKPOINT, {**saved, "wall_s": 5000.0})
    with pytest.warns(UserWarning, match="other training settings"):
        run(out=tmp_path, resume=True, steps=6, final_eval="none")
    assert 5000.0 < json.loads((tmp_path / "metrics.json").read_text())["wall_time_s"] < 5100.0
    assert load_checkpoint(tmp_path / CHECKPOINT)["wall_s"] > 5000.0


def test_gradient_accumulation_equals_one_big_batch():
    """accumulate=2 with batch 4 draws the same windows as batch 8 (two draws of 4 starts are one draw of 8)
    and averages the two halves' gradients: the same updates as one batch of 8, up to float rounding."""
    big = run(batch=8, steps=3, eval_every=3, sample_every=3, final_eval="none")
    accumulated = run(batch=4, accumulate=2, steps=3, eval_every=3, sample_every=3, final_eval="none")
    for (name, a), b in zip(big.model.state_dict().items(), accumulated.model.state_dict().values(), strict=True):
        if name.endswith("attn.k.bias"):   # no gradient in exact arithmetic (it shifts all of a query's scores
            continue                       # alike): Adam turns its rounding noise into steps of either sign
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize(("first_nan", "message"), [
    (3, r"loss became nan between steps 2 and 3.*last good checkpoint \(step 2\) is kept"),
    (1, r"loss became nan between steps 0 and 1; no checkpoint was written"),   # none to point to
], ids=["after_a_checkpoint", "before_any_checkpoint"])
def test_a_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, first_nan,
                                                                                  message):
    calls = []

    def loss_that_breaks(logits, targets):
        calls.append(1)
        loss = lm_loss(logits, targets)
        return loss * float("nan") if len(calls) >= first_nan else loss

    monkeypatch.setattr(lm_train, "lm_loss", loss_that_breaks)
    with pytest.raises(RuntimeError, match=message):
        run(out=tmp_path)
    if first_nan == 1:
        assert not (tmp_path / CHECKPOINT).exists()
        return
    payload = load_checkpoint(tmp_path / CHECKPOINT)
    assert payload["step"] == 2
    assert all(torch.isfinite(t).all() for t in payload["model"].values())


def test_checkpoints_fall_every_checkpoint_every_steps_and_at_the_end(tmp_path, monkeypatch):
    """Off by one (every checkpoint_every + 1 steps), the counter not reset, or the last step not saved: a
    resume would lose more steps than --checkpoint-every promises."""
    saved = []
    monkeypatch.setattr(lm_train, "save_checkpoint", lambda path, payload: saved.append(payload["step"]))
    run(out=tmp_path, steps=7, checkpoint_every=3, eval_every=7, sample_every=7, final_eval="none")
    assert saved == [3, 6, 7]


def test_resuming_with_another_config_is_a_clear_error_and_changes_nothing(tmp_path):
    run(out=tmp_path, steps=2, final_eval="none")
    before = (tmp_path / CHECKPOINT).read_bytes()
    other = LMConfig(vocab=V, emb=32, heads=2, depth=1, context=8)
    with pytest.raises(ValueError, match=r"another model config \(emb: checkpoint 16 vs asked 32\)"):
        train_lm(other, STREAM, STREAM[:100], settings(), out=tmp_path, resume=True, quiet=True)
    assert (tmp_path / CHECKPOINT).read_bytes() == before


def test_a_folder_that_holds_a_run_is_refused_without_resume(tmp_path):
    """A second run with the same out used to overwrite the first's checkpoint and metrics."""
    run(out=tmp_path, steps=2, final_eval="none")
    before = (tmp_path / CHECKPOINT).read_bytes()
    with pytest.raises(FileExistsError, match=r"already holds a run \(checkpoint.pt, metrics.json\)"):
        run(out=tmp_path, steps=4)
    assert (tmp_path / CHECKPOINT).read_bytes() == before


def test_resuming_a_run_that_ended_runs_only_its_final_evaluation(tmp_path):
    """An interrupted final evaluation could not be redone: --resume said the run had ended."""
    trained = run(out=tmp_path, steps=3, final_eval="none")
    again = run(out=tmp_path, steps=3, final_eval="exact", resume=True)
    assert again.step == 3 and again.log.series["train/bits"] == trained.log.series["train/bits"]
    for (name, a), b in zip(trained.model.state_dict().items(), again.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name                                   # no training step taken
    assert json.loads((tmp_path / "metrics.json").read_text())["final_exact_bits"] > 0


def loss_with_ctrl_c_at(calls: list, *at: int, signum: int = signal.SIGINT):
    """lm_loss that sends this process SIGINT (Ctrl-C), or ``signum``, on its calls numbered ``at`` (1-based; a
    number twice: two signals in that call)."""

    def loss(logits, targets):
        calls.append(1)
        for _ in range(at.count(len(calls))):
            # never raise a signal under its default handler (SIGTERM's): that would end the test process
            assert signal.getsignal(signum) is not signal.SIG_DFL, f"no {signum!r} handler during training"
            signal.raise_signal(signum)
        return lm_loss(logits, targets)
    return loss


def test_ctrl_c_saves_the_step_and_resume_continues_as_if_uninterrupted(tmp_path, monkeypatch):
    """Ctrl-C used to end the run with a traceback, losing every step since the last checkpoint."""
    # logging windows of 4 steps (and at the evaluations, steps 3 and 6): Ctrl-C at step 2 is mid-window
    flags = dict(final_eval="none", checkpoint_every=100, log_every=4)
    whole = run(out=tmp_path / "whole", **flags)
    monkeypatch.setattr(lm_train, "lm_loss", loss_with_ctrl_c_at([], 2))
    with pytest.raises(lm_train.TrainingInterrupted, match="stopped at step 2, saved in"):
        run(out=tmp_path / "split", **flags)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler            # the handler is put back
    assert load_checkpoint(tmp_path / "split" / CHECKPOINT)["step"] == 2
    assert json.loads((tmp_path / "split" / "metrics.json").read_text())["step"] == 2
    monkeypatch.setattr(lm_train, "lm_loss", lm_loss)
    resumed = run(out=tmp_path / "split", resume=True, **flags)
    for name in ("train/bits", "grad_norm", "lr", "val/bits"):   # the same points, each window's mean the same
        assert resumed.log.series[name] == whole.log.series[name], name
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # a second Ctrl-C stops at once (mid-step), as Ctrl-C usually does
    monkeypatch.setattr(lm_train, "lm_loss", loss_with_ctrl_c_at([], 2, 2))
    with pytest.raises(KeyboardInterrupt) as stopped:
        run(out=tmp_path / "twice", final_eval="none")
    assert not isinstance(stopped.value, lm_train.TrainingInterrupted)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_saves_the_step_like_ctrl_c(tmp_path, monkeypatch):
    """SIGTERM (kill, timeout, a job scheduler) stopped the run at once, losing every step since the last
    checkpoint; now it finishes the step, saves and stops, and the handler is put back afterwards."""
    monkeypatch.setattr(lm_train, "lm_loss", loss_with_ctrl_c_at([], 2, signum=signal.SIGTERM))
    with pytest.raises(lm_train.TrainingInterrupted, match="stopped at step 2, saved in"):
        run(out=tmp_path, final_eval="none", checkpoint_every=100)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert load_checkpoint(tmp_path / CHECKPOINT)["step"] == 2


def test_ctrl_c_in_the_last_step_or_the_final_evaluation_stops_and_resume_finishes(tmp_path, monkeypatch):
    """Ctrl-C in the last step still ran the whole final evaluation; Ctrl-C in it left the run unfinishable."""
    monkeypatch.setattr(lm_train, "lm_loss", loss_with_ctrl_c_at([], 6))        # the last of 6 steps
    with pytest.raises(lm_train.TrainingInterrupted, match=r"last step \(6\).*the final evaluation did not run"):
        run(out=tmp_path, final_eval="exact")
    monkeypatch.setattr(lm_train, "lm_loss", lm_loss)
    monkeypatch.setattr(lm_train, "exact_bits", lambda *a, **k: signal.raise_signal(signal.SIGINT))
    with pytest.raises(lm_train.TrainingInterrupted, match="during the final evaluation.*--resume runs"):
        run(out=tmp_path, final_eval="exact", resume=True)
    monkeypatch.undo()
    assert "final_exact_bits" in run(out=tmp_path, final_eval="exact", resume=True).summary


def test_ctrl_c_stops_a_run_without_a_folder_at_once(monkeypatch):
    """With no run folder there is no checkpoint to save: Ctrl-C is not deferred to the end of the step."""
    calls = []
    monkeypatch.setattr(lm_train, "lm_loss", loss_with_ctrl_c_at(calls, 2))
    with pytest.raises(KeyboardInterrupt) as stopped:
        run(final_eval="none")
    assert not isinstance(stopped.value, lm_train.TrainingInterrupted) and len(calls) == 2


def test_ctrl_c_keeps_its_usual_meaning_where_it_is_ignored(tmp_path, monkeypatch):
    """A background job (`minitx lm ... &` in a script) ignores SIGINT: the handler made it stop."""
    monkeypatch.setattr(lm_train, "lm_loss", loss_with_ctrl_c_at([], 2))
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert run(out=tmp_path, final_eval="none").step == 6
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_evaluating_an_ended_run_again_keeps_its_earlier_final_numbers(tmp_path):
    run(out=tmp_path, steps=3, final_eval="exact")
    exact = json.loads((tmp_path / "metrics.json").read_text())["final_exact_bits"]
    run(out=tmp_path, steps=3, final_eval="estimate", eval_batches=2, resume=True)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["final_exact_bits"] == exact and metrics["final_estimate_bits"] > 0


def test_a_folder_with_metrics_but_no_checkpoint_is_not_sent_to_resume(tmp_path):
    """Refused with "--resume to continue it", which then said "no checkpoint ... start without --resume"."""
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(FileExistsError, match="metrics.json but no checkpoint to resume") as refused:
        run(out=tmp_path)
    assert "--resume to" not in str(refused.value)


def test_the_lm_command_reports_an_interrupted_run_without_a_traceback(tmp_path, capsys, monkeypatch):
    import minitx.cli.lm
    from minitx.__main__ import main

    def interrupted(*args, **kwargs):
        raise lm_train.TrainingInterrupted("stopped at step 5, saved in run/checkpoint.pt")

    monkeypatch.setattr(minitx.cli.lm, "train_lm", interrupted)
    text = tmp_path / "text.txt"
    text.write_text("abc " * 100)
    assert main(["lm", "--data", str(text), "--context", "8"]) == 130
    assert "minitx lm: interrupted: stopped at step 5" in capsys.readouterr().err


def test_the_lm_command_draws_the_toy_grammars_entropy_floor_for_the_toy_data_only(monkeypatch):
    """The floor on the loss plot is the toy grammar's: no test looked at it, so one dropped or drawn under
    another data set's curves went unnoticed."""
    import minitx.cli.lm
    import minitx.grammar
    from minitx.__main__ import main

    floors = []
    monkeypatch.setattr(minitx.cli.lm, "train_lm", lambda *args, floor=None, **kwargs: floors.append(floor))
    i2c = [str(i) for i in range(V)]
    monkeypatch.setattr(minitx.cli.lm, "load_lm_data", lambda data: ((STREAM, STREAM[:100]), (i2c, {})))
    monkeypatch.setattr(minitx.grammar, "toy_entropy_floor", lambda: 0.548)       # computing it takes a while
    for data in ("toy", "text.txt"):
        assert main(["lm", "--data", data]) == 0
    assert floors == [0.548, None]


def test_resuming_on_other_data_is_an_error_and_other_settings_a_warning(tmp_path):
    """--resume with another --data file went on training on it, silently; metrics.json did not say which."""
    run(out=tmp_path, steps=2, final_eval="none")
    before, files = (tmp_path / CHECKPOINT).read_bytes(), sorted(tmp_path.rglob("*"))
    other = torch.flip(STREAM, [0])                                   # the same tokens, in another order
    with pytest.raises(ValueError, match="trained on other data .* resume with the same --data"):
        run(out=tmp_path, resume=True, stream=other, steps=4, final_eval="none")
    assert (tmp_path / CHECKPOINT).read_bytes() == before
    assert sorted(tmp_path.rglob("*")) == files                       # not even an empty TensorBoard file
    recorded = json.loads((tmp_path / "metrics.json").read_text())["config"]["data"]
    assert recorded == lm_train.data_identity(STREAM, STREAM[:100]) and recorded["train_tokens"] == len(STREAM)
    assert lm_train.data_identity(STREAM, torch.flip(STREAM[:100], [0])) != recorded    # the val stream counts too
    with pytest.warns(UserWarning, match=r"other training settings than the run's \(steps 2 -> 3, lr 0.01 -> 0.02\)"):
        run(out=tmp_path, resume=True, steps=3, lr=0.02, final_eval="none")


def test_a_warmup_as_long_as_the_run_warns():
    with pytest.warns(UserWarning, match="never reaches lr"):
        settings(steps=20, warmup=500).validate()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        settings(steps=20, warmup=5).validate()
        settings(steps=20, warmup=20).validate()                      # the last step reaches lr: (19 + 1) / 20
        settings(steps=20, warmup=500, time_limit=1.0).validate()     # on the clock warmup ends by time


def test_resume_without_a_checkpoint_and_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint at .*; start without --resume"):
        run(out=tmp_path / "missing", resume=True)
    assert not (tmp_path / "missing").exists()                     # refused before the run folder is made
    with pytest.raises(ValueError, match="batch must be positive"):
        run(batch=0)
    with pytest.raises(ValueError, match="epsilon must be in"):
        run(epsilon=1.5)
    with pytest.raises(ValueError, match="final_lr_fraction"):
        run(final_lr_fraction=-1)                                  # a negative learning rate at the end
    with pytest.raises(ValueError, match="weight_decay must be >= 0, got -1"):
        run(weight_decay=-1)
    with pytest.raises(ValueError, match="sample_length"):
        run(sample_length=-3)                                      # refused before training, not after
    with pytest.raises(ValueError, match="final_eval must be 'exact', 'estimate' or 'none', got 'exakt'"):
        settings(final_eval="exakt").validate()                    # a typo ran the estimate silently
    for short in (STREAM[:5], STREAM[:CONFIG.context]):             # a window is context + 1 tokens
        with pytest.raises(ValueError, match="longer than the context"):
            train_lm(CONFIG, short, STREAM[:100], settings(), quiet=True)
        with pytest.raises(ValueError, match="longer than the context"):
            train_lm(CONFIG, STREAM, short, settings(), quiet=True)
    with pytest.raises(ValueError, match="time_limit must be a positive number of minutes, got 0"):
        settings(time_limit=0).validate()                          # the schedule divides by it


def test_what_would_fail_only_at_the_first_sample_fails_before_training(tmp_path, monkeypatch):
    """A val stream shorter than the seeds, an i2c shorter than the vocabulary or a token outside it crashed at
    the first evaluation, after every step of a short run and before its checkpoint: nothing was saved."""
    trained = []
    monkeypatch.setattr(lm_train, "lm_loss", lambda *a: trained.append(1) or lm_loss(*a))
    i2c = [str(i) for i in range(V)]
    cases = [
        (dict(val=STREAM[:12], i2c=i2c, seed_length=16), "seeds are 16 characters of val, which has only 12"),
        (dict(val=STREAM[:100], i2c=i2c[:5], seed_length=4), "i2c decodes 5 tokens, fewer than the vocabulary of 9"),
        (dict(val=torch.cat([STREAM[:99], torch.tensor([V])]), i2c=i2c, seed_length=4),
         f"the validation data holds token ids from 0 to {V}, outside the model's vocabulary"),
    ]
    for case, error in cases:
        with pytest.raises(ValueError, match=error):
            train_lm(CONFIG, STREAM, case["val"], settings(seed_length=case["seed_length"]), i2c=case["i2c"],
                     out=tmp_path / "run", quiet=True)
    assert not trained and not (tmp_path / "run").exists()
    negative = STREAM.clone()
    negative[300] = -1                     # bytes read as int8, say: failed with an IndexError mid-training
    with pytest.raises(ValueError, match="the training data holds token ids from -1"):
        train_lm(CONFIG, negative, STREAM[:100], settings(), out=tmp_path / "run", quiet=True)
    assert not trained
    # the bound is exact (a seed may be all of val), and without i2c there are no samples and no seeds
    short = dict(steps=1, warmup=0, eval_every=1, sample_every=1, final_eval="none")
    whole_val = train_lm(CONFIG, STREAM, STREAM[:12], settings(seed_length=12, **short), i2c=i2c, quiet=True)
    assert len(whole_val.samples) == 1
    assert train_lm(CONFIG, STREAM, STREAM[:12], settings(seed_length=16, **short), quiet=True).step == 1


def test_training_leaves_the_callers_random_state_alone_and_does_not_depend_on_it():
    """train_lm reseeded the global generators: a search drawing its trials from random or torch between
    runs drew the same 'random' values again and again. And the other way round: dropout's masks come from
    the run's seed, not from whatever state the caller left torch's generator in."""
    import random
    config = LMConfig(**{**CONFIG.to_dict(), "dropout": 0.3})
    random.seed(42)
    torch.manual_seed(42)
    expected_python, expected_torch = random.random(), torch.rand(3)
    random.seed(42)
    torch.manual_seed(42)
    first = run(steps=2, final_eval="none", config=config).model.state_dict()
    assert random.random() == expected_python and torch.equal(torch.rand(3), expected_torch)
    torch.manual_seed(7)                                              # another caller state: the same run
    for (name, a), b in zip(first.items(), run(steps=2, final_eval="none", config=config).model.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name


def test_without_a_vocabulary_to_print_samples_sample_points_are_not_evaluations():
    """With i2c=None every sample point still ran a full validation estimate, off the eval_every grid."""
    result = train_lm(CONFIG, STREAM, STREAM[:100], settings(steps=6, eval_every=3, sample_every=1), quiet=True)
    assert [step for step, _ in result.log.series["val/bits"]] == [3, 6]


def test_the_lm_command_on_a_local_file_then_sample_from_it(tmp_path, capsys):
    from minitx.__main__ import main

    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. " * 200)
    out = tmp_path / "run"
    flags = ["--data", str(text), "--emb", "8", "--heads", "2", "--depth", "1", "--context", "8", "--batch", "4",
             "--steps", "3", "--eval-every", "3", "--sample-every", "3", "--eval-batches", "2", "--sample-length", "4",
             "--final-eval", "estimate", "--epsilon", "0.01", "--out", str(out)]
    assert main(["lm", *flags]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["step"] == 3 and "final_estimate_bits" in metrics
    assert metrics["config"]["train"]["epsilon"] == 0.01
    assert main(["sample", "--checkpoint", str(out / CHECKPOINT), "--seed-text", "the ", "--length", "4"]) == 0
    assert capsys.readouterr().out.startswith("[the ]")
    assert main(["lm", "--data", str(text), "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err
    files = sorted(out.iterdir())
    assert main(["lm", *flags, "--final-eval", "none", "--resume"]) == 2   # at its --steps: nothing to add
    assert "already ended (step 3" in capsys.readouterr().err
    assert sorted(out.iterdir()) == files                         # not even an empty TensorBoard events file
    assert main(["lm", *flags]) == 2                              # without --resume: refused, not overwritten
    assert "already holds a run (checkpoint.pt, metrics.json): --resume" in capsys.readouterr().err
    assert main(["lm", *flags[:-1], str(text)]) == 2              # --out is a file: one line, no traceback
    assert f"error: the run folder {text} is a file" in capsys.readouterr().err   # refused before training


def test_a_panel_with_a_floor_is_zoomed_to_the_end_of_the_run(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = RunLog(tmp_path, {})
    for step, bits in enumerate([4.7, 2.0, 0.7] + [0.56 + 0.001 * (i % 3) for i in range(97)]):
        log.scalar("train/bits", bits, step)
    assert log.plot({"bits": ["train/bits"]}, hlines={"bits": (0.548, "floor")}).is_file()
    figure, ax = plt.subplots()
    log._zoom_to_tail(ax, log.series["train/bits"], 0.548)
    low, high = ax.get_ylim()
    plt.close(figure)
    assert low < 0.548 < 0.562 < high < 0.6            # the floor and the tail in view, the first steps' 4.7 not
    log.close()


@pytest.mark.parametrize("device", ["xpu", "cuda", "mps", "meta"])
def test_asking_for_a_device_this_machine_lacks_is_a_clear_error(device):
    """--device xpu passed the check and failed later with a bare AssertionError from deep inside torch."""
    from minitx.runtime import pick_device

    backend = torch.backends.mps if device == "mps" else getattr(torch, device, None)
    if backend is not None and hasattr(backend, "is_available") and backend.is_available():
        pytest.skip(f"{device} is available here")
    with pytest.raises(RuntimeError, match=f"device '{device}' was asked for but {device} is not available here"):
        pick_device(device)
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("clip", [0.0, 1e-3])
def test_lm_optimizer_steps_on_clipped_gradients(clip, step_gradient_norms):
    """The logged norm is the one before clipping; the optimiser must step on the clipped one."""
    norms = step_gradient_norms(lm_train)
    result = run(steps=3, clip=clip, final_eval="none")
    logged = [v for _, v in result.log.series["grad_norm"]]        # pre-clip norms, log_every=1
    assert all(n > 1e-3 for n in logged)
    if clip:
        assert max(norms) <= clip * (1 + 1e-4)
    else:
        assert norms == pytest.approx(logged, rel=1e-4)


def test_logged_train_bits_and_grad_norm_are_means_over_the_logging_window():
    every = run(steps=4, log_every=1, eval_every=4, sample_every=4, final_eval="none")
    pairs = run(steps=4, log_every=2, eval_every=4, sample_every=4, final_eval="none")
    for name in ("train/bits", "grad_norm"):
        one = [v for _, v in every.log.series[name]]
        two = [v for _, v in pairs.log.series[name]]
        assert two == pytest.approx([(one[0] + one[1]) / 2, (one[2] + one[3]) / 2], rel=1e-5), name


def test_accumulation_logs_the_same_loss_as_one_big_batch():
    """And the same gradient norm: summing the micro-batches' gradients undivided doubled it, which Adam's
    scale invariance and the clipping hid from the weights."""
    big = run(batch=8, steps=3, eval_every=3, sample_every=3, final_eval="none")
    acc = run(batch=4, accumulate=2, steps=3, eval_every=3, sample_every=3, final_eval="none")
    for name in ("train/bits", "grad_norm"):
        assert [v for _, v in acc.log.series[name]] == pytest.approx([v for _, v in big.log.series[name]], rel=1e-4)


def test_logged_lr_is_the_rate_each_step_used_with_the_final_fraction_asked_for(at_optimizer_steps):
    """Also the rate the optimiser steps with: the log alone passed with a schedule that never reached it."""
    used = at_optimizer_steps(lm_train, lambda optimizer: {group["lr"] for group in optimizer.param_groups})
    result = run(steps=6, warmup=2, final_lr_fraction=0.5, final_eval="none")
    schedule = Schedule(2, 6, None, 0.5)
    lrs = [v for _, v in result.log.series["lr"]]
    assert lrs == pytest.approx([1e-2 * schedule.factor(s, 0.0) for s in range(6)])
    assert [lr for [lr] in used] == pytest.approx(lrs)                # one rate for every parameter group


def test_a_checkpoint_from_before_wall_s_still_resumes(tmp_path):
    """Checkpoints written before wall_s (or the data's identity) was recorded resume, counting wall time from
    this session (and trusting the data)."""
    run(out=tmp_path, steps=3, final_eval="none")
    saved = load_checkpoint(tmp_path / CHECKPOINT)
    del saved["wall_s"], saved["data"]
    save_checkpoint(tmp_path / CHECKPOINT, saved)
    with pytest.warns(UserWarning, match="other training settings"):
        assert run(out=tmp_path, resume=True, steps=6, final_eval="none").step == 6


@pytest.mark.parametrize("train, message", [
    (STREAM[:400].view(4, 100), r"train must be a 1-D tensor of token ids \(one long stream\), got \(4, 100\)"),
    (STREAM.tolist(), "train must be a 1-D tensor of token ids .*got list"),
])
def test_data_that_is_not_one_stream_is_named(train, message):
    """A 2-D tensor was blamed on its length (len() reads the first dimension); a list failed on .max()."""
    with pytest.raises(ValueError, match=message):
        train_lm(CONFIG, train, STREAM[:100], settings(), quiet=True)


@pytest.mark.parametrize("field", ["lr", "weight_decay"])
def test_an_infinite_rate_or_decay_is_refused_before_training(field):
    """It passed validate() and the run then stopped with 'loss became nan ... lower --lr'."""
    with pytest.raises(ValueError, match=f"{field} must be a finite number, got inf"):
        settings(**{field: float("inf")}).validate()


def test_throughput_and_training_time_follow_the_clock(monkeypatch):
    """tokens_per_s is the logging window's tokens (batch x accumulate x context per step) over its seconds, and
    train_time_s the training clock: with a clock that ticks one second per micro-batch, both are exact."""
    now = [0.0]

    def loss_taking_a_second(logits, targets):
        now[0] += 1.0
        return lm_loss(logits, targets)

    monkeypatch.setattr(lm_train, "time", type("Clock", (), {"time": staticmethod(lambda: now[0])}))
    monkeypatch.setattr(lm_train, "lm_loss", loss_taking_a_second)
    result = run(steps=6, accumulate=2, log_every=2, eval_every=6, sample_every=6, final_eval="none")
    assert result.log.series["tokens_per_s"] == [(2, 32.0), (4, 32.0), (6, 32.0)]   # batch 4 x context 8 per s
    assert result.summary["train_time_s"] == 12.0                                 # 6 steps x 2 micro-batches


def test_exactly_the_settings_that_change_the_training_warn_on_resume(tmp_path):
    """A setting dropped from TRAINING_SETTINGS (a changed --batch, --accumulate, --seed ...) resumed without a
    word; logging, evaluation and device settings may change freely."""
    from dataclasses import asdict, fields

    base = settings()
    warned = set()
    for f in fields(LMTrainSettings):
        value = getattr(base, f.name)
        other = (not value if isinstance(value, bool) else 1.5 if value is None else value + "x"
                 if isinstance(value, str) else value * 2 + 1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lm_train._check_resume({"settings": asdict(base)}, {}, settings(**{f.name: other}), tmp_path)
        if caught:
            assert f"{f.name} {value} -> {other}" in str(caught[0].message)
            warned.add(f.name)
    assert warned == {"batch", "steps", "lr", "warmup", "final_lr_fraction", "weight_decay", "clip", "accumulate",
                      "time_limit", "amp", "seed"}


def test_the_lm_command_names_a_missing_data_file_or_checkpoint_before_loading_anything(tmp_path, capsys,
                                                                                          monkeypatch):
    """A typo in --data said only "No data file at tyo"; a --resume without a checkpoint must be refused before
    the data (enwik8: a download, then 100 MB to read) is loaded."""
    import minitx.cli.lm
    from minitx.__main__ import main

    assert main(["lm", "--data", "tyo"]) == 2
    assert "--data 'tyo' is neither 'toy', 'wp' nor an existing file" in capsys.readouterr().err
    loaded = []
    monkeypatch.setattr(minitx.cli.lm, "load_lm_data", loaded.append)
    assert main(["lm", "--data", "wp", "--out", str(tmp_path / "missing"), "--resume"]) == 2
    assert "--resume: no checkpoint at" in capsys.readouterr().err and not loaded
