"""Key/value cache for incremental (one token at a time) causal decoding.

Keys and values of past positions never change in a causal model with fixed positions, so a sampler that
keeps them computes each new token with one step of work instead of a whole forward pass. The cache is
explicit state owned by the caller and passed in; the apply functions themselves stay stateless.
"""

import torch


class LayerCache:
    """Keys and values (batch, heads, T, s) seen so far by one attention layer, plus their padding mask."""

    def __init__(self) -> None:
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.mask: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.keys is None else self.keys.shape[-2]

    def append(
        self, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Add the new positions' k, v (batch, heads, t, s); return all of them and the (batch, T) mask."""
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            self.keys = torch.cat([self.keys, k], dim=-2)
            self.values = torch.cat([self.values, v], dim=-2)
        if mask is not None or self.mask is not None:
            b, t = k.shape[0], k.shape[-2]
            new = mask if mask is not None else torch.ones(b, t, dtype=torch.bool, device=k.device)
            old = self.mask if self.mask is not None else torch.ones(
                b, self.length - t, dtype=torch.bool, device=k.device)
            self.mask = torch.cat([old, new], dim=1)
        return self.keys, self.values, self.mask


class KVCache:
    """One `LayerCache` per layer of a model; ``length`` is the number of positions already processed."""

    def __init__(self, depth: int) -> None:
        self.layers = [LayerCache() for _ in range(depth)]

    @property
    def length(self) -> int:
        return self.layers[0].length
