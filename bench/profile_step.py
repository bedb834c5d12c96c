"""Where one training step spends its time: PyTorch profiler's top operators for one workload and path.

    python -m bench.profile_step --workload B --contender scratch --batch 8 --threads 1

For tuning the core: compare ``--contender scratch`` with ``sdpa`` (or ``torch``) on the same workload and read
which operators make the difference (e.g. ``aten::bmm`` + ``aten::_softmax`` against the fused attention kernel,
``aten::copy_`` from head reshapes). One warm-up step runs first, unprofiled.
"""

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from minitx.cli import HelpFormatter

from .common import CONTENDERS, WORKLOADS, TrainStep, build, tiny


def top_operators(workload_name: str, contender: str, *, batch: int | None = None, rows: int = 15,
                  small: bool = False) -> str:
    """The profiler's table of the ``rows`` operators with the most self time in one step."""
    workload = WORKLOADS[workload_name]
    if small:
        workload = tiny(workload)
    if batch is not None:
        workload = workload.scaled(batch=batch)
    device = torch.device("cpu")
    step = TrainStep(build(workload, contender, device), workload, device)
    step()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        step()
    return profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=45)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--workload", default="B", choices=list(WORKLOADS), help="workload (default: B)")
    parser.add_argument("--contender", default="scratch", choices=list(CONTENDERS), help="path (default: scratch)")
    parser.add_argument("--batch", type=int, help="override the workload's batch size (smaller = quicker)")
    parser.add_argument("--rows", type=int, default=15, help="operators to list (default: 15)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default: 1)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: a smoke run")
    args = parser.parse_args(argv)
    if args.batch is not None and args.batch < 1:
        parser.error("--batch must be at least 1")
    torch.set_num_threads(args.threads)
    table = top_operators(args.workload, args.contender, batch=args.batch, rows=args.rows, small=args.tiny)
    print(f"workload {args.workload}, path {args.contender}, {args.threads} thread(s)")
    print(table)
    return table


if __name__ == "__main__":
    main()
