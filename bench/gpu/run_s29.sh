#!/bin/bash
# bench/gpu/run_s29.sh - the unit tests of the operators the CPU backend
# gained before the CUDA one (branch h-cuda-ops3): the seven parametrized
# activations, IsNaN/IsInf, OneHot, the plain RNN, 3-D Conv/ConvTranspose/
# pooling, and what their rows still refuse. Staged like run_s27.sh
# (`bench/gpu/stage_cudnn.sh BUILD ...`, carry .devlibs/cudnn): per test its
# rc, the number of checks and the worst relative error, then any failure.
set -u
cd "$(dirname "$0")/../.."
S=.devlibs/cudnn
for t in bin lib; do [ -d $S/$t ] || tar xJf $S/$t.tar.xz -C $S; done
export LD_LIBRARY_PATH="$PWD/$S/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
for d in $(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__) + "/lib")' 2>/dev/null); do
    [ -f "$d/libcudnn.so.9" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
done
OUT=${OUT:-/tmp/s29}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name --format=csv,noheader; date -u +%FT%TZ
echo "== 1b. unit tests: the operators new on CUDA"
for t in test_activations_param test_isnan_isinf test_one_hot test_rnn_plain test_conv_pool_3d \
    test_new_ops_refused; do
    FERRY_TEST_FILTER=$t timeout 120 $S/bin/test_cuda_backend >"$OUT/$t.log" 2>&1
    echo "$t rc=$? $(grep -c 'rel err' "$OUT/$t.log") checks; worst: $(grep -o 'rel err [0-9.e+-]*' "$OUT/$t.log" | sort -k3 -g | tail -1)"
    grep -E "FAIL|Error|error:|ERROR" "$OUT/$t.log" | head -6
done
date -u +%FT%TZ
