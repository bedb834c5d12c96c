"""``python -m minitx tune``: optuna search over learning rate, batch size and embedding size.

Example: ``python -m minitx tune --data synth --model simple --pool select --trials 30 --epochs 5
--out runs/tune-synth``. The other flags are those of ``classify`` and stay fixed during the search; a flag
of a searched name (``--lr`` while lr is searched) is an error, since every trial would override it.
Writes ``tune.json`` (every trial and the best) to ``--out`` and prints the best settings.
"""

import argparse
import json
from pathlib import Path

from ..tracking import write_json_atomic
from ..tune import SEARCH_SPACE, embeddings_for_heads, require_optuna, tune
from . import HelpFormatter
from .classify import add_model_arguments, add_training_arguments, build, check_data_flags, model_flags


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("tune", help="optuna search of lr, batch and emb for a classifier",
                                   description=__doc__, formatter_class=HelpFormatter)
    add_model_arguments(parser)
    add_training_arguments(parser)
    parser.add_argument("--trials", type=int, default=20, help="number of trials")
    parser.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    parser.add_argument("--search", default=",".join(SEARCH_SPACE),
                        help=f"comma-separated names to search, from {sorted(SEARCH_SPACE)}")
    parser.add_argument("--out", default=None, help="folder for tune.json")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no line per trial")
    # a searched flag set by the user would be silently overridden by every trial: remember the defaults
    parser.set_defaults(searchable_defaults={name: parser.get_default(name) for name in SEARCH_SPACE})


def run(args: argparse.Namespace) -> int:
    names = [name.strip() for name in args.search.split(",") if name.strip()]
    unknown = set(names) - set(SEARCH_SPACE)
    if unknown or not names:
        raise ValueError(f"--search takes names from {sorted(SEARCH_SPACE)}, got {args.search!r}")
    if args.trials < 1:
        raise ValueError(f"--trials must be positive, got {args.trials}")
    if args.timeout is not None and not args.timeout > 0:
        raise ValueError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if args.final:   # with --final the "validation" split is the test set: settings picked on it are biased
        raise ValueError("--final would tune on the test set; tune on the validation split, then train the "
                         "chosen settings once with `python -m minitx classify ... --final`")
    fixed_by_user = [name for name in names if getattr(args, name) != args.searchable_defaults[name]]
    if fixed_by_user:
        flags = ", ".join(f"--{name} {getattr(args, name)}" for name in fixed_by_user)
        rest = [name for name in names if name not in fixed_by_user]
        hint = f"--search {','.join(rest)}" if rest else "drop the flags, or search something else"
        raise ValueError(f"{flags}: searched, so every trial would override it; to keep it fixed, leave it out "
                         f"of --search ({hint})")
    if args.tokens and "batch" in names:
        raise ValueError("--tokens sets token-budget batches, so searching 'batch' changes nothing; "
                         "drop it from --search or leave --tokens at 0")
    check_data_flags(args)                     # before --out is made: a refused command leaves nothing
    heads = model_flags(args).get("heads")      # only a model with heads is given --heads
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():    # said before the search
        raise ValueError(f"--out {args.out} is a file: tune.json goes into a folder")
    if "emb" in names and heads and args.emb % heads:   # every trial sets emb; the base config needs one --heads
        args.emb = embeddings_for_heads(SEARCH_SPACE["emb"][1], heads)[0]         # divides (300 fails with 8)
    data, config, settings = build(args)       # checks the settings: a refused command makes no --out
    if args.out:                               # made before the search, not after it
        Path(args.out).mkdir(parents=True, exist_ok=True)      # a parent that is a file fails here
    if args.quiet:                             # optuna reports every trial on stderr unless told otherwise
        optuna = require_optuna()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = tune(config, data, settings, trials=args.trials, timeout=args.timeout,
                 space={name: SEARCH_SPACE[name] for name in names}, seed=args.seed)
    trials = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params}
              for t in study.trials]
    completed = any(t.state.name == "COMPLETE" for t in study.trials)
    best = {"best_value": study.best_value, "best_params": study.best_params} if completed else {
        "best_value": None, "best_params": None}
    if args.out:
        # the fixed settings beside the searched ones: best_params plus these reproduce the best trial
        write_json_atomic(Path(args.out) / "tune.json", {"data": args.data, "model": args.model, "pool": args.pool,
                                                         "positions": args.pos, "epochs": args.epochs, **best,
                                                         "searched": names, "classifier": config.to_dict(),
                                                         "training": settings.to_dict(), "trials": trials})
    if not completed:
        states = ", ".join(sorted({t["state"] for t in trials})) or "none started"
        raise ValueError(f"no trial completed ({states}): each diverged or was stopped; narrow the search "
                         "(a lower learning rate) or give it more trials or time")
    print(json.dumps(best))
    return 0
