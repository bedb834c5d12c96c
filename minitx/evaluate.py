"""Validation bits per character (Q12), two ways.

- `estimate_bits`: the assignment's estimate. Random windows of length L; only the prediction at the *last*
  position is scored, where the model has its full context. Cheap, noisy, and it never scores the first L
  characters of the stream.
- `exact_bits`: every character of the validation stream is scored exactly once. Windows of length L overlap
  by ``L - stride``; the first window scores all its positions, every later window scores only its last
  ``stride`` positions (which have at least ``L - stride`` characters of context). ``stride=1`` gives every
  position its full context of up to L characters; the default ``L // 2`` is about L/2 times cheaper and
  differs from it only by the little information the extra context carries.

Both return bits per character: -log2 p summed over the scored characters, divided by their number.
A model is any callable ``tokens (b, t) -> logits (b, t, vocab)``.
"""

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import random_slices
from .nn import LM
from .sample import check_tokens_in_vocabulary

Model = Callable[[torch.Tensor], torch.Tensor]


def check_context(length: int, model_context: int | None, model: Model | None = None) -> None:
    """A window longer than the position table cannot be run: say so before any work is done.

    ``model_context`` defaults to ``model.config.context`` where the model has one (an `LM`).
    """
    if model_context is None:
        model_context = getattr(getattr(model, "config", None), "context", None)
    if length < 1:
        raise ValueError(f"context must be positive, got {length}")
    if model_context is not None and length > model_context:
        raise ValueError(
            f"evaluation context {length} is longer than the model's position table ({model_context}); "
            f"use a context of at most {model_context}"
        )


def _check_stream(data: torch.Tensor, model: Model, **counts: int) -> None:
    """Positive batch counts, and a stream of token ids the model's vocabulary holds (where it has a config)."""
    for name, value in counts.items():
        if not value >= 1:
            raise ValueError(f"{name} must be a positive number, got {value}")
    vocab = getattr(getattr(model, "config", None), "vocab", None)
    if vocab is not None:
        check_tokens_in_vocabulary(data, vocab, "the evaluation data")


def last_logits(model: Model, inputs: torch.Tensor) -> torch.Tensor:
    """Next-token logits at the last position only: inputs (b, t) -> (b, vocab).

    An `LM` (compiled or not) is asked for that position alone (``last=1``), so its final block skips the
    other t - 1 positions; any other model runs in full and is sliced.
    """
    if isinstance(getattr(model, "_orig_mod", model), LM):
        return model(inputs, last=1)[:, -1]
    return model(inputs)[:, -1]


def _bits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log2 p(target) per position: logits (..., vocab), targets (...) -> (...) float32."""
    nats = F.cross_entropy(logits.flatten(0, -2).float(), targets.flatten(), reduction="none")
    return nats.view(targets.shape) / math.log(2)


@torch.inference_mode()
def estimate_bits(model: Model, data: torch.Tensor, context: int, *, batches: int = 1000, batch_size: int = 32,
                  generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                  model_context: int | None = None, progress: bool = False,
                  with_error: bool = False) -> float | tuple[float, float]:
    """The assignment's Q12 estimate: mean -log2 p of the last character of random windows of ``context + 1``.

    ``batches`` batches of ``batch_size`` windows; each window's first ``context`` characters are the input
    and only its last character is scored (so each batch scores ``batch_size`` characters).
    ``with_error=True`` returns ``(bits, standard_error)``: the standard deviation of the windows' bits over
    the square root of their number (NaN for a single window). A character's -log2 p varies by about a bit
    around the mean, so 1,600 windows leave an error of a few hundredths, enough to put a trained model's
    estimate below the entropy floor now and then; two standard errors either side cover the true value
    about 19 times in 20.
    """
    check_context(context, model_context, model)
    _check_stream(data, model, batches=batches, batch_size=batch_size)
    sums, scores = [], []
    for _ in tqdm(range(batches), desc="estimate bits", disable=not progress, leave=False):
        window = random_slices(data, batch_size, context + 1, generator).to(device)  # (b, L + 1)
        logits = last_logits(model, window[:, :-1])                                  # (b, vocab): last position
        bits = _bits(logits, window[:, -1])                                          # (b,)
        sums.append(bits.sum())                                                      # on the device: no sync
        if with_error:
            scores.append(bits)            # every window's bits (4 bytes each): their spread, exactly, at the end
    n = batches * batch_size
    mean = _total(sums) / n
    if not with_error:
        return mean
    spread = torch.cat(scores).cpu().double().std().item() if n > 1 else math.nan   # float64: MPS has none
    return mean, spread / math.sqrt(n)


def _total(sums: list[torch.Tensor]) -> float:
    """The sum of per-batch sums, added in float64 on the CPU (MPS has no float64)."""
    return torch.stack(sums).cpu().double().sum().item()


def window_plan(n: int, context: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the windows of `exact_bits` start, and from which position each one scores.

    A stream of ``n`` tokens has ``n - 1`` targets (token j is predicted from tokens before it). Window w
    covers inputs ``starts[w] ... starts[w] + L - 1`` and scores its positions ``first[w] ... L - 1``.
    Returns ``(starts, first)``, both (windows,) long. Together the windows score every target once.
    """
    length = min(context, n - 1)                          # a stream shorter than the context: one window
    starts = list(range(0, n - 1 - length + 1, stride))
    if starts[-1] != n - 1 - length:                     # the tail: one window aligned with the stream's end
        starts.append(n - 1 - length)
    first = [0] + [length - (s - prev) for prev, s in zip(starts, starts[1:], strict=False)]
    return torch.tensor(starts), torch.tensor(first)


@torch.inference_mode()
def exact_bits(model: Model, data: torch.Tensor, context: int, *, stride: int | None = None,
               batch_size: int = 32, device: torch.device | str = "cpu", model_context: int | None = None,
               progress: bool = False, per_position: bool = False) -> float | torch.Tensor:
    """Bits per character over every character of ``data`` after the first, each scored exactly once.

    ``stride`` defaults to ``context // 2`` (at least 1). With ``per_position=True`` returns instead the (n - 1,) tensor
    whose entry j is -log2 p(data[j + 1] | up to ``context`` characters before it), NaN where unscored
    (never, unless the plan were wrong: the tests check it).
    """
    check_context(context, model_context, model)
    if data.dim() != 1 or len(data) < 2:
        raise ValueError(f"data must be a 1-D stream of at least 2 tokens, got shape {tuple(data.shape)}")
    _check_stream(data, model, batch_size=batch_size)
    stride = max(1, context // 2) if stride is None else stride       # context 1 (a bigram model): stride 1
    if not 1 <= stride <= context:
        raise ValueError(f"stride must be in 1 .. context ({context}), got {stride}")
    starts, first = window_plan(len(data), context, stride)
    length = min(context, len(data) - 1)
    offsets = torch.arange(length + 1)                                                 # (L + 1,)
    scores = torch.full((len(data) - 1,), float("nan")) if per_position else None
    sums = []
    for chunk in tqdm(range(0, len(starts), batch_size), desc="exact bits", disable=not progress, leave=False):
        chunk_starts, chunk_first = starts[chunk:chunk + batch_size], first[chunk:chunk + batch_size]
        window = data[chunk_starts[:, None] + offsets].long().to(device)                # (b, L + 1)
        bits = _bits(model(window[:, :-1]), window[:, 1:])                              # (b, L)
        scored = offsets[None, :-1].to(device) >= chunk_first[:, None].to(device)       # (b, L) bool
        sums.append(bits[scored].sum())
        if scores is not None:
            # window w's position i predicts stream token starts[w] + i + 1, i.e. target index starts[w] + i
            targets = (chunk_starts[:, None] + offsets[None, :-1])[scored.cpu()]
            scores[targets] = bits[scored].cpu()
    return scores if per_position else _total(sums) / (len(data) - 1)
