#!/usr/bin/env bash
# The training-step table on a lent GPU, as one prepared device call (issue 14; ../shared/gpu.md):
#   run: bash benchmarks/gpu_train_step.sh            (timeout_s ~ 540; results in $OUT)
# First the CUDA-only test that the step replayed as a CUDA graph trains like the eager step (pytest is not on that
# machine: its wheels travel in .whl/test, which git ignores and train/gpu_prepare.sh fills; carry [".whl/test"]; no
# pytest-xdist there: the suite's -n is dropped with -o addopts=""):
# ONLY="device" times only the variants whose name holds that text ('|' between several), as train_step.py --only;
# PROFILE=N adds torch.profiler's tables of N more steps per variant (train_step.py --profile).
# Tried first on the CPU with tiny settings:  DEVICE=cpu PATCH=64 BATCH=2 STEPS=2 bash benchmarks/gpu_train_step.sh
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
OUT=${OUT:-runs/gpu}
DEVICE=${DEVICE:-cuda} PATCH=${PATCH:-256} BATCH=${BATCH:-16} STEPS=${STEPS:-30} ONLY=${ONLY:-} PROFILE=${PROFILE:-0}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
{ "$PYTHON" -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(),
  torch.cuda.get_device_name() if torch.cuda.is_available() else '')"; nproc; } 2>&1 | tee "$OUT/env.txt"
if ! "$PYTHON" -c "import pytest" 2>/dev/null && ls .whl/test/pytest-*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-compile --no-cache-dir --find-links .whl/test --target /tmp/pytest-site pytest \
    && export PYTHONPATH=/tmp/pytest-site${PYTHONPATH:+:$PYTHONPATH}
fi
timeout 240 "$PYTHON" -m pytest -o addopts="" -q -p no:cacheprovider tests/train -k "cuda_graph or host_value or from_its_draws" -rs 2>&1 \
  | tail -15 | tee "$OUT/graph_test.log"
timeout 480 "$PYTHON" benchmarks/train_step.py --device "$DEVICE" --patch "$PATCH" --batch "$BATCH" --steps "$STEPS" \
  --warmup 5 ${ONLY:+--only "$ONLY"} --profile "$PROFILE" --json "$OUT/train_step.json" 2>&1 | grep -v Warning \
  | tee "$OUT/train_step.log"
echo "exit ${PIPESTATUS[0]}" | tee -a "$OUT/train_step.log"
