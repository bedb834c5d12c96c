"""Run folders: scalar logs, ``metrics.json``, TensorBoard events and PNG plots, written as training goes.

A run folder holds everything a user needs to read a run afterwards: ``metrics.json`` (the config, every logged
series and the summary), ``*.png`` curves, and TensorBoard event files (``tensorboard --logdir DIR``).
"""

import json
import math
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def write_atomically(path: str | Path, write: Callable[[str], None]) -> Path:
    """``write(temporary)`` writes a file beside ``path``, which is then renamed to ``path``: a crash never
    leaves half a file, and readers see the old file or the new one. A failed write leaves nothing behind. The
    file is an ordinary one (mode 0644), not private as `tempfile.mkstemp` makes its files. Its bytes reach the
    disk before the rename, so a power cut cannot leave an empty or partial file under that name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    os.chmod(temporary, 0o644)
    try:
        write(temporary)
        with open(temporary, "ab") as written:     # appending nothing: a writable handle, which Windows needs
            os.fsync(written.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write strict JSON with `write_atomically`: NaN and infinities become null (plain `json.dumps` writes
    ``NaN``, which other JSON readers refuse), a one-element tensor its number."""
    text = json.dumps(_strict_json(payload), indent=2, default=str, allow_nan=False)
    write_atomically(path, lambda temporary: Path(temporary).write_text(text))


def _strict_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict_json(item) for item in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def files_of_a_run(out: str | Path, names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` (the files a run writes) the run folder ``out`` already holds, so that a command can
    refuse to overwrite an earlier run; a clear error if ``out`` is a file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"the run folder {out} is a file")
    return [name for name in names if (out / name).exists()]


class RunLog:
    """Collects scalar series ``name -> [(step, value), ...]`` and writes them into a run folder.

    ``out=None`` keeps everything in memory (tests, notebooks). ``tensorboard=True`` also writes event files.
    ``earlier_wall_s`` is the wall time of a resumed run's earlier sessions, which ``wall_time_s`` counts on from.
    """

    def __init__(self, out: str | Path | None, config: dict, *, tensorboard: bool = True) -> None:
        self.out = None if out is None else Path(out)
        self.config = config
        self.series: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.started = time.time()
        self.earlier_wall_s = 0.0
        self._writer = None
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter  # imported lazily: it is slow to import

                self._writer = SummaryWriter(str(self.out))

    def scalar(self, name: str, value: float, step: int) -> None:
        self.series[name].append((step, float(value)))
        if self._writer is not None:
            self._writer.add_scalar(name, value, step)

    def last(self, name: str) -> float | None:
        return self.series[name][-1][1] if self.series.get(name) else None

    def wall_time_s(self) -> float:
        """Seconds of wall time of the whole run: this session's since the log opened, plus earlier ones'."""
        return self.earlier_wall_s + time.time() - self.started

    def write_metrics(self, summary: dict) -> dict:
        """Write ``metrics.json``: config, summary (final numbers), series, wall time. Returns the payload."""
        payload = {
            "config": self.config,
            **summary,
            "wall_time_s": round(self.wall_time_s(), 2),
            "series": {name: [[step, value] for step, value in points] for name, points in self.series.items()},
        }
        if self.out is not None:
            write_json_atomic(self.out / "metrics.json", payload)
            if self._writer is not None:
                self._writer.flush()
        return payload

    def plot(self, groups: dict[str, list[str]], filename: str = "curves.png",
             hlines: dict[str, tuple[float, str]] | None = None, logy: tuple[str, ...] = (),
             errors: dict[str, str] | None = None) -> Path | None:
        """One panel per group title, each plotting the named series against step; returns the PNG's path.

        ``hlines`` maps a panel title to ``(y, label)`` for a reference line (a floor, a target). ``errors``
        maps a series to the series of its standard errors (logged at the same steps), drawn as bars of two
        standard errors either side: a noisy estimate's points then show how far they can be trusted.
        """
        if self.out is None:
            return None
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.8), squeeze=False)
        for ax, (title, names) in zip(axes[0], groups.items(), strict=True):
            bar_ends: list[tuple[int, float]] = []          # (step, value ± 2 errors): the zoom keeps them in view
            for name in names:
                if self.series.get(name):
                    steps, values = zip(*self.series[name], strict=True)
                    bars = self._error_bars(name, (errors or {}).get(name))
                    label = f"{name} (bars: ± 2 standard errors)" if bars else name
                    line, = ax.plot(steps, values, label=label, marker="o" if len(steps) < 30 else None)
                    if bars:
                        bar_steps, bar_values, two_errors = bars
                        ax.errorbar(bar_steps, bar_values, yerr=two_errors, fmt="none", ecolor=line.get_color(),
                                    alpha=0.5, capsize=2)
                        bar_ends += [(step, value + sign * bar) for step, value, bar
                                     in zip(bar_steps, bar_values, two_errors, strict=True) for sign in (-1, 1)]
            ax.set_title(title)
            if hlines and title in hlines:
                y, label = hlines[title]
                ax.axhline(y, color="k", linestyle="--", linewidth=1, label=label)
                self._zoom_to_tail(ax, [point for name in names for point in self.series.get(name, [])] + bar_ends,
                                   y)
            if title in logy:
                ax.set_yscale("log")
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:      # a panel with nothing logged yet has no legend to draw
                ax.legend(fontsize=8)
        fig.tight_layout()
        path = self.out / filename
        write_atomically(path, lambda temporary: fig.savefig(temporary, dpi=110, format="png"))  # never half a PNG
        plt.close(fig)
        return path

    def _error_bars(self, name: str, error_name: str | None) -> list[list] | None:
        """(steps, values, 2 x standard errors) of ``name`` at the steps where ``error_name`` has a finite
        value (a run resumed from an older checkpoint logged none for its first evaluations); None if none."""
        spread = dict(self.series.get(error_name, [])) if error_name else {}
        shown = [(step, value, 2 * spread[step]) for step, value in self.series[name]
                 if math.isfinite(spread.get(step, math.nan))]
        return [list(column) for column in zip(*shown, strict=True)] if shown else None

    @staticmethod
    def _zoom_to_tail(ax, points: list[tuple[int, float]], line: float) -> None:
        """Fit the y range to a panel's (step, value) points after their first 5% of steps, and the reference
        line: the first steps' values (e.g. log2 of the vocabulary) would press the end of a curve flat onto
        the line."""
        if not points:
            return
        first = max(step for step, _ in points) * 0.05
        tail = [value for step, value in points if step >= first and math.isfinite(value)]   # NaN/inf: no range
        low, high = min([*tail, line]), max([*tail, line])
        pad = 0.1 * (high - low) or 0.01 * abs(line) or 0.01
        ax.set_ylim(low - pad, high + pad)
        ax.set_title(f"{ax.get_title()} (range of the last 95% of steps)", fontsize=9)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
