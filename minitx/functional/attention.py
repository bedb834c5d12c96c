"""Self-attention: one core, every variant.

`attend` is the only place where attention weights are computed. Simple (Q4), scaled, multi-head (Q6),
causal (Q11), padded and cached attention are all calls of it with different arguments:

    simple_self_attention(x)          = attend(x, x, x, scale=False)
    self_attention(params, x, heads)  = o(merge(attend(split(q(x)), split(k(x)), split(v(x)))))

`attend` works on the last two dimensions and treats every leading dimension as a batch dimension, which is
how the heads are handled: they are folded into a dimension of their own, (batch, heads, time, head_size).

Mask convention (library-wide): a boolean mask is True where attention is *allowed* (a real token, a visible
key). PyTorch's `scaled_dot_product_attention` uses the same polarity; `nn.MultiheadAttention`'s
`key_padding_mask` uses the opposite one.
"""

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ..config import check_heads
from .cache import LayerCache
from .layers import _check_mask, _check_sequence, init_linear, linear
from .scratch_kernel import ScratchAttention
from .tree import Params

_recorders: list[list[torch.Tensor]] = []      # the open `recording_attention` blocks, innermost last


@contextlib.contextmanager
def recording_attention() -> Iterator[list[torch.Tensor]]:
    """Inside the block every `attend` call also appends its weights, softmax(q kᵀ · scale + mask) of shape
    (..., tq, tk), detached, to the list it yields: what a model *actually* attended to, layer by layer, for
    heat maps. It costs one more score product per call inside the block and nothing outside it.

        with mf.recording_attention() as weights:
            mf.classifier(params, tokens, config, mask=mask)
    """
    weights: list[torch.Tensor] = []
    _recorders.append(weights)
    try:
        yield weights
    finally:
        _recorders.pop()


def _weights(q: torch.Tensor, k: torch.Tensor, visible: torch.Tensor | None, factor: float) -> torch.Tensor:
    """softmax(q kᵀ · factor), masked to the visible keys: (..., tq, tk)."""
    scores = (q @ k.transpose(-2, -1)) * factor
    if visible is not None:
        scores = scores.masked_fill(~visible, float("-inf"))
    return torch.softmax(scores, dim=-1)


def causal_visibility(queries: int, keys: int, device: torch.device | None = None) -> torch.Tensor:
    """Bool (queries, keys): True where a query may see a key under causal masking.

    The queries are the *last* ``queries`` of ``keys`` positions (with a key/value cache, earlier positions
    are keys only), so query i sits at position ``i + keys - queries`` and sees keys at positions up to it:
    the entries above that shifted diagonal are excluded. With queries == keys this is the lower triangle.
    """
    if queries > keys:
        raise ValueError(f"causal attention needs at least as many keys ({keys}) as queries ({queries})")
    return torch.ones(queries, keys, dtype=torch.bool, device=device).tril(keys - queries)


def _check_attention_mask(mask: torch.Tensor, scores_shape: tuple[int, ...]) -> None:
    """A bool mask that broadcasts to the scores' shape (..., tq, tk) without growing it."""
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = the query may see the key), got {mask.dtype}; "
                        "an additive float mask is not accepted")
    try:
        fits = torch.broadcast_shapes(mask.shape, scores_shape) == scores_shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to the attention scores' shape "
                         f"{scores_shape} (..., queries, keys)")


def _scale_factor(scale: bool | float, head_size: int) -> float:
    if scale is True:
        return 1.0 / math.sqrt(head_size)
    if scale is False:
        return 1.0
    return float(scale)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    scale: bool | float = True,
    backend: str = "scratch",
) -> torch.Tensor:
    """Attention over the last two dimensions: softmax(q kᵀ · scale + mask) v.

    Shapes: q (..., tq, s), k (..., tk, s), v (..., tk, sv) -> (..., tq, sv); every leading dimension is a
    batch dimension. ``mask`` is a bool tensor broadcastable to (..., tq, tk), True = the query may see the
    key: a padding mask (batch, tk) needs its query axis, ``mask[:, None, :]`` (and a heads axis for
    (batch, heads, tq, tk) inputs, ``mask[:, None, None, :]``); without it, broadcasting would read its batch
    axis as the queries' (an error, unless batch == tq). ``causal`` adds the mask of `causal_visibility`.
    ``scale`` is True for 1/sqrt(s) (the scaling that keeps dot products of random s-dimensional vectors near
    unit variance), False for none, or a number.

    A query that may see no key at all (masked out, or tk = 0) returns a zero vector rather than the NaN a
    softmax over nothing gives.
    ``backend='sdpa'`` computes the same with PyTorch's fused `scaled_dot_product_attention`.
    """
    if (q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]
            or not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):   # the batch dimensions pair q with k and v
        raise ValueError(f"attend shapes do not fit: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if backend not in ("scratch", "sdpa"):
        raise ValueError(f"backend must be 'scratch' or 'sdpa', got {backend!r}")
    factor = _scale_factor(scale, q.shape[-1])
    tq, tk = q.shape[-2], k.shape[-2]
    if mask is not None:
        _check_attention_mask(mask, (*q.shape[:-1], tk))
        if mask.dim() < 2:                      # (tk,) or a scalar: the code below needs (.., tq or 1, tk)
            mask = mask.reshape((1,) * (2 - mask.dim()) + tuple(mask.shape))
    if tq == 0 or tk == 0:          # nothing to attend with or to (the kernels cannot fold an empty batch)
        if causal:
            causal_visibility(tq, tk)   # its error: queries without a key
        return (q @ k.transpose(-2, -1)) @ v        # (..., tq, sv) zeros that autograd can follow

    visible = mask
    if causal and tq > 1:   # one query is the last position: it sees every key (the common step of decoding)
        causal_mask = causal_visibility(tq, tk, q.device)                  # (tq, tk)
        visible = causal_mask if visible is None else visible & causal_mask
    # Causal masking alone always leaves the diagonal visible; only a padding mask can empty a row. Such rows
    # are let see everything (so the softmax stays finite, in value and gradient) and zeroed afterwards.
    empty_rows = None
    if mask is not None:
        empty_rows = ~visible.any(dim=-1, keepdim=True)                   # (..., tq, 1)
        visible = visible | empty_rows

    if _recorders:
        recorded = _weights(q.detach(), k.detach(), visible, factor)
        _recorders[-1].append(recorded if empty_rows is None else recorded.masked_fill(empty_rows, 0.0))

    if backend == "sdpa":
        if mask is None and causal and tq == tk:                          # the flash kernels' fast case
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=factor)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=visible, scale=factor)
    else:
        out = _scratch_attention(q, k, v, visible, factor, tk - tq if causal else None)

    return out if empty_rows is None else out.masked_fill(empty_rows, 0.0)


def _scratch_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: torch.Tensor | None, factor: float,
    causal_offset: int | None,
) -> torch.Tensor:
    """softmax(q kᵀ · factor + bias) v, written out (`ScratchAttention`). Shapes as in `attend`.

    The leading dimensions are folded into one batch dimension B, and the mask becomes an additive bias
    (0 where visible, -inf elsewhere) that enters the score product itself.
    """
    if q.dtype == torch.float16:    # float16 scores overflow to inf past 65504: compute in float32, as sdpa does
        return _scratch_attention(q.float(), k.float(), v.float(), visible, factor, causal_offset).half()
    *lead, tq, s = q.shape
    tk, sv = k.shape[-2], v.shape[-1]
    q3, k3, v3 = q.reshape(-1, tq, s), k.reshape(-1, tk, s), v.reshape(-1, tk, sv)   # (B, t, s)
    bias = None
    if visible is not None:
        bias = torch.zeros(visible.shape, dtype=q.dtype, device=q.device).masked_fill_(~visible, float("-inf"))
    return ScratchAttention.apply(q3, k3, v3, bias, tuple(lead), factor, causal_offset).view(*lead, tq, sv)


def simple_self_attention(
    x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False, backend: str = "scratch"
) -> torch.Tensor:
    """The parameter-free self-attention of Q4: weights = softmax(x xᵀ) row-wise, y = weights x.

    x (batch, time, emb) -> (batch, time, emb); ``mask`` (batch, time), True = real token. No scaling: with
    large random embeddings a token's product with itself dominates, which is why full attention scales.
    """
    _check_sequence(x, "simple_self_attention input")
    key_mask = None
    if mask is not None:
        _check_mask(mask, x)
        key_mask = mask[:, None, :]                                        # (b, 1, t): same keys for every query
    return attend(x, x, x, mask=key_mask, causal=causal, scale=False, backend=backend)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(batch, time, emb) -> (batch, heads, time, emb // heads); head h takes features h*s ... (h+1)*s - 1."""
    b, t, e = x.shape
    return x.view(b, t, heads, e // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(batch, heads, time, s) -> (batch, time, heads * s): the inverse of `split_heads`."""
    b, h, t, s = x.shape
    return x.transpose(1, 2).reshape(b, t, h * s)


def init_self_attention(
    emb: int, heads: int, generator: torch.Generator | None = None, *,
    std: float | None = None, out_std: float | None = None,
) -> Params:
    """Projections ``{'q', 'k', 'v', 'o'}``, each a linear layer emb -> emb (see `init_linear` for std)."""
    check_heads(emb, heads)
    return {
        "q": init_linear(emb, emb, generator, std=std),
        "k": init_linear(emb, emb, generator, std=std),
        "v": init_linear(emb, emb, generator, std=std),
        "o": init_linear(emb, emb, generator, std=out_std),
    }


def stack_qkv(params: Params) -> Params:
    """The q, k, v projections of an attention dict as one linear layer: weight (3e, e), bias (3e,), or no
    bias when none of the three has one (weights copied from ``nn.MultiheadAttention(bias=False)``, say)."""
    projections = [params[name] for name in "qkv"]
    stacked = {"weight": torch.cat([p["weight"] for p in projections])}
    if any("bias" in p for p in projections):          # one without a bias adds zeros
        stacked["bias"] = torch.cat([p["bias"] if "bias" in p else p["weight"].new_zeros(p["weight"].shape[0])
                                     for p in projections])
    return stacked


def with_stacked_qkv(params: Params) -> Params:
    """A copy of a parameter tree whose attention dicts also hold ``'qkv'`` (`stack_qkv`), so that
    `project_qkv` does not stack the weights again on every call. For inference (sampling one token at a
    time, where that copy costs as much as the token's own work); the stacked copy does not follow later
    updates of q, k and v."""
    if isinstance(params, list):
        return [with_stacked_qkv(value) for value in params]
    if not isinstance(params, dict):
        return params
    copied = {key: with_stacked_qkv(value) for key, value in params.items()}
    if {"q", "k", "v"} <= params.keys():
        copied["qkv"] = stack_qkv(params)
    return copied


def project_qkv(params: Params, x: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The query, key and value projections of x (b, t, e), split into heads: three (b, h, t, s) tensors.

    Computed as one matrix product with the three weight matrices stacked, (b, t, e) @ (e, 3e): what three
    separate `linear` calls compute, up to float rounding (one product sums in another order, so a long
    training run drifts apart from one computed with three), but one large product keeps the cores busier than
    three small ones, and one view of its output splits all three into heads (what `split_heads` does to each).
    The stacked weights are ``params['qkv']`` where `with_stacked_qkv` put them, else stacked here.
    """
    stacked = params["qkv"] if "qkv" in params else stack_qkv(params)
    b, t, e = x.shape
    qkv = linear(stacked, x)                                                       # (b, t, 3e)
    return qkv.view(b, t, 3, heads, e // heads).permute(2, 0, 3, 1, 4).unbind(0)   # views into it


def self_attention(
    params: Params,
    x: torch.Tensor,
    heads: int,
    *,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    scale: bool | float = True,
    cache: LayerCache | None = None,
    backend: str = "scratch",
    last: int | None = None,
) -> torch.Tensor:
    """Multi-head self-attention of Q6: x (batch, time, emb) -> (batch, time, emb).

    Queries, keys and values are separate projections of x, split into ``heads`` heads of size
    s = emb // heads, attended per head with 1/sqrt(s) scaling, merged back and projected by ``o``.
    ``mask`` (batch, time), True = real token. With a ``cache`` the keys and values of earlier calls are
    prepended, so x holds only the new positions (causal decoding one token at a time). ``last=n`` returns
    only the last n positions (all of them if n >= time), (batch, n, emb): only they query, every position is
    still a key.
    """
    _check_sequence(x, "self_attention input")
    check_heads(x.shape[-1], heads)
    if mask is not None:
        _check_mask(mask, x)
    if last is not None and last < 1:                # x[:, -0:] would silently keep every position
        raise ValueError(f"last must be a positive number of positions (None for all of them), got {last}")
    q, k, v = project_qkv(params, x, heads)                                # 3 x (b, h, t, s)
    if last is not None:
        q = q[:, :, -last:]                                                # (b, h, last, s)
    if cache is not None:
        k, v, mask = cache.append(k, v, mask)                              # (b, h, T, s), mask (b, T) or None
    key_mask = None if mask is None else mask[:, None, None, :]            # (b, 1, 1, T): per key, all heads
    y = attend(q, k, v, mask=key_mask, causal=causal, scale=scale, backend=backend)   # (b, h, t, s)
    return linear(params["o"], merge_heads(y))                             # (b, t, emb)
