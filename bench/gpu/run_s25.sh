#!/bin/bash
# bench/gpu/run_s25.sh - the first device call of 2026-12-07 18:10 UTC,
# after `NO_MLP=1 TEST_MODELS=<build>/test-models FAMILIES=hf,ops,...
# bench/gpu/stage.sh BUILD` (carry .devlibs/gpu):
#   1. Pow with negative bases and T5 on CUDA (bench/gpu/run_pow.sh)
#   2. test_parity_cuda over the staged families (the Hugging Face exports,
#      the new ScatterND/Tile kernels' models, the small CNNs, RNNs, ...)
#   3. FERRY_CUDA_PROFILE of mobilenet_v2 at batch 64 and 256 and of the
#      BERT-base encoder at batch 1 (fp16, graphs off: per-node events)
#   4. BERT-base at batch 1 and 8 (fp16, graphs): the attention's key split
#      (FERRY_ATTN_SPLIT=1 turns it off) and FERRY_GEMM_TUNE=1, A/B/C
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
export PYTHONUNBUFFERED=1
echo "== 1. pow"
timeout 90 bash bench/gpu/run_pow.sh 2>&1 | grep -v "^20..-\|H100\|H200"
echo "== 1b. unit tests: the attention's key split, the operators new on CUDA"
for t in test_attention test_prelu_min_max test_cumsum test_eye_like test_depth_to_space \
    test_gather_elements test_scatter_elements test_grid_sample test_einsum test_unsupported \
    test_topk test_reduce_l1_logsum test_reduce_int test_prelu_nhwc; do
    FERRY_TEST_FILTER=$t timeout 60 $S/bin/test_cuda_backend >"$OUT/$t.log" 2>&1
    echo "$t rc=$? $(grep -c 'rel err' "$OUT/$t.log") checks; worst: $(grep -o 'rel err [0-9.e+-]*' "$OUT/$t.log" | sort -k3 -g | tail -1)"
    grep -E "FAIL|Error|error:" "$OUT/$t.log" | head -4
done
mkdir -p /tmp/rg
for m in bert_base mobilenet_v2; do
    [ -f /tmp/rg/$m.onnx ] || timeout 120 python3 -c "
import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('$m', '/tmp/rg')" 2>&1 | tail -1
done
echo "== 4. BERT-base b1/b8: split on (default) / off / + GEMM tune"
for r in 1 2; do
for v in "default:X=1" "nosplit:FERRY_ATTN_SPLIT=1" "tune:FERRY_GEMM_TUNE=1"; do
    printf "%-8s r$r " ${v%%:*}
    env ${v#*:} timeout 60 $F bench /tmp/rg/bert_base.onnx --device cuda --precision fp16 --graphs --sweep \
        --batch-sizes 1,8 --duration 1 --repeat 1 --quiet 2>&1 | awk '$1 ~ /^(1|8)$/ {printf "b%s %s  ", $1, $2} END {print ""}'
done
done
echo "== 2. parity"
timeout ${PARITY_S:-220} $S/bin/test_parity_cuda > "$OUT/parity.log" 2>&1
echo "parity rc=$? $(grep -c '\[       OK \]' "$OUT/parity.log") ok, $(grep -c '\[  FAILED  \]' "$OUT/parity.log") failed"
grep -E "exceeds|skipped|ERROR|error" "$OUT/parity.log" | sort | uniq | head -30
tail -3 "$OUT/parity.log"
echo "== 3. profiles"
for b in 256; do
    echo "-- mobilenet_v2 b$b"
    FERRY_CUDA_PROFILE=1 timeout 60 $F bench /tmp/rg/mobilenet_v2.onnx --device cuda --precision fp16 --sweep \
        --batch-sizes $b --duration 1 --repeat 1 --quiet 2>&1 | sed -n '/ferry profile/,$p' | head -22
done
echo "-- bert_base b1"
FERRY_CUDA_PROFILE=1 timeout 60 $F bench /tmp/rg/bert_base.onnx --device cuda --precision fp16 --sweep \
    --batch-sizes 1 --duration 1 --repeat 1 --quiet 2>&1 | sed -n '/ferry profile/,$p' | head -22
