#!/bin/bash
# bench/gpu/run_session.sh - one device call of under ten minutes for a
# session whose device time is short: the issue-15 table (real_gpu.py:
# bert_base, resnet50, mobilenet_v2, vit_tiny beside PyTorch's best path,
# batcher at 256 clients) and issue 17 on the GPU (run_varlen.sh). Stage
# as run_round.sh says. (On 2026-12-07 it also ran the GIL-baton A/B of
# commit 4daf478, reverted since it did not help: BENCHMARKS.md.)
set -u
cd "$(dirname "$0")/../.."
export S=${S:-.devlibs/gpu}
. bench/gpu/env.sh >/dev/null
export PYTHONUNBUFFERED=1
D=/tmp/real-gpu
mkdir -p $D
timeout 320 python3 bench/gpu/real_gpu.py --ferry $F --models bert_base,resnet50,mobilenet_v2,vit_tiny \
    --batcher 256 --duration 1 --repeats ${REPEATS:-2} --dir $D --json "$OUT/real.json" \
    >"$OUT/real.txt" 2>"$OUT/real.err"
echo "== real_gpu.py (rc $?)"
DURATION=2 REPEAT=2 timeout 120 bench/gpu/run_varlen.sh run "$OUT" >"$OUT/varlen.log" 2>&1
echo "== varlen (rc $?)"
cat "$OUT/real.txt"; tail -n 14 "$OUT/varlen.log"
