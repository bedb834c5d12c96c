"""README's main demo runs end to end (in its seconds-long form) and leaves a readable run folder."""

import json

import pytest

from minitx.__main__ import main


@pytest.mark.slow
def test_demo_trains_both_models_and_writes_a_run_folder(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "validation accuracy" in printed and "bits per character" in printed
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["series"]["val/bits"], "the character model logged no validation bits"
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_unknown_command_exits_with_usage_error():
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2
