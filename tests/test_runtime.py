"""What a mutation review found unchecked in minitx.runtime and the single-process side of minitx.distributed."""

import pytest
import torch

from minitx import LMConfig, distributed
from minitx.nn import LM
from minitx.runtime import cosine_decay, warmup_decay


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
    '_orig_mod.')."""
    model = LM(LMConfig(vocab=5, emb=8, heads=2, depth=1, context=4))
    compiled = torch.compile(model)                      # wrapping only: nothing is compiled until it runs
    assert distributed.unwrap(compiled) is model


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
