"""``python -m minitx demo``: the whole assignment in miniature, on data minitx generates itself.

1. XOR (two tokens; the label says whether they differ): a mean-pooling baseline cannot learn it (the mean
   of two embeddings does not say whether they differ; max pooling happens to be able to, see docs/results.md),
   multi-head attention with position embeddings can.
2. A GPT-style character model on the toy grammar, with validation bits against the grammar's entropy floor and
   samples that a grammar parser checks.
"""

import argparse
import itertools
from pathlib import Path

import torch

from .. import LMConfig
from ..classify import TrainSettings, load_dataset, model_config, train_classifier
from ..data import load_toy, random_slices
from ..grammar import accepted_fraction, toy_entropy_floor
from ..lm_train import (
    CHECKPOINT,
    LMTrainSettings,
    TrainingInterrupted,
    check_run_folder,
    earlier_run_files,
    train_lm,
)
from ..sample import decode, sample, with_seed_in_brackets
from . import HelpFormatter


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="train small transformers on generated data (a few minutes on a CPU)",
        description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="training time for the character model")
    parser.add_argument("--out", default=None,
                        help="run folder for the character model's curves, samples and checkpoint "
                             "(default: runs/demo, or runs/demo-2, -3, ... where that holds a run already)")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run (tests use it)")


def run(args: argparse.Namespace) -> int:
    if not args.minutes > 0:                 # checked before part 1, not after it
        raise ValueError(f"--minutes must be positive, got {args.minutes}")
    out = Path(args.out) if args.out is not None else fresh_run_folder(Path("runs/demo"))
    check_run_folder(out, resume=False)      # a run already there is refused now, not after part 1
    classify_demo(quick=args.quick)
    lm_demo(out, minutes=args.minutes, quick=args.quick)
    return 0


def fresh_run_folder(base: Path) -> Path:
    """``base``, or the first of ``base-2``, ``base-3``, ... that holds no run: a second demo keeps the first's."""
    candidates = (base if n == 1 else base.with_name(f"{base.name}-{n}") for n in itertools.count(1))
    return next(c for c in candidates if not c.exists() or (c.is_dir() and not earlier_run_files(c)))


def classify_demo(quick: bool) -> None:
    print("== 1. XOR: the label is 'the two tokens differ' ==")
    data = load_dataset("xor", ntrain=1000 if quick else 5000, nval=500 if quick else 2000)
    settings = TrainSettings(epochs=1 if quick else 3, lr=1e-2, batch=32, max_len=None, progress=False)
    models = {
        "baseline, mean pool (no interaction between tokens)": model_config(
            "baseline", vocab=len(data.i2w), emb=16, pool="mean"),
        "multi-head attention + positions, select pool": model_config(
            "full", vocab=len(data.i2w), emb=16, heads=4, pool="select", positions=True, max_len=2),
    }
    for name, config in models.items():
        accuracy = train_classifier(config, data, settings).accuracy
        print(f"  {name:55s} validation accuracy {accuracy:.3f}")


def lm_demo(out: Path, minutes: float, quick: bool) -> None:
    print("\n== 2. A character transformer on the toy grammar ==")
    (train, val), (i2c, _) = load_toy(ntrain=5_000 if quick else 50_000, ntest=1_000 if quick else 5_000)
    config = LMConfig(vocab=len(i2c), emb=32 if quick else 64, heads=4, depth=2, context=32 if quick else 64)
    floor = toy_entropy_floor(samples=100 if quick else 1000)
    settings = LMTrainSettings(
        batch=32, steps=30 if quick else 100_000, time_limit=None if quick else minutes, lr=3e-3, warmup=10 if quick
        else 100, eval_every=15 if quick else 500, eval_batches=5 if quick else 50, sample_every=15 if quick else 2000,
        checkpoint_every=1_000_000, final_eval="none" if quick else "exact")
    try:
        result = train_lm(config, train, val, settings, i2c=i2c, out=out, floor=floor, quiet=quick)
    except TrainingInterrupted as stop:     # its message speaks of --resume, which the demo does not have
        raise KeyboardInterrupt(f"the model so far is in {out / CHECKPOINT}: `python -m minitx sample "
                                f"--checkpoint {out / CHECKPOINT}` samples from it") from stop
    bits = result.summary.get("final_exact_bits", result.log.last("val/bits"))
    seed = random_slices(val, 1, 16, torch.Generator().manual_seed(0))[0]
    tokens = sample(result.model, seed, 30 if quick else 400, generator=torch.Generator().manual_seed(0))
    accepted, checked = accepted_fraction(decode(tokens[len(seed):], i2c))      # the model's own characters
    print(f"  after {result.step} steps: validation {bits:.3f} bits per character (the grammar's floor: {floor:.3f})")
    print(f"  sample (16-character seed in brackets): {with_seed_in_brackets(tokens[:200], len(seed), i2c)}")
    if checked:
        print(f"  sentences of the sample that the grammar accepts: {accepted:.0%} of {checked}")
    print(f"  curves (curves.png), metrics.json, TensorBoard logs and the model ({CHECKPOINT}) are in {out}/")
