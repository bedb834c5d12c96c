"""Key/value cache for incremental (one token at a time) causal decoding.

Keys and values of past positions never change in a causal model with fixed positions, so a sampler that
keeps them computes each new token with one step of work instead of a whole forward pass. The cache is
explicit state owned by the caller and passed in; the apply functions themselves stay stateless.
"""

import torch


class LayerCache:
    """Keys and values (batch, heads, T, s) seen so far by one attention layer, plus their padding mask.

    The keys and values live in buffers with room for ``capacity`` positions (grown by doubling when a call
    needs more), so a decoding step writes one position in place instead of copying the whole history, as
    ``torch.cat`` would. For inference: the in-place writes are not meant to be differentiated through.
    """

    def __init__(self, capacity: int = 0) -> None:
        self.capacity = capacity
        self._keys: torch.Tensor | None = None       # (batch, heads, room, s)
        self._values: torch.Tensor | None = None
        self._length = 0
        self.mask: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return self._length

    def _make_room(self, k: torch.Tensor, v: torch.Tensor, needed: int) -> None:
        room = max(needed, self.capacity, 2 * (0 if self._keys is None else self._keys.shape[-2]))
        keys = k.new_empty(*k.shape[:-2], room, k.shape[-1])
        values = v.new_empty(*v.shape[:-2], room, v.shape[-1])
        if self._keys is not None:
            keys[..., : self._length, :] = self._keys[..., : self._length, :]
            values[..., : self._length, :] = self._values[..., : self._length, :]
        self._keys, self._values = keys, values

    def append(
        self, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Add the new positions' k, v (batch, heads, t, s); return all of them and the (batch, T) mask."""
        if self._keys is not None and k.shape[:-2] != self._keys.shape[:-2]:
            raise ValueError(f"this cache holds keys of shape (batch, heads) = {tuple(self._keys.shape[:-2])}, got "
                             f"{tuple(k.shape[:-2])}: start a new cache (mf.init_cache) for another batch")
        start, end = self._length, self._length + k.shape[-2]
        if self._keys is None or end > self._keys.shape[-2]:
            self._make_room(k, v, end)
        self._keys[..., start:end, :] = k
        self._values[..., start:end, :] = v
        self._length = end
        if mask is not None or self.mask is not None:
            b, t = k.shape[0], k.shape[-2]
            new = mask if mask is not None else torch.ones(b, t, dtype=torch.bool, device=k.device)
            old = self.mask if self.mask is not None else torch.ones(b, start, dtype=torch.bool, device=k.device)
            self.mask = torch.cat([old, new], dim=1)
        return self._keys[..., :end, :], self._values[..., :end, :], self.mask

    def truncate(self, length: int) -> None:
        """Forget every position from ``length`` on (what a failed call appended: see `KVCache.truncate`); at 0
        the buffers go too, so a first call that failed does not fix the batch size, dtype or device."""
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        self._length = min(self._length, length)
        if self._length == 0:
            self._keys = self._values = self.mask = None
        elif self.mask is not None:
            self.mask = self.mask[:, : self._length]


class KVCache:
    """One `LayerCache` per layer of a model; ``length`` is the number of positions already processed.
    ``capacity`` is the room each layer reserves up front (a model's context)."""

    def __init__(self, depth: int, capacity: int = 0) -> None:
        self.layers = [LayerCache(capacity) for _ in range(depth)]

    @property
    def length(self) -> int:
        return self.layers[0].length

    def truncate(self, length: int) -> None:
        """Forget every position from ``length`` on, in every layer. `lm` calls it when a call fails part way (a
        dtype mismatch, out of memory in a later layer): its first layers would otherwise hold the new positions
        and the later ones not, and the next call would silently attend at the wrong positions."""
        for layer in self.layers:
            layer.truncate(length)
