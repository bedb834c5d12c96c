"""Thin `nn.Module` twins of the functional models.

A module here owns the parameter tree that an ``init_*`` function builds, stored as `nn.Parameter`s under the
same paths, so ``state_dict()`` keys are the dict paths (``blocks.0.attn.q.weight``) and ``forward`` is the
functional call on ``self.tree()``. Nothing is computed twice: a module and its function cannot drift apart.
"""

from typing import Any

import torch
from torch import nn

from . import functional as mf
from .config import ClassifierConfig, LMConfig


class ParameterTree(nn.Module):
    """Holds a nested dict/list of tensors as parameters named by their paths; ``tree()`` gives it back."""

    def __init__(self, tree: dict | list) -> None:
        super().__init__()
        self._is_list = isinstance(tree, list)
        items = enumerate(tree) if self._is_list else tree.items()
        for key, value in items:
            name = str(key)
            if hasattr(nn.Module, name):
                raise ValueError(f"parameter name {name!r} clashes with an nn.Module attribute")
            if isinstance(value, torch.Tensor):
                self.register_parameter(name, nn.Parameter(value))
            else:
                self.add_module(name, ParameterTree(value))

    def tree(self) -> Any:
        """The live parameters as the nested dict (or list) the functional API takes; gradients flow through it."""
        children = {name: param for name, param in self._parameters.items()}
        children.update({name: module.tree() for name, module in self._modules.items()})
        if self._is_list:
            return [children[str(i)] for i in range(len(children))]
        return children


class SelfAttention(ParameterTree):
    """Module twin of `minitx.functional.self_attention`; parameters ``q, k, v, o``."""

    def __init__(self, emb: int, heads: int, generator: torch.Generator | None = None, backend: str = "scratch"):
        super().__init__(mf.init_self_attention(emb, heads, generator))
        self.heads, self.backend = heads, backend

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False,
                cache: mf.LayerCache | None = None, last: int | None = None) -> torch.Tensor:
        return mf.self_attention(self.tree(), x, self.heads, mask=mask, causal=causal, cache=cache,
                                 backend=self.backend, last=last)


class TransformerBlock(ParameterTree):
    """Module twin of `minitx.functional.transformer_block`; parameters ``attn, ln1, ff, ln2``."""

    def __init__(self, emb: int, heads: int, generator: torch.Generator | None = None, *,
                 dropout: float = 0.0, norm: str = "post", backend: str = "scratch"):
        super().__init__(mf.init_transformer_block(emb, heads, generator))
        self.heads, self.dropout, self.norm, self.backend = heads, dropout, norm, backend

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False,
                cache: mf.LayerCache | None = None, last: int | None = None) -> torch.Tensor:
        return mf.transformer_block(self.tree(), x, self.heads, mask=mask, causal=causal, dropout=self.dropout,
                                    training=self.training, cache=cache, norm=self.norm, backend=self.backend,
                                    last=last)


class Classifier(ParameterTree):
    """Module twin of `minitx.functional.classifier`: ``Classifier(config)(tokens, mask) -> (batch, classes)``."""

    def __init__(self, config: ClassifierConfig, generator: torch.Generator | None = None):
        super().__init__(mf.init_classifier(config, generator))
        self.config = config

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return mf.classifier(self.tree(), tokens, self.config, mask=mask, training=self.training)


class LM(ParameterTree):
    """Module twin of `minitx.functional.lm`: ``LM(config)(tokens, cache=None) -> (batch, time, vocab)``."""

    def __init__(self, config: LMConfig, generator: torch.Generator | None = None):
        super().__init__(mf.init_lm(config, generator))
        self.config = config

    def forward(self, tokens: torch.Tensor, cache: mf.KVCache | None = None, last: int | None = None) -> torch.Tensor:
        return mf.lm(self.tree(), tokens, self.config, cache=cache, training=self.training, last=last)
