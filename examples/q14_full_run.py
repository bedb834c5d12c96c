"""Q14: a full training run on the toy data, as close to the grammar as a CPU allows in a fixed time.

    python examples/q14_full_run.py                      # 15 minutes of training, then the exact evaluation
    python examples/q14_full_run.py --time-limit 45 --out runs/q14-45min
    python examples/q14_full_run.py --evaluate-only --out runs/q14-45min --samples 4096 --epsilon 1e-3

The learning-rate schedule follows the clock (warmup, then a cosine that ends when the time is up), so the
run fits its budget on any machine. At the end: the exact validation bits (every character scored once,
context 256) against the grammar's entropy floor, and the fraction of sampled sentences the grammar accepts.
"""

import argparse
from pathlib import Path

import torch

from minitx import LMConfig
from minitx.checkpoint import load_model
from minitx.cli import HelpFormatter
from minitx.data import load_toy
from minitx.evaluate import exact_bits
from minitx.grammar import sampled_acceptance, toy_entropy_floor
from minitx.lm_train import CHECKPOINT, LMTrainSettings, train_lm
from minitx.tracking import write_json_atomic

parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
parser.add_argument("--time-limit", type=float, default=15.0, help="minutes of training")
parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
parser.add_argument("--emb", type=int, default=64, help="embedding size (small: a CPU budget buys more steps)")
parser.add_argument("--depth", type=int, default=3, help="transformer blocks")
parser.add_argument("--batch", type=int, default=32, help="windows of 256 characters per batch")
parser.add_argument("--warmup", type=int, default=200, help="warmup steps")
parser.add_argument("--val-sentences", type=int, default=5000,
                    help="sentences in the validation stream (the first N of load_toy's 20,000)")
parser.add_argument("--samples", type=int, default=256,
                    help="samples for the acceptance check (16-character seed + 240 new: within the context)")
parser.add_argument("--temperature", type=float, default=1.0,
                    help="sampling temperature of the acceptance check (other than 1.0 or 256 samples: "
                         "the report goes to q14-tT-nN.json)")
parser.add_argument("--epsilon", type=float, default=None,
                    help="drop characters less likely than this when sampling (epsilon sampling; see pick_next); "
                         "the report goes to q14-tT-epsE-nN.json")
parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
parser.add_argument("--out", default="runs/q14-toy", help="run folder")
parser.add_argument("--evaluate-only", action="store_true", help="skip training: evaluate the checkpoint in --out")
args = parser.parse_args()
if args.threads:
    torch.set_num_threads(args.threads)

(train, val), (i2c, _) = load_toy(ntest=args.val_sentences)
config = LMConfig(vocab=len(i2c), emb=args.emb, heads=4, depth=args.depth, context=256, backend="sdpa")
settings = LMTrainSettings(batch=args.batch, steps=1_000_000, lr=args.lr, warmup=args.warmup, final_lr_fraction=0.02,
                           time_limit=args.time_limit, log_every=25, eval_every=500, sample_every=500,
                           eval_batches=50, checkpoint_every=500)
floor = toy_entropy_floor()
if args.evaluate_only:                                   # the run in --out, trained before
    model, saved = load_model(f"{args.out}/{CHECKPOINT}")
    summary = {"train_time_s": saved["elapsed_s"], "steps": saved["step"]}
else:
    result = train_lm(config, train, val, settings, i2c=i2c, out=args.out, floor=floor)
    model, summary = result.model, {"train_time_s": result.summary["train_time_s"], "steps": result.step}

# Every validation character's bits in context (the exact evaluation): their mean is the model's score; their
# maximum is the least likely character, and an epsilon below its probability drops none of the data's
# characters (each keeps at least its probability, renormalised), only the tail the data never takes.
scores = exact_bits(model, val, config.context, per_position=True, progress=True)          # (274787,)
lowest = 2.0 ** -scores.max().item()
# Q14: how close are the samples to the data? The fraction of sampled sentences the grammar accepts.
acceptance = sampled_acceptance(model, val, i2c, samples=args.samples, temperature=args.temperature,
                                epsilon=args.epsilon)
report = {"final_exact_bits": scores.double().mean().item(), "entropy_floor": floor, **summary,
          "lowest_validation_probability": lowest, **acceptance}
checks = "" if (args.temperature, args.samples, args.epsilon) == (1.0, 256, None) else (
    f"-t{args.temperature:g}" + (f"-eps{args.epsilon:g}" if args.epsilon is not None else "") + f"-n{args.samples}")
write_json_atomic(Path(args.out) / f"q14{checks}.json", report)
print(f"exact validation bits {report['final_exact_bits']:.4f} (floor {floor:.4f}) after {report['steps']} steps, "
      f"{report['train_time_s'] / 60:.1f} min; the grammar accepts {acceptance['accepted_fraction']:.2%} of "
      f"{acceptance['sentences_checked']} sampled sentences at temperature {args.temperature:g}"
      + (f", epsilon {args.epsilon:g}" if args.epsilon is not None else "")
      + f"; the least likely validation character has p = {lowest:.2e}")
print(acceptance["examples"][0])
