"""``--help`` of every command: example commands stay on their own lines, defaults show where there is one."""

import argparse
import re

import pytest

from minitx.__main__ import COMMANDS, main
from minitx.cli import HelpFormatter


def test_help_keeps_description_lines_and_shows_only_real_defaults():
    parser = argparse.ArgumentParser(description="Examples:\n    run one\n    run two", formatter_class=HelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="steps")
    parser.add_argument("--threads", type=int, default=None, help="threads")
    parser.add_argument("--lr", type=float, default=0.1, help="rate (default: a tenth)")
    parser.add_argument("--resume", action="store_true", help="go on")
    text = parser.format_help()
    assert "    run one\n    run two" in text
    assert "steps (default: 5)" in text
    assert "(default: None)" not in text and "(default: False)" not in text and text.count("default") == 2


@pytest.mark.parametrize("command", COMMANDS)
def test_no_command_help_prints_a_default_twice_or_an_empty_one(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())       # argparse wraps lines: compare word sequences
    assert "(default: None)" not in text and "(default: False)" not in text
    assert not re.search(r"\(default:[^()]*\) \(default:", text)   # "(default: x) (default: y)"


@pytest.mark.parametrize("command", ["classify", "lm"])
def test_threads_below_one_is_a_clear_error(command, capsys):
    assert main([command, "--threads", "0"]) == 2
    assert "--threads must be at least 1, got 0" in capsys.readouterr().err
