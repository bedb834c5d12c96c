"""Sampling from a language model (Q13): a seed, then one token at a time.

With the key/value cache (`minitx.functional.init_cache`) each new token costs one step of work: its query
attends to the cached keys and values of everything before it. The position table is absolute, so once the
sequence is longer than the model's context the window has to slide, every cached key was computed at a
position that is now wrong, and the cache is useless; from there on each token is predicted by a forward
pass over the last ``context`` tokens (its final block for the last position only: the others' outputs are
not needed), exactly what running without a cache does.
"""

import torch

from . import functional as mf
from .config import whole_number
from .nn import LM

_BYTES = [chr(i) for i in range(256)]    # the byte vocabulary of `minitx.data.load_wp`: token i is byte i


def encode(text: str, c2i: dict[str, int]) -> torch.Tensor:
    """Characters -> (len(text),) long tensor of indices; characters outside the vocabulary are an error.
    With the byte vocabulary of `load_wp` the text is encoded as UTF-8 bytes (what `decode` reads back)."""
    if list(c2i) == _BYTES and text:
        return torch.tensor(list(text.encode("utf-8")), dtype=torch.long)
    unknown = sorted({c for c in text if c not in c2i})
    if unknown:
        raise ValueError(
            f"seed text has characters outside the model's vocabulary: {unknown!r}; "
            f"the vocabulary holds {''.join(sorted(k for k in c2i if len(k) == 1))!r}"
        )
    if not text:
        raise ValueError("seed text is empty: give at least one character")
    return torch.tensor([c2i[c] for c in text], dtype=torch.long)


def decode(tokens: torch.Tensor | list[int], i2c: list[str]) -> str:
    """Indices -> text (special tokens print as their names, e.g. ``.pad``).

    With the byte vocabulary of `load_wp` the bytes are decoded as UTF-8, so "café" prints as itself and not
    as "cafÃ©"; a sample cut inside a multi-byte character (or one that is no valid UTF-8) shows U+FFFD there.
    """
    if list(i2c) == _BYTES:
        return bytes(int(t) for t in tokens).decode("utf-8", errors="replace")
    return "".join(i2c[int(t)] for t in tokens)


def with_seed_in_brackets(tokens: torch.Tensor, seed_length: int, i2c: list[str]) -> str:
    """A sample as ``'[seed]continuation'``: the two decoded apart, since with the byte vocabulary n tokens
    need not be n characters of UTF-8 text."""
    return f"[{decode(tokens[:seed_length], i2c)}]{decode(tokens[seed_length:], i2c)}"


def check_epsilon(epsilon: float | None) -> None:
    """``epsilon`` of `pick_next` is None (off) or a probability in [0, 1): a clear error otherwise."""
    if epsilon is not None and not 0 <= epsilon < 1:
        raise ValueError(f"epsilon must be in [0, 1), got {epsilon}")


def check_sampling(temperature: float, top_k: int | None, epsilon: float | None) -> None:
    """The sampling settings of `pick_next`, checked: a clear error for each one out of its range."""
    if not temperature >= 0:           # NaN too
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and (whole_number(top_k) or 0) < 1:     # None: not a whole number
        raise ValueError(f"top_k must be a positive integer (or None for no limit), got {top_k!r}")
    check_epsilon(epsilon)


def check_tokens_in_vocabulary(tokens: torch.Tensor, vocab: int, what: str) -> None:
    """Integer token ids in 0 .. vocab - 1 (an embedding lookup outside them is a bare IndexError)."""
    if tokens.is_floating_point() or tokens.dtype == torch.bool:
        raise TypeError(f"{what} must hold integer token ids, got {tokens.dtype}")
    if tokens.numel() and not 0 <= int(tokens.min()) <= int(tokens.max()) < vocab:
        raise ValueError(f"{what} holds token ids from {int(tokens.min())} to {int(tokens.max())}, outside the "
                         f"model's vocabulary 0 .. {vocab - 1}")


def pick_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
              generator: torch.Generator | None = None, epsilon: float | None = None) -> torch.Tensor:
    """One token per row of logits (b, vocab) -> (b,) long.

    ``temperature`` 1.0 samples the model's distribution, lower values sharpen it, 0 takes the argmax (greedy).
    ``top_k`` samples only among the k most likely tokens (exactly k, even where logits tie). ``epsilon``
    drops every token whose probability (after the temperature and top-k) is below it, the most likely token
    excepted, and renormalises the rest: "epsilon sampling" (Hewitt et al., 2022). A softmax can never give a
    token probability 0, so a trained model spreads a little mass over tokens the data never has in that
    place; each is unlikely, but a long sample draws many tokens. Dropping that tail does not sharpen the
    rest, as a lower temperature does.
    """
    check_sampling(temperature, top_k, epsilon)
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (batch, vocab), got {tuple(logits.shape)}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float()
    # shifted so each row's largest logit is 0: the same softmax, and a tiny temperature cannot overflow to inf
    logits = (logits - logits.amax(dim=-1, keepdim=True)) / temperature
    if top_k is not None:
        top = logits.topk(min(int(top_k), logits.shape[-1]), dim=-1).indices          # (b, k)
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, top, True)
        logits = logits.masked_fill(~keep, float("-inf"))   # exactly k kept, even where logits tie at the k-th
    probs = torch.softmax(logits, dim=-1)                                         # (b, vocab)
    if epsilon:
        keep = (probs >= epsilon) | (probs == probs.amax(dim=-1, keepdim=True))  # (b, vocab)
        probs = probs * keep                       # multinomial renormalises: no need to divide by the kept mass
    if generator is not None and generator.device != probs.device:   # a CPU generator for a GPU model
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.inference_mode()
def sample(model: LM, seed: torch.Tensor, length: int, *, temperature: float = 1.0, top_k: int | None = None,
           generator: torch.Generator | None = None, use_cache: bool = True,
           epsilon: float | None = None) -> torch.Tensor:
    """The seed followed by ``length`` new tokens: seed (t,) -> (t + length,), or (b, t) -> (b, t + length).

    ``use_cache=False`` re-runs the forward pass over the last ``context`` tokens for every new token, its
    final block for the last position only (the reference the cached path must match, and the baseline of
    ``bench/sampling.py``). ``temperature``, ``top_k`` and ``epsilon`` are those of `pick_next`.
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    check_sampling(temperature, top_k, epsilon)
    if seed.dim() not in (1, 2):
        raise ValueError(f"the seed must be (time,) or (batch, time) token ids, got shape {tuple(seed.shape)}")
    if seed.shape[-1] == 0:            # before its dtype: torch.tensor([]) is a float tensor
        raise ValueError("the seed is empty: sampling needs at least one token to condition on")
    check_tokens_in_vocabulary(seed, model.config.vocab, "the seed")
    single = seed.dim() == 1
    tokens = (seed[None] if single else seed).long().to(next(model.parameters()).device)   # (b, t)
    config, context = model.config, model.config.context
    # once: the module would rebuild this dict (and stack each layer's q, k, v weights) on every call
    params = mf.with_stacked_qkv(model.tree())
    cache = mf.init_cache(config) if use_cache else None
    pending = tokens[:, -context:]              # what the model has not seen yet: the seed, then one token a step
    for _ in range(length):
        if cache is not None and cache.length + pending.shape[1] > context:
            cache = None                        # the window slides: cached keys sit at stale positions
            pending = tokens[:, -context:]
        if cache is None:     # the final block need only compute the last position (`last=1`)
            logits = mf.lm(params, tokens[:, -context:], config, last=1)[:, -1]  # (b, vocab)
        else:
            logits = mf.lm(params, pending, config, cache=cache)[:, -1]          # (b, vocab)
        new = pick_next(logits, temperature, top_k, generator, epsilon)          # (b,)
        tokens = torch.cat([tokens, new[:, None]], dim=1)                         # (b, t + 1)
        pending = new[:, None]
    return tokens[0] if single else tokens
