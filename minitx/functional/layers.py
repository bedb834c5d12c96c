"""The small layers: linear, embedding, layer norm, dropout, feed-forward, pooling.

Each layer is a pair ``init_x(sizes, generator=None) -> params`` and ``x(params, inputs) -> outputs``.
Parameter layouts follow PyTorch's modules so weights can be copied between the two:
a linear layer is ``{'weight': (out, in), 'bias': (out,)}`` and computes ``x @ weight.T + bias``.
"""

import math

import torch
import torch.nn.functional as F

from .tree import Params


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator | None) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


def init_linear(
    in_features: int,
    out_features: int,
    generator: torch.Generator | None = None,
    *,
    std: float | None = None,
    bias: bool = True,
) -> Params:
    """A linear layer ``{'weight': (out, in), 'bias': (out,)}``.

    With ``std=None`` the weights are uniform in ±1/sqrt(in), as ``nn.Linear`` does (so each output starts with
    roughly unit-free scale whatever the fan-in); with a ``std`` they are normal(0, std) and the bias zero, as
    GPT-2 initialises its layers.
    """
    if std is None:
        bound = 1 / math.sqrt(in_features)
        params = {"weight": _uniform((out_features, in_features), bound, generator)}
        if bias:
            params["bias"] = _uniform((out_features,), bound, generator)
        return params
    params = {"weight": torch.randn((out_features, in_features), generator=generator) * std}
    if bias:
        params["bias"] = torch.zeros(out_features)
    return params


def linear(params: Params, x: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T + bias`` over the last dimension: (..., in) -> (..., out)."""
    return F.linear(x, params["weight"], params.get("bias"))


def init_embedding(
    num: int, dim: int, generator: torch.Generator | None = None, *, std: float = 1.0
) -> Params:
    """An embedding table ``{'weight': (num, dim)}``, normal(0, std); std 1 is ``nn.Embedding``'s default."""
    return {"weight": torch.randn((num, dim), generator=generator) * std}


def embedding(params: Params, tokens: torch.Tensor) -> torch.Tensor:
    """Look up integer ``tokens`` (...,) -> vectors (..., dim)."""
    if tokens.dtype in (torch.int16, torch.int8, torch.uint8):   # F.embedding takes int64 and int32 only;
        tokens = tokens.long()                                     # load_wp's bytes are uint8
    elif tokens.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"tokens must be an integer tensor (torch.long), got {tokens.dtype}")
    return F.embedding(tokens, params["weight"])


def init_layer_norm(dim: int) -> Params:
    """Layer norm gain and shift ``{'weight': ones(dim), 'bias': zeros(dim)}``: it starts as a pure normaliser."""
    return {"weight": torch.ones(dim), "bias": torch.zeros(dim)}


def layer_norm(params: Params, x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Normalise each vector of (..., dim) to mean 0, variance 1, then scale and shift per feature."""
    return F.layer_norm(x, x.shape[-1:], params["weight"], params["bias"], eps)


def dropout(
    x: torch.Tensor, p: float, training: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p), only while training.

    With a ``generator`` the dropped elements are reproducible: the mask is one ``bernoulli_`` draw of x's
    shape, so the order of random draws is the order of the calls.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if generator is None:
        return F.dropout(x, p, training=True)
    if p == 1.0:                    # every element dropped: 0 / (1 - p) would be NaN
        return torch.zeros_like(x)
    keep = torch.empty_like(x).bernoulli_(1 - p, generator=generator)
    return x * keep / (1 - p)


def init_feed_forward(
    emb: int, hidden: int | None = None, generator: torch.Generator | None = None, *,
    std: float | None = None, out_std: float | None = None,
) -> Params:
    """Two linear layers ``{'hidden': emb -> hidden, 'out': hidden -> emb}``; hidden defaults to 4 x emb."""
    if isinstance(hidden, torch.Generator):          # init_feed_forward(emb, g): every other init_x takes it so
        raise TypeError("init_feed_forward(emb, hidden=None, generator=None): pass the generator by keyword, "
                        "init_feed_forward(emb, generator=g)")
    hidden = 4 * emb if hidden is None else hidden
    return {
        "hidden": init_linear(emb, hidden, generator, std=std),
        "out": init_linear(hidden, emb, generator, std=out_std),
    }


def feed_forward(params: Params, x: torch.Tensor) -> torch.Tensor:
    """Per-position MLP: (..., emb) -> relu -> (..., hidden) -> (..., emb). Mixes nothing across time.

    The ReLU runs in place on the hidden layer's fresh output (autograd allows it: relu's backward needs only
    its output): on CPU a new (..., hidden) tensor costs page faults that take longer than the ReLU itself.
    """
    return linear(params["out"], torch.relu_(linear(params["hidden"], x)))


def pool(x: torch.Tensor, how: str, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Global pool over time: (batch, time, emb) -> (batch, emb).

    ``how`` is ``'mean'``, ``'max'`` or ``'select'`` (the first element). ``mask`` (batch, time), True = real
    token, keeps padding out: the mean divides by the real length, the max ignores pad positions; select takes
    position 0, which is real whenever any token is (sequences are padded on the right). A sequence with no
    real token pools to zeros, whatever ``how``.
    """
    _check_sequence(x, "pool input")
    if how not in ("mean", "max", "select"):
        raise ValueError(f"pool must be 'mean', 'max' or 'select', got {how!r}")
    if mask is not None:
        _check_mask(mask, x)
    if how == "select":
        return x[:, 0] if mask is None else x[:, 0].masked_fill(~mask.any(dim=1, keepdim=True), 0.0)
    if mask is None:
        return x.mean(dim=1) if how == "mean" else x.amax(dim=1)
    keep = mask.unsqueeze(-1)                                    # (b, t, 1)
    if how == "mean":
        count = keep.sum(dim=1).clamp(min=1)                     # (b, 1)
        return (x * keep).sum(dim=1) / count
    pooled = x.masked_fill(~keep, float("-inf")).amax(dim=1)     # (b, e); -inf where a row has no token
    return pooled.masked_fill(~keep.any(dim=1), 0.0)


def _check_sequence(x: torch.Tensor, name: str) -> None:
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape (batch, time, emb), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (batch size 0)")
    if x.shape[1] == 0:
        raise ValueError(f"{name} holds empty sequences (time 0)")


def _check_mask(mask: torch.Tensor, x: torch.Tensor) -> None:
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = real token), got {mask.dtype}")
    if tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(f"mask shape {tuple(mask.shape)} must be (batch, time) = {tuple(x.shape[:2])}")
