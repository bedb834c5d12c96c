"""Q13: train for 50,000 batches; every 10,000 print the validation bits and a sample.

    python examples/q13_sampling.py                       # the assignment's run (long on a CPU)
    python examples/q13_sampling.py --steps 1500 --every 300 --emb 64 --depth 2 --context 64 --out runs/q13-short

Each sample starts from a 16-character seed sliced from validation data (shown in brackets) and continues
one character at a time at temperature 1, using the key/value cache. As the loss falls the samples move from
random characters to word-like chunks to grammatical sentences.
"""

import argparse

import torch

from minitx import LMConfig
from minitx.cli import HelpFormatter
from minitx.data import load_toy
from minitx.grammar import toy_entropy_floor
from minitx.lm_train import LMTrainSettings, train_lm

parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
parser.add_argument("--steps", type=int, default=50_000, help="batches of training")
parser.add_argument("--every", type=int, default=10_000, help="batches between evaluation + sample")
parser.add_argument("--emb", type=int, default=128, help="embedding size")
parser.add_argument("--depth", type=int, default=4, help="transformer blocks")
parser.add_argument("--context", type=int, default=256, help="context length")
parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0: greedy)")
parser.add_argument("--out", default="runs/q13-toy", help="run folder")
args = parser.parse_args()
if args.threads:
    torch.set_num_threads(args.threads)

(train, val), (i2c, _) = load_toy()
config = LMConfig(vocab=len(i2c), emb=args.emb, heads=4, depth=args.depth, context=args.context, backend="sdpa")
settings = LMTrainSettings(steps=args.steps, lr=2e-3, warmup=min(500, args.steps // 10), eval_every=args.every,
                           sample_every=args.every, temperature=args.temperature, eval_batches=100, final_eval="exact")
result = train_lm(config, train, val, settings, i2c=i2c, out=args.out, floor=toy_entropy_floor())

print("\n| batches | validation bits (estimate) | sample (seed in brackets) |\n|---|---|---|")
for step, bits, text in result.samples:
    print(f"| {step} | {bits:.3f} | `[{text[:16]}]{text[16:]}` |")
print(f"\nexact validation bits per character at the end: {result.summary['final_exact_bits']:.4f} "
      f"(floor {toy_entropy_floor():.4f})")
