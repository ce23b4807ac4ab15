#!/usr/bin/env bash
# The checks that need a CUDA GPU, for a machine that has one (CI has none; there these tests
# skip). Run from the repository root; results go to $OUT (default /tmp/rnnscope-gpu):
#
#     bash tools/gpu_checks.sh            # the CUDA/NCCL tests, the engine on the GPU, the suite
#
# It uses the machine's own torch (no install): PYTHONPATH=src puts rnnscope on the path.
set -uo pipefail
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/rnnscope-gpu}
mkdir -p "$OUT"
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'gpus', torch.cuda.device_count(), 'nccl', torch.cuda.nccl.version())"

echo "== CUDA and NCCL tests"
python3 -m pytest -q -p no:cacheprovider tests/engine/test_bptt_cuda.py \
    tests/train/test_train_cuda.py tests/parallel/test_nccl.py tests/nn/test_nn_rnn.py \
    tests/nn/test_nn_precision.py tests/train/test_train_precision.py \
    2>&1 | tee "$OUT/cuda-tests.log"

echo "== engine benchmark on the GPU (against cuDNN's torch.nn.RNN)"
timeout 240 python3 benchmarks/engine.py --device cuda --quick --json "$OUT/engine-cuda.json" \
    > "$OUT/engine-cuda.log" 2>&1
sed -n '/^{/q;p' "$OUT/engine-cuda.log"  # the table (the JSON is in engine-cuda.json)

echo "== the whole suite with a GPU present"
parallel=$(python3 -c "import xdist" 2>/dev/null && echo "-n 8")  # pytest-xdist, where installed
timeout "${SUITE_TIMEOUT:-240}" python3 -m pytest -q $parallel -p no:cacheprovider tests \
    2>&1 | tail -40 | tee "$OUT/suite.log"
