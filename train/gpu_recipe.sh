#!/usr/bin/env bash
# The training recipe as one prepared device call on a lent GPU (issue 16; ../shared/gpu.md): trains for MINUTES,
# exports, evaluates, and leaves at most 8 files in $OUT (the export, the sheet, the table, the logs).
#
# Before the call, here:  python -m train.gather --out data/          (the training data, ~18 MB of images)
#                         python -m train extract-vgg                  (weights/vgg16_features.safetensors)
#   then carry data and weights:  run(command="bash train/gpu_recipe.sh", carry=["data", "weights"], timeout_s=570)
# Tried on the CPU first:  DEVICE=cpu MINUTES=0.3 EXTRA="--perceptual tiny --no-evaluate --patch-size 32 --batch-size 2" \
#                          PHOTOS=... CARTOONS=... bash train/gpu_recipe.sh
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
OUT=${OUT:-runs/gpu} RUN=${RUN:-runs/recipe-gpu} MINUTES=${MINUTES:-8} PYTHON=${PYTHON:-python3}
PHOTOS=${PHOTOS:-data/photos} CARTOONS=${CARTOONS:-data/cartoons} HELD_OUT=${HELD_OUT:-data/held_out}
VGG=${VGG:-weights/vgg16_features.safetensors}
mkdir -p "$OUT"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" > "$OUT/recipe.log" 2>&1
# shellcheck disable=SC2086  # EXTRA is a list of options
timeout $(( ${MINUTES%.*} * 60 + 150 )) "$PYTHON" -m train recipe --minutes "$MINUTES" --device "${DEVICE:-cuda}" \
  --photos "$PHOTOS" --cartoons "$CARTOONS" --held-out-dir "$HELD_OUT" --vgg-weights "$VGG" --run-dir "$RUN" ${EXTRA:-} \
  2>&1 | tr '\r' '\n' | grep -v -E "step/s|it/s" >> "$OUT/recipe.log"
echo "recipe exit ${PIPESTATUS[0]}" >> "$OUT/recipe.log"
cp -r "$RUN/export" "$OUT/export" 2>/dev/null
for file in "$RUN/evaluation/comparison.png" "$RUN/evaluation/quality.json" "$RUN/adversarial/metrics.jsonl" "$RUN/recipe.json"; do
  [ -f "$file" ] && cp "$file" "$OUT/"
done
ls -la "$OUT" "$OUT/export" 2>/dev/null | tail -12
