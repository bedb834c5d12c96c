"""Optional: a byte-level model of enwik8 (100 MB of Wikipedia), the assignment's closing experiment.

    python examples/wikipedia.py --path /data/enwik8.gz --hours 12          # one GPU
    python examples/wikipedia.py --path reviews.txt --hours 0.75 --emb 128 --depth 4 --context 256 --batch 32 \
        --lr 2e-3 --dropout 0 --out runs/wikipedia-cpu                      # any text file, a CPU-sized model
    torchrun --standalone --nproc_per_node=4 -m minitx lm --data /data/enwik8 --emb 512 --heads 8 --depth 12

The default model (12 blocks, 512 wide, 8 heads, context 512: about 38M parameters) with batches of 64 fits
one 24 GB GPU under bf16 autocast. The learning-rate schedule follows the clock (``--hours``). The course's
2019 model (12 blocks, 256 wide, context 256) reached 1.343 bits per byte after about 24 hours; the evaluation
here is the exact one, over every byte of the validation split.
"""

import argparse

from minitx import LMConfig
from minitx.cli import HelpFormatter
from minitx.config import ENWIK8_MODEL
from minitx.lm_train import LMTrainSettings, load_lm_data, train_lm

parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
parser.add_argument("--path", default=None, help="local enwik8 (gzipped or not); default: download it")
parser.add_argument("--hours", type=float, default=12.0, help="hours of training")
parser.add_argument("--emb", type=int, default=ENWIK8_MODEL["emb"], help="embedding size")
parser.add_argument("--depth", type=int, default=ENWIK8_MODEL["depth"], help="transformer blocks")
parser.add_argument("--context", type=int, default=ENWIK8_MODEL["context"], help="context length in bytes")
parser.add_argument("--batch", type=int, default=64, help="windows per batch")
parser.add_argument("--lr", type=float, default=6e-4, help="peak learning rate (small models take more)")
parser.add_argument("--dropout", type=float, default=ENWIK8_MODEL["dropout"], help="dropout (0 for short runs)")
parser.add_argument("--compile", action="store_true", help="torch.compile the model (faster on recent GPUs)")
parser.add_argument("--out", default="runs/wikipedia", help="run folder")
parser.add_argument("--resume", action="store_true", help="continue the run in --out")
args = parser.parse_args()

(train, val), (i2t, _) = load_lm_data(args.path or "wp")
config = LMConfig(vocab=len(i2t), **{**ENWIK8_MODEL, "emb": args.emb, "depth": args.depth, "context": args.context,
                                     "dropout": args.dropout})
settings = LMTrainSettings(batch=args.batch, steps=10_000_000, lr=args.lr, warmup=2000, time_limit=args.hours * 60,
                           eval_every=10_000, sample_every=10_000, sample_length=400, eval_batches=200,
                           checkpoint_every=2000, compile=args.compile)
result = train_lm(config, train, val, settings, i2c=i2t, out=args.out, resume=args.resume)
print(f"exact validation bits per byte: {result.summary['final_exact_bits']:.4f}")
