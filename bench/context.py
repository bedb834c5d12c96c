"""How training time and memory grow with context length, for each attention path.

    python -m bench.context --tokens 2048 --threads 2 --plot docs/img/context_scaling.png

The model is workload B's character LM (emb 128, 4 heads, 4 blocks). Every step processes the same number of
tokens (batch = tokens // context), so the per-token cost stays flat where the position-wise layers dominate and
grows linearly with context once attention's (context x context) scores do. Neither attention path keeps those
scores for the backward pass: the scratch path works through them 64 query rows at a time and recomputes them
in the backward pass, the fused kernel (sdpa) holds one block of them at a time.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from minitx.cli import HelpFormatter

from .common import (
    CONTENDERS,
    WORKLOADS,
    TrainStep,
    build,
    interleaved_times,
    peak_memory_mib,
    report,
    spread,
    synchronizer,
)

DEFAULT_CONTEXTS = (64, 128, 256, 512, 1024, 2048)
COLUMNS = {"context": "context", "batch": "batch", "contender": "path", "us_per_token_median": "µs/token (median)",
           "us_per_token_min": "min", "us_per_token_max": "max", "peak_mib": "peak MiB"}


def measure(contexts: tuple[int, ...] = DEFAULT_CONTEXTS, tokens: int = 2048,
            contenders: tuple[str, ...] = CONTENDERS, *, repeats: int = 5, warmup: int = 1,
            memory: bool = True, base: str = "B", emb: int | None = None) -> list[dict]:
    """One row per (context, contender): microseconds per token (median/min/max) and peak MiB."""
    device = torch.device("cpu")
    rows = []
    for context in tqdm(contexts, desc="contexts", unit="context"):
        changes = {"length": context, "batch": max(1, tokens // context)}
        if emb is not None:
            changes.update(emb=emb, heads=2, depth=1)
        workload = WORKLOADS[base].scaled(**changes)
        steps = {name: TrainStep(build(workload, name, device), workload, device) for name in contenders}
        times = interleaved_times(steps, repeats, warmup, synchronizer(device))
        for name in contenders:
            per_token = spread([1e6 * seconds / workload.tokens_per_step for seconds in times[name]])
            rows.append({"context": context, "batch": workload.batch, "contender": name,
                         **{f"us_per_token_{key}": value for key, value in per_token.items()},
                         "peak_mib": peak_memory_mib(steps[name], device) if memory else float("nan")})
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """Two small log-log panels, time per token (median, shaded min to max) and peak memory against context,
    one line per path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(8, 3))
    for name in dict.fromkeys(row["contender"] for row in rows):
        mine = [row for row in rows if row["contender"] == name]
        contexts = [row["context"] for row in mine]
        line, = time_axis.plot(contexts, [row["us_per_token_median"] for row in mine], marker="o", label=name)
        time_axis.fill_between(contexts, [row["us_per_token_min"] for row in mine],       # the spread over rounds
                               [row["us_per_token_max"] for row in mine], color=line.get_color(), alpha=0.15)
        memory_axis.plot(contexts, [row["peak_mib"] for row in mine], marker="o", label=name)
    all_contexts = sorted({row["context"] for row in rows})
    for axis, label in ((time_axis, "µs per token (median)"), (memory_axis, "peak MiB per step")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(all_contexts, [str(c) for c in all_contexts])
        if any(line.get_ydata().size and np.isfinite(line.get_ydata()).any() for line in axis.get_lines()):
            axis.set_yscale("log")
            axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.yaxis.set_major_formatter(ScalarFormatter())
            axis.yaxis.set_minor_formatter(NullFormatter())
        else:                                      # e.g. memory skipped with --no-memory
            axis.text(0.5, 0.5, "not measured", transform=axis.transAxes, ha="center")
        axis.set_xlabel("context length (tokens per step fixed)")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    time_axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--contexts", nargs="+", type=int, default=list(DEFAULT_CONTEXTS),
                        help="context lengths (default: 64 ... 2048)")
    parser.add_argument("--tokens", type=int, default=2048, help="tokens per step, batch x context (default: 2048)")
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=list(CONTENDERS),
                        help="which attention paths (default: all)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per context (default: 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default: 2)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory step")
    parser.add_argument("--tiny", action="store_true", help="a 1-block emb-16 model: a few-second smoke run")
    parser.add_argument("--plot", type=Path, help="write the PNG here")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if min(args.contexts) < 1 or args.tokens < 1 or args.repeats < 1:
        raise SystemExit("--contexts, --tokens and --repeats must be positive")
    torch.set_num_threads(args.threads)
    rows = measure(tuple(args.contexts), args.tokens, tuple(args.contenders), repeats=args.repeats,
                   memory=not args.no_memory, emb=16 if args.tiny else None)
    report(rows, COLUMNS, args.json)
    if args.plot:
        plot(rows, args.plot)
    return rows


if __name__ == "__main__":
    main()
