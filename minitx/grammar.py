"""The toy grammar as a probabilistic context-free grammar: its entropy floor, and which sentences it accepts.

The toy data is a stream of sentences, each followed by ``' . '``, drawn from a grammar whose alternatives are
equally likely (`minitx.data.TOY_GRAMMAR`, expanded leftmost-first). The stream's entropy rate, in bits per
character, is the least any model can score on it:

    floor = H(sentence) / E[characters per sentence, separator included]

The grammar is ambiguous (``a cat ran while a dog ran quickly``: which sentence does ``quickly`` modify?), so a
sentence's probability sums over all its derivations and H(sentence) is less than the entropy of derivations:

    H(sentence) = H(derivation) - E[H(derivation | sentence)]

H(derivation) and the expected length solve small linear systems exactly; the ambiguity term is a Monte Carlo
average of log2(p(sentence) / p(derivation)) over sampled derivations, where p(sentence) comes from the inside
algorithm. That term is zero for unambiguous sentences, so its estimate has little variance.
"""

import functools
import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import TOY_GRAMMAR, TOY_START, generate_sentence, random_slices
from .nn import LM
from .sample import decode, sample, with_seed_in_brackets

Grammar = Mapping[str, Sequence[Sequence[str]]]
SENTENCE_END = " . "


def is_nonterminal(symbol: str) -> bool:
    return symbol.startswith("_")


def check_grammar(grammar: Grammar, start: str) -> None:
    """The inside algorithm below needs every nonterminal defined and no empty or unit (A -> B) rules."""
    if start not in grammar:
        raise ValueError(f"start symbol {start!r} is not a nonterminal of the grammar")
    for head, alternatives in grammar.items():
        if not alternatives:
            raise ValueError(f"nonterminal {head!r} has no alternatives")
        for alt in alternatives:
            if not alt:
                raise ValueError(f"{head!r} has an empty alternative; empty rules are not supported")
            if len(alt) == 1 and is_nonterminal(alt[0]):
                raise ValueError(f"{head!r} -> {alt[0]!r} is a unit rule; unit rules are not supported")
            missing = [s for s in alt if is_nonterminal(s) and s not in grammar]
            if missing:
                raise ValueError(f"{head!r} uses undefined nonterminals {missing}")


def inside_probability(words: Sequence[str], grammar: Grammar = TOY_GRAMMAR, start: str = TOY_START) -> float:
    """p(sentence): the probability that ``start`` derives exactly ``words``, summed over all derivations.

    The inside algorithm: beta[A][i][j] = p(A derives words[i:j]), filled for spans of growing length. A rule
    with k >= 2 symbols splits its span into k non-empty parts, each shorter than the span, so every beta it
    needs is already known; a forward pass over the rule's symbols sums over all the ways to split.
    """
    check_grammar(grammar, start)
    n = len(words)
    if n == 0:
        return 0.0
    beta: dict[str, list[list[float]]] = {a: [[0.0] * (n + 1) for _ in range(n + 1)] for a in grammar}

    def span(symbol: str, i: int, j: int) -> float:
        if is_nonterminal(symbol):
            return beta[symbol][i][j]
        return 1.0 if j == i + 1 and words[i] == symbol else 0.0

    def sequence(symbols: Sequence[str], i: int, j: int) -> float:
        """p(symbols derive words[i:j]); every symbol takes at least one word."""
        reach = {i: 1.0}                                  # end position -> p(symbols so far derive words[i:end])
        for m, symbol in enumerate(symbols):
            left = len(symbols) - m - 1                   # symbols still to place, one word each at least
            following: dict[int, float] = defaultdict(float)
            for s, p in reach.items():
                ends = [s + 1] if not is_nonterminal(symbol) else range(s + 1, j - left + 1)
                for e in ends:
                    if e <= j - left:
                        q = span(symbol, s, e)
                        if q:
                            following[e] += p * q
            reach = following
            if not reach:
                return 0.0
        return reach.get(j, 0.0)

    for length in range(1, n + 1):
        for i in range(n - length + 1):
            j = i + length
            for head, alternatives in grammar.items():
                total = sum(sequence(alt, i, j) for alt in alternatives if len(alt) <= length)
                beta[head][i][j] = total / len(alternatives)
    return beta[start][0][n]


def accepts(sentence: str, grammar: Grammar = TOY_GRAMMAR, start: str = TOY_START) -> bool:
    """Whether ``sentence`` (words separated by single spaces) can be derived from ``start``."""
    words = sentence.split(" ")
    return "" not in words and inside_probability(words, grammar, start) > 0


def accepted_fraction(text: str, grammar: Grammar = TOY_GRAMMAR, start: str = TOY_START) -> tuple[float, int]:
    """Split a model's continuation at ``' . '`` and check the sentences that lie wholly inside it.

    Give the continuation without its seed: the seed is data, and a sentence that begins inside it is not the
    model's own. The first piece (the end of the sentence the seed began) and the last (cut off by the
    sample's length) are skipped. Returns ``(fraction accepted, number of sentences checked)``; ``(nan, 0)``
    when there are none.
    """
    pieces = text.split(SENTENCE_END)[1:-1]
    if not pieces:
        return math.nan, 0
    return sum(accepts(p, grammar, start) for p in pieces) / len(pieces), len(pieces)


def _expected_per_nonterminal(grammar: Grammar, cost: Mapping[str, float],
                              terminal_value) -> dict[str, float]:
    """Solve v(A) = cost(A) + mean over A's alternatives of sum_{symbols X} (v(X) or terminal_value(X)).

    A linear system (I - M) v = c, where M[A, B] is the expected number of B in one expansion of A. It has a
    finite solution when M's spectral radius is below 1, i.e. when sentences have a finite expected length
    (at exactly 1 a grammar such as s -> s s | a still ends with probability 1, but its mean length is infinite).
    """
    names = list(grammar)
    index = {a: k for k, a in enumerate(names)}
    m = np.zeros((len(names), len(names)))
    c = np.array([cost.get(a, 0.0) for a in names], dtype=float)
    for a, alternatives in grammar.items():
        for alt in alternatives:
            for symbol in alt:
                if is_nonterminal(symbol):
                    m[index[a], index[symbol]] += 1 / len(alternatives)
                else:
                    c[index[a]] += terminal_value(symbol) / len(alternatives)
    if max(abs(np.linalg.eigvals(m))) >= 1:
        raise ValueError("the grammar's expected sentence length is infinite (the expected number of copies of a "
                         "nonterminal per expansion reaches 1): no entropy rate per character exists")
    return dict(zip(names, np.linalg.solve(np.eye(len(names)) - m, c), strict=True))


def derivation_entropy(grammar: Grammar = TOY_GRAMMAR, start: str = TOY_START) -> float:
    """H(derivation) in bits: each expansion of A adds log2(number of A's alternatives)."""
    check_grammar(grammar, start)
    choices = {a: math.log2(len(alts)) for a, alts in grammar.items()}
    return _expected_per_nonterminal(grammar, choices, lambda _: 0.0)[start]


def expected_characters(grammar: Grammar = TOY_GRAMMAR, start: str = TOY_START) -> float:
    """E[characters per sentence in the stream]: words, the spaces between them, and the ``' . '`` after it.

    Each word brings its letters and one space; a sentence of w words has w - 1 inner spaces plus 3
    separator characters, so the total is sum(len(word) + 1) + 2.
    """
    check_grammar(grammar, start)
    return _expected_per_nonterminal(grammar, {}, lambda word: len(word) + 1)[start] + len(SENTENCE_END) - 1


class _CountingRandom:
    """Wraps `random.Random` so `generate_sentence` also reports log2 p(derivation): each choice among k
    equally likely alternatives contributes -log2 k."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.log2_prob = rng, 0.0

    def choice(self, options: Sequence):
        self.log2_prob -= math.log2(len(options))
        return self.rng.choice(options)


def ambiguity_correction(grammar: Grammar = TOY_GRAMMAR, start: str = TOY_START, *, samples: int = 2000,
                         seed: int = 0, progress: bool = False) -> tuple[float, float]:
    """Monte Carlo E[H(derivation | sentence)] in bits, and its standard error.

    For a sampled derivation d of sentence s, log2(p(s) / p(d)) >= 0 averages to the conditional entropy.
    """
    rng = random.Random(seed)
    values = []
    for _ in tqdm(range(samples), desc="ambiguity", disable=not progress, leave=False):
        counting = _CountingRandom(rng)
        sentence = generate_sentence(grammar, counting, start)
        values.append(math.log2(inside_probability(sentence.split(" "), grammar, start)) - counting.log2_prob)
    values = np.array(values)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(samples))


def entropy_floor(grammar: Grammar = TOY_GRAMMAR, start: str = TOY_START, *, samples: int = 2000, seed: int = 0,
                  progress: bool = False) -> dict[str, float]:
    """The stream's entropy rate in bits per character, with its parts and Monte Carlo standard error."""
    h_derivation = derivation_entropy(grammar, start)
    correction, stderr = ambiguity_correction(grammar, start, samples=samples, seed=seed, progress=progress)
    chars = expected_characters(grammar, start)
    return {"bits_per_char": float((h_derivation - correction) / chars), "stderr": float(stderr / chars),
            "derivation_bits": float(h_derivation), "ambiguity_bits": correction, "chars_per_sentence": float(chars)}


@functools.cache
def toy_entropy_floor(samples: int = 1000) -> float:
    """Bits per character no model can beat on the toy stream (about 0.548; 1000 samples take ~15 s)."""
    return entropy_floor(TOY_GRAMMAR, TOY_START, samples=samples)["bits_per_char"]


def sampled_acceptance(model: LM, val: torch.Tensor, i2c: list[str], *, samples: int = 256, length: int = 240,
                       temperature: float = 1.0, epsilon: float | None = None, seed: int = 0,
                       grammar: Grammar = TOY_GRAMMAR, start: str = TOY_START) -> dict:
    """How close a model's samples are to the data (Q14): the fraction of whole sampled sentences the grammar
    accepts. ``samples`` seeds of 16 characters are sliced from ``val`` and continued by ``length`` characters
    (16 + 240 fits a context of 256, so every step uses the key/value cache). ``temperature`` and ``epsilon``
    are those of `minitx.sample.pick_next`."""
    if not samples >= 1:
        raise ValueError(f"samples must be a positive number of samples, got {samples}")
    seeds = random_slices(val, samples, 16, torch.Generator().manual_seed(seed))           # (samples, 16)
    tokens = sample(model, seeds, length, temperature=temperature, epsilon=epsilon,
                    generator=torch.Generator().manual_seed(seed + 1))
    continuations = [decode(row[seeds.shape[1]:], i2c) for row in tokens]     # the model's characters only
    checked = [(fraction, n) for fraction, n in (accepted_fraction(t, grammar, start) for t in continuations) if n]
    sentences = sum(n for _, n in checked)
    accepted = sum(fraction * n for fraction, n in checked)
    return {"accepted_fraction": accepted / sentences if sentences else math.nan, "sentences_checked": sentences,
            "temperature": temperature, "epsilon": epsilon,
            "examples": [with_seed_in_brackets(row, seeds.shape[1], i2c) for row in tokens[:3]]}
