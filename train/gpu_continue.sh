#!/usr/bin/env bash
# A short lent-GPU call that continues one generator (an export, e.g. the shipped assets/model) with the recipe's
# adversarial stage (fresh discriminators, or DISCRIMINATORS=), one run per variant, all at once on the card (small networks leave a
# GPU idle between kernels: two runs get about 60% of one's steps each), then exports each and brings back every checkpoint's generator into $OUT
# (../shared/gpu.md):
#   run(command="INIT=assets/model MINUTES=8 bash train/gpu_continue.sh",
#       carry=["data/gpu", "weights/vgg16_conv4_3_fp16.safetensors"], timeout_s=...)
# VARIANTS lists name=extra options on top of the recipe's ('+' stands for a space), e.g.
#   VARIANTS="recipe= lines=--w-texture+4"
# DISCRIMINATORS=weights/discriminators.safetensors starts the discriminators from the ones that trained INIT
# (python -m train.gpu_pack --discriminators CHECKPOINT; carry it too) instead of fresh ones, which may first undo part
# of a trained G (README, "Tried after v3").
# (an export under runs/ must be carried too.)
# v5's stage "cast" (2026-11-26, one H100, 7 min; three variants at once, 10.3 steps/s each):
#   C=--segments+50+--conditional+--w-structure+2400+--w-texture+4+--w-chroma+10+--w-surface-prior+5+--lr+1.5e-4
#   PATCH=128 BATCH=32 MINUTES=7 SAVE_EVERY=1000 INIT=<the steerable stages' model> DISCRIMINATORS=<its discriminators> \
#     VARIANTS="cast=$C+--face-every+3+--face-structure-factor+0.1667+--w-cast+200+--face-prior-factor+0.25" ...
#   then "faces" from its last checkpoint (2 min): --face-every 2 --face-structure-factor 0.1 --face-prior-factor 0.
# Tried on the CPU first:
#   DEVICE=cpu PATCH=32 BATCH=2 MINUTES=0.2 OUT=runs/continue-rehearsal INIT=assets/model bash train/gpu_continue.sh
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
OUT=${OUT:-runs/gpu} RUNS=${RUNS:-runs/continue} DEVICE=${DEVICE:-cuda} PYTHON=${PYTHON:-python3}
PATCH=${PATCH:-256} BATCH=${BATCH:-16} MINUTES=${MINUTES:-3} INIT=${INIT:?an export folder to continue}
DATA=${DATA:-data/gpu} VGG=${VGG:-weights/vgg16_conv4_3_fp16.safetensors} VARIANTS=${VARIANTS:-"recipe="}
DISCRIMINATORS=${DISCRIMINATORS:-} SAVE_EVERY=${SAVE_EVERY:-500}
START_DS=${DISCRIMINATORS:+--init-discriminators $DISCRIMINATORS}
RECIPE=$("$PYTHON" -c "from train.recipe import RECIPE_ADVERSARIAL; print(' '.join(RECIPE_ADVERSARIAL))")
DEVICE_NAME=$("$PYTHON" -c "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU')")
mkdir -p "$OUT" "$RUNS"
LOG="$OUT/continue.log"
echo "$DEVICE_NAME, $(nproc) CPUs, variants: $VARIANTS" > "$LOG"

continue_variant() {  # name, extra options
  local name=$1 extra=${2//+/ } run="$RUNS/$1"
  # shellcheck disable=SC2086  # RECIPE and extra are lists of options
  timeout $(( ${MINUTES%.*} * 60 + 90 )) "$PYTHON" -m train adversarial --init "$INIT" --photos "$DATA/photos" \
    --cartoons "$DATA/cartoons" --photo-faces "$DATA/photo_faces" --cartoon-faces "$DATA/cartoon_faces" \
    --vgg-weights "$VGG" --perceptual vgg16 --device "$DEVICE" --patch-size "$PATCH" --batch-size "$BATCH" \
    --steps 100000000 --max-minutes "$MINUTES" --run-dir "$run" --save-every "$SAVE_EVERY" --keep-last 1000 \
    --sample-every 1000 \
    --no-tensorboard $RECIPE $START_DS $extra 2>&1 | tr '\r' '\n' | grep -v -E "it/s|step/s|s/step|Warning" > "$run.log"
  echo "$name: adversarial exit ${PIPESTATUS[0]}" >> "$LOG"
  "$PYTHON" -m train export "$run" -o "$run/export" --data-note "data/gpu: python -m train.gather, re-encoded JPEG q90" \
    --notes "Continued from $INIT on $DEVICE_NAME for $MINUTES min with ${DISCRIMINATORS:-fresh} discriminators: ${extra:-recipe weights}." \
    >> "$run.log" 2>&1
  echo "$name: export exit $?" >> "$LOG"
}
pids=()
for variant in $VARIANTS; do
  mkdir -p "$RUNS/${variant%%=*}"
  continue_variant "${variant%%=*}" "${variant#*=}" &
  pids+=($!)
done
wait "${pids[@]}"

# At most 8 files come back: the log, then per variant a tar (export, metrics, options, last samples, its log) and
# every checkpoint's generator in fp16 with the last discriminators (python -m train.gpu_harvest: ~3 MB per checkpoint,
# the Fréchet distance swings along a run, so several are scored at home) in 15 MB parts:
#   cat NAME-harvest.tar.part-* | tar -x -C runs/NAME-harvest
for variant in $VARIANTS; do
  name=${variant%%=*} run="$RUNS/${variant%%=*}"
  cp "$run.log" "$run/continue.log"
  last_samples=$(ls "$run/samples/"*.png 2>/dev/null | tail -1)
  tar -cf "$OUT/$name.tar" -C "$run" export metrics.jsonl options.json continue.log \
    ${last_samples:+samples/$(basename "$last_samples")} 2>>"$LOG"
  "$PYTHON" -m train.gpu_harvest "$run" "$run/harvest" >> "$LOG" 2>&1 \
    && tar -cf - -C "$run" harvest | split -b 15M - "$OUT/$name-harvest.tar.part-"
  tail -3 "$run.log" >> "$LOG"
done
cat "$LOG"; ls -la "$OUT"
