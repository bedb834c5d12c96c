"""Training the character language model of Q11-Q14.

One step: a batch of random windows (`minitx.data.lm_batch`), the per-token cross-entropy (summed over every
position of every window, divided by the number of tokens, so batch size and context do not change its scale),
AdamW, gradient clipping, and a learning rate that is a linear warmup times a cosine decay (`Schedule`).

The loss and gradient norm stay on the device between logging intervals: reading a GPU number (``.item()``)
makes the host wait for the GPU, so it happens every ``log_every`` steps only. At those points the trainer
also checks the loss is finite, writes a checkpoint when one is due (never after a NaN: the last good one is
kept), and every ``eval_every`` / ``sample_every`` steps it prints the validation bits and a sample.

A run with ``time_limit`` (minutes) schedules by the clock: the schedule's progress is the larger of
step / steps and elapsed / time_limit, so the decay ends when the time is up whatever the machine's speed.
"""

import hashlib
import json
import math
import signal
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import check_config, load_checkpoint, random_state, restore_random_state, save_checkpoint
from .config import LMConfig, check_integer, check_non_negative, check_positive
from .data import lm_batch, load_toy, load_wp, random_slices
from .evaluate import check_context, estimate_bits, exact_bits
from .nn import LM
from .runtime import autocast, cosine_decay, make_optimizer, maybe_compile, private_random_state, to_device
from .sample import check_epsilon, check_tokens_in_vocabulary, decode, sample, with_seed_in_brackets
from .tracking import RunLog, files_of_a_run

CHECKPOINT = "checkpoint.pt"


@dataclass
class LMTrainSettings:
    """How to train (the model's shape is the `LMConfig`). Defaults follow the assignment's Q13 run."""

    batch: int = 32
    steps: int = 50_000
    lr: float = 1e-3
    warmup: int = 500
    final_lr_fraction: float = 0.05     # the cosine ends at this fraction of ``lr``
    weight_decay: float = 0.1
    clip: float = 1.0                   # gradient-norm clipping threshold; 0 turns it off
    accumulate: int = 1                 # micro-batches per optimiser step (effective batch = batch * accumulate)
    time_limit: float | None = None     # minutes; the schedule runs on the clock when set
    log_every: int = 100
    eval_every: int = 10_000
    eval_batches: int = 100             # batches of the Q12 estimate at each evaluation
    sample_every: int = 10_000
    sample_length: int = 200
    seed_length: int = 16
    temperature: float = 1.0
    epsilon: float | None = None        # sampling drops characters less likely than this (`pick_next`)
    checkpoint_every: int = 1000
    final_eval: str = "exact"           # 'exact', 'estimate' or 'none', on the validation stream at the end
    compile: bool = False
    amp: bool = True                    # bf16 autocast on CUDA
    seed: int = 0
    device: str | None = None

    def validate(self) -> None:
        check_integer(self, "batch", "steps", "accumulate", "warmup", "log_every", "eval_every", "eval_batches",
                      "sample_every", "sample_length", "seed_length", "checkpoint_every", "seed")
        check_positive(self, "batch", "steps", "accumulate", "log_every", "eval_every", "eval_batches",
                       "sample_every", "seed_length", "checkpoint_every", "lr")
        check_non_negative(self, "warmup", "clip", "temperature", "weight_decay", "sample_length")
        for name in ("lr", "weight_decay"):     # inf passed the checks above, then the loss became NaN
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if not 0 <= self.final_lr_fraction <= 1:
            raise ValueError(f"final_lr_fraction (--final-lr) must be in [0, 1], got {self.final_lr_fraction}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ValueError(f"time_limit must be a positive number of minutes, got {self.time_limit}")
        check_epsilon(self.epsilon)
        if self.final_eval not in ("exact", "estimate", "none"):
            raise ValueError(f"final_eval must be 'exact', 'estimate' or 'none', got {self.final_eval!r}")
        if self.time_limit is None and self.warmup > self.steps:    # on the clock, warmup also ends by time
            warnings.warn(f"warmup ({self.warmup} steps) is longer than the run ({self.steps} steps): the "
                          f"learning rate never reaches lr={self.lr}; pass a smaller warmup (--warmup on the "
                          "command line)", stacklevel=2)


@dataclass
class Schedule:
    """Learning-rate multiplier: linear warmup over ``warmup`` steps, times a cosine from 1 down to
    ``final_fraction`` over the run's progress (by steps, or by the clock when ``time_limit_s`` is set).

    On the clock, warmup also ends once ``warmup_time_fraction`` of the time is spent: on a slow or busy
    machine a fixed number of warmup steps could otherwise eat most of the budget.
    """

    warmup: int
    steps: int
    time_limit_s: float | None = None
    final_fraction: float = 0.05
    warmup_time_fraction: float = 0.05

    def progress(self, step: int, elapsed_s: float) -> float:
        by_steps = step / self.steps
        by_clock = 0.0 if self.time_limit_s is None else elapsed_s / self.time_limit_s
        return min(1.0, max(by_steps, by_clock))

    def factor(self, step: int, elapsed_s: float) -> float:
        warm = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        if self.time_limit_s is not None:
            warm = max(warm, min(1.0, elapsed_s / (self.warmup_time_fraction * self.time_limit_s)))
        return warm * cosine_decay(self.progress(step, elapsed_s), self.final_fraction)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training; the run folder holds a checkpoint of the last finished step."""


class _DeferredInterrupt:
    """While installed, Ctrl-C (SIGINT) and SIGTERM (what `kill`, `timeout` and job schedulers send) only set
    ``requested``: the training loop finishes its step, saves a checkpoint and stops (stopping mid-step would
    leave nothing, or a half-updated model). A second signal stops at once, as the first one would have.
    Signal handlers live in the main thread of a single process only."""

    def __init__(self, enabled: bool) -> None:
        self.requested, self._previous = False, {}
        # only over the signals' usual handlers (Python's KeyboardInterrupt, termination): a background job
        # (SIGINT ignored) or a program's own handler keeps its behaviour
        usual = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
        if enabled and threading.current_thread() is threading.main_thread():
            for signum, handler in usual.items():
                if signal.getsignal(signum) is handler:
                    self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = True
        self.restore()
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\n{name}: stopping after this step and saving a checkpoint ({name} again to stop at once)",
              file=sys.stderr)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


@dataclass
class TrainResult:
    model: LM                            # uncompiled, in eval mode
    log: RunLog
    step: int
    summary: dict = field(default_factory=dict)
    samples: list = field(default_factory=list)   # [step, validation bits, text] at each sampling point


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy in nats: logits (b, t, vocab), targets (b, t) -> scalar.

    Summed over all b * t positions and divided by their number (the assignment's advice), in float32
    even under bf16 autocast. Every position counts: targets are token ids in [0, vocab), and there is no
    ignore index (F.cross_entropy would leave a -100 out of the sum but this still divides by b * t).
    """
    total = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum")
    return total / targets.numel()


# The settings that decide what a run computes; the others (logging, evaluation, sampling, checkpoints,
# device) may change on --resume without changing the training.
TRAINING_SETTINGS = ("batch", "steps", "lr", "warmup", "final_lr_fraction", "weight_decay", "clip", "accumulate",
                     "time_limit", "amp", "seed")


def data_identity(train: torch.Tensor, val: torch.Tensor) -> dict:
    """Token counts and a checksum of the two streams: a resumed run must train on the data it started on."""
    digest = hashlib.sha256()
    for stream in (train, val):
        digest.update(stream.contiguous().cpu().numpy())
    return {"train_tokens": len(train), "val_tokens": len(val), "dtype": str(train.dtype).removeprefix("torch."),
            "sha256": digest.hexdigest()}


def _check_resume(saved: dict, data: dict, settings: LMTrainSettings, path: Path) -> None:
    """Other data is an error (the run would go on training on something else); other training settings
    are a warning (a deliberate change, say a higher --steps, but the run is no longer the uninterrupted one)."""
    if saved.get("data", data) != data:       # checkpoints before this check hold no "data"
        def described(identity: dict) -> str:
            return (f"{identity['train_tokens']:,} training tokens of {identity.get('dtype', '?')}, sha256 "
                    f"{identity['sha256'][:12]}...")
        raise ValueError(f"{path} was trained on other data ({described(saved['data'])}; now "
                         f"{described(data)}): resume with the same --data")
    changed = [f"{name} {saved['settings'][name]} -> {getattr(settings, name)}" for name in TRAINING_SETTINGS
               if name in saved["settings"] and saved["settings"][name] != getattr(settings, name)]
    if changed:
        warnings.warn(f"resuming with other training settings than the run's ({', '.join(changed)}): the "
                      "learning-rate schedule and batches follow the new ones from here", stacklevel=4)  # at the caller


def _series_to_tensors(log: RunLog) -> dict[str, torch.Tensor]:
    return {name: torch.tensor(points, dtype=torch.float64) for name, points in log.series.items()}


def _restore_series(log: RunLog, saved: dict[str, torch.Tensor]) -> None:
    for name, points in saved.items():
        log.series[name] = [(int(s), float(v)) for s, v in points.tolist()]


def earlier_run_files(out: str | Path) -> list[str]:
    """The files of an earlier run in ``out`` that a new run would overwrite: its checkpoint and metrics."""
    return files_of_a_run(out, (CHECKPOINT, "metrics.json"))


def check_run_folder(out: str | Path | None, resume: bool) -> None:
    """Refuse, before anything runs, what would lose work or fail late: ``out`` a file, a folder that already
    holds a run when not resuming (its checkpoint and metrics would be overwritten), a resume without a
    checkpoint."""
    if out is None:
        if resume:
            raise ValueError("--resume needs --out: the run folder that holds checkpoint.pt")
        return
    out = Path(out)
    found = earlier_run_files(out)                  # first: out may be a file
    if resume and not (out / CHECKPOINT).is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {out / CHECKPOINT}; start without --resume")
    if found and not resume:
        if CHECKPOINT in found:
            raise FileExistsError(f"{out} already holds a run ({', '.join(found)}): --resume to continue it, or "
                                  "give another --out (or delete the folder) to start afresh")
        raise FileExistsError(f"{out} already holds a run's metrics.json but no checkpoint to resume (a run "
                              "stopped before its first checkpoint, or another command's run): give another "
                              "--out, or delete the folder")


def train_lm(config: LMConfig, train: torch.Tensor, val: torch.Tensor, settings: LMTrainSettings | None = None,
             *, i2c: list[str] | None = None, out: str | Path | None = None, resume: bool = False,
             floor: float | None = None, quiet: bool = False) -> TrainResult:
    """Train a fresh `LM` (or resume the one in ``out``) on the 1-D token stream ``train``.

    ``i2c`` decodes the printed samples; ``out`` is the run folder (metrics.json, plots, TensorBoard, the
    checkpoint), None keeps everything in memory; ``floor`` draws an entropy floor on the loss plot.
    """
    settings = settings or LMTrainSettings()
    settings.validate()
    check_run_folder(out, resume)
    for name, stream in (("train", train), ("val", val)):
        if not isinstance(stream, torch.Tensor) or stream.dim() != 1:
            shape = tuple(stream.shape) if isinstance(stream, torch.Tensor) else type(stream).__name__
            raise ValueError(f"{name} must be a 1-D tensor of token ids (one long stream), got {shape}")
    check_context(config.context, None)
    if len(train) < config.context + 1 or len(val) < config.context + 1:
        raise ValueError(f"train ({len(train)}) and val ({len(val)}) streams must be longer than the context "
                         f"({config.context}); use a shorter --context or more data")
    # Checked now, not when the first sample or batch needs them: the run would be lost before its checkpoint
    check_tokens_in_vocabulary(train, config.vocab, "the training data")
    check_tokens_in_vocabulary(val, config.vocab, "the validation data")
    if i2c is not None and len(i2c) < config.vocab:
        raise ValueError(f"i2c decodes {len(i2c)} tokens, fewer than the vocabulary of {config.vocab}")
    if i2c is not None and len(val) < settings.seed_length:
        raise ValueError(f"the samples' seeds are {settings.seed_length} characters of val, which has only "
                         f"{len(val)}; pass a smaller seed_length")
    info = distributed.setup(settings.device)
    interrupt = _DeferredInterrupt(enabled=out is not None and info.world_size == 1)
    try:
        with private_random_state(settings.seed, info.device):   # dropout's draws; the caller's state kept
            return _train(config, train, val, settings, info, interrupt, i2c=i2c, out=out, resume=resume,
                          floor=floor, quiet=quiet)
    finally:
        interrupt.restore()
        distributed.teardown()


def _train(config: LMConfig, train: torch.Tensor, val: torch.Tensor, settings: LMTrainSettings,
           info: distributed.DistInfo, interrupt: _DeferredInterrupt, *, i2c: list[str] | None,
           out: str | Path | None, resume: bool, floor: float | None, quiet: bool) -> TrainResult:
    device, is_main = info.device, info.is_main
    model = LM(config, generator=torch.Generator().manual_seed(settings.seed)).to(device)
    optimizer = make_optimizer(dict(model.named_parameters()), settings.lr, settings.weight_decay)
    schedule = Schedule(settings.warmup, settings.steps,
                        None if settings.time_limit is None else settings.time_limit * 60, settings.final_lr_fraction)
    out = None if out is None else Path(out)
    checkpoint_path = None if out is None else out / CHECKPOINT
    data = data_identity(train, val)
    saved, ended = None, False
    if resume:       # checked before the run log opens: a refused resume leaves nothing behind in the folder
        saved = load_checkpoint(checkpoint_path, map_location=device)
        check_config(saved["config"], config.to_dict(), checkpoint_path)
        _check_resume(saved, data, settings, checkpoint_path)
        ended = saved["step"] >= settings.steps or (
            settings.time_limit is not None and saved["elapsed_s"] >= settings.time_limit * 60)
        if ended and settings.final_eval == "none":
            raise ValueError(f"the run in {out} already ended (step {saved['step']}, {saved['elapsed_s']:.0f} s); "
                             "raise --steps or --time-limit to train it further")
    log = RunLog(out if is_main else None, {"model": config.to_dict(), "train": asdict(settings), "data": data,
                                            "world_size": info.world_size})
    samples: list[list] = []
    step, elapsed = 0, 0.0
    eval_generator = torch.Generator().manual_seed(settings.seed + 1)   # separate streams: evaluating or sampling
    sample_generator = torch.Generator().manual_seed(settings.seed + 2)  # never shifts the training batches
    # saved and restored together, so a resumed run evaluates and samples as the uninterrupted one does
    generators = {"data": distributed.rank_generator(settings.seed, info), "eval": eval_generator,
                  "sample": sample_generator}

    # the logging window's running sums: a run stopped by Ctrl-C saves them mid-window, so that its resumed
    # curves are the uninterrupted run's
    window = {"loss": 0.0, "norm": 0.0, "steps": 0, "start": None}
    earlier_finals: dict = {}
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        step, elapsed, samples = saved["step"], saved["elapsed_s"], saved["samples"]
        if ended:
            if not quiet:        # e.g. its final evaluation was interrupted: the one thing left to do
                print(f"the run in {out} already ended (step {step}, {elapsed:.0f} s): only its final evaluation "
                      "runs (raise --steps or --time-limit to train it further)", file=sys.stderr)
            earlier_finals = _final_numbers(out)      # an evaluation of another kind is kept beside the new one
        restore_random_state(saved["random"], generators)
        if not is_main:  # the checkpoint holds rank 0's data stream: other ranks draw fresh, distinct batches
            generators["data"] = distributed.rank_generator(settings.seed + step, info)
        _restore_series(log, saved["series"])
        log.earlier_wall_s = saved.get("wall_s", 0.0)       # older checkpoints do not record it
        window = saved.get("window", window)

    compiled = maybe_compile(model, settings.compile)       # evaluation runs this one: no DDP collectives
    runner = distributed.wrap(compiled, info)

    def evaluate_and_sample() -> None:
        model.eval()
        with autocast(device, settings.amp):
            bits, error = estimate_bits(compiled, val, config.context, batches=settings.eval_batches,
                                        batch_size=settings.batch, generator=eval_generator, device=device,
                                        with_error=True)
        log.scalar("val/bits", bits, step)
        log.scalar("val/bits_stderr", error, step)
        spread = f" ± {2 * error:.4f}" if math.isfinite(error) else ""     # one window has no spread: NaN
        message = (f"step {step}: validation bits per character {bits:.4f}{spread} "
                   f"(estimate, {settings.eval_batches} batches{'; ± two standard errors' if spread else ''})")
        if i2c is not None and (step % settings.sample_every == 0 or step == 0 or stopping):
            seed = random_slices(val, 1, settings.seed_length, sample_generator)[0]
            tokens = sample(model, seed, settings.sample_length, temperature=settings.temperature,
                            epsilon=settings.epsilon, generator=sample_generator)
            samples.append([step, bits, decode(tokens, i2c)])
            message += f"\n  sample: {with_seed_in_brackets(tokens, len(seed), i2c)}"
        model.train()
        if not quiet:
            tqdm.write(message, file=sys.stderr)

    def write_run_files(final: dict | None = None) -> None:
        log.write_metrics({"step": step, "samples": samples, **(final or {})})
        log.plot({"bits per character": ["train/bits", "val/bits"], "gradient norm": ["grad_norm"],
                  "learning rate": ["lr"]}, "curves.png",
                 hlines=None if floor is None else {"bits per character": (floor, f"entropy floor {floor:.3f}")},
                 errors={"val/bits": "val/bits_stderr"})

    model.train()
    window_loss = torch.full((), window["loss"], device=device)     # float32 sums, as if never interrupted
    window_norm = torch.full((), window["norm"], device=device)
    window_steps, last_checkpoint = window["steps"], step
    window_start = elapsed if window["start"] is None else window["start"]
    tokens_per_step = settings.batch * settings.accumulate * config.context * info.world_size
    stopping = step >= settings.steps or schedule.progress(step, elapsed) >= 1.0    # a resumed run that ended
    clock = time.time() - elapsed      # so that time.time() - clock counts on from a resumed run's elapsed time
    # A run on the clock shows the clock (seconds of the time limit), not a step count whose end it never reaches.
    by_clock = settings.time_limit is not None
    bar = tqdm(total=round(settings.time_limit * 60) if by_clock else settings.steps,
               initial=round(elapsed) if by_clock else step, desc="train", disable=quiet or not is_main,
               mininterval=5, bar_format="{l_bar}{bar}| {n}/{total} s [{elapsed}<{remaining}{postfix}]" if by_clock
               else None)
    while not stopping:
        lr = settings.lr * schedule.factor(step, elapsed)
        for group in optimizer.param_groups:
            group["lr"] = lr
        for micro in range(settings.accumulate):
            inputs, targets = lm_batch(train, settings.batch, config.context, generators["data"])   # (b, t) each
            inputs, targets = to_device(inputs, device), to_device(targets, device)
            # forward and backward inside: under DDP gradients are all-reduced on the last micro-step only
            with distributed.sync_context(runner, last_micro_step=micro == settings.accumulate - 1):
                with autocast(device, settings.amp):
                    loss = lm_loss(runner(inputs), targets)
                (loss / settings.accumulate).backward()
            window_loss += loss.detach() / settings.accumulate
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip or float("inf"))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        window_norm += norm.detach()
        window_steps += 1
        step += 1
        # a logging point also wherever an evaluation or a sample is due, so --eval-every need not be a
        # multiple of --log-every (every rank takes the same steps: the condition is the same on all)
        logging = (step % settings.log_every == 0 or step % settings.eval_every == 0
                   or step % settings.sample_every == 0 or step >= settings.steps)
        if logging or info.world_size == 1:
            # Every rank must take the same learning rate and stop at the same step: under DDP the clock is
            # read, and averaged over the ranks, at logging intervals only.
            elapsed = distributed.average(time.time() - clock, info)
        bar.update(min(round(elapsed), bar.total) - bar.n if by_clock else 1)
        stopping = step >= settings.steps or schedule.progress(step, elapsed) >= 1.0
        interrupted = interrupt.requested and not stopping
        if not (logging or stopping or interrupted):
            continue
        # Logging interval (or Ctrl-C): the only place the host waits for the device.
        mean_loss = distributed.average(window_loss.item(), info) / window_steps
        window_end = time.time() - clock        # after the wait, so the window's queued device work counts
        if not math.isfinite(mean_loss):
            if checkpoint_path is not None and last_checkpoint > 0:
                where = (f"the last good checkpoint (step {last_checkpoint}) is kept in {checkpoint_path}. Lower "
                         "--lr or raise --warmup, then --resume from it")
            else:
                where = "no checkpoint was written. Lower --lr or raise --warmup and start again" + (
                    "" if out is None else f" (delete {out} or give another --out)")
            raise RuntimeError(f"training loss became {mean_loss} between steps {step - window_steps} and {step}; "
                               f"{where}")
        # a sample point is an evaluation point only where there is a sample to print beside the bits
        due = (step % settings.eval_every == 0 or stopping
               or (i2c is not None and step % settings.sample_every == 0))
        if logging or stopping:     # not on Ctrl-C alone: the window goes into the checkpoint, unfinished
            bits = mean_loss / math.log(2)
            log.scalar("train/bits", bits, step)
            log.scalar("grad_norm", window_norm.item() / window_steps, step)
            log.scalar("lr", lr, step)
            # throughput of this logging window (all ranks); the first window includes compilation and warm-up
            log.scalar("tokens_per_s", tokens_per_step * window_steps / max(window_end - window_start, 1e-9), step)
            bar.set_postfix(bits=f"{bits:.3f}", lr=f"{lr:.2e}", **({"step": step} if by_clock else {}))
            window_loss.zero_()
            window_norm.zero_()
            window_steps = 0
            if is_main and due:
                evaluate_and_sample()
        if is_main and (due or interrupted):
            write_run_files()
        if is_main and checkpoint_path is not None and (step - last_checkpoint >= settings.checkpoint_every
                                                        or stopping or interrupted):
            save_checkpoint(checkpoint_path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "elapsed_s": elapsed, "wall_s": log.wall_time_s(), "config": config.to_dict(),
                "settings": asdict(settings),
                "random": random_state(generators), "series": _series_to_tensors(log), "samples": samples,
                "vocab": i2c, "data": data, "window": {"loss": window_loss.item(), "norm": window_norm.item(),
                                                       "steps": window_steps,
                                                       "start": window_start if window_steps else None},
            })
            last_checkpoint = step
        if interrupted:
            bar.close()
            log.close()                          # the TensorBoard events so far reach the disk
            raise TrainingInterrupted(f"stopped at step {step}, saved in {checkpoint_path}; resuming the run "
                                      "(--resume, with the same flags) continues it")
        if logging or stopping:
            window_start = time.time() - clock  # evaluation and checkpoint time is not training throughput
    bar.close()
    interrupt.restore()                         # from here on Ctrl-C stops at once: the checkpoint is written
    if interrupt.requested:                     # Ctrl-C during the last step: stop, as asked, before evaluating
        log.close()
        raise TrainingInterrupted(f"stopped at the last step ({step}), saved in {checkpoint_path}; the final "
                                  "evaluation did not run: --resume runs it")

    model.eval()
    summary = {"train_time_s": round(elapsed, 1), "threads": torch.get_num_threads(), **earlier_finals}
    if is_main and settings.final_eval != "none":
        try:
            summary |= _final_evaluation(compiled, val, config, settings, device, quiet)
        except KeyboardInterrupt as stop:
            if checkpoint_path is None:
                raise
            raise TrainingInterrupted(f"interrupted during the final evaluation; the trained model is saved in "
                                      f"{checkpoint_path}, and --resume runs the evaluation again") from stop
    if is_main:
        write_run_files(summary)
    log.close()
    return TrainResult(model, log, step, summary, samples)


def _final_evaluation(model, val: torch.Tensor, config: LMConfig, settings: LMTrainSettings, device: torch.device,
                      quiet: bool) -> dict:
    """The validation bits at the end of a run (``settings.final_eval``: exact or estimate) and their time."""
    started = time.time()
    with autocast(device, settings.amp):
        if settings.final_eval == "exact":
            result = {"final_exact_bits": exact_bits(model, val, config.context, batch_size=settings.batch,
                                                     device=device, progress=not quiet)}
        else:
            result = {"final_estimate_bits": estimate_bits(
                model, val, config.context, batch_size=settings.batch, device=device,
                generator=torch.Generator().manual_seed(settings.seed + 3), progress=not quiet)}
    if not quiet:
        print(f"final validation bits per character ({settings.final_eval}): {next(iter(result.values())):.4f}",
              file=sys.stderr)
    return result | {"final_eval_time_s": round(time.time() - started, 1)}


def _final_numbers(out: Path) -> dict:
    """The final evaluations in a run folder's metrics.json (``final_exact_bits``, ...)."""
    path = out / "metrics.json"
    return {key: value for key, value in json.loads(path.read_text()).items()
            if key.startswith("final_")} if path.is_file() else {}


def load_lm_data(data: str, *, final: bool = False) -> tuple[tuple[torch.Tensor, torch.Tensor],
                                                               tuple[list[str], dict[str, int]]]:
    """``(train, val), (i2c, c2i)`` for ``--data``: 'toy' (the grammar's characters), 'wp' (enwik8 bytes), or the
    path of any local text or byte file (gzipped or not), split 90/5/5 with a byte-level vocabulary."""
    if data == "toy":
        return load_toy(final=final)
    if data == "wp":
        return load_wp(final=final)
    if not Path(data).is_file():
        raise FileNotFoundError(f"--data {data!r} is neither 'toy', 'wp' nor an existing file")
    return load_wp(path=data, final=final)
