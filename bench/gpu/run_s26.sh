#!/bin/bash
# bench/gpu/run_s26.sh - the second device call of 2026-12-07 evening
# (issue 15's batcher goal: single-sample requests at 256 clients at >= 80%
# of the engine's best batch throughput), carry .devlibs/gpu:
#   1. resnet50 and BERT-base fp16: the engine's best (sweep 64,256 with
#      graphs, k=4) and the batcher at 256 clients with 2, 3, 4 and 6
#      streams, twice each, p99 and mean batch from the JSON
#   2. (when staged) the CUDA unit tests of the new operators
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
export PYTHONUNBUFFERED=1
mkdir -p /tmp/rg
for m in resnet50 bert_base; do
    [ -f /tmp/rg/$m.onnx ] || timeout 150 python3 -c "
import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('$m', '/tmp/rg')" 2>&1 | tail -1
done
for m in ${MODELS:-resnet50 bert_base}; do
    echo "== $m"
    timeout 60 $F bench /tmp/rg/$m.onnx --device cuda --precision fp16 --graphs --sweep --inflight 4 \
        --batch-sizes 64,256 --duration 1 --repeat 2 --quiet 2>&1 | awk '$1 ~ /^(64|256)$/'
    for r in 1 2; do
        for w in ${WORKERS:-2 3 4 6}; do
            timeout 60 $F bench /tmp/rg/$m.onnx --device cuda --precision fp16 --batcher --workers $w \
                --concurrency 256 --duration 2 --repeat 1 --quiet --json /tmp/bt.json >/dev/null 2>&1
            python3 -c "
import json; j = json.load(open('/tmp/bt.json')); b = j['batcher'][0]
print('$m r$r workers $w', ' '.join('%s=%s' % (k, round(v, 2) if isinstance(v, float) else v) for k, v in b.items() if not isinstance(v, (list, dict))))"
        done
    done
done
if [ -x $S/bin/test_cuda_backend ] && [ -n "${UNIT:-}" ]; then
    echo "== unit: $UNIT"
    for t in $UNIT; do
        FERRY_TEST_FILTER=$t timeout 60 $S/bin/test_cuda_backend 2>&1 | grep -E "rel err|PASSED|FAILED|Error|error" | tail -20
    done
fi
date -u +%FT%TZ
