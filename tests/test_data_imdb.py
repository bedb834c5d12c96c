"""IMDb loaders: the real course file (when present), small generated files, and the raw-review builders."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import random
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from minitx.data import SPECIALS, CorruptFileError, load_imdb, load_imdb_raw, tokenize

SHARED_DATA = Path(__file__).parents[2] / "shared" / "data"
REAL_PICKLE = SHARED_DATA / "imdb.word.pkl.gz"
REAL_TSV = SHARED_DATA / "aclImdb_v1_labelled.tsv.gz"


def pairs(x, y) -> Counter:
    """The instances as a multiset of (sequence, label), independent of order."""
    return Counter(zip(map(tuple, x), y, strict=True))


def check_layout(data, n_train: int, n_held_out: int) -> None:
    (x_train, y_train), (x_val, y_val), (i2w, w2i), numcls = data
    assert numcls == 2 and tuple(i2w[:4]) == SPECIALS
    assert all(w2i[w] == i for i, w in enumerate(i2w)) and len(w2i) == len(i2w)
    for x, y, n in ((x_train, y_train, n_train), (x_val, y_val, n_held_out)):
        assert len(x) == len(y) == n
        assert type(x) is list and type(x[0]) is list and type(x[0][0]) is int and type(y[0]) is int
        assert set(y) <= {0, 1}
        lengths = [len(s) for s in x]
        assert lengths == sorted(lengths), "sequences must be sorted short to long"
        assert max(w for s in x for w in s) < len(i2w)


# --- the real course file, loaded once per module --------------------------------------------------------

@pytest.fixture(scope="module")
def real():
    if not REAL_PICKLE.exists():
        pytest.skip(f"{REAL_PICKLE} not present")
    return {final: load_imdb(final=final, path=REAL_PICKLE) for final in (False, True)}


def test_real_layout_and_sizes(real):
    check_layout(real[False], 20_000, 5_000)
    check_layout(real[True], 25_000, 25_000)
    i2w = real[True][2][0]
    assert len(i2w) == 162_305 and i2w[4:7] == ["the", "and", "a"]
    (_, y_train), (_, y_test), _, _ = real[True]
    assert Counter(y_train) == Counter(y_test) == {0: 12_500, 1: 12_500}


def test_real_labels_follow_the_sequences_when_sorting(real):
    # The file's review that starts "this movie is terrible" is negative (1) in the course's labels.
    (x_train, y_train), _, (i2w, _), _ = real[True]
    opening = ["this", "movie", "is", "terrible", "but", "it", "has", "some", "good", "effects"]
    labels = {y for x, y in zip(x_train, y_train, strict=True) if [i2w[w] for w in x[:10]] == opening}
    assert labels == {1}


def test_real_validation_split_partitions_the_training_set(real):
    (x_train, y_train), (x_val, y_val), _, _ = real[False]
    (x_full, y_full), _, _, _ = real[True]
    assert pairs(x_train, y_train) + pairs(x_val, y_val) == pairs(x_full, y_full)


@pytest.mark.skipif(not REAL_TSV.exists(), reason=f"{REAL_TSV} not present")
def test_tokenize_reproduces_the_course_pickle_on_a_sample_of_real_reviews(real):
    (x_train, y_train), _, (_, w2i), _ = real[True]
    instances = set(zip(map(tuple, x_train), y_train, strict=True))
    rows = [line.split("\t", 3) for line in gzip.open(REAL_TSV, "rt", encoding="utf-8")]
    sample = [row for row in random.Random(0).sample(rows, 1000) if row[0] == "train"]
    assert len(sample) > 400
    for _, label, _, text in sample:
        assert (tuple(w2i[w] for w in tokenize(text)), int(label == "neg")) in instances


@pytest.mark.slow
@pytest.mark.skipif(not (REAL_TSV.exists() and REAL_PICKLE.exists()), reason="real IMDb files not present")
@pytest.mark.skipif(os.environ.get("MINITX_SHORT") == "1", reason="tokenising 50k reviews takes 10-20 s")
def test_raw_tsv_reproduces_the_course_pickle(real):
    (x_train, y_train), (x_test, y_test), (i2w, _), _ = load_imdb_raw(REAL_TSV, final=True)
    (x_train_p, y_train_p), (x_test_p, y_test_p), (i2w_p, _), _ = real[True]
    assert i2w == i2w_p
    assert pairs(x_train, y_train) == pairs(x_train_p, y_train_p)
    assert pairs(x_test, y_test) == pairs(x_test_p, y_test_p)


# --- small generated files ----------------------------------------------------------------------------------

WORDS = ["good", "bad", "film", "plot", "actor", "boring", "great", "scene"]


def review_text(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(1, 25))
    return " ".join(w.upper() if rng.random() < 0.2 else w for w in words) + " 10/10!<br />"


@pytest.fixture(scope="module")
def reviews():
    """(split, label, id, text) for 60 train and 40 test reviews, every review distinct."""
    rng, rows, seen = random.Random(1), [], set()
    while len(rows) < 100:
        text = review_text(rng)
        if tuple(tokenize(text)) not in seen:
            seen.add(tuple(tokenize(text)))
            split = "train" if len(rows) < 60 else "test"
            rows.append((split, rng.choice(["pos", "neg"]), f"{len(rows)}_{rng.randint(1, 10)}", text))
    return rows


@pytest.fixture(scope="module")
def tsv(reviews, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("imdb") / "reviews.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("split\tlabel\tid\ttext\n")  # a header row, which the loader skips
        f.writelines("\t".join(row) + "\n" for row in reviews)
    return path


@pytest.fixture(scope="module")
def course_pickle(reviews, tmp_path_factory) -> Path:
    """The same reviews in the course's pickle layout, built here independently of the loaders.

    Stored in (split, label, id) order, the canonical order the raw loader uses, so that seeded
    validation splits of the two files pick the same reviews.
    """
    reviews = sorted(reviews)
    counts = Counter(w for *_, text in reviews for w in tokenize(text))
    i2w = list(SPECIALS) + sorted(counts, key=lambda w: (-counts[w], w))
    w2i = {w: i for i, w in enumerate(i2w)}
    sequences = {s: [[w2i[w] for w in tokenize(r[3])] for r in reviews if r[0] == s] for s in ("train", "test")}
    labels = {s: [int(r[1] == "neg") for r in reviews if r[0] == s] for s in ("train", "test")}
    path = tmp_path_factory.mktemp("imdb") / "imdb.word.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps((sequences, labels, i2w, w2i))))
    return path


def test_tokenize_follows_the_assignment():
    assert tokenize("A <br /><br />GREAT film: 10/10,don't miss it!") == ["a", "great", "film", "dont", "miss", "it"]
    assert tokenize("line<br />break") == ["line", "break"]


LAYOUT = r"expected \(sequences, labels, i2w, w2i\)"


@pytest.mark.parametrize(("damage", "message"), [
    (lambda s, y, i2w, w2i: (s, [y["train"], y["test"]], i2w, w2i), "labels must be a dict of splits and i2w a list"),
    (lambda s, y, i2w, w2i: (s, {**y, "train": y["train"][:-1]}, i2w, w2i), "sequences but"),
    (lambda s, y, i2w, w2i: ({**s, "test": [*s["test"], [len(i2w)]]}, {**y, "test": [*y["test"], 0]}, i2w, w2i),
     "word indices [0-9]+..[0-9]+ in test, but i2w has"),
    (lambda s, y, i2w, w2i: ({**s, "test": [*s["test"], [-1]]}, {**y, "test": [*y["test"], 0]}, i2w, w2i),
     "word indices -1.."),
    (lambda s, y, i2w, w2i: (s, {**y, "train": [2, *y["train"][1:]]}, i2w, w2i), r"train labels \[2\] outside 0..1"),
    (lambda s, y, i2w, w2i: (s, y, i2w[4:], w2i), LAYOUT),                          # every index off by four
    (lambda s, y, i2w, w2i: ({"train": s["train"]}, y, i2w, w2i), LAYOUT),          # a KeyError later
    (lambda s, y, i2w, w2i: (s, y, i2w), LAYOUT),                                   # "not enough values"
    (lambda s, y, i2w, w2i: ([s["train"], s["test"]], y, i2w, w2i), LAYOUT),        # an AttributeError
], ids=["labels-a-list", "a-label-short", "index-past-i2w", "negative-index", "label-2", "i2w-without-specials",
        "no-test-split", "three-parts", "sequences-a-list"])
def test_a_pickle_with_the_wrong_contents_is_named_not_a_crash_in_training(course_pickle, tmp_path, damage,
                                                                           message):
    """Labels as a list, fewer labels than reviews, a word index past i2w: a TypeError or IndexError later."""
    sequences, labels, i2w, w2i = pickle.loads(gzip.decompress(course_pickle.read_bytes()))
    path = tmp_path / "damaged.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(damage(sequences, labels, i2w, w2i))))
    with pytest.raises(ValueError, match=f"Not an IMDb pickle: .*{message}"):
        load_imdb(path=path)


def test_generated_pickle_layout_and_split_sizes(course_pickle):
    check_layout(load_imdb(final=True, path=course_pickle), 60, 40)
    check_layout(load_imdb(final=False, val=15, path=course_pickle), 45, 15)
    for val in (0, 60):                                  # an empty validation set, or an empty training set
        with pytest.raises(ValueError, match=f"val must be between 1 and 59 .*got {val}"):
            load_imdb(val=val, path=course_pickle)


def test_sorting_keeps_equal_length_reviews_in_the_files_order(course_pickle):
    """Sorting short to long is stable, as the course's loader is (Python's sorted): the same file gives the
    course's order, and so the same batches, even among reviews of equal length."""
    sequences, labels, _, _ = pickle.loads(gzip.decompress(course_pickle.read_bytes()))
    (x_train, y_train), _, _, _ = load_imdb(final=True, path=course_pickle)
    expected = sorted(zip(sequences["train"], labels["train"], strict=True), key=lambda pair: len(pair[0]))
    assert len({len(x) for x in x_train}) < len(x_train), "the file must hold reviews of equal length"
    assert list(zip(x_train, y_train, strict=True)) == expected


def test_validation_split_is_disjoint_complete_and_seeded(course_pickle):
    (x_full, y_full), _, _, _ = load_imdb(final=True, path=course_pickle)
    splits = {seed: load_imdb(val=15, seed=seed, path=course_pickle) for seed in (0, 0, 1)}
    (x_train, y_train), (x_val, y_val), _, _ = splits[0]
    assert not set(map(tuple, x_train)) & set(map(tuple, x_val))
    assert pairs(x_train, y_train) + pairs(x_val, y_val) == pairs(x_full, y_full)
    assert load_imdb(val=15, seed=0, path=course_pickle) == splits[0]
    assert splits[1][1] != splits[0][1], "another seed must give another validation set"


def test_voc_keeps_the_most_frequent_words_and_maps_the_rest_to_unk(course_pickle):
    full = load_imdb(final=True, path=course_pickle)
    cut = load_imdb(final=True, voc=7, path=course_pickle)
    (i2w, _), (i2w_cut, w2i_cut) = full[2], cut[2]
    assert i2w_cut == i2w[:7] and len(w2i_cut) == 7
    for part in (0, 1):
        for seq, seq_cut in zip(full[part][0], cut[part][0], strict=True):
            assert [i2w_cut[w] for w in seq_cut] == [i2w[w] if w < 7 else ".unk" for w in seq]
    with pytest.raises(ValueError, match=r"vocabulary size \(voc, --vocab\) must be at least 4"):
        load_imdb(voc=3, path=course_pickle)


def test_raw_tsv_matches_the_pickle(course_pickle, tsv):
    for final in (False, True):
        assert load_imdb_raw(tsv, final=final, val=15) == load_imdb(final=final, val=15, path=course_pickle)


def test_the_classifier_loader_reads_the_raw_reviews_by_their_name(course_pickle, tsv, tmp_path, monkeypatch):
    """--path took the pickle only: a TSV was refused with a hint at a function the command line lacks."""
    from minitx.classify import load_dataset
    assert load_dataset("imdb", path=tsv, final=True) == load_dataset("imdb", path=course_pickle, final=True)
    plain = tmp_path / "reviews.tsv"
    plain.write_bytes(gzip.decompress(tsv.read_bytes()))
    assert (load_dataset("imdb", path=plain, final=True, vocab=6)
            == load_dataset("imdb", path=course_pickle, final=True, vocab=6))
    monkeypatch.setenv("HOME", str(tmp_path))                     # a ~ path, as Python callers write it
    assert load_dataset("imdb", path="~/reviews.tsv", final=True) == load_dataset("imdb", path=plain, final=True)
    with pytest.raises(ValueError, match="for the course's pickle give the file itself"):
        load_dataset("imdb", path=course_pickle.parent)           # the folder holding the pickle


def test_raw_folder_tarball_and_tsv_agree(reviews, tsv, tmp_path):
    folder = tmp_path / "aclImdb"
    tarball = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for split, label, review_id, text in reversed(reviews):  # a different order on purpose
            file = folder / split / label / f"{review_id}.txt"
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text, encoding="utf-8")
            info = tarfile.TarInfo(f"aclImdb/{split}/{label}/{review_id}.txt")
            info.size = len(text.encode("utf-8"))
            tar.addfile(info, io.BytesIO(text.encode("utf-8")))
    (folder / "train" / "unsup").mkdir()
    (folder / "train" / "unsup" / "99_0.txt").write_text("unlabelled reviews are skipped")
    expected = load_imdb_raw(tsv, val=15)
    assert load_imdb_raw(folder, val=15) == expected
    assert load_imdb_raw(tarball, val=15) == expected


def test_a_tarball_cut_short_is_an_error_not_fewer_reviews(reviews, tmp_path):
    """A plain .tar cut at a member boundary loaded with no train reviews at all; a cut .tar.gz raised a bare
    EOFError that did not name the file."""
    def tarball(name: str, mode: str, members) -> Path:
        with tarfile.open(tmp_path / name, mode) as tar:
            for split, label, review_id, text in members:
                info = tarfile.TarInfo(f"aclImdb/{split}/{label}/{review_id}.txt")
                info.size = len(text.encode("utf-8"))
                tar.addfile(info, io.BytesIO(text.encode("utf-8")))
        return tmp_path / name

    test_only = tarball("test-only.tar", "w", [r for r in reviews if r[0] == "test"])
    with pytest.raises(ValueError, match="has no train reviews"):
        load_imdb_raw(test_only, final=True)
    train_only = tarball("train-only.tar", "w", [r for r in reviews if r[0] == "train"])
    load_imdb_raw(train_only, val=15)                                   # the validation split needs no test
    with pytest.raises(ValueError, match="has no test reviews"):        # final=True evaluated on nothing
        load_imdb_raw(train_only, final=True)
    plain = tarball("whole.tar", "w", reviews).read_bytes()
    with tarfile.open(tmp_path / "whole.tar") as tar:
        middle = tar.getmembers()[len(reviews) // 2].offset           # where a member's header begins
    for cut in (middle, middle + 100):                                  # between two members, inside a header
        (tmp_path / "cut.tar").write_bytes(plain[:cut])
        with pytest.raises(CorruptFileError, match="cut.tar is not a complete tar archive"):
            load_imdb_raw(tmp_path / "cut.tar")
    whole = tarball("whole.tar.gz", "w:gz", reviews).read_bytes()
    assert load_imdb_raw(tmp_path / "whole.tar", val=15) == load_imdb_raw(tmp_path / "whole.tar.gz", val=15)
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(CorruptFileError, match="cut.tar.gz is not a complete tar archive"):
        load_imdb_raw(tmp_path / "cut.tar.gz")


def test_raw_tsv_keeps_unusual_line_breaks_inside_a_review_and_skips_blank_lines(tmp_path):
    """Only "\n" ends a row: U+2028, \x85 and form feeds are characters of the review (tokenize drops them)."""
    path = tmp_path / "odd.tsv"
    path.write_text("train\tpos\t0_9\tgood\u2028film\x85really\x0cgood\r\n\n  \ntest\tneg\t1_2\tbad film\n\n",
                    encoding="utf-8")
    (x_train, _), (x_test, _), (i2w, _), _ = load_imdb_raw(path, final=True)
    assert [[i2w[w] for w in seq] for seq in x_train] == [["good", "film", "really", "good"]]
    assert [[i2w[w] for w in seq] for seq in x_test] == [["bad", "film"]]
    path.write_text("train\tpos\tno text column\n")
    with pytest.raises(ValueError, match="line 1: expected 4 tab-separated columns"):
        load_imdb_raw(path)


def test_raw_tsv_saved_with_a_byte_order_mark_reads_its_header(tmp_path):
    """Spreadsheet programs save UTF-8 with a byte-order mark: the header was read as split '\ufeffsplit'."""
    path = tmp_path / "bom.tsv"
    path.write_text("split\tlabel\tid\ttext\ntrain\tpos\t0_9\tgood film\ntest\tneg\t1_2\tbad\n",
                    encoding="utf-8-sig")
    (x_train, y_train), _, (i2w, _), _ = load_imdb_raw(path, final=True)
    assert [[i2w[w] for w in seq] for seq in x_train] == [["good", "film"]] and list(y_train) == [0]


def test_raw_tsv_with_unknown_labels_is_refused(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("train\t1\t0_1\tsome text\n")
    with pytest.raises(ValueError, match="line 1"):
        load_imdb_raw(path)
