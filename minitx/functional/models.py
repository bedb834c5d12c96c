"""Whole models as functions: the classifier of Q2-Q9 and the GPT-style language model of Q11-Q14."""

import math

import torch

from ..config import ClassifierConfig, LMConfig
from .attention import init_self_attention, self_attention, simple_self_attention
from .block import init_transformer_block, transformer_block
from .cache import KVCache
from .layers import dropout, embedding, init_embedding, init_layer_norm, init_linear, layer_norm, linear, pool
from .tree import Params


def position_embedding(params: Params, length: int, offset: int = 0) -> torch.Tensor:
    """Rows ``offset ... offset + length - 1`` of a position table (Q8): (length, emb).

    Added to token embeddings (batch, length, emb), it broadcasts over the batch.
    """
    table = params["weight"]
    if offset + length > table.shape[0]:
        if offset:              # the positions before these are in a key/value cache
            raise ValueError(f"sequence of length {offset + length} ({offset} positions in the cache, {length} new) "
                             f"is longer than the position table ({table.shape[0]} positions); start a new cache "
                             "(mf.init_cache)")
        raise ValueError(
            f"sequence of length {offset + length} is longer than the position table ({table.shape[0]} positions); "
            "truncate the input or build the model with a larger max_len/context"
        )
    return table[offset : offset + length]


def _check_tokens(tokens: torch.Tensor) -> None:
    if tokens.dim() != 2:
        raise ValueError(f"tokens must have shape (batch, time), got {tuple(tokens.shape)}")
    if tokens.shape[0] == 0:
        raise ValueError("tokens is an empty batch (batch size 0)")
    if tokens.shape[1] == 0:
        raise ValueError("tokens are empty sequences (time 0): give at least one token")
    if tokens.is_floating_point() or tokens.dtype == torch.bool:
        raise TypeError(f"tokens must be an integer tensor (torch.long), got {tokens.dtype}")


def init_classifier(config: ClassifierConfig, generator: torch.Generator | None = None) -> Params:
    """Parameters of the classifier; PyTorch's default initialisation (embedding N(0, 1), linear uniform)."""
    params: Params = {"tokens": init_embedding(config.vocab, config.emb, generator)}
    if config.positions:
        params["positions"] = init_embedding(config.max_len, config.emb, generator)
    if config.blocks:
        params["blocks"] = [
            init_transformer_block(config.emb, config.heads, generator) for _ in range(config.depth)
        ]
        if config.norm == "pre":  # pre-norm leaves the residual stream unnormalised: normalise once at the end
            params["norm"] = init_layer_norm(config.emb)
    elif config.attention == "full":
        params["attention"] = [
            init_self_attention(config.emb, config.heads, generator) for _ in range(config.depth)
        ]
    params["head"] = init_linear(config.emb, config.classes, generator)
    return params


def classifier(
    params: Params,
    tokens: torch.Tensor,
    config: ClassifierConfig,
    *,
    mask: torch.Tensor | None = None,
    training: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """tokens (batch, time) long, mask (batch, time) bool (True = real token) -> logits (batch, classes)."""
    _check_tokens(tokens)
    x = embedding(params["tokens"], tokens)                                # (b, t, e)
    if config.positions:
        x = x + position_embedding(params["positions"], tokens.shape[1])   # (t, e) broadcasts over b
    x = dropout(x, config.dropout, training, generator)
    if config.blocks:
        for block in params["blocks"]:
            x = transformer_block(block, x, config.heads, mask=mask, dropout=config.dropout, training=training,
                                  norm=config.norm, backend=config.backend, generator=generator)
        if config.norm == "pre":
            x = layer_norm(params["norm"], x)
    elif config.attention == "full":
        for layer in params["attention"]:
            x = self_attention(layer, x, config.heads, mask=mask, backend=config.backend)
    elif config.attention == "simple":
        for _ in range(config.depth):
            x = simple_self_attention(x, mask, backend=config.backend)
    return linear(params["head"], pool(x, config.pool, mask))              # (b, classes)


def init_lm(config: LMConfig, generator: torch.Generator | None = None) -> Params:
    """Parameters of the language model, GPT-2 style: normal(0, 0.02), and the projections that write into
    the residual stream scaled by 1/sqrt(2 * depth) so its variance does not grow with depth."""
    std, out_std = 0.02, 0.02 / math.sqrt(2 * config.depth)
    params: Params = {
        "tokens": init_embedding(config.vocab, config.emb, generator, std=std),
        "positions": init_embedding(config.context, config.emb, generator, std=std),
        "blocks": [
            init_transformer_block(config.emb, config.heads, generator, std=std, out_std=out_std)
            for _ in range(config.depth)
        ],
    }
    if config.norm == "pre":
        params["norm"] = init_layer_norm(config.emb)
    params["head"] = init_linear(config.emb, config.vocab, generator, std=std)
    return params


def lm(
    params: Params,
    tokens: torch.Tensor,
    config: LMConfig,
    *,
    cache: KVCache | None = None,
    training: bool = False,
    generator: torch.Generator | None = None,
    last: int | None = None,
) -> torch.Tensor:
    """tokens (batch, time) long -> next-token logits (batch, time, vocab); position t sees tokens 0..t only.

    With a ``cache`` (from `init_cache`), ``tokens`` are the positions after those already in it, and the
    logits equal those of the full forward pass over the whole sequence. ``last=n`` returns only the last n
    positions' logits, (batch, n, vocab), the same numbers as ``lm(...)[:, -n:]``, but the final block works
    on those n positions only (every earlier block needs them all, as keys).
    """
    _check_tokens(tokens)
    if len(params["blocks"]) != config.depth or (cache is not None and len(cache.layers) != config.depth):
        raise ValueError(f"config.depth is {config.depth}, but the parameters hold {len(params['blocks'])} blocks"
                         + ("" if cache is None else f" and the cache {len(cache.layers)} layers"))
    offset = 0 if cache is None else cache.length
    x = embedding(params["tokens"], tokens)                                             # (b, t, e)
    x = x + position_embedding(params["positions"], tokens.shape[1], offset)            # (t, e)
    x = dropout(x, config.dropout, training, generator)
    final = len(params["blocks"]) - 1
    try:
        for i, block in enumerate(params["blocks"]):
            x = transformer_block(block, x, config.heads, causal=True, dropout=config.dropout, training=training,
                                  cache=None if cache is None else cache.layers[i], norm=config.norm,
                                  backend=config.backend, generator=generator, last=last if i == final else None)
        if config.norm == "pre":
            x = layer_norm(params["norm"], x)
        return linear(params["head"], x)                                                # (b, t, vocab)
    except BaseException:       # an error or Ctrl-C anywhere after the first block has written its keys
        if cache is not None:   # a call that fails part way leaves the cache as it found it
            cache.truncate(offset)
        raise


def init_cache(config: LMConfig) -> KVCache:
    """An empty key/value cache for `lm`, one layer cache per block."""
    return KVCache(config.depth, capacity=config.context)
