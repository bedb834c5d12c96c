"""What every training loop needs and no model should know about: devices, seeds, optimisers, schedules.

Shared by the classification and language-model trainers so both behave the same way.
"""

import contextlib
import math
from collections.abc import Iterator

import torch


def pick_device(requested: str | None = None) -> torch.device:
    """The device to train on: the one asked for, else CUDA, then Apple MPS, then CPU.

    Asking for an unavailable device is an error rather than a silent fall-back to CPU.
    """
    if requested not in (None, "auto"):
        try:
            device = torch.device(requested)
        except RuntimeError:        # torch's message lists its twenty-odd device types
            raise ValueError(f"unknown device {requested!r}: use auto, cpu, cuda, cuda:N or mps") from None
        # torch.cuda, torch.xpu, ...: each accelerator's module says whether it is usable (MPS's lives elsewhere)
        backend = torch.backends.mps if device.type == "mps" else getattr(torch, device.type, None)
        if device.type != "cpu" and not (hasattr(backend, "is_available") and backend.is_available()):
            raise RuntimeError(f"device {requested!r} was asked for but {device.type} is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@contextlib.contextmanager
def private_random_state(seed: int, device: torch.device) -> Iterator[None]:
    """Inside the block torch's global generator (which dropout draws from) is seeded with ``seed``; after it, the
    caller's random state is back as it was. A training run is then repeatable and leaves the code around it
    alone: a search drawing its trials from ``random`` or ``torch`` would otherwise draw the same ones again."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def make_optimizer(
    params: list[torch.nn.Parameter] | dict, lr: float, weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.AdamW:
    """AdamW that decays only matrices: biases, layer-norm gains and embeddings stay undecayed, because
    shrinking them towards zero has no regularising meaning. Fused on CUDA, where that is faster.

    ``params`` is a list of parameters or a ``{name: parameter}`` dict (``dict(module.named_parameters())``);
    names let embeddings (``tokens.weight``, ``positions.weight``) be told apart from linear weights.
    """
    named = params.items() if isinstance(params, dict) else ((str(i), p) for i, p in enumerate(params))
    decay, no_decay = [], []
    for name, param in named:
        if not param.requires_grad:
            continue
        path = name.split(".")                 # "_orig_mod." (compiled) or "module." (DDP) may lead the path
        is_matrix = param.dim() >= 2 and not ({"tokens", "positions"} & set(path[:-1]))
        (decay if is_matrix and weight_decay > 0 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = all(p.is_cuda for group in groups for p in group["params"]) and torch.cuda.is_available()
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, fused=fused or None)


def cosine_decay(progress: float, final_fraction: float) -> float:
    """Multiplier that falls along half a cosine from 1 at progress 0 to ``final_fraction`` at progress 1."""
    progress = min(1.0, max(0.0, progress))
    return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_decay(warmup: int, total: int, final_fraction: float = 0.1):
    """Learning-rate multiplier for `torch.optim.lr_scheduler.LambdaLR`: linear warmup from 0 over ``warmup``
    steps, then cosine decay to ``final_fraction`` of the peak at step ``total - 1``, the last of ``total``
    steps 0 ... total - 1 (and flat after it).

    Warmup keeps Adam's first, badly estimated steps small; the decay lets the model settle into a minimum.
    """

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        span = total - 1 - warmup       # steps from the end of warmup to the last: 0 when that is the last step
        return cosine_decay((step - warmup) / span if span > 0 else 1.0, final_fraction)

    return factor


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (matmuls in bfloat16, reductions in float32); a no-op elsewhere.

    bf16 keeps float32's exponent range, so unlike float16 it needs no loss scaling.
    """
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def maybe_compile(model: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """``torch.compile(model)`` when asked. Save checkpoints from the *uncompiled* model: the compiled
    wrapper prefixes every state_dict key with ``_orig_mod.``, and the uncompiled names load either way."""
    return torch.compile(model) if enabled else model


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a CPU batch to ``device``; on CUDA through pinned memory, so the copy does not block the host."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
