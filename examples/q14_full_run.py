"""Q14: a full training run on the toy data, as close to the grammar as a CPU allows in a fixed time.

    python examples/q14_full_run.py                      # 15 minutes of training, then the exact evaluation
    python examples/q14_full_run.py --time-limit 45 --out runs/q14-45min

The learning-rate schedule follows the clock (warmup, then a cosine that ends when the time is up), so the
run fits its budget on any machine. At the end: the exact validation bits (every character scored once,
context 256) against the grammar's entropy floor, and the fraction of sampled sentences the grammar accepts.
"""

import argparse

import torch

from minitx import LMConfig
from minitx.checkpoint import load_model
from minitx.data import load_toy, random_slices
from minitx.grammar import accepted_fraction, toy_entropy_floor
from minitx.lm_train import CHECKPOINT, LMTrainSettings, train_lm
from minitx.sample import decode, sample
from minitx.tracking import write_json_atomic

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
parser.add_argument("--time-limit", type=float, default=15.0, help="minutes of training")
parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
parser.add_argument("--val-sentences", type=int, default=5000,
                    help="sentences in the validation stream (the first N of load_toy's 20,000)")
parser.add_argument("--samples", type=int, default=256,
                    help="samples for the acceptance check (16-character seed + 240 new: within the context)")
parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
parser.add_argument("--out", default="runs/q14-toy", help="run folder")
args = parser.parse_args()
if args.threads:
    torch.set_num_threads(args.threads)

(train, val), (i2c, _) = load_toy(ntest=args.val_sentences)
config = LMConfig(vocab=len(i2c), emb=128, heads=4, depth=4, context=256, backend="sdpa")
settings = LMTrainSettings(batch=32, steps=1_000_000, lr=args.lr, warmup=200, final_lr_fraction=0.02,
                           time_limit=args.time_limit, log_every=25, eval_every=500, sample_every=500,
                           eval_batches=50, checkpoint_every=500)
floor = toy_entropy_floor()
result = train_lm(config, train, val, settings, i2c=i2c, out=args.out, floor=floor)

# Q14: how close are the samples to the data? Sentences the grammar accepts, at temperature 1.
model, _ = load_model(f"{args.out}/{CHECKPOINT}")
seeds = random_slices(val, args.samples, 16, torch.Generator().manual_seed(1))          # (samples, 16)
texts = [decode(row, i2c) for row in sample(model, seeds, 240, generator=torch.Generator().manual_seed(2))]
checked = [accepted_fraction(text) for text in texts]
sentences = sum(n for _, n in checked)
accepted = sum(f * n for f, n in checked) / sentences
report = {"final_exact_bits": result.summary["final_exact_bits"], "entropy_floor": floor,
          "train_time_s": result.summary["train_time_s"], "steps": result.step,
          "accepted_fraction": accepted, "sentences_checked": sentences, "example_sample": texts[0][:300]}
write_json_atomic(result.log.out / "q14.json", report)
print(f"exact validation bits {report['final_exact_bits']:.4f} (floor {floor:.4f}) after {result.step} steps, "
      f"{report['train_time_s'] / 60:.1f} min; grammar accepts {accepted:.1%} of {sentences} sampled sentences")
print(texts[0][:300])
