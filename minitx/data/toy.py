"""The assignment's toy grammar, and character streams of its sentences for autoregressive training.

``TOY_GRAMMAR`` maps each nonterminal (a name starting with ``_``) to its alternatives, each a list of
symbols; every alternative is equally likely. Parentheses are literal output characters.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from minitx.data.vocab import vocab_from_symbols

TOY_START = "_s"
SENTENCE_END = " . "


def _words(text: str) -> list[list[str]]:
    """One single-word alternative per word: ``'a b'`` -> ``[['a'], ['b']]``."""
    return [[word] for word in text.split()]


TOY_GRAMMAR: dict[str, list[list[str]]] = {
    "_s": [["_s", "_adv"], ["_np", "_vp"], ["_np", "_vp", "_prep", "_np"],
           ["_np", "_vp", "(", "_prep", "_np", ")"], ["_np", "_vp", "_con", "_s"],
           ["_np", "_vp", "(", "_con", "_s", ")"]],
    "_adv": _words("briefly quickly impatiently"),
    "_np": [["a", "_noun"], ["the", "_noun"], ["a", "_adj", "_noun"], ["the", "_adj", "_noun"]],
    "_prep": _words("on with to for at"),
    "_con": _words("while but"),
    "_noun": _words("mouse bunny cat dog man woman person bear koala judge businessman businesswoman "
                    "lawyer teacher engineer"),
    "_vp": _words("walked walks ran runs goes went hiked"),
    "_adj": _words("short quick busy nice gorgeous spectacular reluctant systematic willowy engaged "
                   "synthetic"),
}


def generate_sentence(grammar: Mapping[str, Sequence[Sequence[str]]], rng: random.Random,
                      start: str = TOY_START) -> str:
    """Expand ``start`` by repeatedly rewriting the leftmost nonterminal; words joined by single spaces.

    A stack with the leftmost symbol on top performs exactly the leftmost derivation, drawing the random
    choices in the same order, without rebuilding the sentence after each rewrite.
    """
    stack, words = [start], []
    while stack:
        symbol = stack.pop()
        if symbol.startswith("_"):
            stack.extend(reversed(rng.choice(grammar[symbol])))
        else:
            words.append(symbol)
    return " ".join(words)


def toy_characters(grammar: Mapping[str, Sequence[Sequence[str]]] = TOY_GRAMMAR) -> set[str]:
    """Every character a stream of ``grammar`` sentences can contain (terminals, space, full stop)."""
    terminals = {s for alternatives in grammar.values() for alt in alternatives for s in alt if s[0] != "_"}
    return set("".join(terminals)) | set(SENTENCE_END)


def load_toy(ntrain: int = 100_000, ntest: int = 20_000, final: bool = False, seed: int = 0, *,
             n: int | None = None) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[list[str], dict[str, int]]]:
    """``(train, test), (i2c, c2i)``: streams of ``ntrain``/``ntest`` sentences, each followed by ``' . '``.

    The streams are 1-D long tensors of character indices (the vocabulary: ``.pad .start .end .unk``, then
    the characters sorted). ``n`` is the assignment's name for ``ntrain``. The training stream depends only
    on ``seed``; the held-out stream is a validation stream when ``final=False`` and a separate test stream
    (another seeded draw, never seen during tuning) when ``final=True``.
    """
    if n is not None:
        ntrain = n
    if ntrain < 0 or ntest < 0:
        raise ValueError(f"sentence counts must be >= 0, got ntrain={ntrain}, ntest={ntest}")
    i2c, c2i = vocab_from_symbols(toy_characters())
    # Character -> index through a 128-entry table: one vectorised lookup for the whole stream.
    table = np.zeros(128, dtype=np.int64)
    for c, i in c2i.items():
        if len(c) == 1:
            table[ord(c)] = i
    streams = []
    for name, count in (("train", ntrain), ("test" if final else "val", ntest)):
        rng = random.Random(f"{seed}-{name}")
        text = "".join(generate_sentence(TOY_GRAMMAR, rng) + SENTENCE_END for _ in range(count))
        streams.append(torch.from_numpy(table[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]))
    return (streams[0], streams[1]), (i2c, c2i)
