"""Command-line flags that reach nothing: each flag of classify, lm and sample must change what runs.

Found by mutation testing (round 2): replacing almost any ``args.X`` in minitx/cli/*.py with the default left
every test green. The classify and lm checks stop at the trainer's door (a stand-in records what it was given
and raises), so they take no training time; the reference is the value written on the command line."""

import gzip
import importlib
import json
import pickle
from collections import Counter

import pytest
import torch

import minitx.cli.classify
import minitx.cli.lm
from minitx import LMConfig
from minitx.__main__ import main
from minitx.checkpoint import save_checkpoint
from minitx.classify import read_checkpoint
from minitx.data import SPECIALS
from minitx.nn import LM
from minitx.sample import encode, sample, with_seed_in_brackets

XOR = ["--data", "xor", "--ntrain", "40", "--nval", "20", "--quiet", "--device", "cpu"]


class Captured(Exception):
    """Raised by the stand-in trainers once they have recorded their arguments."""


@pytest.fixture
def classify_call(monkeypatch):
    seen = {}

    def train(config, data, settings, **kwargs):
        seen.update(config=config, data=data, settings=settings)
        raise Captured

    monkeypatch.setattr(minitx.cli.classify, "train_classifier", train)

    def call(*flags):
        with pytest.raises(Captured):
            main(["classify", *flags])
        return seen
    return call


@pytest.mark.parametrize(("flags", "where", "field", "value"), [
    (["--model", "transformer", "--dropout", "0.3"], "config", "dropout", 0.3),
    (["--model", "transformer", "--norm", "pre"], "config", "norm", "pre"),
    (["--model", "full", "--backend", "sdpa"], "config", "backend", "sdpa"),
    (["--model", "full", "--emb", "8", "--heads", "2"], "config", "heads", 2),
    (["--model", "full", "--depth", "2"], "config", "depth", 2),
    (["--pos"], "config", "positions", True),
    (["--pool", "max"], "config", "pool", "max"),
    (["--emb", "12"], "config", "emb", 12),
    (["--max-len", "1"], "config", "max_len", 1),            # the model's own max_len: what attention_map cuts to
    (["--max-len", "1"], "settings", "max_len", 1),
    (["--max-len", "5"], "config", "max_len", 2),            # no longer than XOR's longest sequence (2 tokens)
    ([], "settings", "max_len", 256),                        # the default cut, as --help says
    (["--quiet"], "settings", "progress", False),           # (XOR's flags hold it already: no bar in any of these)
    (["--max-len", "0"], "settings", "max_len", None),
    (["--warmup", "7"], "settings", "warmup", 7),
    (["--decay"], "settings", "decay", True),
    (["--clip", "0.5"], "settings", "clip", 0.5),
    (["--weight-decay", "0.01"], "settings", "weight_decay", 0.01),
    (["--tokens", "100"], "settings", "tokens", 100),
    (["--seed", "5"], "settings", "seed", 5),
    (["--epochs", "3"], "settings", "epochs", 3),
    (["--lr", "0.05"], "settings", "lr", 0.05),
    (["--batch", "7"], "settings", "batch", 7),
    (["--compile"], "settings", "compile", True),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_each_classify_flag_reaches_the_model_or_the_training(classify_call, flags, where, field, value):
    seen = classify_call(*XOR, *flags)
    assert getattr(seen[where], field) == value


def test_start_token_reaches_the_data_and_the_checkpoint(classify_call, tmp_path, monkeypatch):
    seen = classify_call(*XOR, "--start-token")
    start = seen["data"].w2i[".start"]
    assert all(s[0] == start for s in seen["data"].train[0] + seen["data"].val[0])
    monkeypatch.undo()                                 # now train for real (one tiny epoch) and save
    out = tmp_path / "run"
    assert main(["classify", *XOR, "--epochs", "1", "--emb", "8", "--start-token", "--out", str(out)]) == 0
    assert read_checkpoint(out / "model.pt")["start_token"] is True


@pytest.mark.parametrize(("command", "flag", "name"), [
    ("classify", "--out", "out"), ("classify", "--path", "path"), ("lm", "--data", "data"),
    ("sample", "--checkpoint", "checkpoint")])
def test_a_path_after_flag_equals_tilde_reaches_the_command_expanded(monkeypatch, tmp_path, command, flag, name):
    """``--out=~/runs/a`` keeps its ``~`` past the shell: the command must get the path in the home folder."""
    monkeypatch.setenv("HOME", str(tmp_path))
    seen = {}
    monkeypatch.setattr(importlib.import_module(f"minitx.cli.{command}"), "run",
                        lambda args: seen.update(value=getattr(args, name)))
    assert main([command, f"{flag}=~/runs/a"]) == 0
    assert seen["value"] == str(tmp_path / "runs" / "a")


def test_threads_sets_torchs_threads(classify_call):
    before = torch.get_num_threads()
    wanted = before + 1
    try:
        classify_call(*XOR, "--threads", str(wanted))
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)


def imdb_pickle(tmp_path):
    i2w = [*SPECIALS, "good", "bad", "film"]
    seqs = {"train": [[4, 5] * (1 + i) for i in range(12)], "test": [[6, 4, 5] * (1 + i) for i in range(9)]}
    labels = {"train": [i % 2 for i in range(12)], "test": [(i // 2) % 2 for i in range(9)]}
    path = tmp_path / "imdb.word.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps((seqs, labels, i2w, {w: i for i, w in enumerate(i2w)}))))
    return path, seqs, labels


def test_final_and_vocab_reach_the_imdb_loader(classify_call, tmp_path):
    path, seqs, labels = imdb_pickle(tmp_path)
    imdb = ["--data", "imdb", "--path", str(path), "--quiet", "--device", "cpu"]
    seen = classify_call(*imdb, "--final")
    held_out = Counter(zip(map(tuple, seen["data"].val[0]), seen["data"].val[1], strict=True))
    assert held_out == Counter(zip(map(tuple, seqs["test"]), labels["test"], strict=True))
    seen = classify_call(*imdb, "--final", "--vocab", "5")
    assert seen["data"].i2w == [*SPECIALS, "good"] and seen["config"].vocab == 5


def test_the_printed_result_says_which_split_it_was_measured_on(tmp_path, capsys):
    """With --final the accuracy printed as final_val_accuracy is the test set's."""
    path, _, _ = imdb_pickle(tmp_path)
    for flags, split in ((XOR, "validation"), (["--data", "imdb", "--path", str(path), "--final"], "test")):
        assert main(["classify", *flags, "--epochs", "1", "--emb", "4", "--quiet", "--device", "cpu"]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["evaluated_on"] == split


LM_FLAGS = {"--emb": 16, "--heads": 2, "--depth": 3, "--context": 12, "--dropout": 0.2,
            "--batch": 5, "--accumulate": 3, "--steps": 11, "--time-limit": 2.5, "--lr": 0.002, "--warmup": 4,
            "--final-lr": 0.2, "--weight-decay": 0.03, "--clip": 0.7, "--log-every": 3, "--eval-every": 6,
            "--eval-batches": 7, "--sample-every": 8, "--sample-length": 9, "--temperature": 0.8,
            "--epsilon": 0.001, "--checkpoint-every": 10, "--final-eval": "estimate", "--seed": 13,
            "--device": "cpu"}
LM_FIELDS = {"--final-lr": "final_lr_fraction", "--time-limit": "time_limit"}


@pytest.mark.parametrize("backend", ["scratch", "sdpa"])       # the command's default and LMConfig's differ
def test_each_lm_flag_reaches_the_config_or_the_settings(monkeypatch, tmp_path, backend):
    """Every other value differs from its default, so a flag that is dropped on the way shows."""
    seen = {}

    def train(config, train, val, settings, **kwargs):
        seen.update(config=config, settings=settings, kwargs=kwargs)
        raise Captured

    monkeypatch.setattr(minitx.cli.lm, "train_lm", train)
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. " * 50)
    given = {**LM_FLAGS, "--backend": backend}
    flags = [str(x) for flag, value in given.items() for x in (flag, value)]
    with pytest.raises(Captured):
        main(["lm", "--data", str(text), *flags, "--compile", "--no-amp", "--out", str(tmp_path / "run")])
    for flag, value in given.items():
        field = LM_FIELDS.get(flag, flag[2:].replace("-", "_"))
        holder = seen["config"] if field in LMConfig.__dataclass_fields__ else seen["settings"]
        assert getattr(holder, field) == value, flag
    assert seen["settings"].compile is True and seen["settings"].amp is False
    assert str(seen["kwargs"]["out"]) == str(tmp_path / "run")


@pytest.fixture
def lm_checkpoint(tmp_path):
    """An untrained model (near-uniform predictions: sampling and greedy decoding part at once)."""
    config = LMConfig(vocab=6, emb=8, heads=2, depth=1, context=64)
    model = LM(config, torch.Generator().manual_seed(0)).eval()
    path = save_checkpoint(tmp_path / "c.pt", {"model": model.state_dict(), "config": config.to_dict(),
                                               "vocab": list("ab c.x")})
    return model, path


def sample_cli(capsys, path, *flags):
    assert main(["sample", "--checkpoint", str(path), "--seed-text", "ab c", "--length", "40", *flags]) == 0
    return capsys.readouterr().out.removesuffix("\n")


@pytest.mark.parametrize("flags", [["--temperature", "0"], ["--top-k", "1"], ["--epsilon", "0.99"]],
                         ids=lambda f: f[0])
def test_sample_flags_that_mean_greedy_give_the_greedy_text(lm_checkpoint, capsys, flags):
    """--temperature 0, --top-k 1 and an --epsilon above every probability but the largest all leave only the
    most likely character: the text is the greedy one, whatever --seed."""
    model, path = lm_checkpoint
    c2i = {c: i for i, c in enumerate("ab c.x")}
    greedy = with_seed_in_brackets(sample(model, encode("ab c", c2i), 40, temperature=0.0), 4, list("ab c.x"))
    for seed in ("1", "2"):
        assert sample_cli(capsys, path, *flags, "--seed", seed) == greedy
    assert sample_cli(capsys, path, "--seed", "1") != greedy, "without them: a sample, not the greedy text"


def test_sample_seed_changes_the_sample_and_repeats_it(lm_checkpoint, capsys):
    _, path = lm_checkpoint
    texts = [sample_cli(capsys, path, "--seed", seed) for seed in ("1", "1", "2")]
    assert texts[0] == texts[1] and texts[0] != texts[2]


def test_sample_seed_picks_the_data_seed_text(tmp_path, capsys):
    """Without --seed-text the 16-character seed comes from the data at random: --seed must choose it."""
    i2t = [chr(i) for i in range(256)]
    config = LMConfig(vocab=256, emb=8, heads=2, depth=1, context=32)
    path = save_checkpoint(tmp_path / "c.pt", {"model": LM(config).state_dict(), "config": config.to_dict(),
                                               "vocab": i2t})
    text = tmp_path / "text.txt"
    text.write_bytes(bytes(torch.randint(97, 123, (4000,), generator=torch.Generator().manual_seed(0)).tolist()))
    seeds = []
    for seed in ("1", "2"):
        assert main(["sample", "--checkpoint", str(path), "--data", str(text), "--length", "1", "--temperature", "0",
                     "--seed", seed]) == 0
        seeds.append(capsys.readouterr().out[:18])              # "[" + 16 characters + "]"
    assert seeds[0] != seeds[1]
