"""``python -m minitx classify``: train a sequence classifier (questions 2-9) and write a run folder.

Example: ``python -m minitx classify --data xor --model simple --pool select --pos --emb 16 --lr 1e-2
--epochs 3 --out runs/xor-pos``. With ``--out`` the folder gets ``metrics.json``, ``curves.png``, TensorBoard
events and ``model.pt`` (for ``python -m minitx.attention_map``).
"""

import argparse
import json

from ..classify import (
    DATASETS,
    MODELS,
    TrainSettings,
    load_dataset,
    model_config,
    save_checkpoint,
    train_classifier,
)
from ..tracking import RunLog, files_of_a_run
from . import HelpFormatter, set_threads


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``classify`` and ``tune``: which data, which model."""
    parser.add_argument("--data", choices=DATASETS, default="imdb", help="dataset")
    parser.add_argument("--path", default=None,
                        help="local IMDb data: the course's imdb.word.pkl.gz, or the raw reviews (the aclImdb folder, "
                             "its .tar.gz, or a .tsv/.tsv.gz of split, label, id, text); without it the course's "
                             "pickle is downloaded")
    parser.add_argument("--final", action="store_true",
                        help="IMDb: train on all 25k training reviews and report the test set instead of "
                             "a 5000-review validation split")
    parser.add_argument("--vocab", type=int, default=None, help="IMDb: keep only the N most frequent words")
    parser.add_argument("--ntrain", type=int, default=None, help="synth/xor: training instances (default 25000)")
    parser.add_argument("--nval", type=int, default=None, help="synth/xor: validation instances (default 25000)")
    parser.add_argument("--start-token", action="store_true",
                        help="put .start in front of every sequence (a summary position for --pool select)")
    parser.add_argument("--model", choices=tuple(MODELS), default="baseline",
                        help="baseline: embedding-pool-linear; simple: + parameter-free self-attention; "
                             "full: + multi-head self-attention layers; transformer: + transformer blocks")
    parser.add_argument("--pool", choices=("mean", "max", "select"), default="mean",
                        help="global pool over time (select = first position)")
    parser.add_argument("--pos", action="store_true", help="add learned position embeddings")
    parser.add_argument("--depth", type=int, default=None,
                        help="attention layers or blocks (default: 1 layer, 3 transformer blocks)")
    parser.add_argument("--heads", type=int, default=None,
                        help="attention heads, for full and transformer (default: 4)")
    parser.add_argument("--emb", type=int, default=300, help="embedding size")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout rate (transformer blocks, embeddings)")
    parser.add_argument("--norm", choices=("post", "pre"), default=None,
                        help="layer-norm place in a transformer block (default: post)")
    parser.add_argument("--backend", choices=("scratch", "sdpa"), default=None,
                        help="attention kernel: minitx's own, or PyTorch's fused scaled_dot_product_attention; "
                             "not for the baseline (default: scratch)")
    parser.add_argument("--max-len", type=int, default=256, help="cut sequences to their first N tokens (0: no cut)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=5, help="passes over the training data")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (AdamW)")
    parser.add_argument("--batch", type=int, default=64, help="instances per batch (ignored with --tokens)")
    parser.add_argument("--tokens", type=int, default=0,
                        help="token budget per batch: length-sorted batches of at most N padded tokens (0: off)")
    parser.add_argument("--warmup", type=int, default=0, help="linear learning-rate warmup steps")
    parser.add_argument("--decay", action="store_true", help="cosine learning-rate decay to 10%% by the last step")
    parser.add_argument("--clip", type=float, default=0.0, help="clip the gradient norm to this value (0: off)")
    parser.add_argument("--weight-decay", type=float, default=0.0,
                        help="AdamW weight decay of the linear layers' weight matrices (not embeddings, biases, norms)")
    parser.add_argument("--seed", type=int, default=0, help="seed for initialisation and batch order")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("classify", help="train a sequence classifier (IMDb, IMDb-synth, XOR)",
                                   description=__doc__, formatter_class=HelpFormatter)
    add_model_arguments(parser)
    add_training_arguments(parser)
    parser.add_argument("--out", default=None, help="run folder for metrics.json, curves.png and model.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def check_data_flags(args: argparse.Namespace) -> None:
    """A flag that the chosen data set ignores is an error, not a silent no-op (``--vocab`` on XOR, say)."""
    if args.data == "imdb":
        ignored = {"--ntrain": args.ntrain, "--nval": args.nval}
    else:
        ignored = {"--path": args.path, "--final": args.final or None, "--vocab": args.vocab}
    given = [flag for flag, value in ignored.items() if value is not None]
    if given:
        raise ValueError(f"{', '.join(given)} {'has' if len(given) == 1 else 'have'} no effect with "
                         f"--data {args.data}; {'they are' if len(given) > 1 else 'it is'} for "
                         f"{'synth/xor' if args.data == 'imdb' else 'imdb'} only")


# The model flags each model ignores (a baseline has no attention: no depth, heads, norm or kernel)
IGNORED_MODEL_FLAGS = {"baseline": ("depth", "heads", "norm", "backend"), "simple": ("heads", "norm"),
                       "full": ("norm",), "transformer": ()}


def model_flags(args: argparse.Namespace) -> dict:
    """The model flags the user gave, as `model_config` keywords; one that ``--model`` ignores is an error, not
    a silent no-op that metrics.json would then record as if it had been used (``--depth 3`` on a baseline)."""
    ignored = [f"--{name}" for name in IGNORED_MODEL_FLAGS[args.model] if getattr(args, name) is not None]
    if ignored:
        raise ValueError(f"{', '.join(ignored)} {'has' if len(ignored) == 1 else 'have'} no effect with --model "
                         f"{args.model}; leave {'it' if len(ignored) == 1 else 'them'} out")
    given = {name: getattr(args, name) for name in ("depth", "heads", "norm", "backend")}
    return {name: value for name, value in given.items() if value is not None}


def build(args: argparse.Namespace):
    """``(dataset, model config, train settings)`` from parsed flags; also used by ``tune``."""
    check_data_flags(args)
    flags = model_flags(args)
    set_threads(args.threads)
    max_len = args.max_len or None
    sizes = {name: value for name, value in (("ntrain", args.ntrain), ("nval", args.nval)) if value is not None}
    data = load_dataset(args.data, path=args.path, final=args.final, vocab=args.vocab,
                        start_token=args.start_token, **sizes)
    config = model_config(args.model, vocab=len(data.i2w), classes=data.classes, emb=args.emb, pool=args.pool,
                          positions=args.pos, dropout=args.dropout,
                          max_len=min(max_len or data.longest, data.longest), **flags)
    settings = TrainSettings(epochs=args.epochs, lr=args.lr, batch=args.batch, tokens=args.tokens, max_len=max_len,
                             warmup=args.warmup, decay=args.decay, clip=args.clip, weight_decay=args.weight_decay,
                             seed=args.seed, device=args.device, compile=args.compile,
                             progress=not getattr(args, "quiet", False))
    settings.validate()
    return data, config, settings


def check_out_folder(out: str | None) -> None:
    """Before any work: ``--out`` must be a folder without an earlier run in it (its metrics.json and model.pt
    would be overwritten, and TensorBoard would draw the two runs' events as one curve)."""
    found = [] if out is None else files_of_a_run(out, ("metrics.json", "model.pt"))
    if found:
        raise FileExistsError(f"{out} already holds a run ({', '.join(found)}): give another --out, or delete the "
                              "folder to start afresh")


def run(args: argparse.Namespace) -> int:
    check_out_folder(args.out)
    data, config, settings = build(args)
    log = RunLog(args.out, {"data": args.data, "model": args.model, "final": args.final, "vocab": args.vocab,
                            "start_token": args.start_token, "classifier": config.to_dict(),
                            "training": settings.to_dict()})
    result = train_classifier(config, data, settings, log=log)
    summary = result.summary()
    log.write_metrics(summary)
    log.plot({"loss": ["train/loss", "val/loss"], "validation accuracy": ["val/accuracy"]},
             hlines={"validation accuracy": (0.5, "chance")})
    log.close()
    if args.out:
        save_checkpoint(f"{args.out}/model.pt", result.model, args.data, start_token=args.start_token)
    print(json.dumps({"data": args.data, "model": args.model, "pool": args.pool,
                      "final_val_accuracy": round(result.accuracy, 4),
                      "evaluated_on": "test" if args.final else "validation",    # --final: the test set
                      "epochs": settings.epochs, "train_time_s": summary["train_time_s"], "out": args.out}))
    return 0
