"""Reading pickles without letting them run code.

A pickle can name any importable function and call it while loading (``os.system`` is the classic
example), so unpickling a downloaded file is running a program from the internet. The data files here only
hold lists, dicts, tuples, strings and numbers, none of which needs a class lookup, so we refuse every
class or function a pickle names: nothing it names is ever imported or called.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

from minitx.data.download import CorruptFileError, damaged, read_bytes


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a class or function; plain data never needs one, so it is refused."""


class _PlainDataUnpickler(pickle.Unpickler):
    """An unpickler whose class lookup refuses everything (only containers, numbers, strings remain)."""

    def find_class(self, module: str, name: str) -> Any:
        raise UnsafePickleError(
            f"Refusing to load {module}.{name}: this pickle names a class or function, and only plain "
            "data (lists, dicts, tuples, strings, numbers) is allowed. It was not executed.")


def safe_loads(data: bytes) -> Any:
    """Unpickle ``data``, admitting only plain containers, numbers and strings."""
    return _PlainDataUnpickler(io.BytesIO(data)).load()


def load_pickle(path: str | os.PathLike) -> Any:
    """Read a (possibly gzipped) pickle of plain data from ``path``; see :func:`safe_loads`."""
    data = read_bytes(path)
    try:
        return safe_loads(data)
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise CorruptFileError(damaged(Path(path), f"is not a complete pickle ({e}){_looks_like(data)}")) from e


def _looks_like(data: bytes) -> str:
    """A hint at what a file that is no pickle is instead."""
    head = data[:200].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html")):
        return "; it is an HTML page (an error or login page saved in its place?)"
    if b"\t" in head and b"\n" in data[:100_000]:
        return ("; it looks like tab-separated text: read the raw reviews with minitx.data.load_imdb_raw (the "
                "command line's --path reads them from a file named .tsv or .tsv.gz), the pickle with load_imdb")
    return ""
