"""README's main demo runs end to end (in its seconds-long form) and leaves a readable run folder."""

import json

import pytest

from minitx.__main__ import main


@pytest.mark.slow
def test_demo_trains_both_models_and_writes_a_run_folder(tmp_path, capsys, monkeypatch):
    import minitx.cli.demo
    checked, decode = [], minitx.cli.demo.decode          # what the grammar checks, as tokens
    monkeypatch.setattr(minitx.cli.demo, "decode",
                        lambda tokens, i2c: checked.append(len(tokens)) or decode(tokens, i2c))
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    assert checked == [30], "the grammar checks the model's 30 new characters, not the seed from the data too"
    printed = capsys.readouterr().out
    assert "validation accuracy" in printed and "bits per character" in printed
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["series"]["val/bits"], "the character model logged no validation bits"
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_unknown_command_exits_with_usage_error():
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2


def test_a_runtime_error_in_a_command_is_a_one_line_error_not_a_traceback(monkeypatch, capsys):
    """RuntimeError (no optuna, a CUDA failure, torch refusing an input) ends like OSError and ValueError: exit 2."""
    import minitx.cli.demo

    def fail(args):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(minitx.cli.demo, "run", fail)
    assert main(["demo"]) == 2
    assert capsys.readouterr().err == "minitx demo: error: CUDA error: out of memory\n"


def test_the_default_demo_folder_never_overwrites_an_earlier_run(tmp_path, capsys):
    """A second `python -m minitx demo` replaced the first's run folder; an --out holding a run is refused
    before the first part trains."""
    from minitx.cli.demo import fresh_run_folder

    base = tmp_path / "demo"
    assert fresh_run_folder(base) == base
    base.mkdir()
    (base / "metrics.json").write_text("{}")
    (tmp_path / "demo-2").mkdir()
    (tmp_path / "demo-2" / "checkpoint.pt").write_bytes(b"")
    assert fresh_run_folder(base) == tmp_path / "demo-3"
    (tmp_path / "demo-3").write_text("a file, not a folder")
    assert fresh_run_folder(base) == tmp_path / "demo-4"
    assert main(["demo", "--quick", "--out", str(base)]) == 2
    captured = capsys.readouterr()
    assert "already holds a run's metrics.json" in captured.err and "XOR" not in captured.out
    assert main(["demo", "--quick", "--minutes", "0"]) == 2
    assert "--minutes must be positive" in capsys.readouterr().err


def test_an_interrupted_demo_says_where_its_model_is_not_to_resume(tmp_path, monkeypatch):
    """The trainer's message says --resume continues the run; the demo has no --resume."""
    import minitx.cli.demo
    from minitx.lm_train import TrainingInterrupted

    def interrupted(*args, **kwargs):
        raise TrainingInterrupted("stopped at step 5, ... --resume ...")

    monkeypatch.setattr(minitx.cli.demo, "train_lm", interrupted)
    with pytest.raises(KeyboardInterrupt, match="sample --checkpoint .*checkpoint.pt` samples from it") as stop:
        minitx.cli.demo.lm_demo(tmp_path, minutes=1, quick=True)
    assert "--resume" not in str(stop.value)
