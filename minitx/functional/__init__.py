"""`minitx.functional`: stateless transformer layers over explicit parameter dicts.

Use as ``import minitx.functional as mf``. Every layer is a pair: ``init_x(sizes, generator=None)`` builds a
nested dict of tensors, and ``x(params, inputs, ...)`` computes with it and keeps no state. See docs/functional.md.
"""

from .attention import (
    attend,
    causal_visibility,
    init_self_attention,
    merge_heads,
    recording_attention,
    self_attention,
    simple_self_attention,
    split_heads,
    stack_qkv,
    with_stacked_qkv,
)
from .block import init_transformer_block, transformer_block
from .cache import KVCache, LayerCache
from .layers import (
    dropout,
    embedding,
    feed_forward,
    init_embedding,
    init_feed_forward,
    init_layer_norm,
    init_linear,
    layer_norm,
    linear,
    pool,
)
from .models import classifier, init_cache, init_classifier, init_lm, lm, position_embedding
from .tree import Params, count_parameters, tree_from_state_dict, tree_items, tree_map

__all__ = [
    "KVCache", "LayerCache", "Params",
    "attend", "causal_visibility", "classifier", "count_parameters", "dropout", "embedding", "feed_forward",
    "init_cache", "init_classifier", "init_embedding", "init_feed_forward", "init_layer_norm", "init_linear",
    "init_lm", "init_self_attention", "init_transformer_block", "layer_norm", "linear", "lm", "merge_heads",
    "pool", "position_embedding", "recording_attention", "self_attention", "simple_self_attention", "split_heads",
    "stack_qkv", "transformer_block", "tree_from_state_dict", "tree_items", "tree_map", "with_stacked_qkv",
]
