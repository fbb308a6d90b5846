#!/bin/bash
# bench/gpu/run_attn.sh - on the GPU machine: the fused attention (graph
# fuse_attention.c, kernels_attention.cu). Its unit tests (plain, then under
# compute-sanitizer memcheck and racecheck), the CUDA parity of the staged
# families (bert, gpt, vit) in every precision, then BERT-base (bench/models.py
# bert_base, exported here) in fp16 with CUDA graphs at batch 1, 8, 64 and 256,
# fused and unfused (FERRY_NO_FUSE_ATTENTION=1) alternately in this one call,
# FERRY_CUDA_PROFILE at 256 of both, and a short table last.
# S names the staged folder (bench/gpu/stage.sh's, default .devlibs/gpu).
set -u
cd "$(dirname "$0")/../.."
export S=${S:-.devlibs/gpu}
. "$S/env.sh" >/dev/null
export PYTHONUNBUFFERED=1
T=$S/bin/test_cuda_backend

FERRY_TEST_FILTER=test_attention timeout 60 $T > "$OUT/unit.log" 2>&1
echo "unit rc=$?"; grep -E "attention|FAILED|PASSED" "$OUT/unit.log" | head -20
for tool in memcheck racecheck; do
    FERRY_TEST_FILTER=test_attention timeout 120 compute-sanitizer --tool $tool $T \
        > "$OUT/$tool.log" 2>&1
    echo "$tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/$tool.log" | tail -1)"
done
timeout 240 $S/bin/test_parity_cuda > "$OUT/parity.log" 2>&1
echo "parity rc=$? $(grep -c '\[       OK \]' "$OUT/parity.log") ok, $(grep -c '\[  FAILED  \]' "$OUT/parity.log") failed"
grep -B3 '\[  FAILED  \]' "$OUT/parity.log" | head -20

mkdir -p /tmp/rg
[ -f /tmp/rg/bert_base.onnx ] || python3 -c "
import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('bert_base', '/tmp/rg')" 2>&1 | tail -1
sweep() { # $1: label; env decides fused or not
    $F bench /tmp/rg/bert_base.onnx --device cuda --precision fp16 --graphs --sweep \
        --batch-sizes 1,8,64,256 --duration 1 --repeat 2 --quiet > "$OUT/sweep-$1.log" 2>&1
}
sweep fused-a
FERRY_NO_FUSE_ATTENTION=1 sweep unfused-a
sweep fused-b
FERRY_NO_FUSE_ATTENTION=1 sweep unfused-b
for mode in fused unfused; do
    [ $mode = unfused ] && export FERRY_NO_FUSE_ATTENTION=1
    FERRY_CUDA_PROFILE=1 $F bench /tmp/rg/bert_base.onnx --device cuda --precision fp16 --sweep \
        --batch-sizes 256 --duration 1 --repeat 1 --quiet > "$OUT/profile-$mode.log" 2>&1
    unset FERRY_NO_FUSE_ATTENTION
done
for mode in fused unfused; do
    echo "== profile at 256, $mode (top rows)"
    sed -n '/ferry profile/,$p' "$OUT/profile-$mode.log" | head -14
done
echo "== bert_base fp16, CUDA graphs, samples/s (run a / run b)"
printf "%-8s %-22s %-22s\n" batch fused unfused
for b in 1 8 64 256; do
    row() { awk -v b=$b '$1 == b {print $2; exit}' "$OUT/sweep-$1.log"; }
    printf "%-8s %-22s %-22s\n" $b "$(row fused-a) / $(row fused-b)" "$(row unfused-a) / $(row unfused-b)"
done
