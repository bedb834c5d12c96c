"""``python -m minitx sample``: print text sampled from a checkpoint written by ``python -m minitx lm``.

Example: ``python -m minitx sample --checkpoint runs/toy/checkpoint.pt --seed-text "the cat " --length 300``.
Without ``--seed-text`` the seed is 16 characters sliced from the validation split of ``--data`` (default:
the toy grammar's): pass the data the model was trained on.
"""

import argparse
import sys

import torch

from ..checkpoint import load_model
from ..data import random_slices
from ..lm_train import load_lm_data
from ..runtime import pick_device
from ..sample import encode, sample, with_seed_in_brackets
from . import HelpFormatter


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sample", help="sample text from a trained language model",
                                   description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pt of a `minitx lm` run")
    parser.add_argument("--seed-text", default=None,
                        help="text to continue (default: 16 characters of validation data, see --data)")
    parser.add_argument("--data", default="toy", help="where a random seed comes from: toy, wp or a file path")
    parser.add_argument("--length", type=int, default=200, help="new characters to sample")
    parser.add_argument("--temperature", type=float, default=1.0, help="1: the model's distribution; 0: greedy")
    parser.add_argument("--top-k", type=int, default=None, help="sample only among the k most likely characters")
    parser.add_argument("--epsilon", type=float, default=None,
                        help="drop characters less likely than this (epsilon sampling), e.g. 1e-3")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")


def run(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    model, payload = load_model(args.checkpoint, device)
    i2c = payload.get("vocab")
    if i2c is None:
        raise ValueError(f"{args.checkpoint} stores no vocabulary; it was not written by `python -m minitx lm`")
    generator = torch.Generator().manual_seed(args.seed)
    if args.seed_text is not None:
        seed = encode(args.seed_text, {c: i for i, c in enumerate(i2c)})
    else:
        (_, val), (data_i2c, _) = load_lm_data(args.data)
        if list(data_i2c) != list(i2c):
            raise ValueError(f"--data {args.data!r} has another vocabulary than the checkpoint; pass the data "
                             "the model was trained on, or --seed-text")
        seed = random_slices(val, 1, 16, generator)[0]
    tokens = sample(model, seed, args.length, temperature=args.temperature, top_k=args.top_k,
                    epsilon=args.epsilon, generator=generator.manual_seed(args.seed + 1))
    print(with_seed_in_brackets(tokens, len(seed), i2c), file=sys.stdout)
    return 0
