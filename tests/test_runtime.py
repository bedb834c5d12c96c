"""What a mutation review found unchecked in minitx.runtime and the single-process side of minitx.distributed."""

import contextlib
import warnings

import pytest
import torch

from minitx import LMConfig, distributed
from minitx.nn import LM
from minitx.runtime import autocast, cosine_decay, make_optimizer, maybe_compile, warmup_decay


@pytest.mark.parametrize(("warmup", "total"), [(0, 10), (3, 10), (2, 3)])
def test_the_schedule_is_flat_after_the_last_step(warmup, total):
    """Documented: the cosine reaches final_fraction at step total - 1 "and is flat after it"; unclamped, it
    climbed back towards the peak (cos(pi * p) rises again for p > 1)."""
    factor = warmup_decay(warmup, total, final_fraction=0.1)
    assert factor(total - 1) == pytest.approx(0.1)
    assert all(factor(step) == pytest.approx(0.1) for step in range(total, 3 * total))
    assert cosine_decay(1.7, 0.2) == pytest.approx(0.2) and cosine_decay(-0.5, 0.2) == pytest.approx(1.0)


def test_unwrap_sees_through_torch_compile():
    """The state_dict to save is the plain model's, also inside torch.compile's wrapper (keys without
    '_orig_mod.'). And --compile compiles: maybe_compile ignoring it went unnoticed off CUDA."""
    model = LM(LMConfig(vocab=5, emb=8, heads=2, depth=1, context=4))
    compiled = maybe_compile(model, True)                # wrapping only: nothing is compiled until it runs
    assert compiled is not model and distributed.unwrap(compiled) is model
    assert maybe_compile(model, False) is model


def test_autocast_is_bf16_on_cuda_only_and_only_when_enabled():
    """--no-amp turns autocast off; ignored, a CUDA run computed in bf16 anyway (testable without a GPU)."""
    assert isinstance(autocast(torch.device("cuda"), enabled=False), contextlib.nullcontext)
    assert isinstance(autocast(torch.device("cpu")), contextlib.nullcontext)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # without CUDA torch warns that it disables autocast
        on = autocast(torch.device("cuda:0"))
    assert isinstance(on, torch.autocast) and (on.device, on.fast_dtype) == ("cuda", torch.bfloat16)


def test_make_optimizer_takes_the_rates_and_betas_asked_for():
    """``betas`` was never passed by a test: dropping it went unnoticed."""
    params = {"head.weight": torch.nn.Parameter(torch.ones(2, 2)), "head.bias": torch.nn.Parameter(torch.ones(2))}
    optimizer = make_optimizer(params, lr=0.25, weight_decay=0.5, betas=(0.8, 0.95))
    assert [(g["lr"], g["betas"], g["weight_decay"]) for g in optimizer.param_groups] == [
        (0.25, (0.8, 0.95), 0.5), (0.25, (0.8, 0.95), 0.0)]


def test_other_ranks_draw_differently_for_different_seeds():
    """Documented: no rank repeats another's *or another seed's* draws; a mix of the rank alone gave rank 1 the
    same batches under every --seed."""
    def draws(seed, rank):
        info = distributed.DistInfo(rank, 4, rank, torch.device("cpu"))
        return torch.randint(1000, (20,), generator=distributed.rank_generator(seed, info))

    for rank in (1, 3):
        assert not torch.equal(draws(7, rank), draws(8, rank))
        assert torch.equal(draws(7, rank), draws(7, rank))


def test_a_negative_local_rank_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "-1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="LOCAL_RANK=-1"):
        distributed.setup("cpu")


def test_an_unknown_device_name_is_a_short_clear_error():
    """torch's own message lists its twenty-odd device types."""
    from minitx.runtime import pick_device
    with pytest.raises(ValueError, match="unknown device 'banana': use auto, cpu, cuda, cuda:N or mps"):
        pick_device("banana")
