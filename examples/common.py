"""What every question's script shares: its flags, and one line per experiment with mean, spread and time.

Not part of the library: the scripts import it as ``from common import ...`` (run them from anywhere).
"""

import argparse
import time
from pathlib import Path

import torch

from minitx.classify import Dataset, TrainSettings, mean_std, model_config, train_seeds
from minitx.cli import HelpFormatter

IMDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb.word.pkl.gz"


def parser(doc: str, epochs: int | None, seeds: int | None = 3) -> argparse.ArgumentParser:
    """``--epochs``, ``--seeds`` (how many, from 0), ``--data-path`` (IMDb file), ``--threads``; a script that
    trains nothing passes ``epochs=None, seeds=None`` and has no such flags."""
    p = argparse.ArgumentParser(description=doc, formatter_class=HelpFormatter)
    if epochs is not None:
        p.add_argument("--epochs", type=int, default=epochs, help="epochs per run")
    if seeds is not None:
        p.add_argument("--seeds", type=int, default=seeds, help="runs per setting (seeds 0, 1, ...)")
    p.add_argument("--data-path", default=str(IMDB), help="the IMDb pickle (imdb.word.pkl.gz)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (the machine may be shared)")
    return p


def setup(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)


def experiment(label: str, data: Dataset, kind: str, settings: TrainSettings, seeds: int, **model) -> list[float]:
    """Train ``kind`` on ``data`` once per seed; print accuracy mean ± std, the runs, epochs and time per run."""
    config = model_config(kind, vocab=len(data.i2w), classes=data.classes, **model)
    started = time.time()
    results = train_seeds(config, data, settings, range(seeds))
    accuracies = [r.accuracy for r in results]
    mean, std = mean_std(accuracies)
    runs = ", ".join(f"{a:.4f}" for a in accuracies)
    print(f"{label:<44} {mean:.4f} ± {std:.4f}  [{runs}]  {settings.epochs} epochs, "
          f"{(time.time() - started) / seeds:.0f} s/run", flush=True)
    return accuracies
