"""Datasets of the course (IMDb, IMDb-synth, XOR, the toy grammar, enwik8) and the batching around them.

Every loader that downloads takes ``path=`` to read a local file instead; downloads go to the cache
directory (``$MINITX_DATA`` or ``~/.cache/minitx``). See ``docs/data.md``.
"""

from minitx.data.batching import (
    fixed_batches,
    lm_batch,
    pad_batch,
    padding_fraction,
    random_slices,
    token_budget_batches,
)
from minitx.data.download import CorruptFileError, DownloadError, cache_dir, fetch, read_bytes
from minitx.data.imdb import load_imdb, load_imdb_raw, tokenize
from minitx.data.safe_pickle import UnsafePickleError, load_pickle, safe_loads
from minitx.data.synthetic import load_imdb_synth, load_xor
from minitx.data.toy import TOY_GRAMMAR, TOY_START, generate_sentence, load_toy
from minitx.data.vocab import SPECIALS
from minitx.data.wikipedia import load_wp

__all__ = [
    "SPECIALS", "TOY_GRAMMAR", "TOY_START", "CorruptFileError", "DownloadError", "UnsafePickleError",
    "cache_dir", "fetch", "fixed_batches", "generate_sentence", "lm_batch", "load_imdb", "load_imdb_raw",
    "load_imdb_synth", "load_pickle", "load_toy", "load_wp", "load_xor", "pad_batch", "padding_fraction",
    "random_slices", "read_bytes", "safe_loads", "token_budget_batches", "tokenize",
]
