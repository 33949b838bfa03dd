#!/usr/bin/env bash
# The GPU check: one prepared script, at most 8 minutes on one GPU. It
#   1. runs the CUDA-only tests (tests/test_cuda.py: torchvision's deformable convolution against our CPU one,
#      forward and gradient; bf16 / fp16 training steps stay finite; `vqe enhance` on CUDA equals the CPU);
#   2. runs `vqe bench` on the released models at 720p, fp32 / bf16 / fp16, batches 1-16;
#   3. trains the paper profile's Stage A for TRAIN_SECONDS and reports its iterations per second and what a
#      whole paper-scale run would take at that rate (benchmarks/train_rate.py).
# Everything it measures goes to OUT (default results/benchmarks/gpu/), with the log and the GPU's nvidia-smi.
#
#   bash benchmarks/gpu_check.sh                 # on the GPU machine, from the repository root
#   DRY_RUN=1 bash benchmarks/gpu_check.sh OUT   # on the CPU: every step at toy sizes (part of the tests)
#
# It uses the Python on PATH if it imports vqe, else .venv/bin/python (`make setup` makes it).
set -euo pipefail

OUT=${1:-results/benchmarks/gpu}
DRY_RUN=${DRY_RUN:-0}
TRAIN_SECONDS=${TRAIN_SECONDS:-150}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: > "$LOG"

PY=python
if ! $PY -c "import vqe" 2>/dev/null; then PY=.venv/bin/python; fi
VQE="$PY -m vqe.cli"
step() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$LOG"; }
started=$(date +%s)

if [ "$DRY_RUN" = 1 ]; then
  DEVICE=cpu
  BENCH=(--sizes 360p --dtypes fp32 --batches 1 --frames 2 --repeats 1 models/release/nogan_fast.pt)
  TRAIN=(--profile smoke --seconds 3 --set stage_a.train.batch=2)
else
  DEVICE=cuda
  BENCH=(--sizes 720p --dtypes fp32 bf16 fp16 --batches 1 4 16 --frames 16 --repeats 5 models/release/*.pt)
  TRAIN=(--profile paper --seconds "$TRAIN_SECONDS")
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
fi
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name() if torch.cuda.is_available() else '')" | tee -a "$LOG"

step "1/3 CUDA-only tests"
{ $PY -m pytest -q tests/test_cuda.py --junitxml="$OUT/cuda_tests.xml" 2>&1 || echo "CUDA tests FAILED (exit $?)"; } \
  | tail -n 8 | tee -a "$LOG"  # a failure is recorded, and the measurements still run

step "2/3 vqe bench on $DEVICE"
$VQE bench --device "$DEVICE" --out "$OUT/bench_$DEVICE.json" --figure "$OUT/bench_$DEVICE.png" "${BENCH[@]}" \
  2>>"$LOG" | tee -a "$LOG"

step "3/3 Stage A training rate on $DEVICE"
$PY benchmarks/train_rate.py --device "$DEVICE" --out "$OUT/train_rate.json" "${TRAIN[@]}" 2>>"$LOG" | tee -a "$LOG"

step "done in $(( $(date +%s) - started )) s"
