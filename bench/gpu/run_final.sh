#!/bin/bash
# bench/gpu/run_final.sh - one device call after a merge: the engine tests
# (their 'cuda:0,cuda:0' case: two replicas on one GPU), CUDA parity of the
# families staged (FAMILIES=... bench/gpu/stage.sh), and mlp-s on
# 'cuda:0,cuda:0' beside 'cuda:0' (large batches in flight, and the
# batcher at 1024 clients). Logs in $OUT.
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
mkdir -p /tmp/bc/models && cp "$M" /tmp/bc/models/ # test_engine's compiled-in path
timeout 120 .devlibs/gpu/bin/test_engine > "$OUT/engine.log" 2>&1
echo "test_engine rc=$? $(grep -c '\[       OK \]' "$OUT/engine.log") ok; $(grep -E 'note:|FAILED' "$OUT/engine.log" | head -5)"
timeout 240 .devlibs/gpu/bin/test_parity_cuda > "$OUT/parity.log" 2>&1
echo "test_parity_cuda rc=$? $(grep -c '\[       OK \]' "$OUT/parity.log") ok, $(grep -c '\[  FAILED  \]' "$OUT/parity.log") failed"
grep -E "note:|FAILED" "$OUT/parity.log" | head -12
for dev in cuda:0 cuda:0,cuda:0; do
    echo "== $dev"
    $F bench "$M" --device $dev --precision fp16 --sweep --batch-sizes 256,4096 --inflight 8 \
        --duration 1 --repeat 2 --quiet 2>&1 | grep -A4 "samples/s" | tail -3
    $F bench "$M" --device $dev --precision fp16 --batcher --concurrency 1024 --duration 1 \
        --repeat 1 --quiet 2>&1 | tail -3
done
date -u +%FT%TZ
