"""Downloads against a local HTTP server on 127.0.0.1 (never a real host), with the cache in tmp_path."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import pickle
import socket
import threading
import time
from pathlib import Path

import pytest

import minitx.data.download
import minitx.data.imdb
import minitx.data.wikipedia
from minitx.data import (
    CorruptFileError,
    DownloadError,
    UnsafePickleError,
    fetch,
    load_imdb,
    load_pickle,
    load_wp,
    safe_loads,
)
from minitx.data.download import read_bytes

TINY_IMDB = ({"train": [[4, 5], [5], [4, 4, 5]], "test": [[5, 4]]}, {"train": [0, 1, 0], "test": [1]},
             [".pad", ".start", ".end", ".unk", "good", "bad"], {})


class Server:
    """Serves ``routes[path] = (body, declared_length)``; a declared length above len(body) cuts it short."""

    def __init__(self):
        self.routes: dict[str, tuple[bytes, int]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path == "/hangup":
                    self.close_connection = True    # closed without a status line: RemoteDisconnected
                    return
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                body, declared = server.routes[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(declared))
                self.end_headers()
                self.wfile.write(body)  # the connection then closes (HTTP/1.0), maybe before `declared`

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, name: str, body: bytes, declared_length: int | None = None) -> str:
        self.routes[f"/{name}"] = (body, len(body) if declared_length is None else declared_length)
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()                               # else its socket is left to the GC: a ResourceWarning


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache directory, and a separate working directory to catch stray temporary files."""
    monkeypatch.setenv("MINITX_DATA", str(tmp_path / "cache"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path / "cache"


def leftovers(cache: Path) -> list[str]:
    files = [p for p in cache.parent.rglob("*") if p.is_file()]
    return sorted(str(p.relative_to(cache.parent)) for p in files)


def test_complete_download_is_cached_renamed_and_reused(server, cache):
    url = server.serve("complete.bin", b"x" * 10_000)
    path = fetch(url)
    assert path == cache / "complete.bin" and path.read_bytes() == b"x" * 10_000
    assert fetch(url) == path
    assert server.requests.count("/complete.bin") == 1, "the cached copy must be reused"
    assert leftovers(cache) == ["cache/complete.bin"], "no temporary files may remain"
    assert fetch(url, filename="named.bin") == cache / "named.bin", "filename= names the cached copy"
    assert (cache / "named.bin").read_bytes() == b"x" * 10_000


def test_interrupted_download_raises_and_caches_nothing(server, cache):
    url = server.serve("short.bin", b"y" * 1000, declared_length=5000)
    # "was interrupted": the bare word also matched the cache path in the message (this test's tmp_path is
    # named after it), so the wrong message passed too.
    with pytest.raises(DownloadError, match="was interrupted"):
        fetch(url)
    assert leftovers(cache) == []


def test_offline_gives_a_clear_error_with_url_and_cache_path(cache):
    with socket.socket() as s:  # bind and release a port: nothing listens there afterwards
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/imdb.word.pkl.gz"
    with pytest.raises(DownloadError) as error:
        fetch(url)
    assert url in str(error.value) and str(cache / "imdb.word.pkl.gz") in str(error.value)
    assert "path=" in str(error.value)


def test_a_directory_given_as_the_data_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="it is a directory"):
        fetch("http://127.0.0.1:9/unused", path=tmp_path)


def test_http_error_is_a_download_error(server, cache):
    with pytest.raises(DownloadError, match="404"):
        fetch(server.serve("exists.bin", b"").replace("exists.bin", "missing.bin"))
    # A server that closes the connection without answering: http.client raises RemoteDisconnected, which
    # urllib does not wrap in a URLError.
    with pytest.raises(DownloadError, match="Could not download .*/hangup"):
        fetch(server.serve("exists.bin", b"").replace("exists.bin", "hangup"))
    assert leftovers(cache) == []


def test_expected_size_and_sha256(server, cache):
    body = b"some data"
    url = server.serve("checked.bin", body)
    with pytest.raises(CorruptFileError, match="sha256"):
        fetch(url, sha256="0" * 64)
    for wrong in (3, 0):                                     # 0 is a size too, not "unchecked"
        with pytest.raises(CorruptFileError, match=f"bytes, expected {wrong}"):
            fetch(url, size=wrong)
    assert leftovers(cache) == [], "a download that fails its check is not cached"
    path = fetch(url, size=len(body), sha256=hashlib.sha256(body).hexdigest())
    path.write_bytes(b"tampered!")  # same size, different content
    with pytest.raises(CorruptFileError, match="deleted"):
        fetch(url, sha256=hashlib.sha256(body).hexdigest())
    assert not path.exists()


def test_corrupt_gzip_in_cache_is_deleted_and_reported(server, cache):
    good = gzip.compress(pickle.dumps(TINY_IMDB))
    url = server.serve("corrupt.pkl.gz", good[: len(good) // 2])  # honest length, truncated stream
    path = fetch(url)
    with pytest.raises(CorruptFileError, match="not a complete gzip file.*deleted"):
        load_pickle(path)
    assert not path.exists(), "a damaged cached file must never be reused"


@pytest.mark.parametrize("position", [-6, 10], ids=["crc-trailer", "deflate-stream"])   # BadGzipFile, zlib.error
def test_corrupt_gzip_outside_the_cache_is_refused_but_kept(tmp_path, cache, position):
    flipped = bytearray(gzip.compress(pickle.dumps(TINY_IMDB)))
    flipped[position] ^= 0xFF                            # 10: the first byte after the gzip header
    path = tmp_path / "user.pkl.gz"
    path.write_bytes(flipped)
    with pytest.raises(CorruptFileError, match="replace the file"):
        load_imdb(path=path)
    assert path.exists()


def test_a_users_damaged_file_in_the_cache_folder_is_refused_but_kept(cache):
    """The offline error tells users to copy files into the cache folder; one of theirs passed with path= was
    deleted there when it did not parse (a cut pickle, a cut gzip of reviews, the TSV given as the pickle)."""
    cache.mkdir()
    whole = gzip.compress(pickle.dumps(TINY_IMDB))
    files = {"partial.pkl.gz": whole[: len(whole) // 2], "imdb.word.pkl.gz": whole[:40],
             "my_reviews.tsv.gz": gzip.compress(b"train\tpos\t1\tgreat movie\n")}
    for name, content in files.items():
        (cache / name).write_bytes(content)
        with pytest.raises((CorruptFileError, ValueError), match="replace the file|TSV|load_imdb_raw"):
            load_imdb(path=cache / name)
        assert (cache / name).read_bytes() == content, name
    with pytest.raises(CorruptFileError, match="replace the file"):
        read_bytes(cache / "partial.pkl.gz")
    assert (cache / "partial.pkl.gz").exists()


def test_a_failed_download_then_the_users_copy_passed_with_path_is_kept(server, cache, monkeypatch):
    """The offline message says to copy the file into the cache; a cut copy passed with path= was then deleted,
    because the failed download had already marked the name as the cache's own."""
    absent = server.serve("present.bin", b"x").rsplit("/", 1)[0] + "/imdb.word.pkl.gz"      # a 404
    monkeypatch.setattr(minitx.data.imdb, "IMDB_URL", absent)
    with pytest.raises(DownloadError, match="copy it to"):
        load_imdb()
    copy = cache / "imdb.word.pkl.gz"                     # where the message said to put it
    copy.write_bytes(gzip.compress(pickle.dumps(TINY_IMDB))[:30])
    with pytest.raises(CorruptFileError, match="replace the file"):
        load_imdb(path=copy)
    assert copy.exists()


def test_processes_fetching_one_file_at_once_download_it_once(cache, monkeypatch):
    """The ranks of a torchrun job each downloaded enwik8 at the same time; now one downloads, the others wait
    on the cache folder's lock and then find the file."""
    downloads, staged = [], []

    def slow_download(url, out, bar=None):
        downloads.append(url)
        staged.append(Path(out))
        time.sleep(0.5)                                  # long enough for the other threads to arrive
        Path(out).write_bytes(b"the data")

    monkeypatch.setattr(minitx.data.download.wget, "download", slow_download)
    results = []
    threads = [threading.Thread(target=lambda: results.append(fetch("http://127.0.0.1:9/data.bin")))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(downloads) == 1
    assert len(results) == 3 and all(path.read_bytes() == b"the data" for path in results)
    # The partial file is staged inside the cache folder: the same filesystem, so the final rename is atomic
    # (across filesystems os.replace fails).
    assert staged[0].parent.parent == cache


def test_a_file_found_after_waiting_for_another_download_is_checked_too(cache, monkeypatch):
    """A caller that waited on the lock while another process downloaded must still check the size and sha256
    it was given against the file it then finds, as it does for any cached copy."""
    def slow_download(url, out, bar=None):
        time.sleep(0.5)
        Path(out).write_bytes(b"the data")

    monkeypatch.setattr(minitx.data.download.wget, "download", slow_download)
    outcome = []

    def wrong_size():
        try:
            outcome.append(fetch("http://127.0.0.1:9/data.bin", size=3))
        except CorruptFileError as e:
            outcome.append(e)

    def download():      # its own last look at the file comes before the waiter can delete it
        outcome.append(fetch("http://127.0.0.1:9/data.bin"))

    first = threading.Thread(target=download)
    first.start()
    time.sleep(0.1)                                      # the first holds the lock and is downloading
    wrong_size()
    first.join(timeout=30)
    assert len(outcome) == 2, outcome                    # in either order: the downloader's path, the waiter's error
    assert any(isinstance(o, Path) for o in outcome) and any(isinstance(o, CorruptFileError) for o in outcome)


def test_load_imdb_downloads_through_the_cache(server, cache, monkeypatch):
    monkeypatch.setattr(minitx.data.imdb, "IMDB_URL", server.serve("imdb.word.pkl.gz",
                                                                   gzip.compress(pickle.dumps(TINY_IMDB))))
    (x_train, y_train), (x_test, y_test), (i2w, w2i), numcls = load_imdb(final=True)
    assert (x_train, y_train) == ([[5], [4, 5], [4, 4, 5]], [1, 0, 0])
    assert (x_test, y_test, numcls) == ([[5, 4]], [1], 2)
    assert w2i["bad"] == 5 and (cache / "imdb.word.pkl.gz").exists()


def test_load_wp_downloads_through_the_cache(server, cache, monkeypatch):
    data = bytes(range(256)) * 4
    monkeypatch.setattr(minitx.data.wikipedia, "ENWIK8_URL", server.serve("enwik8.gz", gzip.compress(data)))
    monkeypatch.setattr(minitx.data.wikipedia, "ENWIK8_BYTES", len(data))
    (train, val), _ = load_wp(split=(50, 25, 25))
    assert bytes(train.tolist()) + bytes(val.tolist()) == data[:768]


@pytest.mark.parametrize(("body", "problem"), [
    (b"<!DOCTYPE html><html>Sign in to continue</html>",                           # saved as enwik8.gz
     "holds 47 bytes, not enwik8's 100,000,000 \\(it begins b'<!DOCTYPE"),
    (gzip.compress(b"x" * 5000), "holds 5,000 bytes, not enwik8's 100,000,000"),     # some other gzip file
], ids=["html-page", "other-gzip"])
def test_a_download_that_is_not_enwik8_is_refused_and_deleted(server, cache, monkeypatch, body, problem):
    """An HTML page served in enwik8's place used to be cached and trained on as if it were the data."""
    monkeypatch.setattr(minitx.data.wikipedia, "ENWIK8_URL", server.serve(f"enwik8-{len(body)}.gz", body))
    with pytest.raises(CorruptFileError, match=f"{problem}.*deleted"):
        load_wp()
    assert leftovers(cache) == []


def test_an_unzipped_enwik8_copied_into_the_cache_is_read(cache, monkeypatch):
    """The offline message says to copy the file into the cache: a plain (not gzipped) enwik8 there is used."""
    data = bytes(range(256)) * 4
    cache.mkdir()
    (cache / "enwik8.gz").write_bytes(data)
    monkeypatch.setattr(minitx.data.wikipedia, "ENWIK8_BYTES", len(data))
    (train, val), _ = load_wp(split=(50, 50, 0))
    assert bytes(train.tolist()) + bytes(val.tolist()) == data and (cache / "enwik8.gz").exists()


def test_load_wp_reads_the_one_file_of_a_zip_archive(tmp_path):
    """enwik8's usual download is enwik8.zip: its compressed bytes used to be trained on."""
    import zipfile

    data = bytes(range(256)) * 2
    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("enwik8", data)
    (train, val), _ = load_wp(path=tmp_path / "enwik8.zip", split=(50, 50, 0))
    assert bytes(train.tolist()) + bytes(val.tolist()) == data
    with zipfile.ZipFile(tmp_path / "in_a_folder.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.mkdir("enwik8")                          # a folder entry is not a file of the archive
        archive.writestr("enwik8/enwik8", data)
    (train, val), _ = load_wp(path=tmp_path / "in_a_folder.zip", split=(50, 50, 0))
    assert bytes(train.tolist()) + bytes(val.tolist()) == data
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        archive.writestr("a", b"1")
        archive.writestr("b", b"2")
    with zipfile.ZipFile(tmp_path / "none.zip", "w") as archive:
        archive.mkdir("empty")
    zipfile.ZipFile(tmp_path / "empty.zip", "w").close()   # no member header: the archive begins with its end record
    for name, files in (("two.zip", 2), ("none.zip", 0), ("empty.zip", 0)):
        with pytest.raises(CorruptFileError, match=f"zip archive of {files} files"):
            load_wp(path=tmp_path / name)
    whole = (tmp_path / "enwik8.zip").read_bytes()
    flipped = bytearray(whole)
    flipped[30 + len("enwik8")] ^= 0xFF                  # the deflate stream's first byte: a zlib.error
    for damaged_zip in (whole[: len(whole) // 2], bytes(flipped)):     # cut short (BadZipFile), damaged
        (tmp_path / "damaged.zip").write_bytes(damaged_zip)
        with pytest.raises(CorruptFileError, match="damaged.zip is not a complete zip archive"):
            load_wp(path=tmp_path / "damaged.zip")


def test_an_html_page_cached_as_the_imdb_pickle_is_named_and_deleted(server, cache, monkeypatch, tmp_path):
    page = b"\n  <html>Not found</html>"                   # leading blank space, as many servers send
    monkeypatch.setattr(minitx.data.imdb, "IMDB_URL", server.serve("imdb-html.pkl", page))
    with pytest.raises(CorruptFileError, match="not a complete pickle.*HTML page.*deleted"):
        load_imdb()
    assert leftovers(cache) == []                     # the next call downloads afresh instead of failing again
    tsv = tmp_path / "reviews.tsv"
    tsv.write_text("train\t1\t0\ta fine film\n")
    with pytest.raises(CorruptFileError, match="tab-separated text: read the raw reviews with .*load_imdb_raw"):
        load_imdb(path=tsv)


def test_a_tilde_in_the_cache_variable_or_a_path_means_home(tmp_path, monkeypatch):
    """MINITX_DATA='~/data' (quoted, so the shell keeps the ~) made a folder named '~' in the working one."""
    from minitx.data.download import cache_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MINITX_DATA", "~/mtx")
    assert cache_dir() == tmp_path / "mtx"
    (tmp_path / "mine.bin").write_bytes(b"1")
    assert fetch("http://127.0.0.1:9/unused", path="~/mine.bin") == tmp_path / "mine.bin"


class Exploit:
    """Unpickling this would run a shell command (if the unpickler let it name os.system)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_malicious_pickle_is_refused_without_running(server, cache, tmp_path, monkeypatch, protocol):
    marker = tmp_path / "pwned"
    evil = pickle.dumps((Exploit(marker), {}, [], {}), protocol=protocol)
    monkeypatch.setattr(minitx.data.imdb, "IMDB_URL", server.serve(f"evil{protocol}.pkl.gz", gzip.compress(evil)))
    with pytest.raises(UnsafePickleError, match="system"):
        load_imdb()
    assert not marker.exists(), "the pickle's payload must not run"


@pytest.mark.parametrize("content", [b"", pickle.dumps(TINY_IMDB, protocol=0)[:50], b"\x80\x09not a pickle"],
                         ids=["empty", "cut-short", "unknown-protocol"])      # EOFError, EOFError, ValueError
def test_a_file_that_is_no_whole_pickle_is_a_corrupt_file_error(tmp_path, content):
    path = tmp_path / "data.pkl"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError, match="data.pkl is not a complete pickle.*replace the file"):
        load_pickle(path)


def test_any_class_is_refused_even_harmless_ones():
    with pytest.raises(UnsafePickleError, match="collections.OrderedDict"):
        safe_loads(pickle.dumps(__import__("collections").OrderedDict(a=1)))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_round_trips(protocol):
    data = ({"train": [[1, 2], []], "test": [[3]]}, [0, 1.5, None, True, "é"], ("a", -(2**70)))
    assert safe_loads(pickle.dumps(data, protocol=protocol)) == data
