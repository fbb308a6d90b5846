#!/bin/bash
# bench/gpu/run_graph.sh - cuDNN's graph API as the default for convolutions
# with an epilogue (bias, residual, ReLU, Clip), in one device call, after
# `bench/gpu/stage_cudnn.sh BUILD MODELS SET1`:
#   1. parity of set 1 (every precision, graphs off and on) with the default
#   2. Ferry's sweep with FERRY_CUDNN=legacy, =graph-clip (Clip epilogues
#      through the graph API too) and FERRY_CUDA_DEPTHWISE=ours (our
#      depthwise kernel) against the default
#   3. bench/gpu/real_gpu.py on resnet50 and mobilenet_v2 (PyTorch's best
#      path beside Ferry's default, same run)
# Logs in $OUT; the tables come last.
set -u
cd "$(dirname "$0")/../.."
S=.devlibs/cudnn
OUT=${OUT:-/tmp/ferry-graph-out}
mkdir -p "$OUT"
PARITY_TIMEOUT=${PARITY_TIMEOUT:-200} UNIT=1 bash $S/run_cudnn.sh 1 >"$OUT/parity.txt" 2>&1
FERRY_CUDA_DEPTHWISE=ours FERRY_CUDNN=graph-clip PARITY_TIMEOUT=${PARITY_TIMEOUT:-200} \
    OUT=$OUT/ours bash $S/run_cudnn.sh 1 >"$OUT/parity-ours.txt" 2>&1
DNN=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__) + "/lib")' 2>/dev/null)
export LD_LIBRARY_PATH="$PWD/$S/lib:${DNN:+$DNN:}/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
F=$S/bin/ferry
D=/tmp/real-gpu
mkdir -p $D
export PYTHONUNBUFFERED=1
for m in resnet50 mobilenet_v2; do
    python3 -c "import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('$m', '$D')" \
        >/dev/null 2>&1
done
for m in resnet50 mobilenet_v2; do
    for v in default FERRY_CUDNN=legacy FERRY_CUDNN=graph-clip FERRY_CUDA_DEPTHWISE=ours; do
        echo "== $m $v" >>"$OUT/modes.txt"
        env $([ $v = default ] || echo $v) timeout 60 $F bench $D/$m.onnx --device cuda \
            --precision fp16 --graphs --sweep --batch-sizes 1,8,64,256 --duration 0.5 --repeat 1 \
            --quiet >>"$OUT/modes.txt" 2>&1
    done
done
timeout ${TORCH_TIMEOUT:-150} python3 bench/gpu/real_gpu.py --ferry $F --models resnet50,mobilenet_v2 --batcher 256 \
    --duration 0.5 --repeats 1 --dir $D --json "$OUT/real.json" >"$OUT/real.txt" 2>"$OUT/real.err"
tail -n 25 "$OUT/parity.txt"
echo "== parity with FERRY_CUDA_DEPTHWISE=ours FERRY_CUDNN=graph-clip"; tail -n 10 "$OUT/parity-ours.txt"
cat "$OUT/real.txt"
grep -E "^== |^ +[0-9]+ " "$OUT/modes.txt"
