"""Vocabularies shared by the word- and character-level loaders: special tokens first, then the rest."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

SPECIALS = (".pad", ".start", ".end", ".unk")
PAD, START, END, UNK = range(len(SPECIALS))


def vocab_from_counts(counts: Counter[str]) -> tuple[list[str], dict[str, int]]:
    """``(i2w, w2i)``: the specials, then words by frequency (descending; ties alphabetical)."""
    words = sorted((w for w in counts if w not in SPECIALS), key=lambda w: (-counts[w], w))
    return _index(list(SPECIALS) + words)


def vocab_from_symbols(symbols: Iterable[str]) -> tuple[list[str], dict[str, int]]:
    """``(i2w, w2i)``: the specials, then the distinct symbols in sorted order."""
    return _index(list(SPECIALS) + sorted(set(symbols) - set(SPECIALS)))


def _index(i2w: list[str]) -> tuple[list[str], dict[str, int]]:
    return i2w, {w: i for i, w in enumerate(i2w)}
