"""Turning sequences into tensors: padding with masks, length-sorted token-budget batches, random slices.

Mask convention (library-wide): ``mask[b, t]`` is True where there is a real token, False at padding.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch


def pad_batch(seqs: Sequence[Sequence[int]], pad_idx: int,
              max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens, mask)``, both ``(batch, time)``: sequences right-padded with ``pad_idx`` to the longest.

    ``tokens`` is long, ``mask`` bool (True = real token). With ``max_len``, longer sequences are cut to
    their first ``max_len`` tokens. A batch of empty sequences (a review of only punctuation tokenises to
    nothing) is one column of padding, all masked: models take no time-0 input, and pool such rows to zeros.
    """
    if len(seqs) == 0:
        raise ValueError("pad_batch needs at least one sequence, got an empty batch")
    _check_max_len(max_len)
    seqs = [list(s[:max_len]) for s in seqs]
    values = torch.tensor([w for s in seqs for w in s])                  # (total tokens,)
    if values.numel() and (values.is_floating_point() or values.dtype == torch.bool):
        raise TypeError(f"tokens must be integers, got {values.dtype} values")    # long() would cut 1.7 to 1
    if values.numel() and values.min() < 0:                  # an embedding lookup would fail on it, later
        raise ValueError(f"token ids must be >= 0, got {int(values.min())}")
    lengths = torch.tensor([len(s) for s in seqs])                       # (b,)
    mask = torch.arange(_padded_width(int(lengths.max())))[None, :] < lengths[:, None]   # (b, t)
    tokens = torch.full(mask.shape, pad_idx, dtype=torch.long)           # (b, t)
    # Boolean-mask assignment fills the True positions in row-major order: the sequences, concatenated.
    tokens[mask] = values.long()
    return tokens, mask


def token_budget_batches(lengths: Sequence[int], max_tokens: int, *, max_len: int | None = None,
                         shuffle: bool = True, generator: torch.Generator | None = None) -> list[list[int]]:
    """Index batches of similar-length sequences whose padded size ``len(batch) * longest`` <= ``max_tokens``.

    This is the dynamic batch size of the lectures: short sequences travel in big batches, long ones in
    small batches, and little compute goes to padding. Lengths are counted after truncation to ``max_len``.
    A sequence longer than the budget forms a batch by itself. With ``shuffle``, sequences of equal length
    are mixed and the order of the batches is random (call once per epoch with the same ``generator``).
    """
    if not isinstance(max_tokens, numbers.Integral) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    sizes = _truncated(lengths, max_len)                                  # (n,)
    order = torch.randperm(len(sizes), generator=generator) if shuffle else torch.arange(len(sizes))
    order = order[torch.argsort(sizes[order], stable=True)].tolist()    # short to long
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted ascending, so the newcomer is the longest: the padded size if it joins is known now.
        if current and (len(current) + 1) * _padded_width(int(sizes[i])) > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return _shuffled(batches, generator) if shuffle else batches


def fixed_batches(n: int, batch_size: int, shuffle: bool = True,
                  generator: torch.Generator | None = None) -> list[list[int]]:
    """Index batches of ``batch_size`` (the last may be smaller), in random order when ``shuffle``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if n < 0:
        raise ValueError(f"n must be a number of instances >= 0, got {n}")
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return [chunk.tolist() for chunk in order.split(batch_size) if len(chunk)]   # n = 0: no batch, not [[]]


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]],
                     max_len: int | None = None) -> float:
    """The fraction of the padded tensors' entries that are padding, over all ``batches`` (one epoch)."""
    sizes = _truncated(lengths, max_len)
    real = padded = 0
    for batch in filter(len, batches):                  # an empty batch has no entries
        batch_sizes = sizes[list(batch)]
        real += int(batch_sizes.sum())
        padded += len(batch) * _padded_width(int(batch_sizes.max()))
    return 1 - real / padded if padded else 0.0


def random_slices(data: torch.Tensor, batch: int, length: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``(batch, length)`` long tensor of windows of the 1-D ``data`` at uniformly random starts.

    Every start in ``0 .. len(data) - length`` (inclusive) is equally likely. One indexing operation
    gathers all windows, under ``no_grad`` so the batch is never part of an autograd graph.
    """
    if data.dim() != 1:
        raise ValueError(f"data must be a 1-D stream of tokens, got shape {tuple(data.shape)}")
    if data.is_floating_point() or data.dtype == torch.bool:
        raise TypeError(f"data must hold integer tokens, got {data.dtype}")
    if length < 1 or len(data) < length:
        raise ValueError(f"cannot slice windows of length {length} from data of length {len(data)}")
    with torch.no_grad():
        starts = torch.randint(0, len(data) - length + 1, (batch,), generator=generator)  # (batch,)
        positions = starts[:, None] + torch.arange(length)                                 # (batch, length)
        return data[positions].long()


def lm_batch(data: torch.Tensor, batch: int, context: int,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)``, both ``(batch, context)``: targets are the inputs shifted one token left."""
    if context < 1:
        raise ValueError(f"context must be positive, got {context}")
    window = random_slices(data, batch, context + 1, generator)  # (batch, context + 1)
    return window[:, :-1], window[:, 1:]


def _check_max_len(max_len: int | None) -> None:
    if max_len is not None and max_len < 1:
        raise ValueError(f"max_len must be positive, got {max_len}")


def _padded_width(longest: int) -> int:
    """The time dimension `pad_batch` gives a batch whose longest sequence has ``longest`` tokens."""
    return max(1, longest)


def _truncated(lengths: Sequence[int], max_len: int | None) -> torch.Tensor:
    _check_max_len(max_len)
    sizes = torch.as_tensor(lengths, dtype=torch.long)
    if (sizes < 0).any():
        raise ValueError("sequence lengths must be >= 0")
    return sizes.clamp(max=max_len) if max_len is not None else sizes


def _shuffled(batches: list[list[int]], generator: torch.Generator | None) -> list[list[int]]:
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
