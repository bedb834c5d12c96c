"""What a mutation review found unchecked in minitx.tracking and minitx.checkpoint."""

import json
import warnings

import matplotlib.axes
import pytest
import torch

from minitx import LMConfig
from minitx import functional as mf
from minitx.checkpoint import check_config, load_model, save_checkpoint
from minitx.nn import LM
from minitx.tracking import RunLog


def test_last_is_the_latest_value_of_a_series():
    """`RunLog.last` (the demo's validation bits) gave the first logged value of a series."""
    log = RunLog(None, {})
    values = [3.0, 2.5, 1.25]
    for step, value in enumerate(values):
        log.scalar("val/bits", value, step)
    assert log.last("val/bits") == values[-1]
    assert log.last("never/logged") is None


def test_logy_and_reference_lines_reach_the_panels_they_name(tmp_path, monkeypatch):
    """``plot(logy=...)`` was never exercised, nor was the ``hlines`` line (the entropy floor) drawn: ignoring
    either went unnoticed."""
    calls = []

    def spying(method):
        original = getattr(matplotlib.axes.Axes, method)

        def spy(ax, value, *args, **kwargs):
            calls.append((method, ax.get_title(), value, kwargs.get("label")))
            return original(ax, value, *args, **kwargs)
        return spy

    for method in ("set_yscale", "axhline"):
        monkeypatch.setattr(matplotlib.axes.Axes, method, spying(method))
    log = RunLog(tmp_path, {}, tensorboard=False)
    for step in range(1, 5):
        log.scalar("grad", 10.0 ** step, step)
        log.scalar("loss", 1.0 / step, step)
    log.plot({"gradient norm": ["grad"], "loss": ["loss"]}, logy=("gradient norm",), hlines={"loss": (0.2, "floor")})
    assert sorted(calls) == [("axhline", "loss", 0.2, "floor"), ("set_yscale", "gradient norm", "log", None)]


def test_error_bars_are_two_standard_errors_at_the_steps_that_have_one_and_stay_in_view(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    drawn = []
    original = matplotlib.axes.Axes.errorbar

    def spy(ax, x, y, *args, yerr=None, **kwargs):
        drawn.append((ax.get_title(), list(x), list(y), list(yerr)))
        return original(ax, x, y, *args, yerr=yerr, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", spy)
    limits = []
    monkeypatch.setattr(plt, "close", lambda figure: limits.append(figure.axes[0].get_ylim()))
    log = RunLog(tmp_path, {}, tensorboard=False)
    for step, (bits, error) in enumerate([(0.60, None), (0.56, 0.03), (0.55, 0.1)], start=1):
        log.scalar("val/bits", bits, step * 100)
        if error is not None:                # the first evaluation has none, as in a run resumed from an old one
            log.scalar("val/bits_stderr", error, step * 100)
    log.plot({"bits": ["val/bits"], "plain": ["val/bits"]}, hlines={"bits": (0.548, "floor")},
             errors={"val/bits": "val/bits_stderr"})
    assert len(drawn) == 2 and drawn[0] == drawn[1]                     # each panel that plots the series
    title, steps, values, bars = drawn[0]
    assert title == "" and steps == [200, 300] and values == [0.56, 0.55] and bars == pytest.approx([0.06, 0.2])
    low, high = limits[0]
    assert low < 0.55 - 0.2 and 0.55 + 0.2 < high                     # the zoom keeps the longest bar in view
    drawn.clear()
    log.plot({"bits": ["val/bits"]})                                    # no errors named: no bars
    assert drawn == []
    log.close()


def test_scalars_reach_the_tensorboard_events(tmp_path):
    """Only the event file's existence was checked: a writer that recorded nothing passed."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event

    log = RunLog(tmp_path, {})
    log.scalar("val/bits", 1.5, 3)
    log.scalar("val/bits", 1.25, 6)
    log.close()
    [events] = tmp_path.glob("events.out.tfevents*")
    records = [Event.FromString(record) for record in RawEventFileLoader(str(events)).Load()]
    assert [(e.step, v.tag, v.simple_value) for e in records for v in e.summary.value] == [
        (3, "val/bits", 1.5), (6, "val/bits", 1.25)]


def test_metrics_json_is_strict_json_when_a_series_is_not_finite(tmp_path):
    """A run that diverged logs NaN: metrics.json must still hold null there, which every JSON reader takes."""
    log = RunLog(tmp_path, {"lr": 0.1}, tensorboard=False)
    log.scalar("train/bits", float("nan"), 1)
    log.write_metrics({"final_exact_bits": float("inf")})
    metrics = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=lambda name: pytest.fail(name))
    assert metrics["series"] == {"train/bits": [[1, None]]} and metrics["final_exact_bits"] is None


def test_a_panel_with_nothing_logged_yet_plots_without_a_warning(tmp_path):
    """A run stopped before its first logging point plotted empty panels with matplotlib's "No artists with
    labels found to put in legend" warning."""
    log = RunLog(tmp_path, {}, tensorboard=False)
    log.scalar("loss", 1.0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = log.plot({"loss": ["loss"], "gradient norm": ["grad_norm"]})
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_a_config_field_on_one_side_only_is_a_difference():
    """A field the checkpoint lacks (an older version) or only the checkpoint has must be named, not skipped
    because the comparison ran over the shared fields only."""
    saved = {"emb": 8, "depth": 1}
    with pytest.raises(ValueError, match=r"heads: checkpoint None vs asked 2"):
        check_config(saved, {**saved, "heads": 2}, "c.pt")
    with pytest.raises(ValueError, match=r"heads: checkpoint 2 vs asked None"):
        check_config({**saved, "heads": 2}, saved, "c.pt")
    check_config(saved, dict(saved), "c.pt")                       # equal configs pass


def test_load_model_gives_an_eval_mode_model(tmp_path):
    """`python -m minitx sample` uses load_model's model as it comes: left in training mode, a model trained
    with dropout sampled with dropout on."""
    config = LMConfig(vocab=6, emb=8, heads=2, depth=1, context=8, dropout=0.5)
    model = LM(config, torch.Generator().manual_seed(0))
    path = save_checkpoint(tmp_path / "c.pt", {"model": model.state_dict(), "config": config.to_dict()})
    loaded, _ = load_model(path)
    assert not loaded.training
    tokens = torch.tensor([[0, 1, 2, 3, 4, 5]])
    with torch.no_grad():
        expected = mf.lm(model.tree(), tokens, config, training=False)
        torch.testing.assert_close(loaded(tokens), expected)
        torch.testing.assert_close(loaded(tokens), expected)      # no random masks: the same twice
