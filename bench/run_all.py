"""Run every CPU benchmark and regenerate docs/performance.md (tables, targets, the context-scaling plot).

    python -m bench.run_all --write-docs                  # measure (about 20 minutes on a busy 2-core box)
    python -m bench.run_all --write-docs --from-saved     # re-render the page from runs/bench/*.json

Rows are saved as JSON under ``--results`` (runs/bench/), so the page can be re-rendered without measuring;
a ``gpu.json`` there (from ``python -m bench.gpu --json runs/bench/gpu.json``) fills the GPU section.
"""

import argparse
import datetime
import json
import math
import os
import platform
from pathlib import Path

import torch

from minitx.cli import HelpFormatter

from . import context, gpu, throughput
from .common import WORKLOADS, code_version, markdown_table

ROOT = Path(__file__).resolve().parent.parent
THROUGHPUT_TARGETS = [("scratch", "B", 0.8), ("scratch", "C", 0.8), ("sdpa", "A", 1.0), ("sdpa", "B", 1.0),
                      ("sdpa", "C", 1.0)]
MEMORY_TARGET = ("B", 1.2)        # scratch peak <= 1.2 x sdpa peak on workload B


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_all(args: argparse.Namespace) -> None:
    """Run the throughput and context benchmarks, saving their rows and the conditions under ``args.results``."""
    results = args.results
    common = ["--threads", str(args.threads)] + (["--tiny"] if args.tiny else [])
    load_before, version = os.getloadavg(), code_version()
    throughput.main([*common, "--repeats", str(args.repeats), "--json", str(results / "throughput.json")])
    contexts = ["--contexts", "8", "16", "--tokens", "32"] if args.tiny else []
    context.main([*common, *contexts, "--repeats", str(args.context_repeats), "--json", str(results / "context.json")])
    meta = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpu": _cpu_name(),
            "cores": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
            "python": platform.python_version(), "load_before": load_before, "load_after": os.getloadavg(),
            "repeats": args.repeats, "context_repeats": args.context_repeats, "tiny": args.tiny, "commit": version}
    (results / "meta.json").write_text(json.dumps(meta, indent=1))


def _load(path: Path) -> list | dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _row(rows: list[dict], workload: str, contender: str) -> dict | None:
    return next((r for r in rows if r["workload"] == workload and r["contender"] == contender), None)


def targets_table(rows: list[dict]) -> str:
    """The issue's targets against the measured medians: met / missed / not measured."""
    lines = []
    for contender, workload, goal in THROUGHPUT_TARGETS:
        row = _row(rows, workload, contender)
        value = None if row is None else row["vs_torch"]
        lines.append({"target": f"{contender} throughput on {workload} >= {goal}x nn.TransformerEncoder",
                      "measured": "n/a" if value is None else f"{value:.2f}x",
                      "met": "n/a" if value is None else "yes" if value >= goal else "**no**"})
    workload, goal = MEMORY_TARGET
    ratio = _memory_ratio(rows)
    lines.append({"target": f"scratch peak memory on {workload} <= {goal}x the sdpa path's",
                  "measured": "n/a" if ratio is None else f"{ratio:.2f}x",
                  "met": "n/a" if ratio is None else "yes" if ratio <= goal else "**no**"})
    return markdown_table(lines, {"target": "target", "measured": "measured (median of paired rounds)", "met": "met"})


def _memory_ratio(rows: list[dict]) -> float | None:
    workload = MEMORY_TARGET[0]
    scratch, sdpa = _row(rows, workload, "scratch"), _row(rows, workload, "sdpa")
    return None if scratch is None or sdpa is None else scratch["peak_mib"] / sdpa["peak_mib"]


def update_history(results: Path, meta: dict, rows: list[dict]) -> list[dict]:
    """Append this run's ratios to ``history.json`` (once per run; smoke runs are left out) and return all runs:
    on a shared machine the run-to-run spread says how far to trust one run's ratios."""
    path = results / "history.json"
    history = _load(path) or []
    if meta.get("date") and not meta.get("tiny") and all(run["date"] != meta["date"] for run in history):
        history.append({"date": meta["date"], "commit": meta.get("commit", "?"), "load": meta["load_before"][0],
                        "vs_torch": {f"{r['contender']} {r['workload']}": r["vs_torch"] for r in rows
                                     if r["contender"] != "torch"},
                        "memory_ratio": _memory_ratio(rows)})
        path.write_text(json.dumps(history, indent=1))
    return history


def history_table(history: list[dict]) -> str:
    if not history:
        return "(no full runs recorded yet)"
    keys = list(history[-1]["vs_torch"])
    table = [{"date": run["date"], "commit": run.get("commit", "?"), "load": run["load"], **run["vs_torch"],
              "memory": run["memory_ratio"]} for run in history]
    columns = {"date": "run", "commit": "code", "load": "load before", **{key: f"{key} vs torch" for key in keys},
               "memory": f"scratch/sdpa peak memory on {MEMORY_TARGET[0]}"}
    return markdown_table(table, columns)


MFU_TARGET = ("XL", "sdpa", 0.40)     # sdpa + bf16 on XL: at least 40% of the GPU's bf16 peak


def _text(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


def _target_mfus(rows: list[dict]) -> dict[bool, float]:
    """The target's MFU (sdpa on XL) by compiled (False: eager), for the rows that have one."""
    workload, contender, _ = MFU_TARGET
    return {row["compiled"]: row["mfu"] for row in rows
            if row["workload"] == workload and row["contender"] == contender and "mfu" in row}


def mfu_target_line(rows: list[dict]) -> str:
    workload, contender, goal = MFU_TARGET
    measured = _target_mfus(rows)
    if not measured:
        return f"MFU target ({contender} + bf16 on {workload} >= {goal:.0%}): not measured."
    parts = [f"{'compiled' if compiled else 'eager'} {mfu:.1%}" for compiled, mfu in sorted(measured.items())]
    met = "met" if max(measured.values()) >= goal else "**not met**"
    return f"MFU target ({contender} + bf16 on {workload} >= {goal:.0%}): {', '.join(parts)}: {met}."


def gpu_page_section(results: Path) -> str:
    """The GPU section: bench.gpu's rows, the trainer's throughput, the top kernels, or a 'pending' note."""
    rows, training = _load(results / "gpu.json"), _load(results / "gpu_training.json")
    header = f"""## GPU (bf16, torch.compile, model FLOPs utilisation)

    bash bench/gpu_session.sh          # CUDA tests, then python -m bench.gpu (about 9 minutes on an H200)
    cp runs/bench/gpu-session/{{gpu.json,gpu_training.json,gpu_info.txt,profile_xl_sdpa.txt}} runs/bench/
    python -m bench.run_all --write-docs --from-saved

Workloads A, B, C and XL ({gpu.GPU_WORKLOADS['XL'].describe()}), each path eager with bf16 autocast and fused
AdamW as the trainers run (`minitx.runtime`), then with `torch.compile` for XL and B; 10 interleaved rounds
after 2 warm-up rounds (compilation included in these). MFU = tokens/s x (6 N + 12 x blocks x context x emb) /
{gpu.H200_BF16_PEAK_FLOPS / 1e12:,.1f} TFLOP/s (NVIDIA's dense bf16 peak of the H200 SXM), N = parameters in
matrix products (embedding tables left out). Until session 5 these pages divided by 790 TFLOP/s, a matrix rate
with no measurement behind it in the record, which overstated every MFU by 25%; the saved run's MFU column was
recomputed against the datasheet peak (its tokens/s are as measured)."""
    if not rows:
        return header + """

**GPU figures are pending**: no GPU was available where these pages were written. The script is ready and
tested on CPU (`python -m bench.gpu --dry-run`).
"""
    info = _text(results / "gpu_info.txt") or "(GPU not recorded)"
    section = f"""{header}

Measured on:

```
{info}
```

### Training steps per workload and path

{markdown_table(rows, gpu.COLUMNS)}

{mfu_target_line(rows)}

Peak MiB on the GPU, as saved from the 2026-11-28 run, includes the other two contenders' fp32 weights and AdamW
moments, resident on the device during the interleaved rounds (2 x 12 bytes per parameter: 307 MiB on A, 20 on
B, 113 on C, 884 on XL); subtract those for one contender's own peak. `bench.gpu` now leaves them out (it counts
the rise during the step plus the contender's own state); not re-measured, as no GPU has been lent since.
"""
    if training:
        section += f"""
### The real trainer on the Wikipedia model

`minitx.lm_train.train_lm` on the model of `examples/wikipedia.py` (`minitx.config.ENWIK8_MODEL`: vocab 256,
emb 512, 8 heads, 12 blocks, context 512, batch 64, dropout 0.1, sdpa, bf16, fused AdamW, clipping) on a random
byte stream, for a fixed time each; tokens/s per logging
window of 20 steps, leaving out the first window (compilation and warm-up). This is the speed a user of
`examples/wikipedia.py --compile` gets, data loading and the trainer's bookkeeping included. In the saved run
each window's clock stopped before the host waited for the GPU's queued work, so these rates may be somewhat
high; the trainer now reads it after the wait (session 5), not re-measured.

{markdown_table(training, gpu.TRAINING_COLUMNS)}
"""
    profile = _text(results / "profile_xl_sdpa.txt")
    if profile:
        mfus = _target_mfus(rows)
        section += f"""
### Where an eager XL step spends its GPU time (sdpa path)

`python -m bench.gpu --profile FILE` (PyTorch profiler, one step after two warm-up steps), the top operators by
self GPU time:

```
{chr(10).join(profile.splitlines()[:16])}
```

What holds the eager step back (read off this profile on 2026-11-28, H200, 34.3 ms of GPU time per step): the
matrix products (`mm`, `addmm`) take 10.8 ms (31%) and the fused flash attention forward and backward 5.5 ms
(16%); layer norm forward and backward take 6.7 ms (20%), autocast's float32-to-bf16 copies 3.0 ms (9%), the
bias-gradient sums 2.5 ms (7%), and ReLU backward, residual adds and AdamW most of the rest. At emb 512 the
products are small (32,768 x 512 x 512 per projection), so about half the step is memory-bound element-wise work.
`torch.compile` fuses that work into fewer kernels and lifts the sdpa path from {mfus.get(False, math.nan):.1%}
to {mfus.get(True, math.nan):.1%} MFU: short of the 40% aimed for, held back by that element-wise work. Wider models
raise the products' share (their cost grows as emb², the element-wise work as emb). The scratch path is slower
on a GPU (0.28x sdpa eager on XL): it runs 16 query blocks per layer as separate small products with a float32
softmax between them, and recomputes them in the backward pass. It is the readable reference; on a GPU use
`backend='sdpa'` (the default of `python -m minitx lm` and `examples/wikipedia.py`).
"""
    return section


def render(results: Path, image: Path, docs: Path) -> str:
    """The whole performance page from the saved rows."""
    rows, context_rows = _load(results / "throughput.json"), _load(results / "context.json")
    meta = _load(results / "meta.json") or {}
    if rows is None or context_rows is None:
        raise FileNotFoundError(f"no saved rows in {results}: run `python -m bench.run_all --write-docs` first")
    if context_rows:
        context.plot(context_rows, image)
    image_link = os.path.relpath(image, docs.parent)
    history = update_history(results, meta, rows)
    workloads = "\n".join(f"- **{w.name}**, {w.describe()}." for w in WORKLOADS.values())
    gpu_section = gpu_page_section(results)
    load = (f"load average {meta['load_before'][0]:.1f} before and {meta['load_after'][0]:.1f} after"
            if meta.get("load_before") else "load not recorded")
    # the load before the run is other processes' (afterwards it includes the benchmark's own threads)
    busy = bool(meta.get("load_before")) and meta["load_before"][0] > 0.75 * (meta.get("cores") or 1)
    conditions = (f"**The machine was shared** with other jobs ({load}), so absolute speeds are low and noisy."
                  if busy else f"The machine was otherwise quiet ({load}).")
    tiny_note = "\n**These rows come from a `--tiny` smoke run: they are not measurements.**\n" if meta.get("tiny") \
        else ""
    return f"""# Performance

How fast minitx trains, on CPU and GPU, and how it compares with PyTorch's own `nn.TransformerEncoder`.
Every number here was produced by

    python -m bench.run_all --write-docs

which reruns the benchmarks below and rewrites this page and its plot (`--from-saved` re-renders the page from
the rows saved in `runs/bench/` without measuring).
{tiny_note}
Measured {meta.get('date', '?')} (code {meta.get('commit', '?')}) on {meta.get('cpu', '?')}
({meta.get('cores', '?')} cores), torch {meta.get('torch', '?')}, `torch.set_num_threads({meta.get('threads', '?')})`.
{conditions} The contenders are timed interleaved in one process, and ratios are taken between steps of the same
round, so load from other processes hits them alike; trust the ratios more than the absolute tokens/s.

## What is measured

Three contenders compute the same function with the same weights:

- `scratch`: minitx's from-scratch attention (`minitx.functional.attend(..., backend='scratch')`, the kernel in
  `minitx/functional/scratch_kernel.py`: blocks of 64 queries, the mask added inside one `baddbmm`, softmax,
  matmul, and a written-out backward pass that recomputes the probabilities);
- `sdpa`: the same minitx model with `backend='sdpa'` (PyTorch's fused `scaled_dot_product_attention`);
- `torch`: `nn.TransformerEncoder` (`nn.TransformerEncoderLayer(d_model, nhead, 4 * d_model, dropout=0,
  activation='relu', batch_first=True, norm_first=...)`) with the weights copied from the minitx model
  (`in_proj_weight` = cat(q, k, v), `out_proj` = o, `linear1`/`linear2` = feed-forward, `norm1`/`norm2` =
  ln1/ln2), inside the same embeddings and head (`bench/common.py`, `TorchEncoderModel`). The last column of the
  table is the largest difference of its outputs from the scratch path's on one batch: float32 rounding, so the
  comparison is like for like.

Workloads (`bench/common.py`, `WORKLOADS`):

{workloads}

A is post-norm with a padding mask (lengths drawn in [3/4, 1] x 256, as in length-sorted batches) and max
pooling; B and C are pre-norm causal LMs. One step is forward + backward + AdamW (`minitx.runtime.make_optimizer`)
on a fixed batch; tokens/s counts batch x length (padding included).

**Timing.** `bench.common.interleaved_times`: one untimed warm-up round, then rounds that run every contender
once, in alternating order (A B C, C B A, ...), so a burst of load from other processes hits all of them.
Reported: median tokens/s with min and max over rounds; *vs torch* is the median over rounds of the contender's
throughput divided by `nn.TransformerEncoder`'s in the same round.

**Peak memory.** Peak bytes of live tensors during one training step (parameters, gradients, AdamW state,
activations and temporaries), counted on CPU by PyTorch's `MemTracker` (`torch.distributed._tools.mem_tracker`,
a private tool that follows the allocation and release of every tensor storage), on GPU by
`torch.cuda.max_memory_allocated`. This is the figure a caching allocator must at least hold; it ignores the
allocator's caching and fragmentation and the process's RSS noise.

## Training throughput and peak memory (CPU)

    python -m bench.throughput --repeats {meta.get('repeats', '?')} --threads {meta.get('threads', '?')}

{markdown_table(rows, throughput.COLUMNS)}

### Targets of issue 6

{targets_table(rows)}

Every full run rendered from `runs/bench/` so far (the same command, at different times of a busy day); the
spread between runs is the honest error bar of a single run's ratios:

{history_table(history)}

### How the scratch path keeps up with the fused kernel

    python -m bench.profile_step --workload B --contender scratch --batch 8
    python -m bench.profile_step --workload B --contender sdpa --batch 8

list the operators that take the time. A from-scratch kernel computes the scores with batched matmuls and a
softmax over them, forward and backward, where the fused kernel streams over blocks of keys in one pass each way.
Two of the fused kernel's ideas carry over to plain PyTorch operations (`minitx/functional/scratch_kernel.py`):

- *recompute instead of store*: autograd would keep the probabilities for the backward pass (batch x heads x
  context² x 4 bytes per layer: 32 MiB a layer on workload B, 128 MiB over its 4 layers); the written-out
  backward recomputes them from the queries and keys with one more score product;
- *blocks of queries*: queries go 64 at a time, and under causal masking a block reads only the keys up to its
  last position, which skips 3/8 of the score work at context 256 (more at longer contexts) and bounds the
  temporaries to (batch x heads, 64, context).

On workload A (padding, no causal mask) nothing is skipped, which is why the scratch path stays further behind
there.

## Context length: time and memory per path (CPU)

    python -m bench.context --repeats {meta.get('context_repeats', '?')} --threads {meta.get('threads', '?')} \\
        --plot docs/img/context_scaling.png

Workload B's model (emb 128, 4 heads, 4 blocks) at contexts 64 ... 2048 with the tokens per step fixed at 2048
(batch = 2048 / context), so a flat line means cost proportional to tokens and a rising one the quadratic cost of
attention. The scratch path holds (batch x heads, 64, context) scores at a time, in the forward pass and again
in the backward pass, and keeps none of them in between; the fused kernel (sdpa, and `nn.TransformerEncoder`,
which calls it) holds a block of them too, but never writes them out to memory.

![time and memory against context length]({image_link})

{markdown_table(context_rows, context.COLUMNS)}

{gpu_section}
## Sampling with and without the key/value cache

Owned by the language-model code: `bench/sampling.py` (`python -m bench.sampling --threads 2 --repeats 5`);
its results are in [the language-model guide](language-model.md#q13-sampling).

## Several GPUs or processes

`minitx/distributed.py` wraps `torchrun` data parallelism (`setup`, `wrap`, `sync_context`, `rank_generator`,
`unwrap`, `average`, `teardown`; its docstring shows the training loop). `tests/test_distributed.py` checks on
2 CPU processes (gloo) that a step over a global batch split across ranks equals one process's step over the
whole batch, and that gradient accumulation all-reduces on the last micro-step only.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--write-docs", action="store_true", help="rewrite the performance page and its plot")
    parser.add_argument("--from-saved", action="store_true", help="render from saved rows, measure nothing")
    parser.add_argument("--results", type=Path, default=ROOT / "runs" / "bench",
                        help="where rows are saved and read (default: runs/bench)")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "performance.md",
                        help="the page to write (default: docs/performance.md)")
    parser.add_argument("--image", type=Path, default=ROOT / "docs" / "img" / "context_scaling.png",
                        help="the plot to write (default: docs/img/context_scaling.png)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default: 2)")
    parser.add_argument("--repeats", type=int, default=5, help="throughput rounds per workload (default: 5)")
    parser.add_argument("--context-repeats", type=int, default=5, help="rounds per context (default: 5)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    if not args.from_saved:
        measure_all(args)
    if args.write_docs or args.from_saved:
        args.docs.parent.mkdir(parents=True, exist_ok=True)
        args.docs.write_text(render(args.results, args.image, args.docs))
        print(f"wrote {args.docs} and {args.image}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
