"""The transformer block of Q9: self-attention and a feed-forward layer, each with a residual and layer norm.

    post-norm (the course, the original paper):  x = LN1(x + attn(x));   x = LN2(x + ff(x))
    pre-norm  (GPT-2, nanoGPT):                  x = x + attn(LN1(x));   x = x + ff(LN2(x))

Only the attention mixes positions; layer norm, feed-forward and dropout act on each position alone.
"""

import torch

from .attention import init_self_attention, self_attention
from .cache import LayerCache
from .layers import dropout as apply_dropout
from .layers import feed_forward, init_feed_forward, init_layer_norm, layer_norm
from .tree import Params


def init_transformer_block(
    emb: int, heads: int, generator: torch.Generator | None = None, *,
    hidden: int | None = None, std: float | None = None, out_std: float | None = None,
) -> Params:
    """``{'attn', 'ln1', 'ff', 'ln2'}``; ``out_std`` initialises the two projections that feed the residual."""
    return {
        "attn": init_self_attention(emb, heads, generator, std=std, out_std=out_std),
        "ln1": init_layer_norm(emb),
        "ff": init_feed_forward(emb, hidden, generator, std=std, out_std=out_std),
        "ln2": init_layer_norm(emb),
    }


def transformer_block(
    params: Params,
    x: torch.Tensor,
    heads: int,
    *,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    dropout: float = 0.0,
    training: bool = False,
    cache: LayerCache | None = None,
    norm: str = "post",
    backend: str = "scratch",
    generator: torch.Generator | None = None,
    last: int | None = None,
) -> torch.Tensor:
    """One block: (batch, time, emb) -> (batch, time, emb). ``mask`` (batch, time), True = real token.

    ``last=n`` computes only the last n positions (all if n >= time), (batch, n, emb), attending over all of
    them: what the final block needs when only the last prediction counts (the Q12 estimate).
    """

    def attn(h: torch.Tensor) -> torch.Tensor:
        out = self_attention(params["attn"], h, heads, mask=mask, causal=causal, cache=cache, backend=backend,
                             last=last)
        return apply_dropout(out, dropout, training, generator)

    def ff(h: torch.Tensor) -> torch.Tensor:
        return apply_dropout(feed_forward(params["ff"], h), dropout, training, generator)

    residual = x if last is None else x[:, -last:]                          # (b, t or last, e)
    if norm == "post":
        x = layer_norm(params["ln1"], residual + attn(x))
        return layer_norm(params["ln2"], x + ff(x))
    if norm == "pre":
        x = residual + attn(layer_norm(params["ln1"], x))
        return x + ff(layer_norm(params["ln2"], x))
    raise ValueError(f"norm must be 'post' or 'pre', got {norm!r}")
