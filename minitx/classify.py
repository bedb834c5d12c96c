"""Training and evaluating the sequence classifiers of questions 2-9.

The pieces a reader meets, in order:

- `load_dataset`: IMDb, IMDb-synth or XOR as a `Dataset` (token lists, labels, vocabulary).
- `model_config`: the assignment's model names (baseline, simple, full, transformer) as a `ClassifierConfig`.
- `train_classifier`: the training loop (AdamW, optional warmup/decay and clipping, bf16 on CUDA, padding
  masks everywhere) with validation accuracy after every epoch; returns a `TrainResult`.
- `evaluate`: accuracy and mean cross-entropy of a model on a labelled set.
- `train_seeds` and `mean_std`: the same run over several seeds, summarised (every figure in docs/results.md).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import runtime
from .checkpoint import load_weights_only
from .config import ClassifierConfig, check_integer, check_non_negative, check_positive, config_from_dict
from .data import fixed_batches, load_imdb, load_imdb_raw, load_imdb_synth, load_xor, pad_batch, token_budget_batches
from .nn import Classifier
from .tracking import RunLog, write_atomically

DATASETS = ("imdb", "synth", "xor")
# Assignment name -> (attention, blocks, default depth).
MODELS = {"baseline": ("none", False, 0), "simple": ("simple", False, 1), "full": ("full", False, 1),
          "transformer": ("full", True, 3)}
PAD, START = ".pad", ".start"

Labelled = tuple[list[list[int]], list[int]]


@dataclass
class Dataset:
    """A classification dataset: ``train`` and ``val`` are (sequences, labels), sequences sorted short to long."""

    name: str
    train: Labelled
    val: Labelled
    i2w: list[str]
    w2i: dict[str, int]
    classes: int

    @property
    def pad_idx(self) -> int:
        return self.w2i[PAD]

    @property
    def longest(self) -> int:
        return max(len(s) for s in (*self.train[0], *self.val[0]))


def _raw_reviews(path: Path) -> bool:
    """Whether ``path`` holds the raw IMDb reviews rather than the course's pickle (by its form and name)."""
    return path.is_dir() or path.name.endswith((".tsv", ".tsv.gz", ".tar", ".tar.gz", ".tgz"))


def load_dataset(name: str, *, path: str | Path | None = None, final: bool = False, vocab: int | None = None,
                 seed: int = 0, start_token: bool = False, ntrain: int = 25_000, nval: int = 25_000) -> Dataset:
    """Load ``'imdb'`` (from ``path``, else the course's download), ``'synth'`` or ``'xor'``.

    ``path`` is the course's pickle, or the raw reviews (`load_imdb_raw`: the ``aclImdb`` folder, its tarball,
    or a ``.tsv``/``.tsv.gz`` file of ``split, label, id, text``): the same reviews and vocabulary, but with
    ``final=False`` another draw of validation reviews (docs/data.md).

    ``final`` uses IMDb's test set instead of a 5000-review validation split (no effect on the synthetic sets,
    whose validation set is an independent sample of ``nval``). ``vocab`` keeps the most frequent words.
    ``start_token`` puts ``.start`` in front of every sequence: a dedicated position for select pooling to
    read, whose state the attention layers must fill (the [CLS] token of BERT).
    """
    path = None if path is None else Path(path).expanduser()
    if name == "imdb" and path is not None and _raw_reviews(path):
        train, val, (i2w, w2i), classes = load_imdb_raw(path, final=final, voc=vocab, seed=seed)
    elif name == "imdb":
        train, val, (i2w, w2i), classes = load_imdb(final=final, voc=vocab, path=path, seed=seed)
    elif name in ("synth", "xor"):
        loader = load_imdb_synth if name == "synth" else load_xor
        if not (ntrain >= 1 and nval >= 1):
            raise ValueError(f"ntrain and nval must be positive numbers of instances, got {ntrain} and {nval}")
        train, val, (i2w, w2i), classes = loader(ntrain=ntrain, ntest=nval, seed=seed)
    else:
        raise ValueError(f"unknown dataset {name!r}: choose one of {DATASETS}")
    if start_token:
        train, val = _prepend(train, w2i[START]), _prepend(val, w2i[START])
    return Dataset(name, (list(train[0]), list(train[1])), (list(val[0]), list(val[1])), list(i2w), w2i, classes)


def _prepend(split: Labelled, token: int) -> Labelled:
    return [[token, *s] for s in split[0]], split[1]


def model_config(kind: str, *, vocab: int, classes: int = 2, emb: int = 300, pool: str = "mean",
                 positions: bool = False, depth: int | None = None, heads: int = 4, dropout: float = 0.0,
                 max_len: int = 512, norm: str = "post", backend: str = "scratch") -> ClassifierConfig:
    """The config for an assignment model name: baseline (Q2-3), simple (Q4-5), full (Q6-7), transformer (Q9).

    ``depth=None`` takes the model's default: 1 attention layer, or 3 transformer blocks.
    """
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}: choose one of {tuple(MODELS)}")
    attention, blocks, default_depth = MODELS[kind]
    return ClassifierConfig(vocab=vocab, classes=classes, emb=emb, attention=attention, heads=heads,
                            depth=default_depth if depth is None else depth, positions=positions, max_len=max_len,
                            pool=pool, dropout=dropout, norm=norm, blocks=blocks, backend=backend)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite (a search treats such a trial as failed and goes on)."""


@dataclass
class TrainSettings:
    """How to train (the model itself is a `ClassifierConfig`).

    ``tokens`` > 0 switches from fixed random batches of ``batch`` to length-sorted batches of at most that
    many (padded) tokens. ``max_len`` cuts every sequence to its first tokens (None: no cut). ``warmup`` is in
    optimizer steps; ``decay`` adds cosine decay to 10% of ``lr`` by the last step. ``clip`` > 0 clips the
    gradient norm. ``log_every`` is how many steps pass between host syncs (loss logging, progress bar).
    """

    epochs: int = 5
    lr: float = 1e-3
    batch: int = 64
    tokens: int = 0
    max_len: int | None = 256
    warmup: int = 0
    decay: bool = False
    clip: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    log_every: int = 50
    progress: bool = True

    def validate(self) -> None:
        check_integer(self, "epochs", "batch", "tokens", "warmup", "log_every", "seed")
        check_positive(self, "epochs", "batch", "log_every", "lr")
        check_non_negative(self, "tokens", "clip", "weight_decay", "warmup", "seed")   # NumPy refuses seeds < 0
        if self.max_len is not None and self.max_len < 1:
            raise ValueError(f"max_len must be positive (or None for no cut), got {self.max_len}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """A trained model and its per-epoch history (validation after every epoch)."""

    model: Classifier
    val_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    steps: int = 0
    wall_time_s: float = 0.0
    device: str = "cpu"

    @property
    def accuracy(self) -> float:
        """Validation accuracy after the last epoch."""
        return self.val_accuracy[-1]

    def summary(self) -> dict:
        epochs = [{"epoch": i + 1, "val_accuracy": a, "val_loss": v, "train_loss": t}
                  for i, (a, v, t) in enumerate(zip(self.val_accuracy, self.val_loss, self.train_loss, strict=True))]
        return {"final_val_accuracy": self.accuracy, "final_val_loss": self.val_loss[-1],
                "best_val_accuracy": max(self.val_accuracy), "epochs": epochs, "steps": self.steps,
                "device": self.device, "train_time_s": round(self.wall_time_s, 2)}


def make_batch(x: Sequence[Sequence[int]], y: Sequence[int], indices: Sequence[int], pad_idx: int,
               max_len: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(tokens, mask, labels)``: tokens and mask (batch, time), labels (batch,)."""
    tokens, mask = pad_batch([x[i] for i in indices], pad_idx, max_len)
    return tokens, mask, torch.tensor([y[i] for i in indices], dtype=torch.long)


def epoch_batches(lengths: Sequence[int], settings: TrainSettings, generator: torch.Generator) -> list[list[int]]:
    """One epoch's index batches in random order: fixed-size, or token-budget batches of similar lengths."""
    if settings.tokens:
        return token_budget_batches(lengths, settings.tokens, max_len=settings.max_len, generator=generator)
    return fixed_batches(len(lengths), settings.batch, shuffle=True, generator=generator)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: Labelled, *, pad_idx: int, max_len: int | None,
             device: torch.device, batch: int = 256, amp: bool = True) -> tuple[float, float]:
    """``(accuracy, mean cross-entropy)`` on ``data``; padding is masked, as in training.

    Consecutive instances are batched together: the data is sorted by length, so little is padded. Sums stay
    on the device and are read once at the end.
    """
    x, y = data
    if not x:
        raise ValueError("evaluate: no examples (an empty split)")
    was_training = model.training
    model.eval()
    correct = torch.zeros((), device=device)
    loss = torch.zeros((), device=device)
    for indices in fixed_batches(len(x), batch, shuffle=False):
        tokens, mask, labels = (runtime.to_device(t, device) for t in make_batch(x, y, indices, pad_idx, max_len))
        with runtime.autocast(device, amp):
            logits = model(tokens, mask)                                   # (b, classes)
        logits = logits.float()
        loss += F.cross_entropy(logits, labels, reduction="sum")
        correct += (logits.argmax(dim=-1) == labels).sum()
    model.train(was_training)
    return correct.item() / len(x), loss.item() / len(x)


def train_classifier(config: ClassifierConfig, data: Dataset, settings: TrainSettings, *,
                     log: RunLog | None = None,
                     on_epoch: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train a classifier of ``config`` on ``data.train``; validate on ``data.val`` after every epoch.

    Seeded: on CPU the same settings give the same numbers. The loss is accumulated on the device and only
    read every ``settings.log_every`` steps, so the host never waits on the accelerator in between.
    ``on_epoch(epoch, val_accuracy)`` is called after each validation (a tuner prunes bad runs there).
    """
    settings.validate()
    device = runtime.pick_device(settings.device)
    with runtime.private_random_state(settings.seed, device):
        return _train_classifier(config, data, settings, device, log, on_epoch)


def _train_classifier(config: ClassifierConfig, data: Dataset, settings: TrainSettings, device: torch.device,
                      log: RunLog | None, on_epoch: Callable[[int, float], None] | None) -> TrainResult:
    generator = torch.Generator().manual_seed(settings.seed)    # parameter init, then the batch order
    model = Classifier(config, generator=generator).to(device)
    forward = runtime.maybe_compile(model, settings.compile)
    optimizer = runtime.make_optimizer(dict(model.named_parameters()), settings.lr, settings.weight_decay)
    x, y = data.train
    if not x or not data.val[0]:
        raise ValueError(f"the training and validation sets need examples: {len(x)} and {len(data.val[0])}")
    lengths = [len(s) for s in x]
    steps_per_epoch = len(epoch_batches(lengths, settings, torch.Generator().manual_seed(0)))
    total = steps_per_epoch * settings.epochs
    scheduler = None
    if settings.warmup or settings.decay:
        factor = runtime.warmup_decay(settings.warmup, total, final_fraction=0.1 if settings.decay else 1.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    cut = settings.max_len or max(lengths)

    result = TrainResult(model=model, device=str(device))
    started = time.time()
    step = 0
    for epoch in range(1, settings.epochs + 1):
        model.train()
        batches = epoch_batches(lengths, settings, generator)
        running = torch.zeros((), device=device)          # loss summed over examples since the last sync
        # per example, not per batch: with --tokens a batch of a few long reviews would weigh as much as one
        # of many short ones, and the validation loss (per example) would not compare with it
        epoch_loss, epoch_examples, since_sync, seen_tokens, tick = 0.0, 0, 0, 0, time.time()
        bar = tqdm(batches, desc=f"epoch {epoch}/{settings.epochs}", disable=not settings.progress,
                   leave=False, dynamic_ncols=True)
        for i, indices in enumerate(bar, start=1):
            tokens, mask, labels = (runtime.to_device(t, device)
                                    for t in make_batch(x, y, indices, data.pad_idx, settings.max_len))
            with runtime.autocast(device):
                logits = forward(tokens, mask)                               # (b, classes)
            loss = F.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
            optimizer.step()
            used_lr = optimizer.param_groups[0]["lr"]                    # the rate this step used
            if scheduler is not None:
                scheduler.step()
            running += loss.detach() * len(indices)
            since_sync += len(indices)
            seen_tokens += sum(min(lengths[j], cut) for j in indices)
            step += 1
            if i % settings.log_every == 0 or i == len(batches):
                mean_loss = running.item() / since_sync               # the one host sync per interval
                if not math.isfinite(mean_loss):
                    raise TrainingDiverged(f"training diverged (loss {mean_loss}) at step {step}: lower --lr, "
                                           "add --warmup or --clip")
                epoch_loss += mean_loss * since_sync
                epoch_examples += since_sync
                throughput = seen_tokens / max(time.time() - tick, 1e-9)
                bar.set_postfix(loss=f"{mean_loss:.4f}", tok_s=f"{throughput:,.0f}")
                if log is not None:
                    log.scalar("train/loss", mean_loss, step)
                    log.scalar("train/tokens_per_s", throughput, step)
                    log.scalar("train/lr", used_lr, step)
                running.zero_()
                since_sync = 0
        bar.close()
        accuracy, val_loss = evaluate(model, data.val, pad_idx=data.pad_idx, max_len=settings.max_len,
                                      device=device)
        result.val_accuracy.append(accuracy)
        result.val_loss.append(val_loss)
        result.train_loss.append(epoch_loss / epoch_examples)
        if log is not None:
            log.scalar("val/accuracy", accuracy, step)
            log.scalar("val/loss", val_loss, step)
        if settings.progress:
            tqdm.write(f"epoch {epoch}: train loss {result.train_loss[-1]:.4f}  val loss {val_loss:.4f}  "
                       f"val accuracy {accuracy:.4f}  ({time.time() - started:.0f} s)")
        if on_epoch is not None:
            on_epoch(epoch, accuracy)
    result.steps = step
    result.wall_time_s = time.time() - started
    return result


def train_seeds(config: ClassifierConfig, data: Dataset, settings: TrainSettings,
                seeds: Sequence[int]) -> list[TrainResult]:
    """The same run once per seed (initialisation and batch order change; the data stays the same)."""
    return [train_classifier(config, data, TrainSettings(**{**settings.to_dict(), "seed": seed})) for seed in seeds]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def save_checkpoint(path: str | Path, model: Classifier, data_name: str, *, start_token: bool = False) -> None:
    """Save the uncompiled model's weights with its config, dataset name and whether its sequences began with
    ``.start`` (for `load_checkpoint`, or `read_checkpoint` and `classifier_from_checkpoint`)."""
    state = {name: t.detach().cpu() for name, t in model.state_dict().items()}
    payload = {"config": model.config.to_dict(), "data": data_name, "start_token": start_token, "state_dict": state}
    write_atomically(path, lambda temporary: torch.save(payload, temporary))


def read_checkpoint(path: str | Path) -> dict:
    """The saved payload: ``config``, ``data`` (the dataset name), ``start_token`` (absent in checkpoints
    written before it was recorded: False) and ``state_dict``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}: train one with `python -m minitx classify ... --out DIR`")
    saved = load_weights_only(path, "cpu", "checkpoint")
    is_classifier = isinstance(saved, dict) and {"config", "data", "state_dict"} <= saved.keys() \
        and "context" not in saved["config"]                                # an LM checkpoint has a context
    if not is_classifier:
        raise ValueError(f"{path} is not a classifier's model.pt from `python -m minitx classify ... --out DIR`")
    return saved


def classifier_from_checkpoint(saved: dict) -> Classifier:
    """The model of a `read_checkpoint` payload, on the CPU, in eval mode."""
    model = Classifier(config_from_dict(ClassifierConfig, saved["config"]))
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def load_checkpoint(path: str | Path) -> tuple[Classifier, str]:
    """``(model, dataset name)`` from a `save_checkpoint` file, on the CPU, in eval mode."""
    saved = read_checkpoint(path)
    return classifier_from_checkpoint(saved), saved["data"]
