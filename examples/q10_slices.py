"""Q10: slice a batch of b random windows of length L out of one long stream of characters.

    python examples/q10_slices.py

`random_slices` draws all start positions at once and gathers the windows with one indexing operation
(no Python loop, no autograd graph); `lm_batch` cuts a window of L + 1 into input and target, shifted by one.
"""

import argparse

import torch

from minitx.cli import HelpFormatter
from minitx.data import lm_batch, load_toy, random_slices
from minitx.sample import decode

argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter).parse_args()   # no flags: --help

(train, val), (i2c, c2i) = load_toy()
print(f"training stream: {len(train):,} characters, vocabulary of {len(i2c)}: {''.join(i2c[4:])!r}")

generator = torch.Generator().manual_seed(0)
batch = random_slices(train, 4, 32, generator)                 # (b, L) = (4, 32)
print("a batch of 4 windows of 32 characters:")
for row in batch:
    print(f"  {decode(row, i2c)!r}")

inputs, targets = lm_batch(train, 4, 32, generator)            # (4, 32) each; targets = inputs shifted left
print(f"input  {decode(inputs[0], i2c)!r}\ntarget {decode(targets[0], i2c)!r}")
assert torch.equal(inputs[:, 1:], targets[:, :-1])
