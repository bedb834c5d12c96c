"""The toy grammar's entropy floor and the inside-algorithm acceptance check."""

import math
import random

import pytest

from minitx.data import TOY_GRAMMAR, generate_sentence
from minitx.grammar import (
    accepted_fraction,
    accepts,
    check_grammar,
    derivation_entropy,
    entropy_floor,
    expected_characters,
    inside_probability,
)

# Unambiguous: s -> a | b s. A sentence is k b's then an a, with probability 2^-(k+1).
CHAIN = {"_s": [["a"], ["b", "_s"]]}
# Ambiguous: s -> s x s | a | b. "a x a x a" has two derivations (left or right nesting).
AMBIGUOUS = {"_s": [["_s", "x", "_s"], ["a"], ["b"]]}


def test_inside_probability_by_hand():
    assert inside_probability(["b", "b", "a"], CHAIN, "_s") == pytest.approx(1 / 8)
    assert inside_probability(["a", "x", "b"], AMBIGUOUS, "_s") == pytest.approx(3.0 ** -3)
    # two trees, each with two binary rules and three leaves: 2 * 3^-5
    assert inside_probability("a x a x a".split(), AMBIGUOUS, "_s") == pytest.approx(2 * 3.0 ** -5)
    assert inside_probability(["b", "a", "a"], CHAIN, "_s") == 0.0


def test_exact_parts_by_hand():
    # CHAIN: the number of expansions is geometric with mean 2, each worth 1 bit; 2 words of 1 letter on average
    assert derivation_entropy(CHAIN, "_s") == pytest.approx(2.0)
    assert expected_characters(CHAIN, "_s") == pytest.approx(2 * 2 + 2)       # sum(len + 1) + 2 for ' . '
    floor = entropy_floor(CHAIN, "_s", samples=50)
    assert floor["ambiguity_bits"] == 0.0 and floor["bits_per_char"] == pytest.approx(2.0 / 6)


def test_the_floor_matches_a_direct_monte_carlo_of_sentence_probabilities():
    """H(sentence) / E[chars] from sampled sentences' inside probabilities, an independent estimate."""
    rng = random.Random(5)
    sentences = [generate_sentence(AMBIGUOUS, rng, "_s") for _ in range(3000)]
    bits = sum(-math.log2(inside_probability(s.split(), AMBIGUOUS, "_s")) for s in sentences)
    chars = sum(len(s) + 3 for s in sentences)
    floor = entropy_floor(AMBIGUOUS, "_s", samples=1000)
    assert floor["ambiguity_bits"] > 0
    assert floor["bits_per_char"] == pytest.approx(bits / chars, rel=0.05)


def test_the_toy_floor_agrees_with_the_field_notes():
    floor = entropy_floor(samples=300)
    assert floor["bits_per_char"] == pytest.approx(0.548, abs=0.002)   # the field notes' independent figure


def test_sentences_of_the_grammar_are_accepted_and_others_not():
    rng = random.Random(0)
    for _ in range(30):
        assert accepts(generate_sentence(TOY_GRAMMAR, rng))
    for bad in ["cat the walked", "a cat walked (", "a cat walked ( on the dog", "a cat  walked", "a cta walked", ""]:
        assert not accepts(bad), bad


def test_accepted_fraction_skips_the_cut_ends_of_a_sample():
    rng = random.Random(1)
    good = [generate_sentence(TOY_GRAMMAR, rng) for _ in range(4)]
    text = "og walked . " + " . ".join(good) + " . the ca"
    assert accepted_fraction(text) == (1.0, 4)
    assert accepted_fraction("og . a cat walked . dog dog . the") == (0.5, 2)
    assert math.isnan(accepted_fraction("no separator here")[0])


def test_unsupported_grammars_are_clear_errors():
    with pytest.raises(ValueError, match="unit rule"):
        check_grammar({"_s": [["_t"]], "_t": [["a"]]}, "_s")
    with pytest.raises(ValueError, match="undefined"):
        check_grammar({"_s": [["a", "_t"]]}, "_s")
    with pytest.raises(ValueError, match="does not terminate"):
        derivation_entropy({"_s": [["_s", "_s"], ["_s", "a"]]}, "_s")
