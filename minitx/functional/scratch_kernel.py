"""The from-scratch attention kernel, forward *and* backward written out.

For one batch of matrices (all leading dimensions already folded into B):

    forward:   S = bias + c · q kᵀ        (B, tq, tk)   c = the scale, bias = 0 / -inf from the mask
               P = softmax(S)  row-wise   (B, tq, tk)
               O = P v                    (B, tq, sv)

    backward:  dv = Pᵀ dO
               dP = dO vᵀ
               dS = P ∘ (dP - δ)          δ_i = Σ_j dP_ij P_ij = dO_i · O_i   (softmax's Jacobian, folded)
               dq = c · dS k,   dk = c · dSᵀ q

Two tricks of FlashAttention, written with plain PyTorch operations rather than a fused kernel:

- *Recompute, don't store.* Left to autograd, the forward would keep P, a (B, tq, tk) tensor per layer, alive until
  the backward pass: for a character model at context 256 that is most of the activation memory. Here the
  backward recomputes S and P from q and k (one extra matrix product), so only (B, t, s) tensors are kept.
- *Work in blocks of queries.* Queries are processed `BLOCK` rows at a time. Under causal masking a block's last
  query sees no key after its own position, so the keys after it are skipped altogether: at context 256 and
  blocks of 64 that is 5/8 of the work of the full (tq, tk) square, and the temporaries are (B, 64, tk) at most.
"""

import contextlib
from collections.abc import Iterator

import torch

BLOCK = 64


def _blocks(tq: int, tk: int, causal_offset: int | None) -> Iterator[tuple[int, int, int]]:
    """``(start, end, keys)`` per block of queries: rows start..end-1 need keys 0..keys-1 only.

    With causal masking query i sits at position i + causal_offset (= i + tk - tq) and sees keys up to it.
    """
    for start in range(0, tq, BLOCK):
        end = min(start + BLOCK, tq)
        yield start, end, tk if causal_offset is None else end + causal_offset


def _scores(q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor | None, lead: tuple, scale: float,
            start: int, end: int, keys: int) -> torch.Tensor:
    """S = bias + scale · q kᵀ for query rows start..end-1 and keys 0..keys-1: (B, end - start, keys).

    One `baddbmm` adds the mask for free. ``bias`` stays in its compact shape between the passes (a padding
    mask is (b, 1, 1, tk), not (b·h, tq, tk)) and is laid out like the folded batch only here, transiently.
    """
    q, k = q[:, start:end], k[:, :keys]
    if bias is None:
        return torch.bmm(q * scale, k.transpose(1, 2))
    bias = (bias if bias.shape[-2] == 1 else bias[..., start:end, :])[..., :keys]
    if bias.dim() > 2:
        bias = bias.expand(*lead, end - start, keys).reshape(-1, end - start, keys)
    return torch.baddbmm(bias, q, k.transpose(1, 2), alpha=scale)


def _autocast_state(device: str) -> tuple[bool, torch.dtype]:
    """Whether autocast is on for this device type, and its dtype. PyTorch 2.4 takes the device type; before
    it there was one query for CPU and one for CUDA."""
    if hasattr(torch, "get_autocast_dtype"):                                    # PyTorch >= 2.4
        return torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)
    if device == "cpu":
        return torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
    return torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()


class ScratchAttention(torch.autograd.Function):
    """softmax(bias + scale · q kᵀ) v for q (B, tq, s), k (B, tk, s), v (B, tk, sv), where B folds the leading
    dimensions ``lead`` and bias is None or broadcastable to lead + (tq, tk), with a finite entry in every row
    among the keys its block reads. ``causal_offset`` (tk - tq) marks the bias as causal, so blocks skip the
    keys it masks anyway; None reads every key."""

    @staticmethod
    def forward(ctx, q, k, v, bias, lead, scale, causal_offset):
        blocks = list(_blocks(q.shape[1], k.shape[1], causal_offset))
        out = torch.cat([
            torch.bmm(torch.softmax(_scores(q, k, bias, lead, scale, *block), dim=-1), v[:, : block[2]])
            for block in blocks                                                 # (B, end - start, sv) each
        ], dim=1)                                                               # (B, tq, sv)
        ctx.save_for_backward(q, k, v, bias, out)
        ctx.lead, ctx.scale, ctx.blocks = lead, scale, blocks
        # The backward runs under the forward's autocast state, on any device (what torch.amp's custom_fwd and
        # custom_bwd do for one device type): under CPU autocast the bf16 output would otherwise meet the
        # float32 inputs in the backward's products.
        device = q.device.type
        ctx.autocast = (*_autocast_state(device), device)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # Grad mode is on here only under create_graph=True (a gradient penalty, a Hessian-vector product). The
        # backward below is not differentiable itself: refuse, rather than drop the second-order terms silently.
        if torch.is_grad_enabled():
            raise RuntimeError("the scratch attention kernel has no second derivative (backward with "
                               "create_graph=True); its backward is written out by hand and is not differentiable")
        enabled, dtype, device = ctx.autocast
        with torch.autocast(device, dtype=dtype) if enabled else contextlib.nullcontext():
            return ScratchAttention._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx, grad_out):
        q, k, v, bias, out = ctx.saved_tensors
        delta = (grad_out * out).sum(dim=-1, keepdim=True)                      # (B, tq, 1)
        grad_q, grad_k, grad_v = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
        for start, end, keys in ctx.blocks:
            probs = torch.softmax(_scores(q, k, bias, ctx.lead, ctx.scale, start, end, keys), dim=-1)  # recomputed
            g = grad_out[:, start:end]                                          # (B, n, sv)
            grad_v[:, :keys] += torch.bmm(probs.transpose(1, 2), g)             # (B, keys, sv)
            grad_probs = torch.bmm(g, v[:, :keys].transpose(1, 2))              # (B, n, keys)
            grad_scores = probs.mul_(grad_probs.sub_(delta[:, start:end]))      # in place: no third (n, keys)
            grad_q[:, start:end] = torch.bmm(grad_scores, k[:, :keys]).mul_(ctx.scale)
            grad_k[:, :keys] += torch.bmm(grad_scores.transpose(1, 2), q[:, start:end]).mul_(ctx.scale)
        return grad_q, grad_k, grad_v, None, None, None, None
