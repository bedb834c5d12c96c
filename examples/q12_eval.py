"""Q12: validation bits per character, the assignment's estimate and the exact evaluation.

    python examples/q12_eval.py                               # an untrained model (about log2 of the vocabulary)
    python examples/q12_eval.py --checkpoint runs/q14-toy/checkpoint.pt

The estimate scores one position, the last, of each of 32 random windows per batch, over 1000 batches
(``--batches``); the exact evaluation scores every validation character once, with 128 to 256 characters of
context. Both are in bits (log2).
"""

import argparse
import inspect
import time

import torch

from minitx import LMConfig
from minitx.checkpoint import load_model
from minitx.cli import HelpFormatter
from minitx.data import load_toy
from minitx.evaluate import estimate_bits, exact_bits
from minitx.nn import LM

parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
parser.add_argument("--checkpoint", default=None, help="a checkpoint.pt from `python -m minitx lm --data toy`")
parser.add_argument("--batches", type=int, default=1000, help="batches of 32 for the estimate")
parser.add_argument("--val-sentences", type=int, default=5000, help="validation sentences for the exact evaluation")
args = parser.parse_args()
print(inspect.getsource(estimate_bits))

(_, val), (i2c, _) = load_toy(ntest=args.val_sentences)
if args.checkpoint:
    model, _ = load_model(args.checkpoint)
else:
    model = LM(LMConfig(vocab=len(i2c), backend="sdpa"), torch.Generator().manual_seed(0)).eval()
context = model.config.context

started = time.time()
estimate, error = estimate_bits(model, val, context, batches=args.batches, batch_size=32,
                                generator=torch.Generator().manual_seed(0), progress=True, with_error=True)
print(f"estimate: {estimate:.4f} ± {2 * error:.4f} bits per character (± two standard errors; {args.batches} "
      f"batches of 32, context {context}, {time.time() - started:.0f} s)")
started = time.time()
exact = exact_bits(model, val, context, progress=True)
print(f"exact:    {exact:.4f} bits per character ({len(val) - 1:,} characters, {time.time() - started:.0f} s)")
