"""The attention core and every variant built on it, against loops, einsum and PyTorch's own attention."""

import math
import warnings
from unittest.mock import patch

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from naive import einsum_attention, naive_attention, naive_multi_head

import minitx.functional as mf
from minitx.functional import scratch_kernel

f64 = torch.float64


def random_mask(generator, b, t):
    """(b, t) True = real token: right padding (lengths 0..t, so empty rows happen too), left padding, or
    holes anywhere, one of the three at random; the library must not assume the pads are at the end."""
    lengths = torch.randint(0, t + 1, (b,), generator=generator)
    right = torch.arange(t)[None, :] < lengths[:, None]
    kind = int(torch.randint(0, 3, (), generator=generator))
    return [right, right.flip(1), torch.rand(b, t, generator=generator) < 0.6][kind]


@st.composite
def attention_case(draw, masked=None):
    b, h = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    tq, s, sv = draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(st.integers(1, 4))   # sv: value width
    tk = draw(st.integers(tq, 6))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    q, k = (torch.randn(b * h, t, s, generator=g, dtype=f64) for t in (tq, tk))
    v = torch.randn(b * h, tk, sv, generator=g, dtype=f64)
    use_mask = draw(st.booleans()) if masked is None else masked
    visible = torch.rand(b * h, tq, tk, generator=g) < 0.6 if use_mask else None
    return q, k, v, visible


@given(attention_case(), st.booleans(), st.booleans(), st.sampled_from(["scratch", "sdpa"]))
def test_attend_matches_naive_loops_and_einsum(case, causal, scale, backend):
    q, k, v, visible = case
    tq, tk = q.shape[1], k.shape[1]
    expected_visible = visible
    if causal:
        causal_mask = torch.tensor([[j <= i + tk - tq for j in range(tk)] for i in range(tq)])
        expected_visible = causal_mask.expand(q.shape[0], tq, tk) if visible is None else visible & causal_mask
    factor = 1 / math.sqrt(q.shape[-1]) if scale else 1.0
    out = mf.attend(q, k, v, mask=visible, causal=causal, scale=scale, backend=backend)
    torch.testing.assert_close(out, naive_attention(q, k, v, expected_visible, factor))
    torch.testing.assert_close(out, einsum_attention(q, k, v, expected_visible, factor))


@given(st.integers(2, 5), st.data(), st.sampled_from(["scratch", "sdpa"]), st.integers(0, 2**31 - 1))
def test_attend_with_fewer_keys_than_queries(tq, data, backend, seed):
    """Without causal masking any number of keys serves any number of queries (cross-attention's shape)."""
    tk = data.draw(st.integers(1, tq - 1))
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, t, 3, generator=g, dtype=f64) for t in (tq, tk, tk))
    visible = torch.rand(2, tq, tk, generator=g) < 0.7
    factor = 1 / math.sqrt(3)
    torch.testing.assert_close(mf.attend(q, k, v, backend=backend), naive_attention(q, k, v, None, factor))
    torch.testing.assert_close(mf.attend(q, k, v, mask=visible, backend=backend),
                               naive_attention(q, k, v, visible, factor))


@given(attention_case(), st.booleans(), st.sampled_from(["scratch", "sdpa"]))
def test_recorded_weights_times_values_give_the_output(case, causal, backend):
    """The weights `recording_attention` collects are the ones used: weights @ v is the output (rows that see
    no key are all zero, as their output is), each row sums to 1 or 0, and outside the block nothing is kept."""
    q, k, v, visible = case
    with mf.recording_attention() as recorded:
        out = mf.attend(q, k, v, mask=visible, causal=causal, backend=backend)
    mf.attend(q, k, v, mask=visible, causal=causal, backend=backend)           # outside: not recorded
    (weights,) = recorded
    assert weights.shape == (q.shape[0], q.shape[1], k.shape[1])
    torch.testing.assert_close(weights @ v, out)
    sums = weights.sum(-1)
    assert torch.all(torch.isclose(sums, torch.ones_like(sums)) | (sums == 0))


MASK_FORMS = {                     # a part of a (B, tq, tk) mask that still broadcasts to it
    "scalar": lambda m: m[0, 0, 0],
    "(tk,)": lambda m: m[0, 0],
    "(1, tk)": lambda m: m[0, :1],
    "(tq, 1)": lambda m: m[0, :, :1],
    "(tq, tk)": lambda m: m[0],
    "(B, 1, tk)": lambda m: m[:, :1],
}


@pytest.mark.parametrize("form", MASK_FORMS)
@given(attention_case(masked=True), st.booleans(), st.sampled_from(["scratch", "sdpa"]))
def test_a_broadcast_mask_equals_its_expansion(form, case, causal, backend):
    """Any mask shape that broadcasts to (..., tq, tk) works, down to a (tk,) vector or a scalar, and gives what
    the same mask expanded to the full shape gives."""
    q, k, v, visible = case                                                   # visible (B, tq, tk)
    mask = MASK_FORMS[form](visible)
    out = mf.attend(q, k, v, mask=mask, causal=causal, backend=backend)
    expanded = mask.broadcast_to(visible.shape).clone()
    torch.testing.assert_close(out, mf.attend(q, k, v, mask=expanded, causal=causal, backend=backend))


def test_fully_masked_query_returns_zeros_with_finite_gradients():
    q, k, v = (torch.randn(1, 3, 4, dtype=f64, requires_grad=True) for _ in range(3))
    visible = torch.tensor([[[True, False, False], [False, False, False], [True, True, False]]])
    out = mf.attend(q, k, v, mask=visible)
    assert torch.equal(out[0, 1], torch.zeros(4, dtype=f64))
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


@given(st.integers(1, 6), st.integers(0, 5))
def test_causal_visibility_is_shifted_lower_triangle(queries, extra):
    keys = queries + extra
    visible = mf.causal_visibility(queries, keys)
    for i in range(queries):
        for j in range(keys):
            assert bool(visible[i, j]) == (j <= i + extra)


@pytest.mark.parametrize("dtype", [torch.long, torch.float32])
def test_a_mask_that_is_not_bool_is_a_clear_error(dtype):
    q = torch.randn(1, 3, 4)
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        mf.attend(q, q, q, mask=torch.ones(3, 3, dtype=dtype))


@pytest.mark.parametrize("backend", ["scratch", "sdpa"])
@pytest.mark.parametrize(("q_shape", "k_shape", "mask_shape"), [
    ((2, 2, 3, 4), (2, 2, 5, 4), (2, 1, 1, 6)),     # one key too many: scratch read the first 5 columns
    ((2, 2, 3, 4), (2, 2, 5, 4), (3, 2, 3, 5)),     # a batch the scores do not have
    ((2, 2, 3, 4), (2, 2, 5, 4), (1, 2, 2, 3, 5)),  # a leading dimension more: it would grow the output
    ((3, 2, 3, 4), (2, 3, 5, 4), None),             # same number of rows, other batch shape: paired wrongly
])
def test_shapes_that_do_not_fit_are_clear_errors(backend, q_shape, k_shape, mask_shape):
    q, k = torch.randn(q_shape), torch.randn(k_shape)
    mask = None if mask_shape is None else torch.ones(mask_shape, dtype=torch.bool)
    with pytest.raises(ValueError, match="does not broadcast|shapes do not fit"):
        mf.attend(q, k, k, mask=mask, backend=backend)


@pytest.mark.parametrize("backend", ["scratch", "sdpa"])
@pytest.mark.parametrize("tq, tk", [(0, 3), (3, 0), (0, 0)])
def test_no_queries_or_no_keys_give_zero_vectors(backend, tq, tk):
    """The scratch kernel crashed folding an empty batch; a query with no key to see gets a zero vector."""
    q, k, v = torch.randn(2, tq, 4, requires_grad=True), torch.randn(2, tk, 4), torch.randn(2, tk, 5)
    out = mf.attend(q, k, v, backend=backend)
    assert torch.equal(out, torch.zeros(2, tq, 5))
    out.sum().backward()                                     # zeros that autograd can follow
    assert torch.equal(q.grad, torch.zeros_like(q))
    with pytest.raises(ValueError, match="backend must be"):
        mf.attend(q, k, v, backend="banana")
    if tq > tk:
        with pytest.raises(ValueError, match="at least as many keys"):
            mf.attend(q, k, v, causal=True, backend=backend)


def test_scratch_attention_in_float16_does_not_overflow():
    """Unscaled float16 scores past 65504 were inf in the scratch kernel, and its softmax NaN. (PyTorch's own
    CPU kernel computes in float32 too in recent versions; 2.2's overflows there, so it is not compared.)"""
    x = torch.randn(1, 6, 64, generator=torch.Generator().manual_seed(0)) * 40
    reference = mf.attend(x, x, x, scale=False)                                   # float32
    out = mf.attend(x.half(), x.half(), x.half(), scale=False)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), reference, rtol=2e-2, atol=0.5)


def test_causal_needs_enough_keys():
    with pytest.raises(ValueError, match="at least as many keys"):
        mf.causal_visibility(4, 3)


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_split_then_merge_heads_is_identity_and_head_h_holds_its_slice(b, heads, t, seed):
    s = 3
    x = torch.randn(b, t, heads * s, generator=torch.Generator().manual_seed(seed))
    split = mf.split_heads(x, heads)
    assert split.shape == (b, heads, t, s)
    for h in range(heads):
        assert torch.equal(split[:, h], x[..., h * s : (h + 1) * s])
    assert torch.equal(mf.merge_heads(split), x)


@st.composite
def sequence_case(draw):
    heads = draw(st.integers(1, 3))
    b, t, e = draw(st.integers(1, 3)), draw(st.integers(1, 5)), heads * draw(st.integers(1, 3))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    params = mf.tree_map(lambda p: p.double(), mf.init_self_attention(e, heads, g))
    x = torch.randn(b, t, e, generator=g, dtype=f64)
    mask = random_mask(g, b, t) if draw(st.booleans()) else None
    return params, x, heads, mask


def key_visibility(mask, b, t, causal):
    """(b, t, t) visibility from a (b, t) key mask and causality, built with explicit comparisons."""
    visible = torch.ones(b, t, t, dtype=torch.bool)
    if mask is not None:
        visible &= mask[:, None, :]
    if causal:
        visible &= torch.tensor([[j <= i for j in range(t)] for i in range(t)])
    return visible


@given(sequence_case(), st.booleans(), st.sampled_from([True, False, 0.3]), st.sampled_from(["scratch", "sdpa"]))
def test_self_attention_matches_per_head_loops(case, causal, scale, backend):
    """scale True is 1/sqrt(head size), False none (the course's unscaled form), a number that number."""
    params, x, heads, mask = case
    b, t, _ = x.shape
    out = mf.self_attention(params, x, heads, mask=mask, causal=causal, scale=scale, backend=backend)
    expected = naive_multi_head(params, x, heads, key_visibility(mask, b, t, causal),
                                scale=None if scale is True else 1.0 if scale is False else scale)
    # Query rows with no visible key are zero before the output projection, so they equal the o bias.
    torch.testing.assert_close(out, expected)


@given(sequence_case(), st.booleans())
def test_self_attention_matches_torch_multihead_attention(case, causal):
    params, x, heads, mask = case
    b, t, e = x.shape
    reference = torch.nn.MultiheadAttention(e, heads, batch_first=True, dtype=f64)
    with torch.no_grad():
        reference.in_proj_weight.copy_(torch.cat([params[n]["weight"] for n in "qkv"]))
        reference.in_proj_bias.copy_(torch.cat([params[n]["bias"] for n in "qkv"]))
        reference.out_proj.weight.copy_(params["o"]["weight"])
        reference.out_proj.bias.copy_(params["o"]["bias"])
    # nn.MultiheadAttention's masks mean True = *ignore*: the opposite of minitx's convention.
    attn_mask = torch.ones(t, t, dtype=torch.bool).triu(1) if causal else None
    padding = None if mask is None else ~mask
    expected, _ = reference(x, x, x, key_padding_mask=padding, attn_mask=attn_mask, need_weights=False)
    out = mf.self_attention(params, x, heads, mask=mask, causal=causal)
    rows = key_visibility(mask, b, t, causal).any(-1)  # PyTorch gives NaN for rows that see nothing
    torch.testing.assert_close(out[rows], expected[rows])


@pytest.mark.parametrize("backend", ["scratch", "sdpa"])
def test_bias_free_projections_match_torch_multihead_attention_without_bias(backend):
    """Weights copied from nn.MultiheadAttention(bias=False): projections with no 'bias' entry at all."""
    g = torch.Generator().manual_seed(0)
    e, heads = 6, 2
    reference = torch.nn.MultiheadAttention(e, heads, bias=False, batch_first=True)
    q, k, v = reference.in_proj_weight.detach().chunk(3)
    params = {"q": {"weight": q}, "k": {"weight": k}, "v": {"weight": v},
              "o": {"weight": reference.out_proj.weight.detach()}}
    x = torch.randn(2, 5, e, generator=g)
    expected, _ = reference(x, x, x, need_weights=False)
    torch.testing.assert_close(mf.self_attention(params, x, heads, backend=backend), expected)
    stacked = mf.with_stacked_qkv(params)                      # the sampler's copy: still no bias
    assert "bias" not in stacked["qkv"]
    torch.testing.assert_close(mf.self_attention(stacked, x, heads, backend=backend), expected)
    params["k"]["bias"] = torch.ones(e)                        # one bias among three: zeros for the others
    assert torch.equal(mf.stack_qkv(params)["bias"], torch.cat([torch.zeros(e), torch.ones(e), torch.zeros(e)]))


@given(sequence_case(), st.booleans())
def test_attend_matches_scaled_dot_product_attention(case, causal):
    params, x, heads, mask = case
    b, t, _ = x.shape
    q, k, v = (mf.split_heads(mf.linear(params[n], x), heads) for n in "qkv")
    visible = key_visibility(mask, b, t, causal)[:, None]          # (b, 1, t, t), True = attend, as SDPA
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=visible)
    out = mf.attend(q, k, v, mask=None if mask is None else mask[:, None, None, :], causal=causal)
    rows = visible.any(-1).expand(b, heads, t)
    torch.testing.assert_close(out[rows], expected[rows])


@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_simple_self_attention_is_softmax_of_x_xt(b, t, e, seed):
    x = torch.randn(b, t, e, generator=torch.Generator().manual_seed(seed), dtype=f64)
    expected = torch.softmax(x @ x.transpose(1, 2), dim=-1) @ x
    torch.testing.assert_close(mf.simple_self_attention(x), expected)
    torch.testing.assert_close(mf.simple_self_attention(x), naive_attention(x, x, x))


@given(sequence_case())
def test_causal_output_never_sees_the_future(case):
    params, x, heads, _ = case
    t = x.shape[1]
    out = mf.self_attention(params, x, heads, causal=True)
    for cut in range(1, t):
        changed = x.clone()
        changed[:, cut:] = torch.randn_like(changed[:, cut:])
        torch.testing.assert_close(mf.self_attention(params, changed, heads, causal=True)[:, :cut], out[:, :cut])
        torch.testing.assert_close(mf.self_attention(params, x[:, :cut], heads, causal=True), out[:, :cut])


@given(sequence_case(), st.booleans())
def test_padding_never_changes_real_tokens(case, causal):
    params, x, heads, _ = case
    b, t, e = x.shape
    padded = torch.cat([x, torch.randn(b, 3, e, dtype=f64)], dim=1)
    mask = torch.arange(t + 3)[None, :].expand(b, -1) < t
    out = mf.self_attention(params, padded, heads, mask=mask, causal=causal)[:, :t]
    torch.testing.assert_close(out, mf.self_attention(params, x, heads, causal=causal))


@given(sequence_case(), st.sampled_from(["scratch", "sdpa"]))
def test_cached_attention_equals_full_forward_step_by_step(case, backend):
    params, x, heads, mask = case
    full = mf.self_attention(params, x, heads, mask=mask, causal=True, backend=backend)
    cache = mf.LayerCache()
    steps = [
        mf.self_attention(params, x[:, i : i + 1], heads, causal=True, cache=cache, backend=backend,
                          mask=None if mask is None else mask[:, i : i + 1])
        for i in range(x.shape[1])
    ]
    torch.testing.assert_close(torch.cat(steps, dim=1), full)


@given(sequence_case(), st.sampled_from(["scratch", "sdpa"]), st.data())
def test_cached_attention_in_chunks_equals_full_forward(case, backend, data):
    """Chunks of any size go into a cache that already holds earlier ones and grows from no room at all: the
    path of a seed followed by single tokens, and of any mix of longer pieces."""
    params, x, heads, mask = case
    full = mf.self_attention(params, x, heads, mask=mask, causal=True, backend=backend)
    cache, pieces, start = mf.LayerCache(capacity=0), [], 0
    while start < x.shape[1]:
        end = data.draw(st.integers(start + 1, x.shape[1]))
        pieces.append(mf.self_attention(params, x[:, start:end], heads, causal=True, cache=cache, backend=backend,
                                        mask=None if mask is None else mask[:, start:end]))
        start = end
    assert cache.length == x.shape[1]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full)


@pytest.mark.parametrize("backend", ["scratch", "sdpa"])
def test_attention_under_cpu_bf16_autocast_is_close_to_float32_both_ways(backend):
    """Forward and backward under CPU autocast: no dtype clash, gradients in the inputs' dtype, close to float32."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 70, 8, generator=g, requires_grad=True) for _ in range(3))   # 2 query blocks
    mask = (torch.rand(2, 1, 1, 70, generator=g) < 0.8) | (torch.arange(70) == 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = mf.attend(q, k, v, mask=mask, causal=True, backend=backend)
    low_grads = torch.autograd.grad(low.float().square().sum(), (q, k, v))
    full = mf.attend(q, k, v, mask=mask, causal=True, backend=backend)
    full_grads = torch.autograd.grad(full.square().sum(), (q, k, v))
    torch.testing.assert_close(low.float(), full, atol=3e-2, rtol=3e-2)
    for low_grad, full_grad in zip(low_grads, full_grads, strict=True):
        assert low_grad.dtype == torch.float32
        torch.testing.assert_close(low_grad, full_grad, atol=6e-2, rtol=6e-2)


@pytest.mark.parametrize("per_device_queries", [True, False], ids=["torch>=2.4", "torch<2.4"])
def test_scratch_kernel_reads_the_autocast_state_with_either_api(per_device_queries, monkeypatch):
    """Before PyTorch 2.4 autocast had one query for CPU and one for CUDA; both ways give the same state."""
    if per_device_queries and not hasattr(torch, "get_autocast_dtype"):
        pytest.skip("this PyTorch predates the per-device autocast queries")

    def state() -> tuple[bool, torch.dtype]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)     # the pre-2.4 queries are deprecated
            if not per_device_queries:
                monkeypatch.delattr(torch, "get_autocast_dtype", raising=False)
            read = scratch_kernel._autocast_state("cpu")
            monkeypatch.undo()                                      # autocast itself needs it back
            return read

    assert state()[0] is False
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert state() == (True, torch.bfloat16)


@pytest.mark.parametrize("readout", ["linear", "square"])
def test_scratch_kernel_refuses_second_derivatives(readout):
    """A gradient penalty needs the gradient's own graph. With a linear readout the incoming gradient carries
    no graph, so `once_differentiable` let the penalty's second-order terms drop without a word."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, 3, 2, generator=g, dtype=f64, requires_grad=True) for _ in range(3))
    w = torch.randn(1, 1, 3, 2, generator=g, dtype=f64)
    out = mf.attend(q, k, v, backend="scratch")
    readout_value = (out * w).sum() if readout == "linear" else out.square().sum()
    with pytest.raises(RuntimeError, match="no second derivative"):
        torch.autograd.grad(readout_value, q, create_graph=True)
    assert torch.autograd.grad(mf.attend(q, k, v, backend="scratch").sum(), q)[0].shape == q.shape   # first order


def test_gradcheck_attention_core_in_float64():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 3, 2, generator=g, dtype=f64, requires_grad=True) for _ in range(3))
    mask = torch.tensor([[True, False, True], [True, False, False]])[:, None, None, :]   # (b, 1, 1, t) padding
    assert torch.autograd.gradcheck(lambda q, k, v: mf.attend(q, k, v, mask=mask, causal=True), (q, k, v))


def test_emb_not_divisible_by_heads_is_a_clear_error():
    with pytest.raises(ValueError, match="divisible by heads"):
        mf.init_self_attention(10, 3)
    params = mf.init_self_attention(12, 3)
    with pytest.raises(ValueError, match="divisible by heads"):
        mf.self_attention(params, torch.randn(1, 2, 12), heads=5)


@pytest.mark.parametrize(
    "x, mask, error",
    [
        (torch.randn(2, 3), None, "shape \\(batch, time, emb\\)"),
        (torch.randn(0, 3, 4), None, "empty batch"),
        (torch.randn(2, 0, 4), None, "empty sequences"),      # else zero vectors, silently
        (torch.randn(2, 3, 4), torch.ones(2, 3), "bool tensor"),
        (torch.randn(2, 3, 4), torch.ones(2, 4, dtype=torch.bool), "mask shape"),
    ],
)
def test_bad_attention_inputs_raise_clear_errors(x, mask, error):
    with pytest.raises((ValueError, TypeError), match=error):
        mf.simple_self_attention(x, mask)


@given(attention_case(), st.booleans())
def test_written_out_backward_equals_autograd_of_the_plain_formula(case, causal):
    q, k, v, visible = case
    tq, tk = q.shape[1], k.shape[1]
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    reference_leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    grad_out = torch.randn(q.shape[0], tq, v.shape[-1], dtype=f64)
    expected_visible = visible
    if causal:
        causal_mask = mf.causal_visibility(tq, tk)
        expected_visible = causal_mask.expand(q.shape[0], tq, tk) if visible is None else visible & causal_mask
    mf.attend(*leaves, mask=visible, causal=causal).backward(grad_out)
    einsum_attention(*reference_leaves, expected_visible, 1 / math.sqrt(q.shape[-1])).backward(grad_out)
    for got, expected in zip(leaves, reference_leaves, strict=True):
        torch.testing.assert_close(got.grad, expected.grad)


@given(attention_case(), st.booleans(), st.integers(1, 3))
def test_query_blocks_of_the_scratch_kernel_change_nothing(case, causal, block):
    """Blocks of `block` queries (the kernel uses 64; these cases are shorter) skip masked keys exactly."""
    q, k, v, visible = case
    tq, tk = q.shape[1], k.shape[1]
    expected_visible = visible
    if causal:
        causal_mask = mf.causal_visibility(tq, tk)
        expected_visible = causal_mask.expand(q.shape[0], tq, tk) if visible is None else visible & causal_mask
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    reference_leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    grad_out = torch.randn(q.shape[0], tq, v.shape[-1], dtype=f64)
    with patch.object(scratch_kernel, "BLOCK", block):
        out = mf.attend(*leaves, mask=visible, causal=causal)
        out.backward(grad_out)
    expected = einsum_attention(*reference_leaves, expected_visible, 1 / math.sqrt(q.shape[-1]))
    expected.backward(grad_out)
    torch.testing.assert_close(out, expected)
    for got, wanted in zip(leaves, reference_leaves, strict=True):
        torch.testing.assert_close(got.grad, wanted.grad)


@given(sequence_case(), st.booleans())
def test_query_blocks_with_a_compact_padding_mask(case, causal):
    params, x, heads, mask = case
    b, t, _ = x.shape
    with patch.object(scratch_kernel, "BLOCK", 2):
        out = mf.self_attention(params, x, heads, mask=mask, causal=causal)
    torch.testing.assert_close(out, naive_multi_head(params, x, heads, key_visibility(mask, b, t, causal)))


# What a mutation review of the whole module found unchecked: each test below fails on one plausible slip.
@pytest.mark.parametrize("backend", ["scratch", "sdpa"])
def test_keys_and_values_of_different_lengths_are_a_clear_error(backend):
    """Without the check the scratch kernel read the first tk values of a longer v, silently."""
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 6, 4)
    with pytest.raises(ValueError, match="shapes do not fit"):
        mf.attend(q, k, v, backend=backend)


def test_nested_recording_blocks_give_the_weights_to_the_innermost():
    q = torch.randn(1, 3, 4, generator=torch.Generator().manual_seed(0))
    with mf.recording_attention() as outer:
        with mf.recording_attention() as inner:
            mf.attend(q, q, q)
        mf.attend(q, q, q, causal=True)
    assert len(inner) == 1 and len(outer) == 1
    assert torch.equal(inner[0], torch.softmax(q @ q.transpose(1, 2) / 2, dim=-1))
    assert torch.equal(outer[0].triu(1), torch.zeros(1, 3, 3))                 # the causal call's weights


@given(sequence_case(), st.booleans(), st.sampled_from(["scratch", "sdpa"]))
def test_simple_self_attention_with_padding_and_causal_masks_matches_naive_loops(case, causal, backend):
    _, x, _, mask = case
    b, t, _ = x.shape
    out = mf.simple_self_attention(x, mask, causal=causal, backend=backend)
    torch.testing.assert_close(out, naive_attention(x, x, x, key_visibility(mask, b, t, causal)))


@pytest.mark.parametrize("mask, error", [
    (torch.ones(2, 1, dtype=torch.bool), "mask shape"),       # broadcast to every key by attend: no error there
    (torch.ones(1, 4, dtype=torch.bool), "mask shape"),
    (torch.ones(2, 4), "bool tensor"),
])
def test_self_attention_refuses_a_mask_that_is_not_batch_by_time(mask, error):
    params = mf.init_self_attention(6, 2, torch.Generator().manual_seed(0))
    with pytest.raises((ValueError, TypeError), match=error):
        mf.self_attention(params, torch.randn(2, 4, 6), 2, mask=mask)


@given(st.integers(2, 3), st.integers(1, 5), st.data(), st.booleans(), st.sampled_from(["scratch", "sdpa"]),
       st.integers(0, 2**31 - 1))
def test_a_per_head_mask_on_batched_heads_equals_its_expansion(heads, tq, data, causal, backend, seed):
    """A (heads, tq, tk) mask on (batch, heads, t, s) inputs: the scratch kernel lays it out like the folded
    batch (batch * heads), which a 3-D mask needs as much as a 4-D one."""
    b, tk = 2, data.draw(st.integers(tq, 6))
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, heads, t, 3, generator=g, dtype=f64) for t in (tq, tk, tk))
    mask = torch.rand(heads, tq, tk, generator=g) < 0.6
    expected_visible = mask.expand(b, heads, tq, tk)
    if causal:
        expected_visible = expected_visible & mf.causal_visibility(tq, tk)
    out = mf.attend(q, k, v, mask=mask, causal=causal, backend=backend)
    expected = naive_attention(q.reshape(-1, tq, 3), k.reshape(-1, tk, 3), v.reshape(-1, tk, 3),
                               expected_visible.reshape(-1, tq, tk), 1 / math.sqrt(3))
    torch.testing.assert_close(out, expected.view(b, heads, tq, 3))
