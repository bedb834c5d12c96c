"""Q13 sampling: seed + new tokens, greedy/top-k, and the key/value cache that must not change the output."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minitx.functional as mf
import minitx.sample as sampling
from minitx import LMConfig
from minitx.nn import LM
from minitx.sample import decode, encode, pick_next, sample, with_seed_in_brackets

V = 11


def tiny_lm(context: int = 12) -> LM:
    return LM(LMConfig(vocab=V, emb=16, heads=2, depth=2, context=context), torch.Generator().manual_seed(0)).eval()


SEED = torch.tensor([1, 2, 3, 4, 5])


def test_output_is_the_seed_followed_by_the_new_tokens():
    """The course's sampler returned the seed instead of the generated sequence."""
    out = sample(tiny_lm(), SEED, 6, generator=torch.Generator().manual_seed(0))
    assert out.shape == (len(SEED) + 6,)
    assert torch.equal(out[: len(SEED)], SEED)
    assert ((0 <= out) & (out < V)).all()


@pytest.mark.parametrize("length", [4, 7, 20])   # inside the context, filling it exactly, sliding past it
def test_greedy_with_the_cache_equals_rerunning_the_forward(length):
    model = tiny_lm(context=12)
    cached = sample(model, SEED, length, temperature=0)
    rerun = sample(model, SEED, length, temperature=0, use_cache=False)
    assert torch.equal(cached, rerun)


def test_greedy_follows_the_argmax_of_the_full_forward():
    model = tiny_lm(context=12)
    out = sample(model, SEED, 3, temperature=0)
    with torch.no_grad():
        for i in range(len(SEED), len(out)):
            assert out[i] == model(out[None, :i])[0, -1].argmax()


def test_each_new_token_costs_one_position_while_the_sequence_fits(monkeypatch):
    model = tiny_lm(context=12)
    seen = []
    original = mf.lm
    monkeypatch.setattr(mf, "lm", lambda params, tokens, *a, **k: seen.append(tokens.shape[1]) or original(
        params, tokens, *a, **k))
    sample(model, SEED, 10, temperature=0)
    # the 10 new tokens are predicted from 5 ... 14 tokens: the seed at once, one position a step up to the
    # context (6 ... 12 tokens), then full windows of the last 12 (13 and 14 tokens)
    assert seen == [5] + [1] * 7 + [12] * 2


def test_sampling_with_a_generator_is_repeatable_and_batched():
    model = tiny_lm()
    seeds = torch.stack([SEED, SEED.flip(0)])                                      # (2, 5)
    first = sample(model, seeds, 8, generator=torch.Generator().manual_seed(3))
    again = sample(model, seeds, 8, generator=torch.Generator().manual_seed(3))
    assert first.shape == (2, 13) and torch.equal(first, again)


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_batched_rows_are_independent_and_start_with_their_own_seed(use_cache):
    model = tiny_lm(context=12)
    seeds = torch.stack([SEED, SEED.flip(0), torch.tensor([0, 7, 0, 7, 10])])       # (3, 5)
    batched = sample(model, seeds, 10, temperature=0, use_cache=use_cache)         # 15 > context: it slides
    assert batched.shape == (3, 15)
    assert torch.equal(batched[:, : seeds.shape[1]], seeds)                        # each row its own seed
    for row, seed in zip(batched, seeds, strict=True):
        assert torch.equal(row, sample(model, seed, 10, temperature=0, use_cache=use_cache))
    assert len({tuple(row[5:].tolist()) for row in batched}) > 1   # the rows differ: no row copied the others


def test_temperature_and_top_k():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    assert pick_next(logits, temperature=0).item() == 1
    generator = torch.Generator().manual_seed(0)
    draws = torch.cat([pick_next(logits, top_k=2, generator=generator) for _ in range(200)])
    assert set(draws.tolist()) == {1, 3}                                           # only the two most likely
    for bad in (-1, float("nan")):     # NaN failed inside torch.multinomial with "probability tensor contains nan"
        with pytest.raises(ValueError, match=f"temperature must be >= 0, got {bad}"):
            pick_next(logits, temperature=bad)


@pytest.mark.parametrize("temperature", [1e-3, 1e-30, 1e-38, 1e-45])
def test_a_tiny_temperature_tends_to_the_argmax(temperature):
    """logits / 1e-38 overflowed to inf (and all-negative rows to -inf everywhere): NaN probabilities."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0], [-7.0, -9.0, -5.5, -6.0]])
    assert pick_next(logits, temperature, generator=generator).tolist() == [1, 2]


def test_top_k_keeps_exactly_k_tokens_when_logits_tie():
    logits = torch.tensor([[1.0, 1.0, 0.0, 1.0]])                                  # three tokens tie for first
    generator = torch.Generator().manual_seed(0)
    draws = {pick_next(logits, top_k=1, generator=generator).item() for _ in range(100)}
    assert len(draws) == 1 and draws <= {0, 1, 3}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), epsilon=st.floats(0.01, 0.6), temperature=st.sampled_from([0.5, 1.0, 2.0]))
def test_epsilon_never_draws_a_token_below_it(seed, epsilon, temperature):
    generator = torch.Generator().manual_seed(seed)
    logits = (torch.randn(4, 9, generator=generator) * 3).repeat(50, 1)          # (200, 9): 50 draws a row
    probs = torch.softmax(logits / temperature, dim=-1)
    drawn = pick_next(logits, temperature, epsilon=epsilon, generator=generator)  # (200,)
    chosen = probs.gather(1, drawn[:, None]).squeeze(1)
    assert bool(((chosen >= epsilon) | (chosen == probs.amax(dim=-1))).all())    # above epsilon, or the most likely


def test_epsilon_renormalises_what_it_keeps():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.04, 0.01])
    logits = probs.log().repeat(4000, 1)                                           # (4000, 5)
    drawn = pick_next(logits, epsilon=0.05, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(drawn, minlength=5).double() / len(drawn)
    assert counts[3:].sum() == 0                                                    # 0.04 and 0.01 are dropped
    kept = probs[:3].double() / probs[:3].sum()                                     # 0.526, 0.316, 0.158
    assert torch.allclose(counts[:3], kept, atol=4 * (0.25 / len(drawn)) ** 0.5)    # within 4 standard errors
    only_the_best = pick_next(torch.tensor([[0.0, 0.1, 0.0, 0.0]]).repeat(100, 1), epsilon=0.9,
                              generator=torch.Generator().manual_seed(1))
    assert bool((only_the_best == 1).all())                                        # the most likely always stays
    with pytest.raises(ValueError, match="epsilon"):
        pick_next(logits, epsilon=1.0)


def test_byte_samples_decode_as_utf8():
    byte_vocab = [chr(i) for i in range(256)]
    encoded = list("café ü".encode())                                            # 8 bytes for 6 characters
    assert decode(torch.tensor(encoded), byte_vocab) == "café ü"
    assert decode(encoded[:4], byte_vocab) == "caf\ufffd"                       # cut inside the é
    assert decode([99, 97, 102, 195], list(byte_vocab[:255]) + ["x"]) == "caf\u00c3"  # not the byte vocabulary
    # the seed is 4 tokens (bytes), cut inside the é: not the first 4 characters of the decoded text
    assert with_seed_in_brackets(torch.tensor(encoded), 4, byte_vocab) == "[caf\ufffd]\ufffd ü"
    byte_c2i = {c: i for i, c in enumerate(byte_vocab)}              # seed text for a byte model: its UTF-8 bytes
    assert encode("café €", byte_c2i).tolist() == list("café €".encode())


def test_seed_text_outside_the_vocabulary_is_a_clear_error():
    c2i = {c: i for i, c in enumerate("abc ")}
    assert decode(encode("ab c", c2i), list("abc ")) == "ab c"
    with pytest.raises(ValueError, match=r"outside the model's vocabulary: \['Z', '~'\]"):
        encode("abZ~", c2i)


@pytest.mark.parametrize("seed, error, kind", [
    (torch.tensor([1, V, 2]), rf"token ids from 1 to {V}, outside the model's vocabulary 0 \.\. {V - 1}", ValueError),
    (torch.tensor([-1, 2]), "token ids from -1 to 2", ValueError),
    (torch.tensor([1.7, 2.2]), "must hold integer token ids", TypeError),   # was truncated to [1, 2] silently
])
def test_a_seed_of_token_ids_outside_the_vocabulary_is_a_clear_error(seed, error, kind):
    with pytest.raises(kind, match=error):
        sample(tiny_lm(), seed, 3)


@pytest.mark.parametrize("settings, error", [
    (dict(top_k=0), "top_k must be a positive integer"),
    (dict(top_k=2.0), "top_k must be a positive integer"),                # was a TypeError inside topk
    (dict(temperature=float("nan")), "temperature must be >= 0"),
    (dict(epsilon=1.0), "epsilon must be in"),
])
def test_bad_sampling_settings_are_refused_even_for_no_new_tokens(settings, error):
    with pytest.raises(ValueError, match=error):
        sample(tiny_lm(), SEED, 0, **settings)
    with pytest.raises(ValueError, match=error):
        pick_next(torch.zeros(1, V), **settings)


@pytest.mark.parametrize("seed, error", [
    (torch.tensor([]), "the seed is empty"),                 # a float tensor: the emptiness is what matters
    (torch.tensor(3), r"\(time,\) or \(batch, time\)"),
])
def test_an_empty_or_scalar_seed_is_named(seed, error):
    with pytest.raises(ValueError, match=error):
        sample(tiny_lm(), seed, 3)


def test_top_k_may_be_a_numpy_or_tensor_integer():
    import numpy as np
    greedy = sample(tiny_lm(), SEED, 4, top_k=1, generator=torch.Generator().manual_seed(0))
    for top_k in (np.int64(1), torch.tensor(1)):
        assert torch.equal(sample(tiny_lm(), SEED, 4, top_k=top_k, generator=torch.Generator().manual_seed(0)),
                           greedy)


def test_pick_next_wants_a_batch_of_logits():
    with pytest.raises(ValueError, match=r"logits must have shape \(batch, vocab\), got \(7,\)"):
        pick_next(torch.randn(7))


def test_top_k_true_is_not_an_integer():
    """bool is an int subclass: top_k=True would quietly mean top_k=1."""
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        sample(tiny_lm(), SEED, 0, top_k=True)
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        pick_next(torch.zeros(1, V), top_k=True)


def test_a_bool_seed_is_not_token_ids():
    with pytest.raises(TypeError, match="must hold integer token ids"):
        sample(tiny_lm(), torch.tensor([True, False, True]), 3)


def test_a_seed_of_three_dimensions_is_named():
    with pytest.raises(ValueError, match=r"\(time,\) or \(batch, time\) token ids, got shape \(1, 1, 5\)"):
        sample(tiny_lm(), SEED[None, None], 3)


# What a mutation review of the whole module found unchecked: each test below fails on one plausible slip.
@pytest.mark.parametrize("use_cache", [True, False])
def test_every_step_picks_from_the_full_forwards_last_logits(use_cache, monkeypatch):
    """The logits each new token is drawn from are the last position's of a plain forward pass over the
    sequence so far (its last `context` tokens), through the seed step, the cached steps and the slide."""
    model = tiny_lm(context=12)
    seeds = torch.stack([SEED, torch.tensor([9, 0, 9, 3, 7])])                      # (2, 5)
    seen, original = [], sampling.pick_next
    monkeypatch.setattr(sampling, "pick_next", lambda logits, *a, **k: seen.append(logits) or original(logits, *a, **k))
    out = sample(model, seeds, 10, temperature=0, use_cache=use_cache)            # 15 > 12: it slides
    assert len(seen) == 10
    with torch.no_grad():
        for step, logits in enumerate(seen):
            window = out[:, : len(SEED) + step][:, -12:]
            torch.testing.assert_close(logits, model(window)[:, -1], atol=1e-5, rtol=1e-4)


def test_top_k_above_the_vocabulary_keeps_every_token():
    logits = torch.randn(3, V, generator=torch.Generator().manual_seed(0))
    plain = pick_next(logits.repeat(20, 1), generator=torch.Generator().manual_seed(1))
    limited = pick_next(logits.repeat(20, 1), top_k=V + 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(limited, plain)
    assert sample(tiny_lm(), SEED, 3, top_k=100, generator=torch.Generator().manual_seed(0)).shape == (8,)


def test_a_negative_length_is_a_clear_error():
    """range(-1) is empty: the seed alone came back, as if -1 meant 0."""
    with pytest.raises(ValueError, match="length must be >= 0, got -1"):
        sample(tiny_lm(), SEED, -1)
