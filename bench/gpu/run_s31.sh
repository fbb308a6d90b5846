#!/bin/bash
# bench/gpu/run_s31.sh - after run_s28.sh (21:37 UTC; same staging, carry
# .devlibs/cudnn, -m1, -m2):
#   1. the unit tests that failed or changed there (the plain RNN, whose
#      bidirectional fp16 case hit an unaligned R for cuBLASLt; CELU's
#      alpha; LayerNorm back on the block kernel)
#   2. parity of set 2 (user-acts / user-select with their loose bounds)
#   3. mobilenet_v2 fp16: pointwise convolutions through cuDNN (default) and
#      as one matmul (FERRY_CUDA_POINTWISE=matmul), 8/64/256, two rounds
#   4. mobilenet_v2 beside PyTorch's best path (real_gpu.py), then the same
#      Ferry columns with the matmul path
#   5. the batcher at 256 clients on resnet50 (2, 4, 6 streams)
set -u
cd "$(dirname "$0")/../.."
S=.devlibs/cudnn
for t in bin lib; do [ -d $S/$t ] || tar xJf $S/$t.tar.xz -C $S; done
export LD_LIBRARY_PATH="$PWD/$S/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader; date -u +%FT%TZ
echo "== 1. unit"
for t in test_rnn_plain test_activations_param test_layernorm; do
    FERRY_TEST_FILTER=$t timeout 60 $S/bin/test_cuda_backend >/tmp/$t.log 2>&1
    echo "$t rc=$? $(grep -c 'rel err' /tmp/$t.log) checks; worst: $(grep -o 'rel err [0-9.e+-]*' /tmp/$t.log | sort -k3 -g | tail -1)"
    grep -E -B3 "FAIL|rror" /tmp/$t.log | head -12
done
echo "== 2. parity of set 2"
PARITY_TIMEOUT=80 timeout 90 bash bench/gpu/run_cudnn.sh 2 2>&1 | tail -11
mkdir -p /tmp/real-gpu
timeout 90 python3 -c "
import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('mobilenet_v2', '/tmp/real-gpu')" 2>&1 | tail -1
echo "== 3. mobilenet_v2: pointwise through cuDNN (default) / matmul"
for r in 1 2; do
for v in "cudnn:X=1" "matmul:FERRY_CUDA_POINTWISE=matmul"; do
    printf "%-7s r$r " ${v%%:*}
    env ${v#*:} timeout 60 $S/bin/ferry bench /tmp/real-gpu/mobilenet_v2.onnx --device cuda --precision fp16 \
        --graphs --sweep --batch-sizes 8,64,256 --duration 1 --repeat 1 --quiet 2>&1 |
        awk '$1 ~ /^(8|64|256)$/ {printf "b%s %s  ", $1, $2} END {print ""}'
done
done
echo "== 4. mobilenet_v2 beside PyTorch (default), then Ferry with the matmul path"
timeout 150 python3 bench/gpu/real_gpu.py --ferry $S/bin/ferry --models mobilenet_v2 --batch-sizes 1,8,64,256 \
    --duration 1 --repeats 2 --batcher 0 --dir /tmp/real-gpu 2>&1 | tail -6
FERRY_CUDA_POINTWISE=matmul timeout 80 python3 bench/gpu/real_gpu.py --ferry $S/bin/ferry --models mobilenet_v2 \
    --batch-sizes 1,8,64,256 --duration 1 --repeats 2 --batcher 0 --skip-torch --dir /tmp/real-gpu 2>&1 | tail -6
echo "== 5. batcher"
S=$S MODELS=resnet50 WORKERS="2 4 6" timeout 120 bash bench/gpu/run_s26.sh 2>&1 | grep -v "^20..-"
date -u +%FT%TZ
