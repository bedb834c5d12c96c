"""What a mutation review found unchecked in minitx.grammar.sampled_acceptance."""

import math

import torch

import minitx.grammar as grammar
from minitx import LMConfig
from minitx.data import load_toy
from minitx.grammar import accepts, sampled_acceptance
from minitx.nn import LM
from minitx.sample import encode


def test_sampled_acceptance_pools_sentences_over_samples(monkeypatch):
    """The fraction is accepted sentences over checked sentences, pooled over all samples (a sample with
    three sentences weighs three times one with one); counting samples instead of sentences gave other
    numbers, even above 1. The reference splits the continuations and asks `accepts` directly."""
    _, (i2c, c2i) = load_toy(ntrain=0, ntest=0)
    continuations = ["g . a dog ran . a cat walks . the bear went . ab",     # three sentences, all accepted
                     "y . dog dog . ab",                                     # one, rejected
                     "nothing whole here"]                                   # none
    seed = "a dog ran . the "                                                # 16 characters
    rows = torch.stack([torch.cat([encode(seed, c2i), encode(c.ljust(60), c2i)[:60]]) for c in continuations])
    monkeypatch.setattr(grammar, "sample", lambda model, seeds, length, **kwargs: rows)
    val = encode(seed * 4, c2i)
    model = LM(LMConfig(vocab=len(i2c), emb=8, heads=2, depth=1, context=128))
    result = sampled_acceptance(model, val, i2c, samples=3, length=60)
    sentences = [p for c in continuations for p in c.ljust(60).split(" . ")[1:-1]]
    assert result["sentences_checked"] == len(sentences) == 4
    assert math.isclose(result["accepted_fraction"], sum(map(accepts, sentences)) / len(sentences))
