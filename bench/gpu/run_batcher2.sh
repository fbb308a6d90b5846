#!/bin/bash
# bench/gpu/run_batcher2.sh - the batcher and the server on the GPU machine
# after the batcher's per-request work was cut (grouped resubmits, lent
# nodes) and the engine began issuing batches on the dispatcher's thread:
# the CUDA batcher test, racecheck of the fused kernel, the batcher beside
# PyTorch's, max-batch and precision variants, the stack, and the server.
# Carry .devlibs/gpu (bench/gpu/stage.sh). Logs in $OUT.
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
for t in test_batcher_cuda test_cuda_fused; do
    timeout 300 $S/bin/$t >"$OUT/$t.log" 2>&1; echo "$t rc=$?"; grep -E "accepted|PASSED|FAILED" "$OUT/$t.log" | head -6
done
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
FERRY_TEST_QUICK=1 timeout 240 "$SAN" --tool racecheck --error-exitcode 9 $S/bin/test_cuda_fused >"$OUT/racecheck.log" 2>&1
echo "racecheck (quick) rc=$? $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$OUT/racecheck.log" | tr '\n' ' ')"
echo "== batcher, ferry (4 workers, fp16) vs pytorch's batcher"
python3 bench/compare.py --ferry $F --model $M --device cuda --batcher \
    --concurrency 1,16,64,256,1024 --batch-sizes 1 --duration $D --ferry-args "--workers 4 --precision fp16" \
    --json "$OUT/batcher.json" 2>&1 | grep -v "^compare.py" | tail -8
for v in "--precision fp32" "--precision fp16 --max-batch 512" "--precision fp16 --workers 6" "--precision fp16 --workers 8"; do
    echo "-- ferry batcher, 4 workers $v"
    $F bench $M --device cuda --batcher --batch-sizes 1 --workers 4 $v \
        --concurrency 256,1024 --duration $D --quiet 2>&1 | tail -2
done
echo "== stack"
$F bench $M --device cuda --stack --duration $D --quiet 2>&1 | tail -5
[ "${SERVER:-1}" = 1 ] && DURATION=${SERVER_DURATION:-3} bench/gpu/run_server.sh 2>&1 | grep -vE "^\s*$" | tail -9
date -u +%FT%TZ
