"""Shared test settings: float64 where precision matters, hypothesis profiles sized for a 2-core machine."""

import os

import torch
from hypothesis import settings

settings.register_profile("default", max_examples=25, deadline=None)
settings.register_profile("ci", max_examples=15, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "default")

torch.set_num_threads(min(2, torch.get_num_threads()))

