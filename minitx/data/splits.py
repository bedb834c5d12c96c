"""Seeded train/validation splits and length sorting for lists of sequences with labels."""

from __future__ import annotations

import random
from collections.abc import Sequence

Sequences = list[list[int]]


def validation_split(n: int, val: int, seed: int) -> tuple[list[int], list[int]]:
    """``(train_indices, val_indices)``: ``val`` of ``range(n)`` drawn at random (seeded), the rest train.

    Uses ``random.Random(seed).sample`` exactly as the course's loader does (with the global seed), so the
    same file gives the same split. Both index lists are in increasing order.
    """
    if not 0 < val < n:
        raise ValueError(f"val must be between 1 and {n - 1} (the number of training instances - 1), got {val}")
    val_set = set(random.Random(seed).sample(range(n), k=val))
    return [i for i in range(n) if i not in val_set], sorted(val_set)


def sort_by_length(x: Sequence[list[int]], y: Sequence[int]) -> tuple[Sequences, list[int]]:
    """Sort sequences short to long (stable: equal lengths keep their order), labels alongside."""
    if len(x) != len(y):
        raise ValueError(f"{len(x)} sequences but {len(y)} labels")
    order = sorted(range(len(x)), key=lambda i: len(x[i]))
    return [x[i] for i in order], [y[i] for i in order]
