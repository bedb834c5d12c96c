"""The from-scratch attention kernel, forward *and* backward written out.

For one batch of matrices (all leading dimensions already folded into B):

    forward:   S = bias + c · q kᵀ        (B, tq, tk)   c = the scale, bias = 0 / -inf from the mask
               P = softmax(S)  row-wise   (B, tq, tk)
               O = P v                    (B, tq, sv)

    backward:  dv = Pᵀ dO
               dP = dO vᵀ
               dS = P ∘ (dP - δ)          δ_i = Σ_j dP_ij P_ij = dO_i · O_i   (softmax's Jacobian, folded)
               dq = c · dS k,   dk = c · dSᵀ q

Left to autograd, the forward would keep P, a (B, tq, tk) tensor per layer, alive until the backward pass: for a
character model at context 256 that is most of the activation memory. Here the backward recomputes S and P from q
and k instead (one extra matrix product), so only tensors of size (B, t, s) are kept between the passes. This is
the memory trick of FlashAttention, written with plain PyTorch operations rather than a fused kernel.
"""

import torch


def _scores(q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor | None, lead: tuple, scale: float) -> torch.Tensor:
    """S = bias + scale · q kᵀ in one `baddbmm` (the mask costs no extra pass): (B, tq, tk).

    ``bias`` stays in its compact shape between the passes (a padding mask is (b, 1, 1, tk), not (b·h, tq, tk));
    with leading dimensions ``lead`` it is laid out like the folded batch only here, transiently.
    """
    if bias is None:
        return torch.bmm(q * scale, k.transpose(1, 2))
    if bias.dim() > 2:
        bias = bias.expand(*lead, q.shape[1], k.shape[1]).reshape(-1, q.shape[1], k.shape[1])
    return torch.baddbmm(bias, q, k.transpose(1, 2), alpha=scale)


class ScratchAttention(torch.autograd.Function):
    """softmax(bias + scale · q kᵀ) v for q (B, tq, s), k (B, tk, s), v (B, tk, sv), where B folds the leading
    dimensions ``lead`` and bias is None or broadcastable to lead + (tq, tk), with a finite entry in every row."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, q, k, v, bias, lead, scale):
        probs = torch.softmax(_scores(q, k, bias, lead, scale), dim=-1)             # (B, tq, tk), freed on return
        out = torch.bmm(probs, v)                                             # (B, tq, sv)
        ctx.save_for_backward(q, k, v, bias, out)
        ctx.lead, ctx.scale = lead, scale
        return out

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        q, k, v, bias, out = ctx.saved_tensors
        probs = torch.softmax(_scores(q, k, bias, ctx.lead, ctx.scale), dim=-1)        # recomputed: (B, tq, tk)
        grad_v = torch.bmm(probs.transpose(1, 2), grad_out)                    # (B, tk, sv)
        grad_probs = torch.bmm(grad_out, v.transpose(1, 2))                    # (B, tq, tk)
        delta = (grad_out * out).sum(dim=-1, keepdim=True)                     # (B, tq, 1)
        grad_scores = probs.mul_(grad_probs.sub_(delta))                       # in place: no third (tq, tk)
        grad_q = torch.bmm(grad_scores, k).mul_(ctx.scale)                     # (B, tq, s)
        grad_k = torch.bmm(grad_scores.transpose(1, 2), q).mul_(ctx.scale)     # (B, tk, s)
        return grad_q, grad_k, grad_v, None, None, None
