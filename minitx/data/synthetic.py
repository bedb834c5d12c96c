"""IMDb-synth and XOR: tiny classification sets whose label is the XOR of two tokens.

Both return the layout of :func:`minitx.data.load_imdb`: ``(x_train, y_train), (x_test, y_test),
(i2w, w2i), 2``, labels 0 = positive, 1 = negative. Every instance has the same length, so the
"sorted short to long" guarantee holds trivially.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from minitx.data.imdb import NUM_CLASSES, ClassificationData
from minitx.data.splits import sort_by_length
from minitx.data.vocab import vocab_from_symbols

# "this <adjective> <noun> <verb> <very|not> <great|terrible>": the filler words carry no information.
SYNTH_ADJECTIVES = ("old", "new", "long", "short", "french", "recent")
SYNTH_NOUNS = ("movie", "film", "show", "documentary", "play")
SYNTH_VERBS = ("was", "is", "seemed", "felt")
# (modifier, judgement) -> label: very great and not terrible are positive (0), the other two negative (1).
SYNTH_LABELS = {("very", "great"): 0, ("not", "great"): 1, ("very", "terrible"): 1, ("not", "terrible"): 0}
# The assignment's XOR table, as two-token sequences: unequal tokens are positive (0), equal negative (1).
XOR_LABELS = {("false", "false"): 1, ("false", "true"): 0, ("true", "false"): 0, ("true", "true"): 1}
_SYNTH_PATTERNS, _XOR_PATTERNS = tuple(SYNTH_LABELS), tuple(XOR_LABELS)  # equally likely


def load_imdb_synth(ntrain: int = 25_000, ntest: int = 25_000, seed: int = 0) -> ClassificationData:
    """IMDb-synth: "this old movie was very great" and variants; the label is very/not XOR great/terrible."""
    def sentence(rng: random.Random) -> tuple[list[str], int]:
        pattern = rng.choice(_SYNTH_PATTERNS)
        fillers = [rng.choice(SYNTH_ADJECTIVES), rng.choice(SYNTH_NOUNS), rng.choice(SYNTH_VERBS)]
        return ["this", *fillers, *pattern], SYNTH_LABELS[pattern]

    words = {"this", *SYNTH_ADJECTIVES, *SYNTH_NOUNS, *SYNTH_VERBS, *(w for p in SYNTH_LABELS for w in p)}
    return _generate(sentence, words, ntrain, ntest, seed)


def load_xor(ntrain: int = 25_000, ntest: int = 25_000, seed: int = 0) -> ClassificationData:
    """XOR: two tokens from {true, false}; the label follows the assignment's table (see XOR_LABELS)."""
    def sentence(rng: random.Random) -> tuple[list[str], int]:
        pattern = rng.choice(_XOR_PATTERNS)
        return list(pattern), XOR_LABELS[pattern]

    return _generate(sentence, {"true", "false"}, ntrain, ntest, seed)


def _generate(sentence: Callable[[random.Random], tuple[list[str], int]], words: set[str], ntrain: int,
              ntest: int, seed: int) -> ClassificationData:
    """Draw train and test sets from independent seeded streams (the vocabulary is all of ``words``)."""
    i2w, w2i = vocab_from_symbols(words)
    sets = []
    for name, n in (("train", ntrain), ("test", ntest)):
        rng = random.Random(f"{seed}-{name}")
        sets.append([sentence(rng) for _ in range(n)])
    splits = [sort_by_length([[w2i[w] for w in tokens] for tokens, _ in instances],
                             [label for _, label in instances]) for instances in sets]
    return splits[0], splits[1], (i2w, w2i), NUM_CLASSES
