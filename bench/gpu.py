"""GPU training throughput and model FLOPs utilisation, one prepared run (about 8 minutes on an H200).

    python -m bench.gpu --json runs/bench/gpu.json          # on a CUDA machine
    python -m bench.gpu --dry-run                           # tiny sizes on CPU: checks the script runs

Three parts, each saved as soon as it is done: (1) training steps of workloads A, B, C and XL on a fixed batch,
(2) the real trainer (`minitx.lm_train.train_lm`) on the Wikipedia model of `examples/wikipedia.py`
(``minitx.config.ENWIK8_MODEL``, batch 64) for ``--train-seconds`` each, eager and compiled, on a random byte
stream (enwik8 cannot be fetched there; the data does not change the speed), and (3) with ``--profile``, the
profiler's top GPU kernels of one XL step on the sdpa path. Measured 2026-11-28: part 1 took about 6 minutes
(most of it compiling XL), parts 2 and 3 together 110 s.

Part 1 runs what the trainers run (`minitx.runtime`: bf16 autocast, fused AdamW) for workloads A, B, C and XL (C scaled
up: emb 512, 8 heads, 12 blocks, context 1024, batch 32), each with the three attention paths, eager; then
``torch.compile`` for the workloads of ``--compile-workloads``. A time budget skips (and lists) what would not
finish in time. Model FLOPs utilisation (MFU) = tokens/s x FLOPs per token / peak, with
FLOPs per token = 6 N + 12 x blocks x context x emb, where N counts the parameters that take part in matrix
products (embedding tables are look-ups and are left out; the head is in) and the second term is attention's
score and weighted-sum products (forward + backward, the whole context: causal kernels skip half of it).
"""

import argparse
import math
import statistics
import time
from pathlib import Path

import torch

from minitx import LMConfig
from minitx.cli import HelpFormatter
from minitx.config import ENWIK8_MODEL
from minitx.distributed import unwrap
from minitx.lm_train import LMTrainSettings, train_lm
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

# Dense bf16 tensor-core peak of one H200 SXM, NVIDIA's datasheet figure (1,979 TFLOP/s with 2:4 sparsity, half
# that dense): the denominator MFU conventionally uses. Sessions 1-4 divided by 790e12, a matrix rate with no
# measurement behind it in the record, which overstated every MFU by 25%.
H200_BF16_PEAK_FLOPS = 989.4e12
GPU_WORKLOADS = {**WORKLOADS, "XL": WORKLOADS["C"].scaled(name="XL", title="scaled-up byte LM", emb=512, heads=8,
                                                           depth=12, length=1024, batch=32)}
ENWIK8_WORKLOAD = Workload("W", "enwik8 model", "lm", vocab=256, emb=ENWIK8_MODEL["emb"],
                           heads=ENWIK8_MODEL["heads"], depth=ENWIK8_MODEL["depth"], length=ENWIK8_MODEL["context"],
                           batch=64)
TRAINING_COLUMNS = {"compiled": "compiled", "steps": "steps", "tokens_per_s_median": "tokens/s",
                    "tokens_per_s_min": "min", "tokens_per_s_max": "max", "mfu": "MFU", "peak_mib": "peak MiB",
                    "note": "note"}
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


def trainer_throughput(compiled: bool, seconds: float, *, device: torch.device, amp: bool, peak_flops: float,
                       workload: Workload = ENWIK8_WORKLOAD) -> dict:
    """``train_lm`` on the Wikipedia model for ``seconds`` (compilation included): tokens/s of the logging
    windows after the first (which holds compilation and warm-up), MFU, peak memory."""
    config = LMConfig(vocab=workload.vocab, **{**ENWIK8_MODEL, "emb": workload.emb, "heads": workload.heads,
                                               "depth": workload.depth, "context": workload.length})
    stream = torch.randint(workload.vocab, (4_000_000,), generator=torch.Generator().manual_seed(0))
    never = 10**9
    settings = LMTrainSettings(batch=workload.batch, steps=never, lr=6e-4, warmup=200, time_limit=seconds / 60,
                               log_every=20, eval_every=never, sample_every=never, eval_batches=1,
                               checkpoint_every=never, final_eval="none", compile=compiled, amp=amp,
                               device=device.type)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = train_lm(config, stream, stream[:100_000], settings, quiet=True)
    rates = [rate for _, rate in result.log.series["tokens_per_s"][1:]] or [math.nan]
    model = result.model
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else math.nan
    return {"workload": workload.name, "compiled": compiled, "steps": result.step,
            **{f"tokens_per_s_{key}": value for key, value in spread(rates).items()},
            "mfu": statistics.median(rates) * flops_per_token(model, workload) / peak_flops, "peak_mib": peak,
            "note": f"{seconds:.0f} s run, {len(rates)} windows of 20 steps after the first"}


def top_kernels(workload: Workload, contender: str, device: torch.device, *, amp: bool, rows: int = 25) -> str:
    """The profiler's table of the ``rows`` operators with the most self device time in one training step."""
    from torch.profiler import ProfilerActivity, profile

    step = TrainStep(build(workload, contender, device), workload, device, amp=amp)
    for _ in range(2):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        step()
        synchronizer(device)()
    sort_by = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return profiler.key_averages().table(sort_by=sort_by, row_limit=rows, max_name_column_width=60)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
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
    parser.add_argument("--train-seconds", type=float, default=60.0,
                        help="seconds of each Wikipedia-model training run, eager and compiled; 0 skips (default: 60)")
    parser.add_argument("--profile", type=Path, help="write the top kernels of one XL sdpa step to this text file")
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
    amp = not args.no_amp
    rows = measure(workloads, compile_names, device=device, amp=amp, repeats=repeats, warmup=warmup,
                   budget_s=args.budget_s, peak_flops=H200_BF16_PEAK_FLOPS)
    report(rows, COLUMNS, args.json)
    if args.train_seconds > 0:
        training = []
        for compiled in [False] + ([True] if compile_names else []):      # compiled only where asked
            try:
                training.append(trainer_throughput(compiled, args.train_seconds, device=device, amp=amp,
                                                   peak_flops=H200_BF16_PEAK_FLOPS,
                                                   workload=tiny(ENWIK8_WORKLOAD) if args.dry_run else ENWIK8_WORKLOAD))
            except Exception as error:          # keep what was measured
                training.append({"compiled": compiled, "note": f"failed: {type(error).__name__}: {error}"[:160]})
            report(training, TRAINING_COLUMNS, args.json and args.json.with_name(args.json.stem + "_training.json"))
    if args.profile:
        profiled = tiny(GPU_WORKLOADS["XL"]) if args.dry_run else GPU_WORKLOADS["XL"]
        args.profile.parent.mkdir(parents=True, exist_ok=True)
        args.profile.write_text(top_kernels(profiled, "sdpa", device, amp=amp))
        print(f"wrote {args.profile}")
    return rows


if __name__ == "__main__":
    main()
