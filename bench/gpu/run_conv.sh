#!/bin/bash
# bench/gpu/run_conv.sh - one device call for the CNNs on CUDA (issue 15),
# after bench/gpu/stage_cudnn.sh BUILD MODELS SET1 staged .devlibs/cudnn:
#   1. parity of set 1 in every precision (graphs off and on) and
#      compute-sanitizer memcheck over one fp16 `ferry run` of MEMCHECK
#      (bench/gpu/run_cudnn.sh)
#   2. bench/gpu/real_gpu.py on MODELS (default resnet50,mobilenet_v2,
#      vit_tiny): PyTorch's best path and Ferry in the same run, and the
#      batcher at 256 clients
#   3. Ferry on resnet50 through cuDNN's legacy calls (FERRY_CUDNN=legacy)
#      against the graph API (the default), and the time a `ferry run`
#      takes (plans are built at load and at each new batch size)
#   4. FERRY_CUDA_PROFILE's time per operator for resnet50 at batch 256
# Logs in $OUT; the tables come last.
set -u
cd "$(dirname "$0")/../.."
S=.devlibs/cudnn
OUT=${OUT:-/tmp/ferry-conv-out}
mkdir -p "$OUT"
MODELS=${MODELS:-resnet50,mobilenet_v2}
MEMCHECK=${MEMCHECK:-mobilenet_v2} MEMCHECK_PRECISIONS=${MEMCHECK_PRECISIONS:-fp16} \
    UNIT=${UNIT:-1} bash $S/run_cudnn.sh 1 >"$OUT/parity.txt" 2>&1
# the library path run_cudnn.sh set (cuDNN from the toolkit or torch's wheel)
DNN=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__) + "/lib")' 2>/dev/null)
export LD_LIBRARY_PATH="$PWD/$S/lib:${DNN:+$DNN:}/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
F=$S/bin/ferry
D=/tmp/real-gpu
export PYTHONUNBUFFERED=1
python3 bench/gpu/real_gpu.py --ferry $F --models "$MODELS" --batcher 256 --duration 1 \
    --repeats "${REPEATS:-2}" --dir $D --json "$OUT/real.json" >"$OUT/real.txt" 2>"$OUT/real.err"
FERRY_CUDNN=legacy python3 bench/gpu/real_gpu.py --ferry $F --models "$MODELS" --batcher 0 \
    --duration 1 --repeats "${REPEATS:-2}" --dir $D --skip-torch >"$OUT/legacy.txt" 2>"$OUT/legacy.err"
for api in graph legacy; do
    t0=$(date +%s.%N)
    FERRY_CUDNN=$api $F run $D/resnet50.onnx --random 8 --device cuda --precision fp16 \
        -o /tmp/r-$api.npy >>"$OUT/load.txt" 2>&1
    echo "$api: ferry run resnet50 --random 8, fp16: rc $?, $(echo "$(date +%s.%N) - $t0" | bc) s wall" >>"$OUT/load.txt"
done
python3 -c "import numpy as n; a, b = n.load('/tmp/r-graph.npy'), n.load('/tmp/r-legacy.npy'); print('graph vs legacy outputs: max abs diff', abs(a - b).max(), 'max abs', abs(b).max())" >>"$OUT/load.txt" 2>&1
FERRY_CUDA_PROFILE=1 $F bench $D/resnet50.onnx --device cuda --precision fp16 --sweep \
    --batch-sizes 256 --duration 1 --repeat 1 --quiet >"$OUT/profile.txt" 2>&1
echo "== parity and memcheck"; tail -n 25 "$OUT/parity.txt"
echo "== load"; tail -n 4 "$OUT/load.txt"
echo "== profile"; sed -n '/ferry profile/,$p' "$OUT/profile.txt" | head -30
grep -i "failed\|error\|Traceback" "$OUT"/real.err "$OUT"/legacy.err | head -8
echo "== FERRY_CUDNN=legacy"; cat "$OUT/legacy.txt"
echo "== graph API (default) and PyTorch"; cat "$OUT/real.txt"
