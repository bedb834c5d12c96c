"""IMDb sentiment data: the course's preprocessed pickle, or the same built from the raw reviews.

Both loaders return ``(x_train, y_train), (x_val, y_val), (i2w, w2i), numcls``: ``x`` a python list of
lists of word indices sorted short to long, ``y`` the labels (0 = positive, 1 = negative) in the same order.
"""

from __future__ import annotations

import os
import re
import tarfile
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from minitx.data.download import GZIP_MAGIC, CorruptFileError, damaged, fetch, read_bytes
from minitx.data.safe_pickle import load_pickle
from minitx.data.splits import Sequences, sort_by_length, validation_split
from minitx.data.vocab import SPECIALS, UNK, vocab_from_counts

IMDB_URL = "http://dlvu.github.io/data/imdb.word.pkl.gz"
NUM_CLASSES = 2
LABELS = {"pos": 0, "neg": 1}
SPLITS = ("train", "test")

Split = tuple[Sequences, list[int]]
ClassificationData = tuple[Split, Split, tuple[list[str], dict[str, int]], int]

_NON_LETTERS = re.compile(r"[^a-z\s]")
# A review inside the aclImdb folder or tarball: <...>/train|test/pos|neg/<id>.txt (train/unsup is skipped).
_REVIEW_PATH = re.compile(r"(?:^|/)(train|test)/(pos|neg)/([^/]+)\.txt$")


def load_imdb(final: bool = False, val: int = 5000, seed: int = 0, voc: int | None = None,
              path: str | os.PathLike | None = None) -> ClassificationData:
    """The course's word-level IMDb data (``imdb.word.pkl.gz``), downloaded unless ``path`` is given.

    ``final=True``: the canonical 25k train / 25k test split. ``final=False``: ``val`` training reviews,
    drawn with ``seed``, become the validation set. ``voc`` keeps the ``voc`` most frequent entries of the
    vocabulary (the 4 specials included) and maps every other word to ``.unk``.
    """
    data = load_pickle(fetch(IMDB_URL, path))
    if not (isinstance(data, tuple | list) and len(data) == 4 and isinstance(data[0], dict)
            and set(SPLITS) <= data[0].keys() and list(data[2][:len(SPECIALS)]) == list(SPECIALS)):
        raise ValueError("Not an IMDb pickle: expected (sequences, labels, i2w, w2i) with sequences = "
                         f"{{'train': ..., 'test': ...}} and i2w starting with {SPECIALS}.")
    sequences, labels, i2w, _ = data
    _check_pickle_contents(sequences, labels, i2w)
    return _prepare(sequences, labels, list(i2w), final, val, seed, voc)


def _check_pickle_contents(sequences: dict, labels: dict, i2w: list) -> None:
    """What would otherwise fail later as a TypeError or an IndexError deep in training."""
    if not (isinstance(labels, dict) and isinstance(i2w, list | tuple)):
        raise ValueError(f"Not an IMDb pickle: labels must be a dict of splits and i2w a list, got "
                         f"{type(labels).__name__} and {type(i2w).__name__}")
    for split in SPLITS:
        if len(sequences[split]) != len(labels.get(split, ())):
            raise ValueError(f"Not an IMDb pickle: {len(sequences[split])} {split} sequences but "
                             f"{len(labels.get(split, ()))} labels")
        smallest = min((min(seq) for seq in sequences[split] if seq), default=0)
        largest = max((max(seq) for seq in sequences[split] if seq), default=0)
        if smallest < 0 or largest >= len(i2w):
            raise ValueError(f"Not an IMDb pickle: word indices {smallest}..{largest} in {split}, but i2w has "
                             f"{len(i2w)} words")
        outside = sorted(set(labels[split]) - set(range(NUM_CLASSES)))
        if outside:
            raise ValueError(f"Not an IMDb pickle: {split} labels {outside[:5]} outside 0..{NUM_CLASSES - 1}")


def tokenize(text: str) -> list[str]:
    """The course's crude tokenizer: drop ``<br />`` markup, lowercase, drop non-letters, split on spaces."""
    return _NON_LETTERS.sub("", text.replace("<br />", " ").lower()).split()


def load_imdb_raw(path: str | os.PathLike, final: bool = False, val: int = 5000, seed: int = 0,
                  voc: int | None = None) -> ClassificationData:
    """IMDb built from the raw reviews, laid out as :func:`load_imdb` returns it.

    ``path``: the Stanford ``aclImdb`` folder, the ``aclImdb_v1.tar.gz`` tarball, or a TSV file (gzipped
    or not) with columns ``split, label, id, text`` (split ``train``/``test``, label ``pos``/``neg``; an
    optional header row is skipped). The vocabulary is counted over train and test together, specials
    first then by frequency (ties alphabetical), which reproduces the course's pickle.
    """
    # Sorting by (split, label, id) gives one canonical order, whichever form the reviews come in, so
    # the seeded validation split is the same for the folder, the tarball and the TSV.
    reviews = sorted(_read_reviews(Path(path)))
    if not reviews:
        raise ValueError(f"No labelled train/test reviews found in {path}" + (
            " (the aclImdb folder holds train/ and test/, each with pos/ and neg/; for the course's pickle give "
            "the file itself)" if Path(path).is_dir() else ""))
    for needed in ("train", "test") if final else ("train",):   # the validation split is drawn from train
        if not any(split == needed for split, *_ in reviews):
            raise ValueError(f"{path} has no {needed} reviews (a tarball cut short, or a folder or TSV "
                             f"without them?)")
    tokens = [tokenize(text) for _, _, _, text in reviews]
    counts: Counter[str] = Counter()
    for words in tokens:
        counts.update(words)  # per-list updates take Counter's C fast path
    i2w, w2i = vocab_from_counts(counts)
    sequences: dict[str, Sequences] = {split: [] for split in SPLITS}
    labels: dict[str, list[int]] = {split: [] for split in SPLITS}
    for (split, label, _, _), words in zip(reviews, tokens, strict=True):
        sequences[split].append(list(map(w2i.__getitem__, words)))
        labels[split].append(LABELS[label])
    return _prepare(sequences, labels, i2w, final, val, seed, voc)


def truncate_vocab(sequences: dict[str, Sequences], i2w: list[str],
                   voc: int) -> tuple[dict[str, Sequences], list[str]]:
    """Keep the first ``voc`` entries of a frequency-ordered ``i2w``; other indices become ``.unk``."""
    if voc < len(SPECIALS):
        raise ValueError(f"the vocabulary size (voc, --vocab) must be at least {len(SPECIALS)} (the special "
                         f"tokens), got {voc}")
    if voc >= len(i2w):
        return sequences, i2w
    truncated = {split: [[w if w < voc else UNK for w in seq] for seq in seqs]
                 for split, seqs in sequences.items()}
    return truncated, i2w[:voc]


def _prepare(sequences: dict[str, Sequences], labels: dict[str, list[int]], i2w: list[str], final: bool,
             val: int, seed: int, voc: int | None) -> ClassificationData:
    """Shared tail of both loaders: vocabulary truncation, the split, sorting by length."""
    if voc is not None:
        sequences, i2w = truncate_vocab(sequences, i2w, voc)
    x, y = sequences["train"], labels["train"]
    if final:
        train, held_out = (x, y), (sequences["test"], labels["test"])
    else:
        train_idx, val_idx = validation_split(len(x), val, seed)
        train = [x[i] for i in train_idx], [y[i] for i in train_idx]
        held_out = [x[i] for i in val_idx], [y[i] for i in val_idx]
    w2i = {w: i for i, w in enumerate(i2w)}
    return sort_by_length(*train), sort_by_length(*held_out), (i2w, w2i), NUM_CLASSES


def _read_reviews(path: Path) -> Iterator[tuple[str, str, str, str]]:
    """Yield ``(split, label, id, text)`` for every labelled review in a folder, tarball or TSV."""
    if path.is_dir():
        for file in path.rglob("*.txt"):
            match = _REVIEW_PATH.search(file.relative_to(path).as_posix())
            if match:
                yield *match.groups(), file.read_text(encoding="utf-8")
    elif tarfile.is_tarfile(path):
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in tar:
                    match = _REVIEW_PATH.search(member.name)
                    if match and member.isfile():
                        yield *match.groups(), tar.extractfile(member).read().decode("utf-8")
                end = tar.offset
        except (EOFError, tarfile.ReadError, zlib.error) as e:       # a download cut short
            raise CorruptFileError(damaged(path, f"is not a complete tar archive ({e or type(e).__name__})")) from e
        if _plain_tar_cut_short(path, end):
            raise CorruptFileError(damaged(path, "is not a complete tar archive (no end-of-archive blocks after "
                                                 "its last file: cut short?)"))
    else:
        yield from _read_tsv(read_bytes(path).decode("utf-8-sig"), path)   # -sig: drops a byte-order mark


def _plain_tar_cut_short(path: Path, end: int) -> bool:
    """A tar archive ends with two blocks of zeros after its last member (``end``); tarfile reads one cut
    between members, or inside a header, as complete. A compressed one cut short fails to decompress instead."""
    with open(path, "rb") as file:
        if file.read(6).startswith((GZIP_MAGIC, b"BZh", b"\xfd7zXZ")):       # gzip, bzip2, xz
            return False
        file.seek(end)
        return file.read(1024) != bytes(1024)


def _read_tsv(text: str, path: Path) -> Iterator[tuple[str, str, str, str]]:
    # split on "\n" only: str.splitlines would also cut a review at U+2028, \x85 or a form feed inside it
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue  # the final newline, or a blank line
        if line.count("\t") < 3:
            raise ValueError(f"{path}, line {number}: expected 4 tab-separated columns (split, label, id, text)")
        split, label, review_id, review = line.split("\t", 3)
        if number == 1 and (split, label) == ("split", "label"):
            continue  # a header row
        if split not in SPLITS or label not in LABELS:
            raise ValueError(f"{path}, line {number}: expected split in {SPLITS} and label in "
                             f"{tuple(LABELS)}, got {split!r}, {label!r}")
        yield split, label, review_id, review
