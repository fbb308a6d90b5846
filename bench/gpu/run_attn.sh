#!/bin/bash
# bench/gpu/run_attn.sh - on the GPU machine: the fused attention (graph
# fuse_attention.c, kernels_attention.cu). Its unit tests; BERT-base
# (bench/models.py bert_base, exported here) in fp16 with CUDA graphs at
# batch 1, 8, 64 and 256, fused and unfused (FERRY_NO_FUSE_ATTENTION=1)
# alternately in this one call; FERRY_CUDA_PROFILE at 256 of both; the CUDA
# parity of the staged families (bench/gpu/stage.sh FAMILIES=bert,gpt,vit)
# in every precision; the unit test under compute-sanitizer memcheck and
# racecheck; the table again last. Most telling first, so that a run cut
# short still answers. Five logs under $OUT (at most 8 come back).
# S names the staged folder (bench/gpu/stage.sh's, default .devlibs/gpu);
# ONE_SWEEP=1 runs one fused and one unfused sweep instead of two each,
# PARITY_S caps the parity run (seconds), SANITIZERS= skips compute-sanitizer.
set -u
cd "$(dirname "$0")/../.."
export S=${S:-.devlibs/gpu}
. "$S/env.sh" >/dev/null
export PYTHONUNBUFFERED=1
T=$S/bin/test_cuda_backend

FERRY_TEST_FILTER=test_attention timeout 60 $T > "$OUT/unit.log" 2>&1
echo "unit rc=$?"; grep -E "attention|FAILED|PASSED" "$OUT/unit.log" | head -16

mkdir -p /tmp/rg
[ -f /tmp/rg/bert_base.onnx ] || python3 -c "
import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('bert_base', '/tmp/rg')" 2>&1 | tail -1
sweep() { # $1: label; the environment decides fused or not
    echo "== $1" >> "$OUT/sweeps.log"
    timeout 90 $F bench /tmp/rg/bert_base.onnx --device cuda --precision fp16 --graphs --sweep \
        --batch-sizes 1,8,64,256 --duration 1 --repeat 1 --quiet > /tmp/sweep-$1.log 2>&1
    cat /tmp/sweep-$1.log >> "$OUT/sweeps.log"
}
table() {
    echo "== bert_base fp16, CUDA graphs, samples/s (run a / run b)"
    printf "%-6s %-20s %-20s\n" batch fused unfused
    for b in 1 8 64 256; do
        row() { [ -f /tmp/sweep-$1.log ] && awk -v b=$b '$1 == b {print $2; exit}' /tmp/sweep-$1.log; }
        printf "%-6s %-20s %-20s\n" $b "$(row fused-a) / $(row fused-b)" "$(row unfused-a) / $(row unfused-b)"
    done
}
sweep fused-a
FERRY_NO_FUSE_ATTENTION=1 sweep unfused-a
if [ -z "${ONE_SWEEP:-}" ]; then
    sweep fused-b
    FERRY_NO_FUSE_ATTENTION=1 sweep unfused-b
fi
table
for mode in fused unfused; do
    echo "== profile at 256, $mode" >> "$OUT/profiles.log"
    [ $mode = unfused ] && export FERRY_NO_FUSE_ATTENTION=1
    FERRY_CUDA_PROFILE=1 timeout 60 $F bench /tmp/rg/bert_base.onnx --device cuda --precision fp16 \
        --sweep --batch-sizes 256 --duration 1 --repeat 1 --quiet 2>&1 |
        sed -n '/ferry profile/,$p' >> "$OUT/profiles.log"
    unset FERRY_NO_FUSE_ATTENTION
done

# the transformer families only (stage.sh always adds the MLPs)
python3 -c "
import json, sys; p = sys.argv[1]; m = json.load(open(p))
m['models'] = [x for x in m['models'] if x.get('family') in ('bert', 'gpt', 'vit')]
json.dump(m, open(p, 'w'))" "$FERRY_TEST_MODELS/manifest.json"
timeout ${PARITY_S:-100} $S/bin/test_parity_cuda > "$OUT/parity.log" 2>&1
echo "parity rc=$? $(grep -c '\[       OK \]' "$OUT/parity.log") ok, $(grep -c '\[  FAILED  \]' "$OUT/parity.log") failed"
grep -B3 '\[  FAILED  \]' "$OUT/parity.log" | head -12
for tool in ${SANITIZERS-memcheck racecheck}; do
    echo "== $tool" >> "$OUT/sanitizer.log"
    FERRY_TEST_FILTER=test_attention timeout 40 compute-sanitizer --tool $tool $T \
        >> "$OUT/sanitizer.log" 2>&1
    echo "$tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer.log" | tail -1)"
done

echo "== profile at 256 (top rows)"
grep -A9 "== profile" "$OUT/profiles.log" | grep -vE "^--$"
table
