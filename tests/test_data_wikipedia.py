"""load_wp on local byte files (the download path is tested in test_data_download.py)."""

from __future__ import annotations

import gzip

import pytest
import torch

from minitx.data import lm_batch, load_wp

DATA = bytes(range(256)) * 8 + "naïve café\n".encode()  # 2060 bytes, some of them multi-byte UTF-8


@pytest.mark.parametrize("compress", [False, True])
def test_load_wp_splits_a_local_byte_file(tmp_path, compress):
    path = tmp_path / ("enwik.gz" if compress else "enwik")
    path.write_bytes(gzip.compress(DATA) if compress else DATA)
    (train, val), (i2t, t2i) = load_wp(path)
    n_train, n_val = len(DATA) * 90 // 100, len(DATA) * 5 // 100
    assert train.dtype == val.dtype == torch.uint8
    assert bytes(train.tolist()) == DATA[:n_train] and bytes(val.tolist()) == DATA[n_train:n_train + n_val]
    (train_final, test), _ = load_wp(path, final=True)
    assert bytes(train_final.tolist()) == DATA[:n_train + n_val] and bytes(test.tolist()) == DATA[n_train + n_val:]
    assert len(i2t) == 256 and all(t2i[t] == i for i, t in enumerate(i2t)) and i2t[ord("a")] == "a"
    inputs, targets = lm_batch(train, 4, 16)
    assert inputs.dtype == targets.dtype == torch.long


def test_load_wp_rejects_a_bad_split(tmp_path):
    (tmp_path / "f").write_bytes(DATA)
    with pytest.raises(ValueError, match="split"):
        load_wp(tmp_path / "f", split=(90, 10))
    # NaN, inf: "cannot convert float NaN to integer"; all zero: a ZeroDivisionError; a negative part: odd slices
    for bad in ((float("nan"), 1, 1), (float("inf"), 1, 1), (0, 0, 0), (-10, 60, 50)):
        with pytest.raises(ValueError, match="split must be three non-negative proportions"):
            load_wp(tmp_path / "f", split=bad)
