#!/usr/bin/env bash
# The one prepared GPU check, sized for a short lease (about 9 minutes on an H200): the CUDA tests, then
# bench.gpu (workloads A, B, C, XL eager and compiled, the Wikipedia model's trainer, a kernel profile).
# Logs and JSON go to $OUT (the device tool's folder) or runs/bench/gpu-session. Needs minitx's dependencies
# (on a bare GPU image without `wget`, put wget.py on PYTHONPATH). Afterwards:
#   cp <folder>/{gpu.json,gpu_training.json,gpu_info.txt,profile_xl_sdpa.txt} runs/bench/
#   python -m bench.run_all --write-docs --from-saved
set -u
out=${OUT:-runs/bench/gpu-session}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python=$(command -v python3 || command -v python)
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  "$python" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
} 2>&1 | tee "$out/gpu_info.txt"
timeout 120 "$python" -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/cuda_tests.log"
timeout 480 "$python" -m bench.gpu --json "$out/gpu.json" --budget-s 150 --train-seconds 45 \
    --profile "$out/profile_xl_sdpa.txt" 2>&1 | tee "$out/gpu_bench.log"
