#!/usr/bin/env bash
# A short lent-GPU call that continues one generator (an export from train/gpu_session.sh) with the recipe's
# adversarial stage and fresh discriminators, then exports it into $OUT (../shared/gpu.md):
#   run(command="INIT=assets/model MINUTES=8 bash train/gpu_continue.sh",
#       carry=["data/gpu", "weights/vgg16_conv4_3_fp16.safetensors"], timeout_s=...)
# (an export under runs/ must be carried too; EXTRA='--w-structure 300' etc. changes the recipe's settings)
# Tried on the CPU first:  DEVICE=cpu PATCH=32 BATCH=2 MINUTES=0.2 OUT=runs/continue-rehearsal INIT=... bash train/gpu_continue.sh
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
OUT=${OUT:-runs/gpu} RUN=${RUN:-runs/continue} DEVICE=${DEVICE:-cuda} PYTHON=${PYTHON:-python3}
PATCH=${PATCH:-256} BATCH=${BATCH:-16} MINUTES=${MINUTES:-3} INIT=${INIT:?an export folder to continue}
DATA=${DATA:-data/gpu} VGG=${VGG:-weights/vgg16_conv4_3_fp16.safetensors}
RECIPE=$("$PYTHON" -c "from train.recipe import RECIPE_ADVERSARIAL; print(' '.join(RECIPE_ADVERSARIAL))")
mkdir -p "$OUT"
# shellcheck disable=SC2086  # RECIPE and EXTRA are lists of options
timeout $(( ${MINUTES%.*} * 60 + 90 )) "$PYTHON" -m train adversarial --init "$INIT" --photos "$DATA/photos" \
  --cartoons "$DATA/cartoons" --photo-faces "$DATA/photo_faces" --cartoon-faces "$DATA/cartoon_faces" \
  --vgg-weights "$VGG" --perceptual vgg16 --device "$DEVICE" --patch-size "$PATCH" --batch-size "$BATCH" \
  --steps 100000000 --max-minutes "$MINUTES" --run-dir "$RUN" --save-every 1000 --sample-every 1000 --no-tensorboard \
  $RECIPE ${EXTRA:-} 2>&1 | tr '\r' '\n' | grep -v -E "it/s|step/s|Warning" > "$OUT/continue.log"
echo "adversarial exit ${PIPESTATUS[0]}" >> "$OUT/continue.log"
"$PYTHON" -m train export "$RUN" -o "$RUN/export" --data-note "data/gpu: python -m train.gather, re-encoded JPEG q90" \
  --notes "Continued from $INIT on $("$PYTHON" -c "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU')") for $MINUTES min with fresh discriminators: ${EXTRA:-recipe weights}." \
  >> "$OUT/continue.log" 2>&1
last_samples=$(ls "$RUN/samples/"*.png 2>/dev/null | tail -1)
tar -cf "$OUT/continue.tar" -C "$RUN" export metrics.jsonl options.json ${last_samples:+samples/$(basename "$last_samples")}
# The whole last checkpoint (G, both Ds, optimisers: ~25 MB, over the 16 MiB a file may have) in 15 MB parts, to
# resume exactly or score its discriminators at home:  cat checkpoint.tar.part-* | tar -x -C runs/continue-ckpt
latest=$(ls -d "$RUN"/checkpoints/checkpoint-* 2>/dev/null | tail -1)
[ -n "$latest" ] && tar -cf - -C "$(dirname "$latest")" "$(basename "$latest")" | split -b 15M - "$OUT/checkpoint.tar.part-"
tail -4 "$OUT/continue.log"; ls -la "$OUT"
