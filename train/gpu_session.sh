#!/usr/bin/env bash
# One lent-GPU session as one prepared device call (issues 14, 16, 17; ../shared/gpu.md):
#   1. the training-step benchmark (pretrain, adversarial with structure on the device, a profile of the latter);
#   2. one shared pretrain run, alone on the device;
#   3. the recipe's adversarial stage for each variant in VARIANTS, all at once (small networks leave an H100 idle
#      between kernels, so concurrent runs cost each other little), resumed from the shared pretrain, each falling
#      back to host superpixels if the device path fails; export, no evaluation (done at home on the full VGG16);
#   4. at most 8 files in $OUT: session.log, train_step*.json, one tar per variant, pretrain.tar.
# Before the call, here (data re-encoded to fit the 64 MiB carry; the VGG16 cut at conv4_3 in fp16):
#   run(command="bash train/gpu_session.sh", carry=["data/gpu", "weights/vgg16_conv4_3_fp16.safetensors"], timeout_s=600)
# Tried on the CPU first:  DEVICE=cpu PATCH=32 BATCH=2 BENCH_PATCH=64 BENCH_BATCH=2 BENCH_STEPS=2 PRETRAIN_MIN=0.2 \
#                          DEADLINE_S=200 OUT=runs/gpu-rehearsal bash train/gpu_session.sh
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
START=$(date +%s)
OUT=${OUT:-runs/gpu} RUNS=${RUNS:-runs/session} DEVICE=${DEVICE:-cuda} PYTHON=${PYTHON:-python3}
PATCH=${PATCH:-256} BATCH=${BATCH:-16} PRETRAIN_MIN=${PRETRAIN_MIN:-1.0} DEADLINE_S=${DEADLINE_S:-565}
BENCH_PATCH=${BENCH_PATCH:-256} BENCH_BATCH=${BENCH_BATCH:-16} BENCH_STEPS=${BENCH_STEPS:-30}
DATA=${DATA:-data/gpu} VGG=${VGG:-weights/vgg16_conv4_3_fp16.safetensors}
# name=extra adversarial options (on top of the recipe's); '+' stands for a space
# 2026-11-25: "v2= conditional=--conditional strong=--w-surface+2.0+--w-texture+1.5" with the recipe then at structure 300
VARIANTS=${VARIANTS:-"v2= conditional=--conditional"}
mkdir -p "$OUT" "$RUNS"
LOG="$OUT/session.log"
say() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
left() { echo $(( DEADLINE_S - ($(date +%s) - START) )); }

say "$("$PYTHON" -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(),
  torch.cuda.get_device_name() if torch.cuda.is_available() else '')" 2>&1) | $(nproc) CPUs"
for kind in photos cartoons photo_faces cartoon_faces held_out; do say "data $kind: $(ls "$DATA/$kind" | wc -l)"; done

# 1. The benchmark (alone on the device).
bench() {  # name, timeout, --only texts, more options
  timeout "$2" "$PYTHON" benchmarks/train_step.py --device "$DEVICE" --patch "$BENCH_PATCH" --batch "$BENCH_BATCH" \
    --steps "$BENCH_STEPS" --warmup 5 --vgg-weights "$VGG" --only "$3" --json "$OUT/$1.json" ${4:-} 2>&1 \
    | grep -v -E "Warning|warn\(|USDT" >> "$LOG"
  say "benchmark $1 exit ${PIPESTATUS[0]}"
}
bench train_step 90 "pretrain|structure on the device (torch SLIC)"
# Where the adversarial step's time goes (host vs device, kernels per step). torch.compile of G, Ds and VGG was
# tried on 2026-11-25 and had not warmed up after 75 s: COMPILE=1 tries it again.
bench train_step_profile 60 "structure on the device (torch SLIC)" "--profile 3 --sync-check 3"
[ "${COMPILE:-0}" = 1 ] && bench train_step_compile 150 "torch.compile"

# 2. The shared pretrain.
say "pretrain for $PRETRAIN_MIN min"
timeout $(( ${PRETRAIN_MIN%.*} * 60 + 90 )) "$PYTHON" -m train pretrain --photos "$DATA/photos" --photo-faces "$DATA/photo_faces" \
  --device "$DEVICE" --patch-size "$PATCH" --batch-size "$BATCH" --steps 100000000 --max-minutes "$PRETRAIN_MIN" \
  --run-dir "$RUNS/pretrain" --resume latest --save-every 1000 --sample-every 1000 --no-tensorboard 2>&1 \
  | tr '\r' '\n' | grep -v -E "it/s|step/s|Warning" | tail -5 >> "$LOG"
say "pretrain exit ${PIPESTATUS[0]}: $(ls "$RUNS/pretrain/checkpoints" 2>&1 | tr '\n' ' ')"

# 3. The adversarial variants, concurrently; each recipe skips the pretrain (share 0) and trains until the deadline.
adversarial() {  # name, extra options
  local name=$1 extra=${2//+/ } run="$RUNS/$1"
  mkdir -p "$run" && ln -sfn "$(realpath "$RUNS/pretrain")" "$run/pretrain"
  for structure in device host; do
    local minutes
    minutes=$("$PYTHON" -c "print(max(($(left) - 35) / 60, 0.3))")
    [ "$(left)" -lt 60 ] && break
    say "$name: adversarial on $structure structure for $minutes min ($extra)"
    "$PYTHON" -m train recipe --minutes "$minutes" --reserve-minutes 0.25 --pretrain-share 0 --device "$DEVICE" \
      --photos "$DATA/photos" --cartoons "$DATA/cartoons" --photo-faces "$DATA/photo_faces" \
      --cartoon-faces "$DATA/cartoon_faces" --held-out-dir "$DATA/held_out" --vgg-weights "$VGG" --perceptual vgg16 \
      --patch-size "$PATCH" --batch-size "$BATCH" --run-dir "$run" --no-evaluate \
      --data-note "data/gpu: python -m train.gather, re-encoded JPEG q90, short side <= 720" \
      --adversarial-args "$extra --structure-on $structure --superpixel-workers 3 --no-tensorboard" 2>&1 \
      | tr '\r' '\n' | grep -v -E "it/s|step/s|Warning" > "$run/recipe.log"
    local code=${PIPESTATUS[0]}
    say "$name: recipe exit $code"
    [ "$code" = 0 ] && break
    tail -15 "$run/recipe.log" >> "$LOG"
  done
}
pids=()
for variant in $VARIANTS; do
  adversarial "${variant%%=*}" "${variant#*=}" &
  pids+=($!)
done
wait "${pids[@]}"

# 4. Bring back what matters: the export (card + weights), metrics, last samples, logs; the pretrain's generator.
for variant in $VARIANTS; do
  name=${variant%%=*} run="$RUNS/${variant%%=*}"
  last_samples=$(ls "$run/adversarial/samples/"*.png 2>/dev/null | tail -1)
  tar -cf "$OUT/$name.tar" -C "$run" export recipe.json recipe.log adversarial/metrics.jsonl adversarial/options.json \
    ${last_samples:+adversarial/samples/$(basename "$last_samples")} 2>>"$LOG"
done
latest=$(ls -d "$RUNS/pretrain/checkpoints/"* 2>/dev/null | tail -1)
[ -n "$latest" ] && tar -cf "$OUT/pretrain.tar" -C "$RUNS" "pretrain/checkpoints/$(basename "$latest")/generator" \
  "pretrain/checkpoints/$(basename "$latest")/state.json" pretrain/metrics.jsonl 2>>"$LOG"
say "done"
ls -la "$OUT" | tee -a "$LOG"
