#!/usr/bin/env bash
# Issue 18's GPU figures as one prepared device call (../shared/gpu.md; PyAV is not on that machine, so its wheel
# travels in .whl/video, which git ignores and train/gpu_prepare.sh fills):
#   run(command="bash benchmarks/gpu_video.sh", carry=[".whl/video"], timeout_s=480)
# Tried on the CPU first:  DEVICE=cpu BATCH=4 HEIGHT=64 WIDTH=96 VIDEO_HEIGHT=96 CLIP_SECONDS=0.5 bash benchmarks/gpu_video.sh
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
OUT=${OUT:-runs/gpu} DEVICE=${DEVICE:-cuda} PYTHON=${PYTHON:-python3}
BATCH=${BATCH:-8} HEIGHT=${HEIGHT:-720} WIDTH=${WIDTH:-1280} VIDEO_HEIGHT=${VIDEO_HEIGHT:-720} CLIP_SECONDS=${CLIP_SECONDS:-4}
mkdir -p "$OUT"
LOG="$OUT/video.log"
if ! "$PYTHON" -c "import av" 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/video/av-*.whl \
    && export PYTHONPATH=/tmp/site
fi
"$PYTHON" -c "import av, torch; print('av', av.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
  > "$LOG" 2>&1
timeout 120 "$PYTHON" benchmarks/generator_device.py --device "$DEVICE" --height "$HEIGHT" --width "$WIDTH" \
  --batches 1,8 --stage --graphs --json "$OUT/generator_device.json" >> "$LOG" 2>&1
echo "generator exit $?" >> "$LOG"
for height in "$VIDEO_HEIGHT" 480; do
  timeout 120 "$PYTHON" benchmarks/video.py --device "$DEVICE" --height "$height" --seconds "$CLIP_SECONDS" --batch "$BATCH" \
    --out "runs/video-$height" --json "$OUT/video_$height.json" 2>&1 | grep -v Using >> "$LOG"
  echo "video $height exit ${PIPESTATUS[0]}" >> "$LOG"
done
# Last, as it may take minutes to compile: the fp16 generator through torch.compile (COMPILE=0 skips it;
# COMPILE_MODE=max-autotune tries Triton's convolution templates too: reduce-overhead gave 1.63 ms, the target is 1.2).
if [ "${COMPILE:-1}" = 1 ] && [ "$DEVICE" = cuda ]; then
  timeout 240 "$PYTHON" benchmarks/generator_device.py --device "$DEVICE" --height "$HEIGHT" --width "$WIDTH" \
    --batches 8 --compile --compile-mode "${COMPILE_MODE:-reduce-overhead}" --json "$OUT/generator_compile.json" >> "$LOG" 2>&1
  echo "generator compile exit $?" >> "$LOG"
fi
cp "runs/video-$VIDEO_HEIGHT/strip.png" "$OUT/strip.png" 2>/dev/null
cat "$LOG"
