#!/bin/bash
# bench/gpu/run_s27.sh - the last device call of 2026-12-07 (staged by
# `bench/gpu/stage_cudnn.sh BUILD MODELS mobilenet_v2,mobilenet_v3_small`,
# carry .devlibs/cudnn and .devlibs/cudnn-m1):
#   1. the unit tests of the pointwise-convolution matmul, the conv
#      epilogues and ArgMax of integers
#   2. parity of mobilenet_v2 and mobilenet_v3_small with
#      FERRY_CUDA_POINTWISE=matmul (pointwise convs one cuBLASLt matmul each)
#   3. mobilenet_v2 and BERT-base beside PyTorch's best path (real_gpu.py)
#   4. mobilenet_v2, the default (cuDNN) against FERRY_CUDA_POINTWISE=matmul
set -u
cd "$(dirname "$0")/../.."
S=.devlibs/cudnn
export PYTHONUNBUFFERED=1
for t in bin lib; do [ -d $S/$t ] || tar xJf $S/$t.tar.xz -C $S; done
export LD_LIBRARY_PATH="$PWD/$S/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
for d in $(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__) + "/lib")' 2>/dev/null); do
    [ -f "$d/libcudnn.so.9" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
done
nvidia-smi --query-gpu=name --format=csv,noheader; date -u +%FT%TZ
echo "== 1. unit"
for t in test_conv_pointwise test_conv_epilogues test_argmax_int test_layernorm; do
    FERRY_TEST_FILTER=$t timeout 60 $S/bin/test_cuda_backend >/tmp/$t.log 2>&1
    echo "$t rc=$? $(grep -c 'rel err' /tmp/$t.log) checks; worst: $(grep -o 'rel err [0-9.e+-]*' /tmp/$t.log | sort -k3 -g | tail -1)"
    grep -E "FAIL|rror" /tmp/$t.log | head -6
done
grep "pointwise" /tmp/test_conv_pointwise.log | head -8
mkdir -p /tmp/real-gpu; [ -f /tmp/real-gpu/mobilenet_v2.onnx ] || timeout 90 python3 -c "
import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('mobilenet_v2', '/tmp/real-gpu')" 2>&1 | tail -1
echo "== 4. mobilenet_v2: pointwise through cuDNN (default) / matmul (opt-in)"
for v in "cudnn:X=1" "matmul:FERRY_CUDA_POINTWISE=matmul"; do
    printf "%-7s " ${v%%:*}
    env ${v#*:} timeout 60 $S/bin/ferry bench /tmp/real-gpu/mobilenet_v2.onnx --device cuda --precision fp16 \
        --graphs --sweep --batch-sizes 8,64,256 --duration 1 --repeat 1 --quiet 2>&1 |
        awk '$1 ~ /^(8|64|256)$/ {printf "b%s %s  ", $1, $2} END {print ""}'
done
echo "== 2. parity"
FERRY_CUDA_POINTWISE=matmul PARITY_TIMEOUT=70 timeout 75 bash bench/gpu/run_cudnn.sh 1 2>&1 | tail -8
date -u +%FT%TZ
