"""Small layers and pooling against PyTorch's modules and plain loops."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import minitx.functional as mf
from minitx.runtime import make_optimizer

f64 = torch.float64


def test_linear_follows_nn_linear_layout():
    params = mf.init_linear(5, 3, torch.Generator().manual_seed(0))
    assert params["weight"].shape == (3, 5) and params["bias"].shape == (3,)
    reference = torch.nn.Linear(5, 3)
    reference.load_state_dict(params)
    x = torch.randn(2, 4, 5)
    torch.testing.assert_close(mf.linear(params, x), reference(x))


@pytest.mark.parametrize("std", [None, 0.02])
def test_linear_without_bias_has_no_bias_entry(std):
    params = mf.init_linear(5, 3, torch.Generator().manual_seed(0), std=std, bias=False)
    assert set(params) == {"weight"} and params["weight"].shape == (3, 5)
    x = torch.randn(2, 5)
    torch.testing.assert_close(mf.linear(params, x), x @ params["weight"].T)


def test_default_linear_init_has_nn_linear_bounds():
    weight = mf.init_linear(400, 300)["weight"]
    assert weight.abs().max() <= 1 / 400**0.5 and weight.abs().max() > 0.9 / 400**0.5


def test_init_is_reproducible_from_a_generator():
    first = mf.init_feed_forward(8, generator=torch.Generator().manual_seed(3))
    second = mf.init_feed_forward(8, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(mf.tree_items(first), mf.tree_items(second), strict=True))


def test_layer_norm_matches_torch():
    params = {"weight": torch.randn(6), "bias": torch.randn(6)}
    reference = torch.nn.LayerNorm(6)
    reference.load_state_dict(params)
    x = torch.randn(3, 4, 6)
    torch.testing.assert_close(mf.layer_norm(params, x), reference(x))


def test_feed_forward_is_two_linears_with_relu_and_4x_hidden():
    params = mf.init_feed_forward(6)
    assert params["hidden"]["weight"].shape == (24, 6)
    x = torch.randn(2, 3, 6)
    hidden = torch.relu(x @ params["hidden"]["weight"].T + params["hidden"]["bias"])
    torch.testing.assert_close(mf.feed_forward(params, x), hidden @ params["out"]["weight"].T + params["out"]["bias"])


def test_dropout_is_identity_in_eval_and_reproducible_with_a_generator():
    x = torch.randn(1000)
    assert mf.dropout(x, 0.5, training=False) is x
    first = mf.dropout(x, 0.3, True, torch.Generator().manual_seed(1))
    second = mf.dropout(x, 0.3, True, torch.Generator().manual_seed(1))
    assert torch.equal(first, second)
    kept = first != 0
    assert 0.6 < kept.float().mean() < 0.8
    torch.testing.assert_close(first[kept], x[kept] / 0.7)


def test_init_feed_forward_with_the_generator_in_hiddens_place_says_so():
    with pytest.raises(TypeError, match="pass the generator by keyword"):
        mf.init_feed_forward(8, torch.Generator())


@pytest.mark.parametrize("generator", [None, torch.Generator().manual_seed(0)])
def test_dropout_of_everything_gives_zeros_and_a_probability_outside_0_1_is_an_error(generator):
    """With a generator p = 1 gave 0 / 0 = NaN (without one, torch's zeros), and p = -0.5 torch's message
    about its own bernoulli argument, 1 - p."""
    assert torch.equal(mf.dropout(torch.ones(3), 1.0, True, generator), torch.zeros(3))
    for p in (-0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match=f"dropout probability must be in \\[0, 1\\], got {p}"):
            mf.dropout(torch.ones(3), p, True, generator)


@st.composite
def padded_batch(draw):
    b, t, e = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 4))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    lengths = [draw(st.integers(1, t)) for _ in range(b)]
    x = torch.randn(b, t, e, generator=g, dtype=f64)
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    return x, mask, lengths


@given(padded_batch(), st.sampled_from(["mean", "max", "select"]))
def test_pool_uses_only_real_tokens(batch, how):
    x, mask, lengths = batch
    pooled = mf.pool(x, how, mask)
    for row, length in enumerate(lengths):
        real = x[row, :length]                                       # loop reference, one sequence at a time
        expected = {"mean": real.mean(0), "max": real.max(0).values, "select": real[0]}[how]
        torch.testing.assert_close(pooled[row], expected)


def test_pool_of_an_all_padding_row_is_zero():
    x = torch.randn(2, 3, 4)
    mask = torch.tensor([[True, False, False], [False, False, False]])
    for how in ("mean", "max", "select"):
        pooled = mf.pool(x, how, mask)
        assert torch.equal(pooled[1], torch.zeros(4)) and torch.isfinite(pooled).all(), how
    with pytest.raises(ValueError, match="mask shape"):
        mf.pool(x, "select", torch.ones(5, dtype=torch.bool))         # select checks its mask too


@pytest.mark.parametrize("how", ["mean", "max", "select"])
def test_pool_of_empty_sequences_is_a_clear_error(how):
    """Time 0 pooled to NaN (mean), -inf (max) or an IndexError (select) without the check."""
    with pytest.raises(ValueError, match="empty sequences"):
        mf.pool(torch.randn(2, 0, 4), how)


def test_pool_rejects_unknown_kind():
    with pytest.raises(ValueError, match="'mean', 'max' or 'select'"):
        mf.pool(torch.randn(1, 2, 3), "median")


def test_embedding_rejects_float_tokens():
    with pytest.raises(TypeError, match="integer tensor"):
        mf.embedding(mf.init_embedding(5, 3), torch.zeros(2, 3))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8])
def test_embedding_takes_every_integer_type(dtype):
    """`load_wp` streams are uint8: a slice of one goes straight in."""
    params = mf.init_embedding(5, 3)
    tokens = torch.tensor([[4, 0, 2]], dtype=dtype)
    torch.testing.assert_close(mf.embedding(params, tokens), params["weight"][[4, 0, 2]][None])


def test_weight_decay_groups_see_through_compile_and_ddp_prefixes():
    params = {f"{prefix}{name}": torch.nn.Parameter(torch.ones(shape))
              for prefix in ("", "_orig_mod.", "module.")
              for name, shape in [("tokens.weight", (4, 2)), ("positions.weight", (4, 2)), ("head.weight", (2, 2)),
                                  ("head.bias", (2,))]}
    optimizer = make_optimizer(params, lr=1e-3, weight_decay=0.1)
    decayed = {id(p) for group in optimizer.param_groups if group["weight_decay"] > 0 for p in group["params"]}
    assert {name for name, p in params.items() if id(p) in decayed} == {"head.weight", "_orig_mod.head.weight",
                                                                         "module.head.weight"}


def test_tree_paths_round_trip_through_state_dict_names():
    tree = {"blocks": [{"w": torch.ones(1)}, {"w": torch.zeros(1)}], "head": {"bias": torch.ones(2)}}
    names = dict(mf.tree_items(tree))
    assert list(names) == ["blocks.0.w", "blocks.1.w", "head.bias"]
    rebuilt = mf.tree_from_state_dict(names)
    assert isinstance(rebuilt["blocks"], list) and torch.equal(rebuilt["blocks"][1]["w"], torch.zeros(1))
    assert mf.count_parameters(tree) == 4
