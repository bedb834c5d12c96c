"""Training throughput and peak memory of minitx's scratch and sdpa paths against ``nn.TransformerEncoder``.

    python -m bench.throughput --workloads A B C --repeats 5 --threads 2

For each workload the three contenders are built with the same weights (checked: max output difference),
then timed in interleaved rounds (see `bench.common.interleaved_times`); tokens/s is batch x length over the
wall time of one forward + backward + AdamW step. ``vs torch`` is the median over rounds of the per-round ratio
of the contender's throughput to ``nn.TransformerEncoder``'s in the same round.
"""

import argparse
import statistics
from pathlib import Path

import torch
from tqdm import tqdm

from minitx.cli import HelpFormatter

from .common import (
    CONTENDERS,
    WORKLOADS,
    TrainStep,
    Workload,
    build,
    interleaved_times,
    max_output_difference,
    peak_memory_mib,
    report,
    spread,
    synchronizer,
    tiny,
)

COLUMNS = {
    "workload": "workload", "contender": "path", "tokens_per_s_median": "tokens/s (median)",
    "tokens_per_s_min": "min", "tokens_per_s_max": "max", "vs_torch": "vs torch (median ratio)",
    "peak_mib": "peak MiB", "max_abs_diff": "max |out - scratch|",
}


def measure(workloads: list[Workload], contenders: tuple[str, ...] = CONTENDERS, *, repeats: int = 5,
            warmup: int = 1, device: torch.device | None = None, amp: bool = False,
            memory: bool = True) -> list[dict]:
    """One row per (workload, contender): tokens/s median/min/max, ratio to torch, peak MiB, output check."""
    device = device or torch.device("cpu")
    rows = []
    for workload in tqdm(workloads, desc="workloads", unit="workload"):
        differences = max_output_difference(workload, device) if "scratch" in contenders else {}
        steps = {name: TrainStep(build(workload, name, device), workload, device, amp=amp) for name in contenders}
        times = interleaved_times(steps, repeats, warmup, synchronizer(device))
        for name in contenders:
            rate = spread([workload.tokens_per_step / seconds for seconds in times[name]])
            row = {"workload": workload.name, "contender": name,
                   **{f"tokens_per_s_{key}": value for key, value in rate.items()},
                   "vs_torch": float("nan"), "peak_mib": float("nan"),
                   "max_abs_diff": differences.get(name, 0.0 if name == "scratch" else float("nan"))}
            if "torch" in times:     # same-round pairs cancel most of the load other processes put on the machine
                row["vs_torch"] = statistics.median(t / s for t, s in zip(times["torch"], times[name], strict=True))
            if memory:
                row["peak_mib"] = peak_memory_mib(steps[name], device)
            rows.append(row)
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS),
                        help="which workloads to run (default: all)")
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=list(CONTENDERS),
                        help="which attention paths to compare (default: all)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per workload (default: 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default: 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default: 2)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory step")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: a few-second smoke run")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        raise SystemExit("--repeats and --threads must be at least 1, --warmup at least 0")
    torch.set_num_threads(args.threads)
    workloads = [WORKLOADS[name] for name in args.workloads]
    if args.tiny:
        workloads = [tiny(workload) for workload in workloads]
    for workload in workloads:
        print(f"{workload.name}: {workload.describe()}")
    rows = measure(workloads, tuple(args.contenders), repeats=args.repeats, warmup=args.warmup,
                   memory=not args.no_memory)
    report(rows, COLUMNS, args.json)
    return rows


if __name__ == "__main__":
    main()
