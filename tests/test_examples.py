"""Every example script starts: its imports resolve and ``--help`` describes its flags (the runs themselves are
measured in the docs; they take minutes to hours). The two scripts without flags (Q10, Q11) take a second
and run whole."""

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
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_info:
        assert exit_info.code == 0
        assert "usage:" in capsys.readouterr().out
    else:
        assert script.name in ("q10_slices.py", "q11_model.py"), f"{script.name} ran instead of printing --help"
