"""GPU training throughput and model FLOPs utilisation, one prepared run (about 5 minutes on an H200).

    python -m bench.gpu --json runs/bench/gpu.json          # on a CUDA machine
    python -m bench.gpu --dry-run                           # tiny sizes on CPU: checks the script runs

Runs what the trainers run (`minitx.runtime`: bf16 autocast, fused AdamW) for workloads A, B, C and XL (C scaled
up: emb 512, 8 heads, 12 blocks, context 1024, batch 32), each with the three attention paths, eager; then
``torch.compile`` for the workloads of ``--compile-workloads``. A time budget skips (and lists) what would not
finish in time. Model FLOPs utilisation (MFU) = tokens/s x FLOPs per token / peak, with
FLOPs per token = 6 N + 12 x blocks x context x emb, where N counts the parameters that take part in matrix
products (embedding tables are look-ups and are left out; the head is in) and the second term is attention's
score and weighted-sum products (forward + backward, the whole context: causal kernels skip half of it).
"""

import argparse
import time
from pathlib import Path

import torch

from minitx.distributed import unwrap
from minitx.runtime import maybe_compile

from .common import (
    CONTENDERS,
    WORKLOADS,
    TrainStep,
    Workload,
    build,
    interleaved_times,
    markdown_table,
    peak_memory_mib,
    report,
    spread,
    synchronizer,
    tiny,
)

H200_BF16_PEAK_FLOPS = 790e12     # dense bf16 tensor-core peak of one H200 (SXM)
GPU_WORKLOADS = {**WORKLOADS, "XL": WORKLOADS["C"].scaled(name="XL", title="scaled-up byte LM", emb=512, heads=8,
                                                           depth=12, length=1024, batch=32)}
COLUMNS = {"workload": "workload", "contender": "path", "compiled": "compiled", "tokens_per_s_median": "tokens/s",
           "tokens_per_s_min": "min", "tokens_per_s_max": "max", "mfu": "MFU", "peak_mib": "peak MiB",
           "note": "note"}


def matmul_parameters(model: torch.nn.Module) -> int:
    """Parameters used in matrix products: all but the token and position embedding tables."""
    return sum(p.numel() for name, p in unwrap(model).named_parameters()
               if not name.startswith(("tokens.", "positions.")))


def flops_per_token(model: torch.nn.Module, workload: Workload) -> float:
    """6 N (forward 2 N, backward 4 N) plus attention's 12 x blocks x context x emb."""
    return 6 * matmul_parameters(model) + 12 * workload.depth * workload.length * workload.emb


def measure(workloads: list[Workload], compile_names: set[str], *, device: torch.device, amp: bool,
            repeats: int, warmup: int, budget_s: float, peak_flops: float) -> list[dict]:
    """Eager rows for every workload first, then compiled ones; past ``budget_s`` the rest become skip rows."""
    start = time.perf_counter()
    plan = [(workload, False) for workload in workloads]
    plan += [(workload, True) for workload in workloads if workload.name in compile_names]
    rows = []
    for workload, compiled in plan:
        base = {"workload": workload.name, "compiled": compiled}
        if time.perf_counter() - start > budget_s:
            rows += [{**base, "contender": name, "note": "skipped: time budget"} for name in CONTENDERS]
            continue
        try:
            rows += _measure_one(workload, compiled, device=device, amp=amp, repeats=repeats, warmup=warmup,
                                 peak_flops=peak_flops)
        except Exception as error:              # one prepared run: an OOM or a compile failure must not lose the rest
            note = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:100] if str(error) else ''}"
            rows += [{**base, "contender": name, "note": note} for name in CONTENDERS]
        if device.type == "cuda":
            torch.cuda.empty_cache()            # free this workload's memory before the next one
        print(markdown_table(rows[-len(CONTENDERS):], COLUMNS), flush=True)
    return rows


def _measure_one(workload: Workload, compiled: bool, *, device: torch.device, amp: bool, repeats: int,
                 warmup: int, peak_flops: float) -> list[dict]:
    models = {name: build(workload, name, device) for name in CONTENDERS}
    steps = {name: TrainStep(maybe_compile(model, compiled), workload, device, amp=amp)
             for name, model in models.items()}
    times = interleaved_times(steps, repeats, warmup, synchronizer(device))
    rows = []
    for name, model in models.items():
        rate = spread([workload.tokens_per_step / seconds for seconds in times[name]])
        rows.append({"workload": workload.name, "compiled": compiled, "contender": name,
                     **{f"tokens_per_s_{key}": value for key, value in rate.items()},
                     "mfu": rate["median"] * flops_per_token(model, workload) / peak_flops,
                     "peak_mib": peak_memory_mib(steps[name], device), "note": ""})
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=list(GPU_WORKLOADS), choices=list(GPU_WORKLOADS),
                        help="workloads to run eagerly (default: all)")
    parser.add_argument("--compile-workloads", nargs="*", default=["XL", "B"], choices=list(GPU_WORKLOADS),
                        help="workloads also run under torch.compile (default: XL B)")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds per workload (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds, compilation included (default: 2)")
    parser.add_argument("--budget-s", type=float, default=400.0, help="skip what starts after this (default: 400)")
    parser.add_argument("--no-amp", action="store_true", help="float32 instead of bf16 autocast")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny sizes on CPU, eager only, 1 round: checks the script end to end")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    workloads = [GPU_WORKLOADS[name] for name in args.workloads]
    if args.dry_run:
        device, compile_names, repeats, warmup = torch.device("cpu"), set(), 1, 0
        workloads = [tiny(workload) for workload in workloads]
    else:
        if not torch.cuda.is_available():
            raise SystemExit("bench.gpu needs a CUDA GPU; use --dry-run to check it on CPU")
        device, compile_names = torch.device("cuda"), set(args.compile_workloads)
        repeats, warmup = args.repeats, args.warmup
        print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    for workload in workloads:
        print(f"{workload.name}: {workload.describe()}")
    rows = measure(workloads, compile_names, device=device, amp=not args.no_amp, repeats=repeats, warmup=warmup,
                   budget_s=args.budget_s, peak_flops=H200_BF16_PEAK_FLOPS)
    report(rows, COLUMNS, args.json)
    return rows


if __name__ == "__main__":
    main()
