"""Every example script starts: its imports resolve and ``--help`` describes its flags (the runs themselves are
measured in the docs; they take minutes to hours). The two scripts without flags (Q10, Q11) take a second
and also run whole."""

import argparse
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if p.name != "common.py")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_answers_help(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    monkeypatch.syspath_prepend(str(EXAMPLES))                 # the scripts import examples/common.py
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(script), run_name="__main__")
    assert exit_info.value.code == 0, f"{script.name} ran instead of printing --help"
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("script, expected", [
    ("q10_slices.py", "a batch of 4 windows of 32 characters"),
    ("q11_model.py", "positions 0-39 do not see position 40: ok"),
])
def test_the_scripts_without_flags_run_whole(script, expected, monkeypatch, capsys):
    """Q10 and Q11 take a second: they run whole, and their own checks (asserts inside) pass."""
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / script)])
    monkeypatch.syspath_prepend(str(EXAMPLES))
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert expected in capsys.readouterr().out


@pytest.mark.parametrize("script, flags", [
    ("q01_padding.py", []),
    ("q02_baseline_model.py", []),
    ("q05_tuned_simple.py", ["--data", "imdb"]),          # --data-path was ignored: it went for the download
    ("q09_transformer.py", []),
])
def test_the_imdb_scripts_read_data_path_and_stop_with_one_line_when_it_is_missing(script, flags, tmp_path,
                                                                                    monkeypatch):
    """A missing file was a traceback; the library's message (what is missing, what to do) is enough."""
    missing = tmp_path / "imdb.word.pkl.gz"
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / script), *flags, "--data-path", str(missing)])
    monkeypatch.syspath_prepend(str(EXAMPLES))
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert str(exit_info.value.code) == f"error: No data file at {missing}"


def test_examples_pass_their_data_options_to_the_imdb_loader(monkeypatch, tmp_path):
    """q03/q04/q05 ask for vocab=20_000 on IMDb."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import common
    calls = []
    monkeypatch.setattr(common, "load_dataset", lambda name, **kw: calls.append((name, kw)))
    common.dataset("imdb", argparse.Namespace(data_path=tmp_path / "imdb.word.pkl.gz", ntrain=10), vocab=6)
    assert calls == [("imdb", {"path": tmp_path / "imdb.word.pkl.gz", "vocab": 6})]


def test_examples_stop_with_one_line_on_a_folder_without_reviews(monkeypatch, tmp_path):
    """A ValueError of the loader (here: an empty folder given as the raw reviews) is a one-line exit too."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import common
    with pytest.raises(SystemExit) as exit_info:
        common.dataset("imdb", argparse.Namespace(data_path=tmp_path, ntrain=10))
    assert str(exit_info.value.code).startswith(f"error: No labelled train/test reviews found in {tmp_path}")


def test_q05_on_imdb_trains_and_prints_the_token_budget_it_uses(monkeypatch):
    """The IMDb line printed 'batch 64' while the batches were a 16,384-token budget (the batch size unused)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import common
    runs = []
    monkeypatch.setattr(common, "dataset", lambda name, args, **options: None)
    monkeypatch.setattr(common, "experiment", lambda label, data, kind, settings, seeds, **model:
                        runs.append((label, settings)))
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / "q05_tuned_simple.py"), "--data", "imdb", "--depths", "1"])
    runpy.run_path(str(EXAMPLES / "q05_tuned_simple.py"), run_name="__main__")
    [(label, settings)] = runs
    assert (settings.tokens, settings.max_len, settings.lr) == (16_384, 256, 1e-3)
    assert "'tokens': 16384" in label and "batch" not in label
