"""What a mutation review found unchecked in the vocabulary, IMDb and download code."""

import gzip
import hashlib
import pickle
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minitx.data import SPECIALS, load_imdb, load_imdb_raw
from minitx.data.download import fetch
from minitx.data.vocab import vocab_from_counts, vocab_from_symbols

words = st.text(alphabet="abcde", min_size=1, max_size=3)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(words, st.integers(1, 4), min_size=1, max_size=25), st.randoms(use_true_random=False))
def test_vocabulary_ties_are_alphabetical_whatever_the_counting_order(counts, rng):
    """Words of equal frequency must be ordered alphabetically (as the course's pickle is), not in the order
    the Counter first saw them. Reference: a word's index is 4 + the number of words ranked before it."""
    items = list(counts.items())
    rng.shuffle(items)                                       # insertion order unrelated to the words
    i2w, w2i = vocab_from_counts(Counter(dict(items)))
    assert tuple(i2w[:4]) == SPECIALS
    for w, c in counts.items():
        before = sum(1 for v, d in counts.items() if d > c or (d == c and v < w))
        assert w2i[w] == len(SPECIALS) + before, w


def test_specials_among_the_symbols_appear_once_in_front():
    """A symbol list holding '.pad' made a second '.pad' entry and pointed w2i['.pad'] past the specials."""
    for i2w, w2i in (vocab_from_symbols(["b", ".pad", "a", ".unk"]),
                     vocab_from_counts(Counter({".pad": 9, "b": 1, "a": 1, ".unk": 2}))):
        assert i2w == [*SPECIALS, "a", "b"]
        assert [w2i[s] for s in SPECIALS] == [0, 1, 2, 3] and len(w2i) == len(i2w)


def _pickle(tmp_path, n_train=12, n_test=9):
    """A course-layout pickle whose every review is distinct, with labels not all equal."""
    rng = random.Random(0)
    i2w = [*SPECIALS, "good", "bad", "film", "plot"]
    seqs = {s: [[4 + (i >> k) % 4 for k in range(0, 2 * (1 + i % 3), 2)] + [4 + i % 4] * (i // 4) for i in range(n)]
            for s, n in (("train", n_train), ("test", n_test))}
    labels = {s: [rng.randint(0, 1) for _ in seqs[s]] for s in seqs}
    path = tmp_path / "imdb.word.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps((seqs, labels, i2w, {w: i for i, w in enumerate(i2w)}))))
    return path, seqs, labels


def test_final_pairs_the_test_reviews_with_their_own_labels(tmp_path):
    """final=True must return the test split with the test labels, each label still beside its review after
    sorting; the layout checks (sizes, labels in {0, 1}) passed with the training labels in their place."""
    path, seqs, labels = _pickle(tmp_path)
    (x_train, y_train), (x_test, y_test), _, _ = load_imdb(final=True, path=path)

    def pairs(x, y):
        return Counter(zip(map(tuple, x), y, strict=True))

    assert pairs(x_train, y_train) == pairs(seqs["train"], labels["train"])
    assert pairs(x_test, y_test) == pairs(seqs["test"], labels["test"])


def test_a_header_row_is_skipped_only_as_the_first_line(tmp_path):
    """'split\\tlabel' on a later line is a damaged row, not a second header to skip in silence."""
    tsv = tmp_path / "reviews.tsv"
    tsv.write_text("train\tpos\t1\tgood film\ntrain\tneg\t2\tbad plot\nsplit\tlabel\tid\ttext\n"
                   "test\tpos\t3\tgood\n")
    with pytest.raises(ValueError, match="line 3"):
        load_imdb_raw(tsv, final=True)


def test_an_upper_case_sha256_matches(tmp_path, monkeypatch):
    """A checksum pasted in upper case (certutil, some web pages) flagged a good cached file as damaged and
    deleted it."""
    monkeypatch.setenv("MINITX_DATA", str(tmp_path))
    body = b"some data"
    (tmp_path / "file.bin").write_bytes(body)
    digest = hashlib.sha256(body).hexdigest()
    for given_digest in (digest, digest.upper()):
        assert fetch("http://example.invalid/file.bin", sha256=given_digest) == tmp_path / "file.bin"
    assert (tmp_path / "file.bin").read_bytes() == body
