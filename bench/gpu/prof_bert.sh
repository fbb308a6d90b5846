#!/bin/bash
# bench/gpu/prof_bert.sh - on the GPU machine: the CUDA parity tests of the
# staged families, then a BERT-base-shaped encoder (bench/models.py
# bert_base, exported here) in fp16: FERRY_CUDA_PROFILE's time per operator
# at batch 256, and the batch sweep with CUDA graphs.
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh >/dev/null
export PYTHONUNBUFFERED=1
timeout 200 .devlibs/gpu/bin/test_parity_cuda > "$OUT/parity.log" 2>&1
echo "parity rc=$? $(grep -c '\[       OK \]' "$OUT/parity.log") ok, $(grep -c FAILED "$OUT/parity.log") failed"
grep -B2 FAILED "$OUT/parity.log" | head -20
mkdir -p /tmp/rg
[ -f /tmp/rg/bert_base.onnx ] || python3 -c "
import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('bert_base', '/tmp/rg')" 2>&1 | tail -1
FERRY_CUDA_PROFILE=1 $F bench /tmp/rg/bert_base.onnx --device cuda --precision fp16 --sweep \
    --batch-sizes 256 --duration 1 --repeat 1 --quiet 2>&1 | sed -n '/ferry profile/,$p' | tail -24
$F bench /tmp/rg/bert_base.onnx --device cuda --precision fp16 --graphs --sweep \
    --batch-sizes 1,8,64,256 --duration 1 --repeat 2 --quiet 2>&1 | tail -6
