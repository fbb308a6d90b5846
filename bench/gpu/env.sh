# bench/gpu/env.sh - sourced (from the repository root) by the device
# scripts: unpacks what bench/gpu/stage.sh packed, sets the library path and
# names the binary (F), the bundled model (M), the seconds per point (D) and
# the log folder (OUT, made here), and prints the time and the GPU.
S=${S:-.devlibs/gpu}
[ -f $S/bin.tar.xz ] && [ ! -f $S/bin/ferry ] && tar xJf $S/bin.tar.xz -C $S
[ -f $S/big.tar.xz ] && [ ! -f $S/lib/libopenblas.so.0 ] && tar xJf $S/big.tar.xz -C $S/lib
[ -f $S/tm.tar.xz ] && [ ! -d $S/tm ] && tar xJf $S/tm.tar.xz -C $S
[ -f $S/py.tar.xz ] && [ ! -d $S/py ] && mkdir -p $S/py && tar xJf $S/py.tar.xz -C $S/py
export TORCH_PYPATH=$PWD/$S/py
# cuDNN 9 (the CUDA backend links it): the machine's toolkit, else PyTorch's
# wheel (nvidia-cudnn-cu13); it is too large to carry
DNN=
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/lib/x86_64-linux-gnu \
    $(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__) + "/lib")' 2>/dev/null); do
    if [ -f "$d/libcudnn.so.9" ]; then DNN=$d; break; fi
done
export LD_LIBRARY_PATH=$PWD/$S/lib:${DNN:+$DNN:}${LD_LIBRARY_PATH:-}
export FERRY_TEST_MODELS=$PWD/$S/tm
F=$S/bin/ferry
M=$S/models/mlp-s.onnx
D=${DURATION:-1}
OUT=${OUT:-/tmp/ferry-out}
mkdir -p "$OUT"
date -u +%FT%TZ
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || true
