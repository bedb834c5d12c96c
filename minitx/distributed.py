"""Data-parallel training over several processes (GPUs or CPU processes), launched by ``torchrun``.

Each process (a *rank*) holds a full copy of the model and draws its own batches; after every backward pass
`DistributedDataParallel` averages the gradients over the ranks, so every copy takes the same optimizer step.
Global batch = per-rank batch x gradient-accumulation steps x world size. With one process every helper here is a
no-op, so a trainer written against them runs unchanged without ``torchrun``.

How a trainer uses them::

    from minitx import distributed

    info = distributed.setup(args.device)                 # reads RANK / WORLD_SIZE / LOCAL_RANK set by torchrun
    try:
        model = LM(config).to(info.device)                # any init: DDP copies rank 0's weights to every rank
        model = distributed.wrap(model, info)             # DistributedDataParallel when world_size > 1
        optimizer = make_optimizer(dict(distributed.unwrap(model).named_parameters()), lr)
        generator = distributed.rank_generator(seed, info)    # each rank draws different batches
        for step in range(steps):
            for micro in range(accumulate):
                inputs, targets = lm_batch(train, batch, context, generator)
                # forward AND backward inside: gradients are all-reduced on the last micro-step only
                with distributed.sync_context(model, last_micro_step=micro == accumulate - 1):
                    loss = cross_entropy(model(inputs), targets) / accumulate
                    loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if info.is_main:                              # log, evaluate and checkpoint on rank 0 only
                torch.save(distributed.unwrap(model).state_dict(), path)   # keys without 'module.'
    finally:
        distributed.teardown()

Launch with ``torchrun --standalone --nproc_per_node=N -m minitx lm ...`` (N GPUs, or N CPU processes with
``--device cpu``). On CUDA each rank takes GPU ``LOCAL_RANK`` and talks over NCCL; on CPU ranks talk over gloo.
Because DDP averages (not sums) gradients, a loss that is the mean over the rank's batch gives exactly the
gradient of the mean over the global batch.
"""

import contextlib
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .runtime import pick_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: its rank among ``world_size`` processes, its GPU index on this machine
    (``local_rank``) and the device its model and batches live on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one process that logs, evaluates and writes checkpoints."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def setup(device: str | None = None) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment, or run alone without one.

    ``device`` as for `minitx.runtime.pick_device` (None/'auto', 'cpu', 'cuda'). With WORLD_SIZE > 1 a CUDA
    device becomes ``cuda:LOCAL_RANK`` with the NCCL backend, and CPU uses gloo; Apple MPS has no backend.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world_size}, LOCAL_RANK={local_rank}")
    chosen = pick_device(device)
    if world_size == 1:
        return DistInfo(rank, world_size, local_rank, chosen)

    if chosen.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible; "
                             "start at most one process per GPU (torchrun --nproc_per_node)")
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)          # so NCCL and every bare .cuda() use this rank's GPU
        backend = "nccl"
    elif chosen.type == "cpu":
        backend = "gloo"
    else:
        raise ValueError(f"data-parallel training runs on CUDA (NCCL) or CPU (gloo), not {chosen.type!r}")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ValueError(f"WORLD_SIZE={world_size} but {name} is not set: launch with torchrun, which sets it")
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world_size)
    return DistInfo(rank, world_size, local_rank, chosen)


def wrap(model: nn.Module, info: DistInfo) -> nn.Module:
    """``DistributedDataParallel(model)`` when there are several ranks, else the model itself.

    The model must already be on ``info.device``. DDP broadcasts rank 0's parameters to every rank here, so
    all copies start equal whatever each rank initialised.
    """
    if info.world_size == 1:
        return model
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP and/or ``torch.compile`` wrappers: save and load its ``state_dict``, whose
    keys then carry neither ``module.`` nor ``_orig_mod.`` prefixes."""
    while True:
        if isinstance(model, DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):          # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            return model


def _find_ddp(model: nn.Module) -> DistributedDataParallel | None:
    while not isinstance(model, DistributedDataParallel):
        if not hasattr(model, "_orig_mod"):
            return None
        model = model._orig_mod
    return model


def sync_context(model: nn.Module, last_micro_step: bool) -> contextlib.AbstractContextManager:
    """Wrap forward and backward of one micro-step of gradient accumulation.

    On every micro-step but the last, DDP's ``no_sync()``: gradients accumulate locally without
    communication. On the last one (and for a model not in DDP), nothing: its backward all-reduces the
    accumulated gradients once, which is what the optimizer step needs.
    """
    ddp = _find_ddp(model)
    if ddp is None or last_micro_step:
        return contextlib.nullcontext()
    return ddp.no_sync()


def rank_generator(seed: int, info: DistInfo) -> torch.Generator:
    """A CPU generator for drawing batches, different on every rank.

    Rank 0 is seeded with ``seed`` itself, so a one-process run draws what it drew before; other ranks get a
    seed mixed from (seed, rank) by NumPy's SeedSequence, so no rank repeats another's (or another seed's) draws.
    """
    if info.rank == 0:
        return torch.Generator().manual_seed(seed)
    mixed = np.random.SeedSequence((seed, info.rank)).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed) & (2**63 - 1))


def average(value: float, info: DistInfo) -> float:
    """The mean of a number (a loss, an accuracy) over all ranks; the value itself with one rank."""
    if info.world_size == 1:
        return float(value)
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=info.device)
    dist.all_reduce(tensor)
    return tensor.item() / info.world_size


def teardown() -> None:
    """Leave the process group, if this process joined one (safe to call always, e.g. in ``finally``)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
