#!/bin/bash
# bench/gpu/run_bench2.sh - second pass: the stack after the engine's
# caller-thread path, the batcher at more workers, and the 65536 variants.
set -u
cd "$(dirname "$0")/../.."
OUT=${1:-/tmp/ferry-gpu}
mkdir -p "$OUT"
S=.devlibs/gpu
[ -f $S/big.tar.xz ] && [ ! -f $S/lib/libopenblas.so.0 ] && tar xJf $S/big.tar.xz -C $S/lib
export LD_LIBRARY_PATH=$PWD/$S/lib:${LD_LIBRARY_PATH:-}
F=$S/bin/ferry
M=$S/models/mlp-s.onnx
D=${DURATION:-1}
date -u +%FT%TZ
echo "== stack and threading, ferry vs pytorch"
python3 bench/compare.py --ferry $F --model $M --device cuda --batch-sizes 1,8,32,256 \
    --compare-threading --stack --duration $D --json "$OUT/stack2.json" 2>&1 | grep -v "^compare.py"
echo "== 65536 fp16 variants (workers x inflight)"
for wi in "2 8" "4 16" "8 16"; do set -- $wi
  echo "workers $1 inflight $2"
  $F bench $M --device cuda --sweep --precision fp16 --io-dtype f16 --graphs --workers $1 \
    --inflight $2 --batch-sizes 256,65536 --duration $D --quiet 2>&1 | tail -2
done
echo "== batcher: workers 4, fp32 and fp16"
$F bench $M --device cuda --batcher --batch-sizes 1 --workers 4 --concurrency 256,1024 --duration $D --quiet 2>&1 | tail -4
$F bench $M --device cuda --batcher --batch-sizes 1 --workers 4 --precision fp16 --concurrency 256,1024 --duration $D --quiet 2>&1 | tail -4
