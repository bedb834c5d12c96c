"""Numbers quoted in docs/data.md: IMDb sizes and lengths, padding per batching scheme, loading times.

Run from the repository root:  python bench/data_stats.py [--imdb PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from minitx.cli import HelpFormatter
from minitx.data import fixed_batches, load_imdb, load_toy, padding_fraction, token_budget_batches

DEFAULT_IMDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb.word.pkl.gz"


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def describe(name: str, x: list[list[int]]) -> None:
    lengths = [len(s) for s in x]
    print(f"  {name:<6} {len(x):>6} reviews {sum(lengths):>10,} tokens   length mean {statistics.mean(lengths):.1f}"
          f"  median {statistics.median(lengths):g}  max {max(lengths)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--imdb", type=Path, default=DEFAULT_IMDB, help="local imdb.word.pkl.gz (else download)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = args.imdb if args.imdb.exists() else None

    for final in (False, True):
        data, seconds = timed(load_imdb, final=final, path=path)
        (x_train, _), (x_held, _), (i2w, _), _ = data
        print(f"load_imdb(final={final}): {seconds:.2f} s, vocabulary {len(i2w):,}")
        describe("train", x_train)
        describe("test" if final else "val", x_held)

    (x_train, _), _, _, _ = load_imdb(path=path)
    lengths = [len(s) for s in x_train]
    generator = torch.Generator().manual_seed(0)
    print("padding fraction, one epoch over the 20k training reviews:")
    for max_len in (None, 256):
        fixed = padding_fraction(lengths, fixed_batches(len(lengths), 32, generator=generator), max_len)
        budget_batches = token_budget_batches(lengths, 32 * 256, max_len=max_len, generator=generator)
        budget = padding_fraction(lengths, budget_batches, max_len)
        print(f"  max_len={max_len}: fixed batches of 32 (random order) {fixed:.1%};"
              f" token budget 32*256 {budget:.1%} ({len(budget_batches)} batches)")

    ((train, val), _), seconds = timed(load_toy, 150_000)
    print(f"load_toy(150_000): {seconds:.2f} s, {len(train):,} train / {len(val):,} validation characters")


if __name__ == "__main__":
    main()
