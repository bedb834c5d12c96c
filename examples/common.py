"""What every question's script shares: its flags, and one line per experiment with mean, spread and time.

Not part of the library: the scripts import it as ``from common import ...`` (run them from anywhere).
"""

import argparse
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from minitx.classify import Dataset, TrainSettings, load_dataset, mean_std, model_config, train_seeds
from minitx.cli import HelpFormatter
from minitx.data import CorruptFileError, DownloadError

# The course's pickle where the project keeps its data, ../shared/data beside the checkout; without it the
# loaders download the course's file (once, into the cache) and say what to do when offline.
IMDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb.word.pkl.gz"


def parser(doc: str, epochs: int | None, seeds: int | None = 3) -> argparse.ArgumentParser:
    """``--epochs``, ``--seeds`` (how many, from 0), ``--ntrain`` (synthetic set sizes), ``--data-path`` (IMDb
    file), ``--threads``; a script that trains nothing passes ``epochs=None, seeds=None`` and has no such flags."""
    p = argparse.ArgumentParser(description=doc, formatter_class=HelpFormatter)
    if epochs is not None:
        p.add_argument("--epochs", type=int, default=epochs, help="epochs per run")
        p.add_argument("--ntrain", type=int, default=25_000,
                       help="synth/xor: training and validation instances each (fewer run faster; simple "
                            "attention needs a few thousand to reach its 0.75)")
    if seeds is not None:
        p.add_argument("--seeds", type=int, default=seeds, help="runs per setting (seeds 0, 1, ...)")
    p.add_argument("--data-path", default=str(IMDB) if IMDB.exists() else None,
                   help="the IMDb pickle (imdb.word.pkl.gz); default: ../shared/data beside the checkout if "
                        "there, else the course's download (cached)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (the machine may be shared)")
    return p


def setup(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)


@contextlib.contextmanager
def data_errors() -> Iterator[None]:
    """A missing, unreachable or damaged data file ends the script with the library's one-line message (what
    to download, where to put it), not a traceback."""
    try:
        yield
    except (OSError, ValueError, DownloadError, CorruptFileError) as error:
        raise SystemExit(f"error: {error}") from None


def dataset(name: str, args: argparse.Namespace, **options) -> Dataset:
    """IMDb from ``--data-path`` (else the course's download; ``options`` such as ``vocab=``), or IMDb-synth or
    XOR with ``--ntrain`` instances for training and as many for validation."""
    with data_errors():
        if name == "imdb":
            return load_dataset(name, path=args.data_path, **options)
        return load_dataset(name, ntrain=args.ntrain, nval=args.ntrain, **options)


def experiment(label: str, data: Dataset, kind: str, settings: TrainSettings, seeds: int, **model) -> list[float]:
    """Train ``kind`` on ``data`` once per seed; print accuracy mean ± std, the runs, epochs and time per run."""
    config = model_config(kind, vocab=len(data.i2w), classes=data.classes, **model)
    started = time.time()
    results = train_seeds(config, data, settings, range(seeds))
    accuracies = [r.accuracy for r in results]
    mean, std = mean_std(accuracies)
    runs = ", ".join(f"{a:.4f}" for a in accuracies)
    spread = f"± {std:.4f}" if seeds > 1 else "(one seed)"
    print(f"{label:<44} {mean:.4f} {spread}  [{runs}]  {settings.epochs} epoch{'s' * (settings.epochs != 1)}, "
          f"{(time.time() - started) / seeds:.0f} s/run", flush=True)
    return accuracies
