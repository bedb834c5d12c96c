"""The classify and tune commands: valid metrics.json, clear errors and non-zero exits on bad input."""

import json

import pytest

from minitx.__main__ import main

pytestmark = pytest.mark.usefixtures("one_thread")   # see conftest.py


BASE = ["--data", "xor", "--ntrain", "400", "--nval", "200", "--epochs", "2", "--quiet", "--device", "cpu"]
QUICK = [*BASE, "--emb", "8", "--lr", "1e-2", "--batch", "32"]    # tune searches these three: it takes BASE


def test_classify_writes_metrics_plot_and_checkpoint(tmp_path, capsys, monkeypatch):
    from minitx.tracking import RunLog
    plotted, plot = [], RunLog.plot
    monkeypatch.setattr(RunLog, "plot", lambda self, *a, **k: plotted.append(k) or plot(self, *a, **k))
    out = tmp_path / "run"
    assert main(["classify", *QUICK, "--model", "full", "--pool", "select", "--pos", "--heads", "2",
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2
    assert [e["val_accuracy"] for e in metrics["epochs"]][-1] == metrics["final_val_accuracy"]
    assert 0.0 <= metrics["final_val_accuracy"] <= 1.0 and metrics["final_val_loss"] > 0
    assert metrics["config"]["classifier"]["attention"] == "full"
    assert metrics["config"]["classifier"]["positions"] is True
    assert metrics["config"]["training"]["epochs"] == 2
    assert {"data", "model", "final", "vocab", "start_token"} <= metrics["config"].keys()
    assert metrics["wall_time_s"] > 0 and metrics["series"]["val/accuracy"]
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert plotted[0]["hlines"] == {"validation accuracy": (0.5, "chance")}        # the chance line on the plot
    assert (out / "model.pt").exists()
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["final_val_accuracy"] == round(metrics["final_val_accuracy"], 4)


def test_transformer_depth_defaults_to_three(tmp_path):
    out = tmp_path / "run"
    assert main(["classify", *QUICK, "--epochs", "1", "--model", "transformer", "--heads", "2",
                 "--out", str(out)]) == 0
    config = json.loads((out / "metrics.json").read_text())["config"]["classifier"]
    assert (config["depth"], config["blocks"], config["attention"]) == (3, True, "full")


def test_missing_data_file_is_a_clear_error(tmp_path, capsys):
    assert main(["classify", "--data", "imdb", "--path", str(tmp_path / "none.pkl.gz")]) == 2
    assert "No data file" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["classify", "--bogus"], ["classify", "--model", "lstm"],
                                  ["classify", "--epochs", "many"]])
def test_bad_flag_exits_non_zero(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code != 0
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["classify", "tune"])
@pytest.mark.parametrize(("argv", "named"), [
    (["--data", "xor", "--vocab", "100"], "--vocab"),
    (["--data", "synth", "--vocab", "5", "--path", "reviews.pkl.gz"], "--path, --vocab"),
    (["--data", "imdb", "--ntrain", "1000"], "--ntrain"),
])
def test_flags_the_data_set_ignores_are_errors(command, argv, named, capsys):
    """Before any data loads: `--vocab` on XOR used to train on the full vocabulary without a word."""
    assert main([command, *argv]) == 2
    assert f"{named} " in capsys.readouterr().err
    if command == "classify":           # (tune refuses --final with any data: it would tune on the test set)
        assert main([command, "--data", "xor", "--final"]) == 2
        assert "--final has no effect" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["classify", "tune"])
@pytest.mark.parametrize(("argv", "named"), [
    (["--model", "baseline", "--depth", "3"], "--depth has no effect with --model baseline"),
    (["--model", "baseline", "--heads", "2", "--backend", "sdpa"], "--heads, --backend have no effect"),
    (["--model", "simple", "--heads", "3", "--norm", "pre"], "--heads, --norm have no effect with --model simple"),
    (["--model", "full", "--norm", "pre"], "--norm has no effect with --model full"),
])
def test_model_flags_the_model_ignores_are_errors(command, argv, named, capsys, tmp_path):
    """They trained the model without them, and metrics.json recorded them (a baseline of depth 3); tune
    refused --heads 7 for a baseline because no searched emb was divisible by 7. Refused, nothing is made."""
    assert main([command, *BASE, *argv, "--out", str(tmp_path / "out")]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_classify_refuses_a_folder_that_holds_a_run(tmp_path, capsys):
    """A second run into the same --out overwrote the first's metrics.json and model.pt, and its TensorBoard
    events joined the first's."""
    out = tmp_path / "run"
    assert main(["classify", *QUICK, "--epochs", "1", "--out", str(out)]) == 0
    before = (out / "metrics.json").read_bytes()
    capsys.readouterr()
    assert main(["classify", *QUICK, "--epochs", "1", "--model", "simple", "--out", str(out)]) == 2
    assert "already holds a run (metrics.json, model.pt)" in capsys.readouterr().err
    assert (out / "metrics.json").read_bytes() == before
    (tmp_path / "file").write_text("")
    assert main(["classify", *QUICK, "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_bad_value_is_a_clear_error(capsys, tmp_path):
    assert main(["classify", *QUICK, "--model", "full", "--emb", "10", "--heads", "4"]) == 2
    assert "divisible by heads" in capsys.readouterr().err
    assert main(["classify", *QUICK, "--model", "full", "--heads", "0"]) == 2
    assert "heads must be positive, got 0" in capsys.readouterr().err
    assert main(["classify", *QUICK, "--seed", "-1"]) == 2               # NumPy's message named no flag
    assert "seed must be >= 0, got -1" in capsys.readouterr().err
    assert main(["classify", *BASE, "--ntrain", "-5"]) == 2
    assert "ntrain and nval must be positive numbers of instances, got -5 and 200" in capsys.readouterr().err
    assert main(["classify", *QUICK, "--lr", "-1", "--out", str(tmp_path / "out")]) == 2
    assert "lr must be positive" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()           # refused before the run folder (and its TensorBoard log) is made


def test_help_names_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["classify", "--help"])
    text = capsys.readouterr().out
    for flag in ("--data", "--model", "--pool", "--pos", "--depth", "--heads", "--emb", "--epochs", "--lr",
                 "--batch", "--max-len", "--seed", "--final", "--out"):
        assert flag in text
    assert "(default: 1e-3)" in text.replace("0.001", "1e-3")


def test_tune_writes_trials(tmp_path, capsys):
    pytest.importorskip("optuna")
    out = tmp_path / "tune"
    assert main(["tune", *BASE, "--epochs", "1", "--model", "simple", "--pool", "select", "--trials", "2",
                 "--out", str(out)]) == 0
    result = json.loads((out / "tune.json").read_text())
    assert len(result["trials"]) == 2
    assert result["best_value"] == max(t["value"] for t in result["trials"] if t["value"] is not None)
    assert set(result["best_params"]) == {"lr", "batch", "emb"}
    assert result["searched"] == ["lr", "batch", "emb"]           # and what stayed fixed, to reproduce the best
    assert result["classifier"]["attention"] == "simple" and result["training"]["epochs"] == 1


@pytest.mark.parametrize("diverging", ["first", "all"])
def test_a_diverged_trial_fails_alone_and_a_search_with_none_completed_says_so(diverging, tmp_path, capsys,
                                                                                  monkeypatch):
    """One NaN trial used to end the search with a traceback and no tune.json."""
    pytest.importorskip("optuna")
    import minitx.tune
    from minitx.classify import TrainingDiverged

    calls = []

    def train(*args, **kwargs):
        calls.append(1)
        if diverging == "all" or len(calls) == 1:
            raise TrainingDiverged("training diverged (loss nan) at step 3")
        return minitx.classify.train_classifier(*args, **kwargs)

    monkeypatch.setattr(minitx.tune, "train_classifier", train)
    out = tmp_path / "tune"
    code = main(["tune", *BASE, "--epochs", "1", "--trials", "3", "--out", str(out)])
    result = json.loads((out / "tune.json").read_text())
    assert [t["state"] for t in result["trials"]][0] == "FAIL" and len(result["trials"]) == 3
    if diverging == "first":
        assert code == 0 and result["best_value"] is not None
    else:
        assert code == 2 and result["best_value"] is None
        assert "no trial completed (FAIL)" in capsys.readouterr().err


def test_tune_checks_timeout_and_the_out_folder_before_searching(tmp_path, capsys, monkeypatch):
    import minitx.tune
    monkeypatch.setattr(minitx.tune, "train_classifier", lambda *a, **k: pytest.fail("searched"))
    assert main(["tune", *BASE, "--timeout", "0"]) == 2
    assert "--timeout must be a positive" in capsys.readouterr().err
    (tmp_path / "afile").write_text("")
    assert main(["tune", *BASE, "--out", str(tmp_path / "afile" / "run")]) == 2   # a parent is a file


def test_quiet_tune_prints_no_line_per_trial(tmp_path, capfd):
    pytest.importorskip("optuna")
    assert main(["tune", *BASE, "--epochs", "1", "--trials", "2"]) == 0               # BASE has --quiet
    assert "Trial 0 finished" not in capfd.readouterr().err


def test_tune_refuses_a_searched_flag_the_user_set(capsys, monkeypatch):
    """--lr 0.01 with lr searched was silently overridden by every trial."""
    import minitx.tune
    assert main(["tune", *QUICK]) == 2
    assert "--lr 0.01, --batch 32, --emb 8: searched" in capsys.readouterr().err
    assert main(["tune", *BASE, "--lr", "0.01", "--search", "lr,emb"]) == 2
    assert "leave it out of --search (--search emb)" in capsys.readouterr().err
    pytest.importorskip("optuna")                   # without it, tune stops before any training
    monkeypatch.setattr(minitx.tune, "train_classifier", lambda *a, **k: pytest.fail("searched"))
    with pytest.raises(pytest.fail.Exception, match="searched"):     # a fixed flag not searched is fine
        main(["tune", *BASE, "--lr", "0.01", "--emb", "8", "--search", "batch", "--trials", "1"])


def test_tune_searches_emb_with_heads_that_do_not_divide_the_default_emb(tmp_path):
    """--heads 8 failed with "emb (300) must be divisible by heads (8)" although emb was searched."""
    pytest.importorskip("optuna")
    out = tmp_path / "tune"
    assert main(["tune", *BASE, "--epochs", "1", "--model", "full", "--heads", "8", "--trials", "2",
                 "--out", str(out)]) == 0
    result = json.loads((out / "tune.json").read_text())
    assert all(t["params"]["emb"] % 8 == 0 for t in result["trials"])


def test_tune_api_refuses_heads_that_divide_no_searched_emb():
    pytest.importorskip("optuna")
    from minitx.classify import TrainSettings
    from minitx.config import ClassifierConfig
    from minitx.tune import tune
    config = ClassifierConfig(vocab=10, emb=7, heads=7, attention="full")
    with pytest.raises(ValueError, match="divisible by heads=7"):
        tune(config, None, TrainSettings())


@pytest.mark.parametrize("search", ["dropout", ","])              # "," names nothing: a search of nothing
def test_tune_rejects_unknown_search_names(capsys, search):
    assert main(["tune", "--search", search]) == 2
    assert "--search takes names from" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--final"], "would tune on the test set"),
    (["--trials", "0"], "--trials must be positive, got 0"),
    (["--tokens", "512"], "searching 'batch' changes nothing"),
    (["--out", __file__], "is a file: tune.json goes into a folder"),          # said before the search
    ([*BASE, "--model", "full", "--heads", "7"], "divisible by heads=7"),   # no searched emb fits 7 heads
])
def test_tune_refuses_the_test_set_and_a_search_that_changes_nothing(argv, message, capsys):
    assert main(["tune", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [(["--vocab", "100"], "--vocab "),      # a data flag XOR ignores
                                               (["--epochs", "0"], "epochs must be positive")])   # a setting
def test_tune_refuses_a_bad_flag_before_it_makes_out(tmp_path, capsys, argv, message):
    assert main(["tune", *BASE, *argv, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
