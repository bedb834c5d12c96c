"""Reference implementations written the slow, obvious way, for the property tests to compare against.

Nothing here is shared with the library: explicit Python loops over batch, head, query and key, and an
`einsum` formulation that spells out every index.
"""

import math

import torch


def naive_attention(q, k, v, visible=None, scale=1.0):
    """Loops over every leading index, query and key. q (B, tq, s), k (B, tk, s), v (B, tk, sv),
    visible (B, tq, tk) bool or None. A query with no visible key gives zeros."""
    B, tq, _ = q.shape
    tk, sv = k.shape[1], v.shape[2]
    out = torch.zeros(B, tq, sv, dtype=q.dtype)
    for b in range(B):
        for i in range(tq):
            keys = [j for j in range(tk) if visible is None or bool(visible[b, i, j])]
            if not keys:
                continue
            scores = [scale * sum(float(q[b, i, d]) * float(k[b, j, d]) for d in range(q.shape[2])) for j in keys]
            top = max(scores)
            weights = [math.exp(score - top) for score in scores]
            total = sum(weights)
            for weight, j in zip(weights, keys, strict=True):
                out[b, i] += (weight / total) * v[b, j]
    return out


def naive_multi_head(params, x, heads, visible=None, scale=None):
    """Per head h: project with rows h*s..(h+1)*s of each weight, attend, concatenate heads, project by o.
    x (b, t, e); visible (b, t, t) or None; scale the score factor, 1/sqrt(s) when None."""
    b, t, e = x.shape
    s = e // heads
    scale = 1 / math.sqrt(s) if scale is None else scale
    outputs = []
    for h in range(heads):
        rows = slice(h * s, (h + 1) * s)
        q = x @ params["q"]["weight"][rows].T + params["q"]["bias"][rows]
        k = x @ params["k"]["weight"][rows].T + params["k"]["bias"][rows]
        v = x @ params["v"]["weight"][rows].T + params["v"]["bias"][rows]
        outputs.append(naive_attention(q, k, v, visible, scale=scale))
    merged = torch.cat(outputs, dim=-1)
    return merged @ params["o"]["weight"].T + params["o"]["bias"]


def einsum_attention(q, k, v, visible=None, scale=1.0):
    """The same maths with named indices: b batch, i query, j key, d feature."""
    scores = torch.einsum("bid,bjd->bij", q, k) * scale
    if visible is not None:
        scores = scores.masked_fill(~visible, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if visible is not None:
        weights = torch.nan_to_num(weights, nan=0.0)
    return torch.einsum("bij,bjd->bid", weights, v)
