#!/bin/bash
# bench/gpu/run_bench3.sh - third pass: batcher at more streams, and batch
# 65536 split into chunks over more streams.
set -u
cd "$(dirname "$0")/../.."
S=.devlibs/gpu
[ -f $S/big.tar.xz ] && [ ! -f $S/lib/libopenblas.so.0 ] && tar xJf $S/big.tar.xz -C $S/lib
export LD_LIBRARY_PATH=$PWD/$S/lib:${LD_LIBRARY_PATH:-}
F=$S/bin/ferry
M=$S/models/mlp-s.onnx
D=${DURATION:-1.5}
date -u +%FT%TZ
for w in 6 8; do
  echo "batcher: workers $w, fp16, max-batch 256"
  $F bench $M --device cuda --batcher --batch-sizes 1 --workers $w --precision fp16 \
      --concurrency 256,1024 --duration $D --quiet 2>&1 | tail -2
done
for mb in 32768 16384 8192; do for w in 4 8; do
  echo "65536 fp16: one synchronous call at a time, split into chunks of $mb over $w streams"
  $F bench $M --device cuda --sweep --precision fp16 --io-dtype f16 --graphs --workers $w \
      --max-batch $mb --inflight 8 --batch-sizes 65536 --duration $D --quiet 2>&1 | tail -1
done; done
