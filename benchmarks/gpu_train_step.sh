#!/usr/bin/env bash
# The training-step table on a lent GPU, as one prepared device call (issue 14; ../shared/gpu.md):
#   run: bash benchmarks/gpu_train_step.sh            (timeout_s ~ 540; results in $OUT)
# Tried first on the CPU with tiny settings:  DEVICE=cpu PATCH=64 BATCH=2 STEPS=2 bash benchmarks/gpu_train_step.sh
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
OUT=${OUT:-runs/gpu}
DEVICE=${DEVICE:-cuda} PATCH=${PATCH:-256} BATCH=${BATCH:-16} STEPS=${STEPS:-30}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
{ "$PYTHON" -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(),
  torch.cuda.get_device_name() if torch.cuda.is_available() else '')"; nproc; } 2>&1 | tee "$OUT/env.txt"
timeout 480 "$PYTHON" benchmarks/train_step.py --device "$DEVICE" --patch "$PATCH" --batch "$BATCH" --steps "$STEPS" \
  --warmup 5 --json "$OUT/train_step.json" 2>&1 | grep -v Warning | tee "$OUT/train_step.log"
echo "exit ${PIPESTATUS[0]}" | tee -a "$OUT/train_step.log"
