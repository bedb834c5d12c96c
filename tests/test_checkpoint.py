"""Checkpoints: atomic writes, safe loading, clear errors; and the sample command's bad-input messages."""

import json
import re
import stat
from pathlib import Path

import pytest
import torch

import minitx.checkpoint as checkpoint
from minitx import LMConfig
from minitx.__main__ import main
from minitx.checkpoint import check_config, load_checkpoint, load_model, save_checkpoint
from minitx.classify import classifier_from_checkpoint, model_config, read_checkpoint
from minitx.classify import save_checkpoint as save_classifier
from minitx.nn import LM, Classifier
from minitx.tracking import write_json_atomic

CONFIG = LMConfig(vocab=6, emb=8, heads=2, depth=1, context=8)


def payload(model: LM) -> dict:
    return {"model": model.state_dict(), "config": CONFIG.to_dict(), "step": 3, "vocab": list("ab c.x"),
            "random": {"torch": torch.get_rng_state()}}


def test_save_then_load_with_weights_only(tmp_path):
    model = LM(CONFIG, torch.Generator().manual_seed(0))
    path = save_checkpoint(tmp_path / "new-run" / "c.pt", payload(model))     # the folder is made as needed
    loaded, saved = load_model(path)
    assert saved["step"] == 3 and saved["vocab"] == list("ab c.x")
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    torch.load(path, weights_only=True)                              # plain tensors and values only


def test_a_failed_write_keeps_the_old_checkpoint_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.pt", payload(LM(CONFIG)))
    before = path.read_bytes()

    def broken_save(obj, f):
        with open(f, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, payload(LM(CONFIG)))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_run_files_are_ordinary_files(tmp_path):
    """metrics.json, checkpoints and classifier models are readable by others (0644), like the plots beside
    them, although the temporary files they are written through start private (`tempfile.mkstemp`)."""
    write_json_atomic(tmp_path / "metrics.json", {"step": 1})
    save_checkpoint(tmp_path / "c.pt", payload(LM(CONFIG)))
    save_classifier(tmp_path / "model.pt", Classifier(model_config("baseline", vocab=6, emb=4)), "xor")
    for name in ("metrics.json", "c.pt", "model.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"step": 1}


def test_a_written_file_is_synced_to_disk_before_the_rename(tmp_path, monkeypatch):
    import os

    import minitx.tracking
    events = []
    monkeypatch.setattr(minitx.tracking.os, "fsync", lambda fd: events.append(("fsync", os.fstat(fd).st_size)))
    real_replace = os.replace
    monkeypatch.setattr(minitx.tracking.os, "replace", lambda a, b: (events.append(("replace",)), real_replace(a, b)))
    write_json_atomic(tmp_path / "metrics.json", {"step": 1})
    size = (tmp_path / "metrics.json").stat().st_size
    assert events == [("fsync", size), ("replace",)]


def test_missing_damaged_and_foreign_files_are_clear_errors(tmp_path):
    for missing in (tmp_path / "missing.pt", tmp_path):      # the run folder instead of its checkpoint.pt too
        with pytest.raises(FileNotFoundError, match="no checkpoint at"):
            load_checkpoint(missing)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable minitx checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    # either entry missing: without 'config' load_model would fail later with a bare KeyError
    for foreign in ({"weights": torch.zeros(2)}, {"model": {}}, {"config": CONFIG.to_dict()}):
        torch.save(foreign, tmp_path / "foreign.pt")
        with pytest.raises(ValueError, match="not a minitx checkpoint"):
            load_checkpoint(tmp_path / "foreign.pt")


def test_a_checkpoint_whose_weights_do_not_match_the_model_is_refused(tmp_path):
    """A weight missing (or one the model lacks) must not load silently, leaving a random one in its place."""
    state = LM(CONFIG).state_dict()
    missing = {name: tensor for name, tensor in state.items() if name != "head.weight"}
    for weights, error in ((missing, "Missing key"), ({**state, "extra.weight": torch.zeros(1)}, "Unexpected key")):
        path = save_checkpoint(tmp_path / "c.pt", {**payload(LM(CONFIG)), "model": weights})
        with pytest.raises(RuntimeError, match=error):
            load_model(path)


def test_a_checkpoint_that_cannot_be_written_says_how_much_room_is_left(tmp_path, monkeypatch):
    """A full disk gave only torch's "[enforce fail at inline_container.cc:672] . unexpected pos 79744 vs 79628"."""
    def full_disk(payload, target):
        Path(target).write_bytes(b"PK half")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 79744 vs 79628")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(OSError, match=r"could not write the checkpoint .*c.pt \([\d,]+ bytes free on its disk\)"):
        save_checkpoint(tmp_path / "c.pt", {"model": {}})
    assert list(tmp_path.iterdir()) == []                       # no temporary file left behind


def test_an_unreadable_checkpoint_says_why_in_a_line_without_unsafe_advice(tmp_path):
    """torch's message for a foreign file advises weights_only=False (running the file's code) and 'file an
    issue'; an empty file gave no reason, a truncated one '[Errno 22] Invalid argument'."""
    whole = save_checkpoint(tmp_path / "c.pt", payload(LM(CONFIG))).read_bytes()
    cases = {"empty.pt": (b"", "the file is empty"),
             "metrics.json": (b'{"step": 3}', "it is not one torch.save wrote (it begins b'{\"step\":')"),
             "cut.pt": (whole[: len(whole) // 2], "it is a zip archive cut short")}
    torch.save(LM(CONFIG), tmp_path / "whole-module.pt")                # torch.save(model), not a state dict
    cases["whole-module.pt"] = (None, "it holds a minitx.nn.LM, and a checkpoint loads only tensors and plain data")
    for name, (content, reason) in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=re.escape(f"not a readable minitx checkpoint: {reason}")) as error:
            load_checkpoint(tmp_path / name)
        assert "weights_only=False" not in str(error.value) and "\n" not in str(error.value)


def test_a_checkpoint_from_another_config_is_a_clear_error():
    with pytest.raises(ValueError, match=r"depth: checkpoint 1 vs asked 2"):
        check_config(CONFIG.to_dict(), {**CONFIG.to_dict(), "depth": 2}, "c.pt")


def test_the_sample_command_and_its_errors(tmp_path, capsys):
    path = save_checkpoint(tmp_path / "c.pt", payload(LM(CONFIG)))
    assert main(["sample", "--checkpoint", str(path), "--seed-text", "ab c", "--length", "5"]) == 0
    printed = capsys.readouterr().out.removesuffix("\n")   # a sample may itself end in a space
    assert printed.startswith("[ab c]") and len(printed) == len("[ab c]") + 5
    assert main(["sample", "--checkpoint", str(path), "--seed-text", "ab c", "--length", "5", "--epsilon", "0.01"]) == 0
    assert capsys.readouterr().out.startswith("[ab c]")
    assert main(["sample", "--checkpoint", str(path), "--seed-text", "abZ", "--length", "5"]) == 2
    assert "outside the model's vocabulary: ['Z']" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    # a seed drawn from data of another vocabulary would be decoded with the wrong characters
    (tmp_path / "text.txt").write_text("ab c." * 20)                     # a file: a byte vocabulary of 256
    assert main(["sample", "--checkpoint", str(path), "--data", str(tmp_path / "text.txt"), "--length", "5"]) == 2
    assert "has another vocabulary than the checkpoint" in capsys.readouterr().err
    save_checkpoint(path, {**payload(LM(CONFIG)), "vocab": None})          # a model saved without its vocabulary
    assert main(["sample", "--checkpoint", str(path), "--seed-text", "ab c", "--length", "5"]) == 2
    assert "stores no vocabulary" in capsys.readouterr().err


def test_a_tilde_in_a_path_flag_is_the_home_folder(tmp_path, capsys, monkeypatch):
    """--checkpoint=~/c.pt (the shell leaves a ~ after '=' alone) looked for a folder named '~'."""
    monkeypatch.setenv("HOME", str(tmp_path))
    save_checkpoint(tmp_path / "c.pt", payload(LM(CONFIG)))
    assert main(["sample", "--checkpoint=~/c.pt", "--seed-text", "ab", "--length", "2"]) == 0
    assert capsys.readouterr().out.startswith("[ab]")


@pytest.mark.parametrize("kind", ["lm", "classifier"])
def test_a_config_field_this_version_does_not_know_is_a_clear_error(kind, tmp_path, capsys):
    """A checkpoint from another version of minitx: a TypeError traceback from the config's constructor before."""
    path = tmp_path / "model.pt"
    if kind == "lm":
        save_checkpoint(path, {**payload(LM(CONFIG)), "config": {**CONFIG.to_dict(), "flash": True}})
        with pytest.raises(ValueError, match=r"does not know: \['flash'\]"):
            load_model(path)
        assert main(["sample", "--checkpoint", str(path)]) == 2              # the command: one line, no traceback
        assert "does not know: ['flash']" in capsys.readouterr().err
    else:
        save_classifier(path, Classifier(model_config("baseline", vocab=6, emb=4)), "xor")
        saved = torch.load(path, weights_only=True)
        torch.save({**saved, "config": {**saved["config"], "flash": True}}, path)
        with pytest.raises(ValueError, match=r"does not know: \['flash'\]"):
            classifier_from_checkpoint(read_checkpoint(path))


def test_json_files_are_strict_json(tmp_path):
    """NaN was written as NaN (refused by other JSON readers) and a tensor as the string 'tensor(0.5000)'."""
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"loss": float("nan"), "best": [float("inf"), 1.5], "accuracy": torch.tensor(0.5),
                             "range": (float("-inf"), 2)})                 # a tuple is a list in JSON
    assert json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(name)) == {
        "loss": None, "best": [None, 1.5], "accuracy": 0.5, "range": [None, 2]}


@pytest.mark.parametrize("values", [[float("nan"), 1.5, 1.2], [2.0, float("inf"), 1.2], [float("nan")] * 3])
def test_curves_with_a_reference_line_plot_nan_and_inf(values, tmp_path):
    """The zoom to the tail took min/max over NaN or inf: 'Axis limits cannot be NaN or Inf'."""
    from minitx.tracking import RunLog

    log = RunLog(tmp_path, {}, tensorboard=False)
    for step, value in enumerate(values):
        log.scalar("val/bits", value, step * 100)
    path = log.plot({"bits": ["val/bits"]}, hlines={"bits": (0.548, "floor")})
    assert path.read_bytes()[:4] == b"\x89PNG"



def test_a_plot_that_fails_half_way_keeps_the_previous_png(tmp_path, monkeypatch):
    """curves.png was written in place: a reader (or a crash) mid-write saw a 0-byte or half file."""
    import matplotlib.figure

    from minitx.tracking import RunLog

    log = RunLog(tmp_path, {}, tensorboard=False)
    log.scalar("val/bits", 1.0, 0)
    before = log.plot({"bits": ["val/bits"]}).read_bytes()

    def half_then_fail(self, target, **kwargs):
        with open(target, "wb") as file:
            file.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_then_fail)
    log.scalar("val/bits", 0.5, 100)
    with pytest.raises(OSError, match="disk full"):
        log.plot({"bits": ["val/bits"]})
    assert (tmp_path / "curves.png").read_bytes() == before and sorted(tmp_path.iterdir()) == [
        tmp_path / "curves.png"]
