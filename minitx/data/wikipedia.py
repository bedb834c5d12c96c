"""enwik8: the first 100 MB of English Wikipedia as a stream of bytes (256 tokens)."""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from minitx.data.download import CorruptFileError, damaged, fetch, read_bytes

ENWIK8_URL = "https://codeberg.org/pbm/former/raw/branch/master/data/enwik8.gz"
ENWIK8_BYTES = 100_000_000


def load_wp(path: str | os.PathLike | None = None, split: tuple[float, float, float] = (90, 5, 5),
            final: bool = False) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[list[str], dict[str, int]]]:
    """``(train, val), (i2t, t2i)``: enwik8 (downloaded on first use) or any local byte file: plain, gzipped,
    or the one file of a zip archive.

    enwik8 decompresses to 100,000,000 bytes; the course splits it 90/5/5.

    ``split`` gives the train/validation/test proportions. ``final=True`` returns train+validation against
    test. The streams are 1-D **uint8** tensors (views of one buffer): 100M bytes take 100 MB this way,
    800 MB as long. :func:`minitx.data.random_slices` and :func:`minitx.data.lm_batch` return long
    batches. Token ``i`` is byte ``i``; ``i2t[i] == chr(i)`` (so ASCII reads as itself;
    `minitx.sample.decode` reads a span of bytes as UTF-8).
    """
    if len(split) != 3 or not all(0 <= part < math.inf for part in split) or sum(split) <= 0:   # NaN too
        raise ValueError(f"split must be three non-negative proportions (train, val, test), got {split}")
    source = fetch(ENWIK8_URL, path)
    data = read_bytes(source)        # the cached file may be gzipped (the download) or not (a copy put there)
    if path is None and len(data) != ENWIK8_BYTES:      # an error page saved in its place, say
        raise CorruptFileError(damaged(source, f"holds {len(data):,} bytes, not enwik8's {ENWIK8_BYTES:,} "
                                               f"(it begins {data[:20]!r})"))
    # (n,) uint8; bytearray makes the buffer writable, as torch.from_numpy expects.
    stream = torch.from_numpy(np.frombuffer(bytearray(data), dtype=np.uint8))
    n, total = len(stream), sum(split)
    n_train, n_val = int(n * split[0] / total), int(n * split[1] / total)
    if final:
        train, held_out = stream[:n_train + n_val], stream[n_train + n_val:]
    else:
        train, held_out = stream[:n_train], stream[n_train:n_train + n_val]
    i2t = [chr(i) for i in range(256)]
    return (train, held_out), (i2t, {t: i for i, t in enumerate(i2t)})
