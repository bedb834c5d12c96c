"""Padding, token-budget batches and random slices: properties checked with hypothesis."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minitx.data import (
    fixed_batches,
    lm_batch,
    pad_batch,
    padding_fraction,
    random_slices,
    token_budget_batches,
)

sequences = st.lists(st.lists(st.integers(0, 50), max_size=12), min_size=1, max_size=8)
lengths_lists = st.lists(st.integers(0, 40), min_size=1, max_size=60)


@given(sequences, st.integers(-1, 60), st.one_of(st.none(), st.integers(1, 15)))
def test_pad_batch_then_strip_by_mask_gives_back_the_sequences(seqs, pad_idx, max_len):
    tokens, mask = pad_batch(seqs, pad_idx, max_len)
    expected = [s[:max_len] for s in seqs]
    assert tokens.dtype == torch.long and mask.dtype == torch.bool
    # at least one column: a batch of empty sequences is one column of padding
    assert tokens.shape == mask.shape == (len(seqs), max(1, *(len(s) for s in expected)))
    assert [row[m].tolist() for row, m in zip(tokens, mask, strict=True)] == expected
    # The mask marks exactly the real tokens: a prefix of each row, as long as the sequence.
    assert mask.sum(1).tolist() == [len(s) for s in expected]
    assert all(m[: len(s)].all() and not m[len(s):].any() for m, s in zip(mask, expected, strict=True))
    assert (tokens[~mask] == pad_idx).all()


def test_pad_batch_errors():
    with pytest.raises(ValueError, match="empty batch"):
        pad_batch([], 0)
    with pytest.raises(ValueError, match="max_len"):
        pad_batch([[1]], 0, max_len=0)


@pytest.mark.parametrize(("call", "error"), [
    (lambda: token_budget_batches([50] * 6, 100, max_len=0), "max_len must be positive"),   # was one batch
    (lambda: token_budget_batches([3, -1], 100), "lengths must be >= 0"),
    (lambda: padding_fraction([3, 4], [[0, 1]], max_len=-3), "max_len must be positive"),
    (lambda: lm_batch(torch.arange(10), 2, 0), "context must be positive"),              # was (b, 0) tensors
    (lambda: pad_batch([[3, -1]], 0), "token ids must be >= 0, got -1"),              # failed later, in a model
    (lambda: token_budget_batches([3, 4], 2.5), "max_tokens must be a positive integer"),
    (lambda: fixed_batches(-1, 2), "n must be a number of instances >= 0"),          # a torch RuntimeError
    (lambda: fixed_batches(10, 0), "batch_size must be positive, got 0"),
    (lambda: random_slices(torch.arange(10), 2, 0), "cannot slice windows of length 0"),   # (2, 0) windows
])
def test_batching_refuses_bad_sizes(call, error):
    with pytest.raises(ValueError, match=error):
        call()


def test_non_integer_tokens_are_refused_not_cut():
    with pytest.raises(TypeError, match="tokens must be integers"):
        pad_batch([[1.7, 2.2], [3]], 0)                      # long() made them 1 and 2
    with pytest.raises(TypeError, match="tokens must be integers, got torch.bool"):
        pad_batch([[True, False]], 0)                        # a mask passed for the tokens: ids 1 and 0
    for data in (torch.rand(20), torch.ones(20, dtype=torch.bool)):
        with pytest.raises(TypeError, match="integer tokens"):
            random_slices(data, 2, 4)


def test_empty_batches_and_sequences_have_a_padded_width_of_one():
    assert padding_fraction([0, 0, 3], [[0, 1], [], [2]]) == pytest.approx(2 / 5)   # (2 x 1) + (1 x 3) entries
    tokens, mask = pad_batch([[], []], pad_idx=0)
    assert tokens.shape == (2, 1) and not mask.any()


@given(lengths_lists, st.integers(1, 200), st.one_of(st.none(), st.integers(1, 30)), st.integers(0, 2**31))
def test_token_budget_batches_cover_everything_within_budget(lengths, max_tokens, max_len, seed):
    batches = token_budget_batches(lengths, max_tokens, max_len=max_len,
                                   generator=torch.Generator().manual_seed(seed))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths))), "each index exactly once"
    size = [min(n, max_len) if max_len else n for n in lengths]
    for b in batches:
        assert len(b) == 1 or len(b) * max(1, *(size[i] for i in b)) <= max_tokens   # pad_batch's width
    # Sorted by length then cut into runs: batches do not interleave in length.
    spans = sorted((min(size[i] for i in b), max(size[i] for i in b)) for b in batches)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in pairwise(spans))


def test_token_budget_batches_are_greedy_and_reshuffled_each_epoch():
    lengths = [5] * 6 + [10] * 6
    assert token_budget_batches(lengths, 20, shuffle=False) == [[0, 1, 2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]
    assert token_budget_batches([100, 1], 20, shuffle=False) == [[1], [0]], "too long: a batch of its own"
    generator = torch.Generator().manual_seed(0)
    epochs = [token_budget_batches(list(range(1, 200)), 400, generator=generator) for _ in range(2)]
    assert epochs[0] != epochs[1], "the order of the batches changes between epochs"
    equal = [sorted(map(sorted, token_budget_batches([3] * 20, 15, generator=generator))) for _ in range(2)]
    assert equal[0] != equal[1], "sequences of equal length are mixed between epochs"


@given(st.integers(0, 100), st.integers(1, 16))
def test_fixed_batches_partition_the_indices(n, batch_size):
    batches = fixed_batches(n, batch_size, generator=torch.Generator().manual_seed(n))
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert all(len(b) == batch_size for b in batches[:-1])
    assert all(batches) and len(batches) == math.ceil(n / batch_size)   # no empty batch, not even for n = 0


def test_padding_fraction():
    # [1, 3] pads 2 of its 6 entries, [2, 2] none of its 4.
    assert padding_fraction([1, 3, 2, 2], [[0, 1], [2, 3]]) == pytest.approx(2 / 10)
    assert padding_fraction([1, 30], [[0, 1]], max_len=3) == pytest.approx(2 / 6)
    lengths = torch.randint(1, 500, (2000,), generator=torch.Generator().manual_seed(0)).tolist()
    fixed = padding_fraction(lengths, fixed_batches(len(lengths), 32))
    budget = padding_fraction(lengths, token_budget_batches(lengths, 32 * 256))
    assert budget < 0.05 < fixed


@settings(max_examples=50)
@given(st.integers(1, 60), st.integers(1, 60), st.integers(1, 8), st.integers(0, 2**31))
def test_every_window_is_a_contiguous_piece_of_the_data(n, length, batch, seed):
    data = torch.randint(0, 256, (n,), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    if length > n:
        with pytest.raises(ValueError, match="length"):
            random_slices(data, batch, length)
        return
    windows = random_slices(data, batch, length, torch.Generator().manual_seed(seed))
    assert windows.shape == (batch, length) and windows.dtype == torch.long
    pieces = {tuple(data[s:s + length].tolist()) for s in range(n - length + 1)}
    assert all(tuple(w) in pieces for w in windows.tolist())


def test_every_start_position_is_reachable():
    data = torch.arange(10)  # a window's first value is its start
    windows = random_slices(data, 2000, 3, torch.Generator().manual_seed(0))
    assert set(windows[:, 0].tolist()) == set(range(8))  # 0 .. N - length, inclusive
    assert (windows - windows[:, :1] == torch.arange(3)).all()


def test_random_slices_rejects_bad_data():
    with pytest.raises(ValueError, match="1-D"):
        random_slices(torch.zeros(3, 3), 1, 2)


def test_lm_batch_targets_are_inputs_shifted_left():
    inputs, targets = lm_batch(torch.arange(100), 16, 8, torch.Generator().manual_seed(0))
    assert inputs.shape == targets.shape == (16, 8)
    assert torch.equal(targets, inputs + 1)  # on arange data, the next token is one more
    assert torch.equal(inputs[:, 1:], targets[:, :-1])


def test_a_token_budget_of_zero_is_refused():
    with pytest.raises(ValueError, match="max_tokens must be a positive integer, got 0"):
        token_budget_batches([3, 4], 0)
