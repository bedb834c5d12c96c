"""Q1: padding a batch of IMDb reviews into a (batch, time) tensor, with the mask the models use.

Shows `minitx.data.pad_batch` on real data, and how much of a batch is padding with random batches versus
length-sorted token-budget batches (the dynamic batch size of the lectures).
"""

import inspect

import torch
from common import data_errors, parser, setup

from minitx.data import fixed_batches, load_imdb, pad_batch, padding_fraction, token_budget_batches

args = parser(__doc__, epochs=None, seeds=None).parse_args()
setup(args)
with data_errors():
    (x_train, y_train), _, (i2w, w2i), numcls = load_imdb(path=args.data_path)
print(inspect.getsource(pad_batch))

batch = [x_train[i] for i in (0, 5000, 10000)]
tokens, mask = pad_batch(batch, pad_idx=w2i[".pad"], max_len=12)
print(f"pad index {w2i['.pad']}; tokens {tuple(tokens.shape)} {tokens.dtype}, mask {mask.dtype}")
print(tokens)
print(mask)
print("first review:", " ".join(i2w[w] for w in tokens[0][mask[0]].tolist()))

lengths = [len(s) for s in x_train]
generator = torch.Generator().manual_seed(0)
for size in (16, 64, 256):
    random_batches = fixed_batches(len(lengths), size, generator=generator)
    print(f"batch {size:>3}: padding {padding_fraction(lengths, random_batches):.1%} of a random batch "
          "(a bigger batch is more likely to hold one very long review)")
sorted_batches = token_budget_batches(lengths, 16_384, generator=generator)
print(f"token budget 16384, length-sorted: padding {padding_fraction(lengths, sorted_batches):.1%}, "
      f"{len(sorted_batches)} batches")
