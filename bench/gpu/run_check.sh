#!/bin/bash
# bench/gpu/run_check.sh - a short device check after a kernel change: the
# fused-kernel test, racecheck and memcheck of its quick mode, and the stack.
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
timeout 200 $S/bin/test_cuda_fused >"$OUT/test_cuda_fused.log" 2>&1; echo "test_cuda_fused rc=$?"
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in racecheck memcheck; do
    FERRY_TEST_QUICK=1 timeout 150 "$SAN" --tool $tool --error-exitcode 9 $S/bin/test_cuda_fused >"$OUT/$tool.log" 2>&1
    echo "$tool (quick) rc=$? $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$OUT/$tool.log" | tr '\n' ' ')"
done
$F bench $M --device cuda --stack --duration $D --quiet 2>&1 | tail -5
date -u +%FT%TZ
