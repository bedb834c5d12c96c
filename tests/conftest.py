"""Shared test settings: float64 where precision matters, hypothesis profiles sized for a 2-core machine."""

import os
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import settings

import minitx.functional.attention as attention_impl

settings.register_profile("default", max_examples=25, deadline=None)
settings.register_profile("ci", max_examples=15, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "default")

torch.set_num_threads(min(2, torch.get_num_threads()))



@pytest.fixture
def one_thread():
    """Training tests use one thread: on a shared, oversubscribed machine two threads mostly wait on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def backends_used(monkeypatch):
    """The ``backend`` of every `attend` call: the two backends agree to rounding, so outputs cannot tell."""
    used = []
    original = attention_impl.attend

    def spy(*args, backend="scratch", **kwargs):
        used.append(backend)
        return original(*args, backend=backend, **kwargs)

    monkeypatch.setattr(attention_impl, "attend", spy)
    return used


@pytest.fixture
def at_optimizer_steps(monkeypatch):
    """``at_optimizer_steps(module, read)`` -> a list that gets ``read(optimizer)`` just before every
    ``optimizer.step()`` of the optimizers ``module.make_optimizer`` builds from then on: what the optimiser
    really steps with, not what the run logs."""
    def record(module, read: Callable[[torch.optim.Optimizer], Any]) -> list:
        seen, make = [], module.make_optimizer

        def recording_make(*args, **kwargs):
            optimizer = make(*args, **kwargs)
            step = optimizer.step

            def recorded_step(*step_args, **step_kwargs):
                seen.append(read(optimizer))
                return step(*step_args, **step_kwargs)

            optimizer.step = recorded_step
            return optimizer

        monkeypatch.setattr(module, "make_optimizer", recording_make)
        return seen
    return record


def _gradient_norm(optimizer: torch.optim.Optimizer) -> float:
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()


@pytest.fixture
def step_gradient_norms(at_optimizer_steps):
    """``step_gradient_norms(module)`` -> a list that gets the gradient norm every ``optimizer.step()`` sees
    (`at_optimizer_steps`)."""
    return lambda module: at_optimizer_steps(module, _gradient_norm)
