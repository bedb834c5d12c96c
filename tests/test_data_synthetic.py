"""IMDb-synth, XOR and the toy grammar: labels follow their rules, streams parse, seeds reproduce."""

from __future__ import annotations

import random

import pytest
import torch

from minitx.data import SPECIALS, TOY_GRAMMAR, TOY_START, generate_sentence, load_imdb_synth, load_toy, load_xor

# The rules written out again here, independently of the generators' tables (0 = positive, 1 = negative).
SYNTH_RULE = {"very great": 0, "not great": 1, "very terrible": 1, "not terrible": 0}
XOR_RULE = {"false false": 1, "false true": 0, "true false": 0, "true true": 1}


def decoded(data):
    """All instances of both splits as (text, label)."""
    (x_train, y_train), (x_test, y_test), (i2w, _), numcls = data
    assert numcls == 2 and tuple(i2w[:4]) == SPECIALS
    return [(" ".join(i2w[w] for w in x), y) for x, y in zip(x_train + x_test, y_train + y_test, strict=True)]


def test_synth_labels_follow_the_xor_rule_for_every_instance():
    data = load_imdb_synth(ntrain=2000, ntest=500)
    assert len(data[0][0]) == 2000 and len(data[1][0]) == 500
    texts = decoded(data)
    for text, label in texts:
        words = text.split()
        assert len(words) == 6 and words[0] == "this"
        assert SYNTH_RULE[" ".join(words[4:])] == label, text
    assert {" ".join(t.split()[4:]) for t, _ in texts} == set(SYNTH_RULE), "all four patterns occur"
    for position, filler in ((1, "adjective"), (2, "noun"), (3, "verb")):
        assert len({t.split()[position] for t, _ in texts}) > 1, f"the {filler} varies"


def test_xor_labels_follow_the_assignment_table_for_every_instance():
    texts = decoded(load_xor(ntrain=1000, ntest=1000))
    assert all(XOR_RULE[text] == label for text, label in texts)
    assert {text for text, _ in texts} == set(XOR_RULE)


@pytest.mark.parametrize("loader", [load_imdb_synth, load_xor])
def test_synthetic_sets_are_seeded(loader):
    assert loader(ntrain=300, ntest=300, seed=3) == loader(ntrain=300, ntest=300, seed=3)
    assert loader(ntrain=300, ntest=300, seed=3)[0] != loader(ntrain=300, ntest=300, seed=4)[0]
    (_, y_train), (_, y_test), _, _ = loader(ntrain=300, ntest=300, seed=3)
    assert y_train != y_test, "train and test are independent draws"


# --- the toy grammar ----------------------------------------------------------------------------------------

WORDS = {name: {alt[0] for alt in TOY_GRAMMAR[name]} for name in ("_adv", "_prep", "_con", "_noun", "_vp", "_adj")}


def s_ends(w: list[str], i: int) -> set[int]:
    """Positions j such that w[i:j] is a sentence; a hand-written recogniser, with the left recursion
    _s -> _s _adv unrolled into "a base clause followed by any number of adverbs"."""
    ends = set()
    for j in np_vp_ends(w, i):
        ends.add(j)
        for k in np_ends(w, j + 1) if at(w, j) in WORDS["_prep"] else ():
            ends.add(k)
        if at(w, j) == "(" and at(w, j + 1) in WORDS["_prep"]:
            ends |= {k + 1 for k in np_ends(w, j + 2) if at(w, k) == ")"}
        if at(w, j) in WORDS["_con"]:
            ends |= s_ends(w, j + 1)
        if at(w, j) == "(" and at(w, j + 1) in WORDS["_con"]:
            ends |= {k + 1 for k in s_ends(w, j + 2) if at(w, k) == ")"}
    adverbs = set()
    for j in ends:
        while at(w, j) in WORDS["_adv"]:
            j += 1
            adverbs.add(j)
    return ends | adverbs


def np_ends(w: list[str], i: int) -> set[int]:
    if at(w, i) not in ("a", "the"):
        return set()
    j = i + 2 if at(w, i + 1) in WORDS["_adj"] else i + 1
    return {j + 1} if at(w, j) in WORDS["_noun"] else set()


def np_vp_ends(w: list[str], i: int) -> set[int]:
    return {j + 1 for j in np_ends(w, i) if at(w, j) in WORDS["_vp"]}


def at(w: list[str], i: int) -> str | None:
    return w[i] if i < len(w) else None


def parses(sentence: str) -> bool:
    words = sentence.split(" ")
    return len(words) in s_ends(words, 0)


def test_the_recogniser_rejects_non_sentences():
    assert parses("the dog walks ( but a cat ran briefly ) quickly")
    for bad in ["the dog walks (", "dog walks", "the dog walks on", "a cat ran briefly the", "the  dog walks"]:
        assert not parses(bad), bad


def test_generate_sentence_expands_the_leftmost_nonterminal_first():
    grammar = {"_s": [["_a", "_b"]], "_a": [["x"], ["y"]], "_b": [["z"], ["w"]]}
    for seed in range(20):
        replay = random.Random(seed)  # the draws of a leftmost derivation: _s, then _a, then _b
        replay.choice(grammar["_s"])
        expected = f"{replay.choice(grammar['_a'])[0]} {replay.choice(grammar['_b'])[0]}"
        assert generate_sentence(grammar, random.Random(seed), "_s") == expected
    assert {generate_sentence(grammar, random.Random(s), "_s") for s in range(50)} == {"x z", "x w", "y z", "y w"}


@pytest.fixture(scope="module")
def toy():
    return load_toy(3000, 500)


def test_toy_stream_holds_only_grammar_sentences(toy):
    (train, val), (i2c, c2i) = toy
    assert tuple(i2c[:4]) == SPECIALS and i2c[4:] == sorted(i2c[4:])
    assert train.dtype == val.dtype == torch.long and train.dim() == val.dim() == 1
    for stream, count in ((train, 3000), (val, 500)):
        text = "".join(i2c[i] for i in stream.tolist())
        assert text.endswith(" . ")
        sentences = text.split(" . ")[:-1]
        assert len(sentences) == count
        assert all(parses(s) for s in sentences)


def test_toy_uses_every_rule_of_the_grammar(toy):
    (train, _), (i2c, _) = toy
    words = set("".join(i2c[i] for i in train.tolist()).split())
    terminals = {s for alts in TOY_GRAMMAR.values() for alt in alts for s in alt if not s.startswith("_")}
    assert words == terminals | {"."}


def test_toy_seeds_and_final():
    (train, val), _ = load_toy(200, 100)
    (train_final, test), _ = load_toy(n=200, ntest=100, final=True)
    assert torch.equal(train, train_final), "the training stream does not depend on final"
    assert not torch.equal(val[:100], test[:100]), "final=True holds out a different stream"
    assert torch.equal(load_toy(200, 100)[0][1], val)
    assert not torch.equal(load_toy(200, 100, seed=1)[0][0][:100], train[:100])
    assert TOY_START == "_s"


def test_negative_sentence_counts_are_refused():
    for counts in (dict(ntrain=-1), dict(ntest=-1)):       # gave an empty stream
        with pytest.raises(ValueError, match="sentence counts must be >= 0"):
            load_toy(**counts)
