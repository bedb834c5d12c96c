"""Q12 evaluation: the estimate and the exact evaluation, in bits per character."""

import math
import statistics

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minitx import LMConfig
from minitx.data import random_slices
from minitx.evaluate import estimate_bits, exact_bits, window_plan
from minitx.nn import LM

V = 7


def uniform_model(tokens: torch.Tensor) -> torch.Tensor:
    return torch.zeros(*tokens.shape, V)                                   # (b, t, V): every token equally likely


def oracle_model(tokens: torch.Tensor) -> torch.Tensor:
    """On the stream 0, 1, ..., V-1, 0, 1, ... the next token is always (token + 1) % V: predict it surely."""
    return torch.nn.functional.one_hot((tokens + 1) % V, V).float() * 100.0


CYCLE = torch.arange(500) % V


def test_uniform_logits_score_log2_vocab():
    data = torch.randint(0, V, (300,), generator=torch.Generator().manual_seed(0))
    assert estimate_bits(uniform_model, data, 16, batches=5, batch_size=4) == pytest.approx(math.log2(V))
    assert exact_bits(uniform_model, data, 16) == pytest.approx(math.log2(V))


def test_a_model_that_knows_the_answer_scores_about_zero():
    assert estimate_bits(oracle_model, CYCLE, 16, batches=5, batch_size=4) < 1e-6
    assert exact_bits(oracle_model, CYCLE, 16) < 1e-6


def test_the_estimate_scores_the_last_position_only():
    """A model right only at the last position of its input scores ~0 in the estimate, badly in exact."""
    def last_only(tokens):
        logits = torch.zeros(*tokens.shape, V)
        logits[:, -1] = oracle_model(tokens)[:, -1]
        return logits
    assert estimate_bits(last_only, CYCLE, 16, batches=5, batch_size=4) < 1e-6
    assert exact_bits(last_only, CYCLE, 16) > 1.0


def test_the_estimate_of_an_lm_asks_for_the_last_position_only_and_scores_the_same():
    model = LM(LMConfig(vocab=V, emb=16, heads=2, depth=2, context=16), torch.Generator().manual_seed(0)).eval()
    asked, shapes = [], []
    original = model.forward

    def recording(tokens, last=None):
        asked.append(last)
        logits = original(tokens, last=last)
        shapes.append(tuple(logits.shape))
        return logits

    model.forward = recording
    fast = estimate_bits(model, CYCLE, 16, batches=3, batch_size=4, generator=torch.Generator().manual_seed(1))
    full = estimate_bits(original, CYCLE, 16, batches=3, batch_size=4, generator=torch.Generator().manual_seed(1))
    assert asked == [1, 1, 1] and shapes == [(4, 1, V)] * 3           # one position computed, not all 16
    assert fast == pytest.approx(full, rel=1e-6)


@given(n=st.integers(2, 200), context=st.integers(1, 40), stride_fraction=st.floats(0.01, 1.0))
def test_window_plan_scores_every_target_exactly_once(n, context, stride_fraction):
    stride = max(1, int(context * stride_fraction))
    starts, first = window_plan(n, context, stride)
    length = min(context, n - 1)
    scored = torch.cat([s + torch.arange(f, length) for s, f in zip(starts.tolist(), first.tolist(), strict=True)])
    assert torch.equal(scored, torch.arange(n - 1))                          # each target once, in order
    # every scored position has at least length - stride positions of context inside its window (or all)
    assert all(f == 0 or f >= length - stride for f in first[1:].tolist())


def tiny_lm(context: int = 8) -> LM:
    return LM(LMConfig(vocab=V, emb=16, heads=2, depth=2, context=context), torch.Generator().manual_seed(0)).eval()


def naive_bits(model: LM, data: torch.Tensor, context: int) -> torch.Tensor:
    """One forward pass per target: -log2 p(data[j + 1] | the up to `context` tokens before it)."""
    out = []
    for j in range(len(data) - 1):
        window = data[max(0, j + 1 - context): j + 1][None]                   # (1, <= context)
        logp = torch.log_softmax(model(window)[0, -1], dim=-1)
        out.append(-logp[data[j + 1]] / math.log(2))
    return torch.stack(out)


@given(batches=st.integers(1, 4), batch_size=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_the_estimates_standard_error_is_that_of_its_windows_computed_one_by_one(batches, batch_size, seed):
    data = torch.randint(0, V, (60,), generator=torch.Generator().manual_seed(seed))
    model = tiny_lm()
    bits, error = estimate_bits(model, data, 8, batches=batches, batch_size=batch_size, with_error=True,
                                generator=torch.Generator().manual_seed(seed))
    generator = torch.Generator().manual_seed(seed)                                          # the same draws
    windows = torch.cat([random_slices(data, batch_size, 9, generator) for _ in range(batches)])
    with torch.no_grad():
        scores = [naive_bits(model, window, 8)[-1].item() for window in windows]              # last target only
    assert bits == pytest.approx(statistics.mean(scores), rel=1e-5)
    assert bits == estimate_bits(model, data, 8, batches=batches, batch_size=batch_size,
                                 generator=torch.Generator().manual_seed(seed))               # the same mean
    if len(scores) == 1:
        assert math.isnan(error)                                    # one window: no spread to measure
    else:
        expected = statistics.stdev(scores) / math.sqrt(len(scores))
        assert error == pytest.approx(expected, rel=1e-4, abs=1e-7)


def test_windows_that_all_score_alike_have_no_standard_error():
    data = torch.randint(0, V, (300,), generator=torch.Generator().manual_seed(0))
    bits, error = estimate_bits(uniform_model, data, 16, batches=5, batch_size=4, with_error=True)
    assert bits == pytest.approx(math.log2(V)) and error == 0


def test_exact_evaluation_matches_a_per_position_loop():
    data = torch.randint(0, V, (41,), generator=torch.Generator().manual_seed(1))
    model = tiny_lm()
    with torch.no_grad():
        expected = naive_bits(model, data, 8)
    per_position = exact_bits(model, data, 8, stride=1, batch_size=5, per_position=True)
    torch.testing.assert_close(per_position, expected, atol=1e-5, rtol=1e-5)
    assert exact_bits(model, data, 8, stride=1, batch_size=5) == pytest.approx(expected.mean().item(), rel=1e-5)


def test_default_stride_scores_each_position_once():
    data = torch.randint(0, V, (53,), generator=torch.Generator().manual_seed(2))
    model = tiny_lm()
    per_position = exact_bits(model, data, 8, per_position=True)
    assert not per_position.isnan().any()
    assert exact_bits(model, data, 8) == pytest.approx(per_position.mean().item(), rel=1e-5)
    with torch.no_grad():
        full = naive_bits(model, data, 8)
    # the first window and the first half of the stride-1 plan agree exactly: same windows
    torch.testing.assert_close(per_position[:8], full[:8], atol=1e-5, rtol=1e-5)


def test_context_one_default_stride_scores_every_position():
    """A bigram model (context 1): the default stride (context // 2 would be 0) still scores each position."""
    data = torch.randint(0, V, (30,), generator=torch.Generator().manual_seed(3))
    model = tiny_lm(context=1)
    with torch.no_grad():
        expected = naive_bits(model, data, 1)
    torch.testing.assert_close(exact_bits(model, data, 1, per_position=True), expected, atol=1e-5, rtol=1e-5)


def test_a_context_longer_than_the_position_table_is_a_clear_error():
    model = tiny_lm(context=8)
    data = torch.randint(0, V, (100,))
    with pytest.raises(ValueError, match="longer than the model's position table"):
        exact_bits(model, data, 16, model_context=8)
    with pytest.raises(ValueError, match="longer than the model's position table"):
        estimate_bits(model, data, 16, batches=1, model_context=8)


def test_bad_counts_and_tokens_outside_the_vocabulary_are_clear_errors():
    """Were "range() arg 3 must not be zero", "stack expects a non-empty TensorList" and a bare IndexError."""
    model = tiny_lm(context=8)
    data = torch.randint(0, V, (100,))
    with pytest.raises(ValueError, match="batch_size must be a positive number, got 0"):
        exact_bits(model, data, 8, batch_size=0)
    with pytest.raises(ValueError, match="batches must be a positive number, got 0"):
        estimate_bits(model, data, 8, batches=0)
    with pytest.raises(ValueError, match="batch_size must be a positive number, got 0"):
        estimate_bits(model, data, 8, batches=1, batch_size=0)
    outside = data.clone()
    outside[50] = V
    for evaluate in (exact_bits, estimate_bits):
        with pytest.raises(ValueError, match=f"token ids from 0 to {V}, outside the model's vocabulary"):
            evaluate(model, outside, 8)



def position_model(tokens):
    """Logits that reveal the position inside the window: a dummy class V-1 (never a target) has logit i."""
    b, t = tokens.shape
    logits = torch.zeros(b, t, V, dtype=torch.float64)
    logits[..., V - 1] = torch.arange(t, dtype=torch.float64)
    return logits


@pytest.mark.parametrize("context", [4, 8, 9])
def test_default_stride_gives_every_later_position_half_a_context(context):
    data = torch.randint(0, V - 1, (60,), generator=torch.Generator().manual_seed(0))
    bits = exact_bits(position_model, data, context, per_position=True)
    in_window = torch.log(2.0 ** bits - (V - 1)).round()   # invert p = 1 / (V - 1 + e^i)
    stride = max(1, context // 2)
    assert in_window[context - 1:].min() >= context - stride
    assert in_window[context:].max() == context - 1


def test_an_evaluation_context_one_past_the_table_is_refused():
    with pytest.raises(ValueError, match="longer than the model's position table"):
        exact_bits(position_model, torch.zeros(50, dtype=torch.long), 9, model_context=8)


# What a mutation review of the whole module found unchecked: each test below fails on one plausible slip.
@pytest.mark.parametrize("context", [1, 4, 8])
def test_the_estimate_feeds_windows_of_the_whole_context(context):
    """The scored prediction is the last of ``context`` inputs: `position_model` gives it logit context - 1."""
    data = torch.randint(0, V - 1, (60,), generator=torch.Generator().manual_seed(0))
    bits = estimate_bits(position_model, data, context, batches=2, batch_size=3)
    assert bits == pytest.approx(math.log2(V - 1 + math.exp(context - 1)), rel=1e-6)


def test_an_lms_own_position_table_bounds_the_evaluation_context():
    """Without ``model_context`` the LM's config gives it: refused upfront, not by the position table mid-run."""
    model, data = tiny_lm(context=8), torch.randint(0, V, (100,))
    with pytest.raises(ValueError, match="longer than the model's position table"):
        exact_bits(model, data, 9)
    with pytest.raises(ValueError, match="longer than the model's position table"):
        estimate_bits(model, data, 9, batches=1)


@pytest.mark.parametrize("call, error", [
    (lambda data: exact_bits(uniform_model, data, 0), "context must be positive, got 0"),
    (lambda data: estimate_bits(uniform_model, data, 0, batches=1), "context must be positive, got 0"),
    (lambda data: exact_bits(uniform_model, data[:1], 4), "at least 2 tokens"),
    (lambda data: exact_bits(uniform_model, data.view(2, 10), 4), "1-D stream"),
    (lambda data: exact_bits(uniform_model, data, 4, stride=5), r"stride must be in 1 \.\. context \(4\), got 5"),
    (lambda data: exact_bits(uniform_model, data, 4, stride=0), r"stride must be in 1 \.\. context \(4\), got 0"),
], ids=["exact context 0", "estimate context 0", "one token", "2-D stream", "stride past context", "stride 0"])
def test_contexts_streams_and_strides_outside_their_range_are_clear_errors(call, error):
    """A stride past the context left targets between windows unscored while the mean still divided by all."""
    with pytest.raises(ValueError, match=error):
        call(torch.randint(0, V, (20,), generator=torch.Generator().manual_seed(0)))
