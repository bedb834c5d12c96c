"""``python -m minitx lm``: train a character language model (questions 11-14) and write a run folder.

Example: ``python -m minitx lm --data toy --steps 50000 --out runs/toy``. The folder gets ``metrics.json``
(validation bits over time, the samples), ``curves.png`` (loss, gradient norm, learning rate), TensorBoard
events and ``checkpoint.pt`` (``--resume`` continues from it; ``python -m minitx sample`` samples from it).
Data-parallel: ``torchrun --standalone --nproc_per_node=N -m minitx lm ...``.
"""

import argparse

from ..config import LMConfig
from ..lm_train import LMTrainSettings, check_run_folder, load_lm_data, train_lm
from . import HelpFormatter, set_threads


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("lm", help="train a character/byte language model",
                                   description=__doc__, formatter_class=HelpFormatter)
    defaults = LMTrainSettings()
    parser.add_argument("--data", default="toy", help="toy (the assignment's grammar), wp (enwik8), or a file path")
    parser.add_argument("--emb", type=int, default=128, help="embedding size")
    parser.add_argument("--heads", type=int, default=4, help="attention heads")
    parser.add_argument("--depth", type=int, default=4, help="transformer blocks")
    parser.add_argument("--context", type=int, default=256, help="context length L (training windows, positions)")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout rate")
    parser.add_argument("--backend", choices=("scratch", "sdpa"), default="sdpa",
                        help="attention kernel: minitx's own, or PyTorch's fused scaled_dot_product_attention")
    parser.add_argument("--batch", type=int, default=defaults.batch, help="windows per batch")
    parser.add_argument("--accumulate", type=int, default=defaults.accumulate,
                        help="micro-batches per optimiser step (gradient accumulation)")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimiser steps")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="minutes of training; the learning-rate schedule follows the clock")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate (AdamW)")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="linear warmup steps")
    parser.add_argument("--final-lr", type=float, default=defaults.final_lr_fraction,
                        help="the cosine decay ends at this fraction of --lr")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="AdamW decay (matrices)")
    parser.add_argument("--clip", type=float, default=defaults.clip, help="gradient-norm clipping (0: off)")
    parser.add_argument("--log-every", type=int, default=defaults.log_every, help="steps between logged points")
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every, help="steps between evaluations")
    parser.add_argument("--eval-batches", type=int, default=defaults.eval_batches,
                        help="batches of the Q12 estimate at each evaluation")
    parser.add_argument("--sample-every", type=int, default=defaults.sample_every, help="steps between samples")
    parser.add_argument("--sample-length", type=int, default=defaults.sample_length, help="new characters")
    parser.add_argument("--temperature", type=float, default=defaults.temperature, help="sampling temperature")
    parser.add_argument("--epsilon", type=float, default=defaults.epsilon,
                        help="samples drop characters less likely than this (epsilon sampling), e.g. 1e-3")
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every,
                        help="steps between checkpoints")
    parser.add_argument("--final-eval", choices=("exact", "estimate", "none"), default=defaults.final_eval,
                        help="validation evaluation after training")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    parser.add_argument("--out", default=None, help="run folder (metrics, plots, TensorBoard, checkpoint)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")


def run(args: argparse.Namespace) -> int:
    check_run_folder(args.out, args.resume)      # before the data loads
    set_threads(args.threads)
    (train, val), (i2c, _) = load_lm_data(args.data)
    config = LMConfig(vocab=len(i2c), emb=args.emb, heads=args.heads, depth=args.depth, context=args.context,
                      dropout=args.dropout, backend=args.backend)
    settings = LMTrainSettings(
        batch=args.batch, steps=args.steps, lr=args.lr, warmup=args.warmup, final_lr_fraction=args.final_lr,
        weight_decay=args.weight_decay, clip=args.clip, accumulate=args.accumulate, time_limit=args.time_limit,
        log_every=args.log_every, eval_every=args.eval_every, eval_batches=args.eval_batches,
        sample_every=args.sample_every, sample_length=args.sample_length, temperature=args.temperature,
        epsilon=args.epsilon, checkpoint_every=args.checkpoint_every, final_eval=args.final_eval, compile=args.compile,
        amp=not args.no_amp, seed=args.seed, device=args.device)
    floor = None
    if args.data == "toy":
        from ..grammar import toy_entropy_floor

        floor = toy_entropy_floor()
    train_lm(config, train, val, settings, i2c=i2c, out=args.out, resume=args.resume, floor=floor)
    return 0
