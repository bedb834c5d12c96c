"""Data-parallel helpers: a 2-process gloo run on localhost must take the same step as one process.

The two ranks are started as subprocesses of this file (``python tests/test_distributed.py OUT_DIR``) with the
environment torchrun would give them, so `distributed.setup` is exercised exactly as in a real launch. Each
writes its results to OUT_DIR; the tests compare them with a single-process run computed here.
"""

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from minitx import LMConfig, distributed
from minitx.nn import LM

CONFIG = LMConfig(vocab=11, emb=16, heads=2, depth=2, context=8)
PER_RANK, WORLD, STEPS, ACCUMULATE, LR = 3, 2, 2, 2, 0.5
TIMEOUT_S = 120


def _data(n: int) -> torch.Tensor:
    """(n, global batch, context + 1) token windows, the same on every rank (each rank slices its half)."""
    generator = torch.Generator().manual_seed(123)
    return torch.randint(CONFIG.vocab, (n, PER_RANK * WORLD, CONFIG.context + 1), generator=generator)


def _loss(model: torch.nn.Module, window: torch.Tensor) -> torch.Tensor:
    logits = model(window[:, :-1])                                             # (b, t, vocab)
    return F.cross_entropy(logits.reshape(-1, CONFIG.vocab), window[:, 1:].reshape(-1))


def _fresh_model(seed: int) -> LM:
    return LM(CONFIG, torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- the worker (runs in each subprocess)

def _worker(out_dir: Path) -> None:
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    info = distributed.setup("cpu")
    assert info.world_size == WORLD, info
    mine = slice(info.rank * PER_RANK, (info.rank + 1) * PER_RANK)
    try:
        # 1) plain steps; rank 1 starts from other weights: DDP must overwrite them with rank 0's
        model = distributed.wrap(_fresh_model(seed=info.rank), info)
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        for window in _data(STEPS):
            _loss(model, window[mine]).backward()
            optimizer.step()
            optimizer.zero_grad()
        params = {name: p.detach().clone() for name, p in distributed.unwrap(model).named_parameters()}

        # 2) gradient accumulation: count the all-reduces the comm hook sees after each micro-step
        model = distributed.wrap(_fresh_model(seed=0), info)
        hook_calls: list[int] = []

        def counting_hook(state, bucket):
            hook_calls.append(1)
            return allreduce_hook(state, bucket)

        model.register_comm_hook(None, counting_hook)
        calls, grads = [], []
        for micro, window in enumerate(_data(ACCUMULATE)):
            with distributed.sync_context(model, last_micro_step=micro == ACCUMULATE - 1):
                (_loss(model, window[mine]) / ACCUMULATE).backward()
            calls.append(len(hook_calls))
            grads.append({name: p.grad.clone() for name, p in distributed.unwrap(model).named_parameters()})
        mean_rank = distributed.average(float(info.rank), info)
        torch.save({"params": params, "calls": calls, "grads": grads, "mean_rank": mean_rank,
                    "is_main": info.is_main}, out_dir / f"rank{info.rank}.pt")
    finally:
        distributed.teardown()


# ---------------------------------------------------------------- launching and the single-process reference

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    out_dir = tmp_path_factory.mktemp("ddp")
    port = _free_port()
    processes = []
    for rank in range(WORLD):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        processes.append(subprocess.Popen([sys.executable, __file__, str(out_dir)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [process.communicate(timeout=TIMEOUT_S)[0] for process in processes]
    finally:
        for process in processes:            # a hung rank must not hang CI
            if process.poll() is None:
                process.kill()
                process.wait()
    for rank, (process, output) in enumerate(zip(processes, outputs, strict=True)):
        assert process.returncode == 0, f"rank {rank} failed:\n{output}"
    return [torch.load(out_dir / f"rank{rank}.pt") for rank in range(WORLD)]


def _single_process_params() -> dict[str, torch.Tensor]:
    model = _fresh_model(seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    for window in _data(STEPS):
        _loss(model, window).backward()                                      # the whole global batch at once
        optimizer.step()
        optimizer.zero_grad()
    return {name: p.detach() for name, p in model.named_parameters()}


def test_two_ranks_step_like_one_process_with_the_global_batch(ranks):
    reference = _single_process_params()
    start = dict(_fresh_model(seed=0).named_parameters())
    for rank in ranks:
        assert rank["params"].keys() == reference.keys()
        for name, value in reference.items():
            torch.testing.assert_close(rank["params"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    # the comparison has teeth: the steps moved the weights well beyond the tolerance
    moved = max((reference[name] - start[name]).abs().max().item() for name in reference)
    assert moved > 1e-3


def test_accumulation_all_reduces_on_the_last_micro_step_only(ranks):
    for rank in ranks:
        assert rank["calls"][0] == 0, "no_sync micro-step communicated"
        assert rank["calls"][-1] > 0, "the last micro-step did not all-reduce"
    first = [rank["grads"][0] for rank in ranks]
    assert any(not torch.allclose(first[0][name], first[1][name]) for name in first[0]), \
        "gradients were already equal before the last micro-step: they were synchronised"

    model = _fresh_model(seed=0)
    for window in _data(ACCUMULATE):
        (_loss(model, window) / ACCUMULATE).backward()
    for rank in ranks:
        for name, param in model.named_parameters():
            torch.testing.assert_close(rank["grads"][-1][name], param.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_rank_helpers_agree_across_ranks(ranks):
    assert [rank["is_main"] for rank in ranks] == [True, False]
    assert all(rank["mean_rank"] == pytest.approx(0.5) for rank in ranks)


# ---------------------------------------------------------------- one process, no torchrun

@pytest.fixture
def alone(monkeypatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def test_single_process_needs_no_process_group(alone):
    info = distributed.setup("cpu")
    assert (info.rank, info.world_size, info.local_rank, info.is_main) == (0, 1, 0, True)
    assert info.device == torch.device("cpu")
    model = _fresh_model(seed=0)
    assert distributed.wrap(model, info) is model
    assert distributed.unwrap(model) is model
    with distributed.sync_context(model, last_micro_step=False):
        pass
    assert distributed.average(2.5, info) == 2.5
    assert not torch.distributed.is_initialized()
    distributed.teardown()


def test_rank_zero_draws_like_a_single_process_and_other_ranks_differ(alone):
    def draws(rank: int) -> torch.Tensor:
        info = distributed.DistInfo(rank, 4, rank, torch.device("cpu"))
        return torch.randint(1000, (20,), generator=distributed.rank_generator(7, info))

    assert torch.equal(draws(0), torch.randint(1000, (20,), generator=torch.Generator().manual_seed(7)))
    all_draws = [draws(rank) for rank in range(4)]
    assert all(not torch.equal(all_draws[i], all_draws[j]) for i in range(4) for j in range(i + 1, 4))
    assert torch.equal(draws(2), draws(2))


@pytest.mark.parametrize(("env", "message"), [
    ({"WORLD_SIZE": "2", "RANK": "2"}, r"bad torchrun environment: RANK=2, WORLD_SIZE=2"),   # ranks are 0 .. N-1
    ({"WORLD_SIZE": "2", "RANK": "-1"}, r"bad torchrun environment: RANK=-1"),
    ({"WORLD_SIZE": "two"}, r"WORLD_SIZE must be an integer, got 'two'"),
    ({"WORLD_SIZE": "0"}, r"bad torchrun environment: RANK=0, WORLD_SIZE=0"),
])
def test_bad_environment_is_a_clear_error(monkeypatch, env, message):
    """The messages are matched exactly: a loose "RANK|WORLD_SIZE" also matched the MASTER_ADDR error that a
    rank out of range (RANK=WORLD_SIZE) met further on, so an off-by-one in the range check went unnoticed."""
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        distributed.setup("cpu")


def test_several_ranks_without_a_rendezvous_address_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        distributed.setup("cpu")


@pytest.fixture
def fake_launch(monkeypatch):
    """Rank 3 of 4, on its machine's second GPU (LOCAL_RANK=1) of two; joining the group and choosing the GPU
    are recorded, not done, so the choice of backend and device is testable without GPUs or other ranks."""
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", device)))
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group",
                        lambda backend, **kwargs: calls.append(("init", backend, kwargs)))
    return calls


@pytest.mark.parametrize(("device", "backend"), [("cuda", "nccl"), ("cpu", "gloo")])
def test_several_ranks_join_over_the_devices_backend_on_their_local_gpu(monkeypatch, fake_launch, device, backend):
    """A rank's GPU is its LOCAL_RANK (its index on this machine), not its global RANK; CUDA talks NCCL."""
    monkeypatch.setattr(distributed, "pick_device", lambda name: torch.device(device))
    info = distributed.setup(device)
    assert (info.rank, info.world_size, info.local_rank) == (3, 4, 1)
    init = ("init", backend, {"rank": 3, "world_size": 4})
    if device == "cuda":
        assert info.device == torch.device("cuda", 1)
        assert fake_launch == [("set_device", torch.device("cuda", 1)), init]
    else:
        assert info.device == torch.device("cpu") and fake_launch == [init]
    # a process group already joined (by the caller, say) is used as it is, not joined a second time
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    assert distributed.setup(device) == info and fake_launch.count(init) == 1


def test_more_ranks_than_gpus_or_a_device_without_a_backend_is_a_clear_error(monkeypatch, fake_launch):
    monkeypatch.setenv("LOCAL_RANK", "2")                    # a third process on a machine with two GPUs
    monkeypatch.setattr(distributed, "pick_device", lambda name: torch.device("cuda"))
    with pytest.raises(ValueError, match="LOCAL_RANK 2 but only 2 GPUs are visible"):
        distributed.setup("cuda")
    monkeypatch.setattr(distributed, "pick_device", lambda name: torch.device("mps"))
    with pytest.raises(ValueError, match="on CUDA \\(NCCL\\) or CPU \\(gloo\\), not 'mps'"):
        distributed.setup("mps")
    assert fake_launch == []                                 # nothing joined, no GPU chosen


class _FakeDDP(DistributedDataParallel):
    """A DistributedDataParallel without a process group, whose no_sync() is recognisable."""

    def __init__(self, module: torch.nn.Module) -> None:
        torch.nn.Module.__init__(self)
        self.module = module

    def no_sync(self):
        return self.module          # any recognisable object: sync_context returns it as it is


def test_sync_context_and_unwrap_see_through_torch_compile_around_ddp():
    """torch.compile(DDP(model)) is one way to combine them: sync_context must still find the DDP inside
    (else every micro-step all-reduces) and unwrap must reach the plain model through both wrappers."""
    model = _fresh_model(seed=0)
    compiled = torch.compile(_FakeDDP(model))               # wrapping only: nothing compiles until it runs
    assert distributed.sync_context(compiled, last_micro_step=False) is model
    assert isinstance(distributed.sync_context(compiled, last_micro_step=True), contextlib.nullcontext)
    assert distributed.unwrap(compiled) is model


def test_teardown_leaves_the_process_group(alone):
    """Left joined, the next setup in this process (a second run in one script) finds a stale group."""
    torch.distributed.init_process_group("gloo", rank=0, world_size=1, init_method=f"tcp://127.0.0.1:{_free_port()}")
    try:
        distributed.teardown()
        assert not torch.distributed.is_initialized()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
