"""Downloads a user can trust: a cache directory, atomic renames, clear errors.

A file is fetched once with the ``wget`` module (as the course does) into the cache directory
(``$MINITX_DATA``, else ``~/.cache/minitx``). It is written under a temporary name and renamed only once it
is complete and has passed the optional size/sha256 checks, so an interrupted download never looks like a
finished one. A damaged file found in the cache is deleted and reported, never silently reused; a file the
user gives (``path=``) is never deleted, wherever it is.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import io
import os
import sys
import tempfile
import urllib.error
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:                        # Windows
    fcntl = None

import wget

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")     # a member's header; an empty archive's end record

# The cache files `fetch` has handed out in this process: only these are deleted when found damaged. A file the
# user passed (path=, --path), even one kept in the cache folder, is theirs: refused, never deleted.
_fetched: set[Path] = set()


class DownloadError(RuntimeError):
    """A file could not be downloaded (offline, refused, interrupted, HTTP error)."""


class CorruptFileError(RuntimeError):
    """A data file is truncated or damaged (bad gzip stream, wrong size or checksum)."""


def cache_dir() -> Path:
    """The directory downloads are kept in: ``$MINITX_DATA`` if set, else ``~/.cache/minitx``."""
    return Path(os.environ.get("MINITX_DATA") or Path.home() / ".cache" / "minitx").expanduser()  # '~/data' quoted


def fetch(
    url: str,
    path: str | os.PathLike | None = None,
    *,
    filename: str | None = None,
    size: int | None = None,
    sha256: str | None = None,
) -> Path:
    """Return a local path for ``url``: ``path`` itself when given, else a cached download.

    ``filename`` names the file in the cache (default: the last part of the URL). ``size`` (bytes) and
    ``sha256`` (hex), when given, are checked on the downloaded file and on a cached copy.
    """
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"No data file at {path}" + (" (it is a directory)" if path.is_dir() else ""))
        return path

    target = cache_dir() / (filename or url.rsplit("/", 1)[-1])
    if target.exists():
        return _cached(target, size, sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _cache_lock(target.parent):
        if target.exists():                # another process (a torchrun rank) downloaded it while we waited
            return _cached(target, size, sha256)
        _download(url, target, size, sha256)          # checked before it was renamed into the cache
        return _cached(target, None, None)            # under the lock: a waiter may delete what it finds wrong


def _cached(target: Path, size: int | None, sha256: str | None) -> Path:
    """``target``, a file of the cache, checked against ``size`` and ``sha256``; from here on `damaged` deletes
    it if it turns out not to parse."""
    _fetched.add(target.resolve())
    problem = _mismatch(target, size, sha256)
    if problem:
        raise CorruptFileError(damaged(target, problem))
    return target


@contextlib.contextmanager
def _cache_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on the cache folder while downloading into it: processes that fetch at the same
    time (the ranks of a torchrun job, two notebooks) download once, the others wait and then find the file.
    A lock on the folder itself leaves no lock file behind, and the system drops it if the process dies.
    Where ``fcntl`` is missing (Windows) there is no lock: each process downloads, and the atomic rename still
    leaves one whole file."""
    if fcntl is None:
        yield
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"Waiting for another process downloading into {folder}", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)                   # closing the descriptor releases the lock


def _download(url: str, target: Path, size: int | None, sha256: str | None) -> None:
    print(f"Downloading {url} to {target}", file=sys.stderr)
    # wget writes its own temporary file next to `out`; a private staging directory keeps every partial
    # file out of the cache and is removed whatever happens.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as staging:
        partial = Path(staging) / target.name
        try:
            wget.download(url, out=str(partial), bar=None)
        except urllib.error.ContentTooShortError as e:
            raise DownloadError(f"Download of {url} was interrupted ({e.reason}); nothing was cached. "
                                "Run again to retry.") from e
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            raise DownloadError(
                f"Could not download {url} ({e}). If this machine is offline, fetch "
                f"the file elsewhere and copy it to {target}, or give its local path (path= in Python; "
                "--path, or --data FILE for lm, on the command line).") from e
        problem = _mismatch(partial, size, sha256)
        if problem:
            raise CorruptFileError(f"The download of {url} {problem}; nothing was cached.")
        os.replace(partial, target)


def read_bytes(path: str | os.PathLike) -> bytes:
    """The contents of ``path``, gunzipped when it is a gzip file (recognised by its magic bytes), the one
    file inside when it is a zip archive (enwik8's usual download is ``enwik8.zip``).

    A truncated or damaged gzip stream or zip archive raises :class:`CorruptFileError`; if the file is in the
    cache it is deleted first, so the next call downloads a fresh copy.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw.startswith(ZIP_MAGIC):
        return _only_member(path, raw)
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise CorruptFileError(damaged(path, f"is not a complete gzip file ({e})")) from e


def _only_member(path: Path, raw: bytes) -> bytes:
    """The one file in the zip archive ``raw`` (read from ``path``)."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            if len(members) != 1:
                raise CorruptFileError(f"{path} is a zip archive of {len(members)} files; unpack it and give "
                                       "the path of the one to read")
            return archive.read(members[0])
    except (zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise CorruptFileError(damaged(path, f"is not a complete zip archive ({e})")) from e


def _mismatch(path: Path, size: int | None, sha256: str | None) -> str | None:
    """Describe how ``path`` differs from the expected size/checksum, or None when it matches."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"has {actual_size} bytes, expected {size}"
    if sha256 is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != sha256.lower():
            return f"has sha256 {digest}, expected {sha256}"
    return None


def damaged(path: Path, problem: str) -> str:
    """Delete ``path`` if `fetch` took it from the cache (it would be reused otherwise) and describe what
    happened; a file the user gave is kept."""
    if path.resolve() in _fetched:
        path.unlink(missing_ok=True)
        return f"{path} {problem}; the cached copy was deleted, run again to download it afresh."
    return f"{path} {problem}; replace the file with a complete copy."
