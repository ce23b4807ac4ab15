#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one run, for a session lent a GPU (CI has none; there
# these tests skip).
#
#   bash tools/gpu_checks.sh [OUTDIR]        # default: $OUT, else /tmp/rnnscope-gpu-check
#
# Run from the repository root. It records the machine, installs triton if it does not import,
# runs the CUDA tests (the fused Triton kernels against cuDNN and the loop; the engine against
# the float64 reference, now through the fused kernels; training, NCCL, the drop-in modules and
# mixed precision on CUDA), then benchmarks/fused_cuda.py --quick (the table
# `benchmarks/engine.py --device cuda` ends with; run that for the full tables). Every stage has
# a timeout; the whole run stays under ~8 minutes. It uses the machine's own torch (no install
# beyond triton and pytest); PYTHONPATH puts the working tree's rnnscope first. Into OUTDIR:
#   log.txt, env.txt   the stages with their times; GPU, driver, torch, triton versions
#   tests.txt          pytest's output (tests.rc: its exit status)
#   fused_cuda.txt     the benchmark table (fused_cuda.json, fused_cuda.progress.txt, .rc)
set -u
out="${1:-${OUT:-/tmp/rnnscope-gpu-check}}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"  # the working tree, installed or not
export TRITON_DEFAULT_FP_FUSION=1
start=$(date +%s)
stage() { echo "[gpu_check +$(( $(date +%s) - start ))s] $*" | tee -a "$out/log.txt"; }

stage "environment"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
             torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')" 2>&1
} > "$out/env.txt"
cat "$out/env.txt"
if ! "$py" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  stage "torch sees no CUDA device here: nothing to check (run this on a GPU machine)"
  exit 2
fi

if ! "$py" -c "import triton" 2>/dev/null; then
  stage "triton does not import: pip install triton>=3.6"
  timeout 180 "$py" -m pip install -q "triton>=3.6" > "$out/pip.txt" 2>&1 \
    || { stage "could not install triton (see pip.txt): the fused kernels cannot run here"; exit 3; }
fi
"$py" -c "import triton; print('triton', triton.__version__)" | tee -a "$out/env.txt"
"$py" -c "import pytest" 2>/dev/null || timeout 120 "$py" -m pip install -q pytest pytest-timeout hypothesis >> "$out/pip.txt" 2>&1

stage "CUDA tests: fused kernels vs cuDNN and the loop, the engine vs the float64 reference, training, NCCL"
# on a GPU every test of test_fused_triton.py runs on it (the interpreter's child is skipped there)
timeout 270 "$py" -m pytest -q -p no:cacheprovider -rs --durations=15 \
  tests/engine/test_fused_triton.py tests/engine/test_bptt_cuda.py tests/train/test_train_cuda.py \
  tests/parallel/test_nccl.py tests/nn/test_nn_rnn.py tests/nn/test_nn_precision.py \
  tests/train/test_train_precision.py > "$out/tests.txt" 2>&1
echo $? > "$out/tests.rc"
tail -5 "$out/tests.txt"

stage "benchmark: benchmarks/fused_cuda.py --quick (fused vs cuDNN, the loop and the loop as a CUDA graph)"
# the table benchmarks/engine.py --device cuda ends with; its per-row ratios go to the progress
# file as they come, so a timeout still leaves the rows measured so far
timeout 200 "$py" benchmarks/fused_cuda.py --quick --json "$out/fused_cuda.json" \
  > "$out/fused_cuda.txt" 2> "$out/fused_cuda.progress.txt"
echo $? > "$out/fused_cuda.rc"
cat "$out/fused_cuda.txt"
[ -s "$out/fused_cuda.txt" ] || tail -25 "$out/fused_cuda.progress.txt"

stage "done: tests rc $(cat "$out/tests.rc"), benchmark rc $(cat "$out/fused_cuda.rc"); files in $out"
