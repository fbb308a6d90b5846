#!/bin/bash
# bench/gpu/run_s28.sh - the first device call of 2026-12-07 21:00 UTC
# (staged by `bench/gpu/stage_cudnn.sh BUILD MODELS
# mobilenet_v2,mobilenet_v3_small hf-clip-text`, carry .devlibs/cudnn,
# .devlibs/cudnn-m1 and .devlibs/cudnn-m2): run_s27.sh (the pointwise
# convolutions as one matmul: unit tests, mobilenet_v2's speed both ways,
# the mobilenets' parity with it), hf-clip-text's parity (ArgMax of int32),
# BERT-base at batch 1 and 8 beside PyTorch's best path, the unit tests of
# h-cuda-ops3 (run_s29.sh) and the parity of its operators' models, the
# warp-per-row LayerNorm against the block one (FERRY_LN_BLOCK=1).
set -u
cd "$(dirname "$0")/../.."
S=.devlibs/cudnn
timeout 100 bash bench/gpu/run_s29.sh 2>&1 | grep -v "^20..-\|H100\|H200"
echo "== 2b. parity of hf-clip-text, lstm, gru, rnn-states, user-select, user-acts, video3d"
PARITY_TIMEOUT=110 timeout 120 bash bench/gpu/run_cudnn.sh 2 2>&1 | tail -12
timeout 200 bash bench/gpu/run_s27.sh 2>&1
echo "== 3. BERT-base b1/b8 beside PyTorch"
export LD_LIBRARY_PATH="$PWD/$S/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
timeout 170 python3 bench/gpu/real_gpu.py --ferry $S/bin/ferry --models bert_base --batch-sizes 1,8 \
    --duration 1.5 --repeats 2 --batcher 0 --dir /tmp/rg 2>&1 | tail -12
echo "== 3b. BERT-base b1/b8: LayerNorm warp per row (default) / block per row (FERRY_LN_BLOCK=1)"
for r in 1 2; do
for v in "warp:X=1" "block:FERRY_LN_BLOCK=1"; do
    printf "%-6s r$r " ${v%%:*}
    env ${v#*:} timeout 60 $S/bin/ferry bench /tmp/rg/bert_base.onnx --device cuda --precision fp16 --graphs --sweep \
        --batch-sizes 1,8 --duration 1 --repeat 1 --quiet 2>&1 | awk '$1 ~ /^(1|8)$/ {printf "b%s %s  ", $1, $2} END {print ""}'
done
done
date -u +%FT%TZ
