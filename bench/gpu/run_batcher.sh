#!/bin/bash
# bench/gpu/run_batcher.sh - the batcher at high concurrency with larger batches.
set -u
cd "$(dirname "$0")/../.."
S=.devlibs/gpu
[ -f $S/big.tar.xz ] && [ ! -f $S/lib/libopenblas.so.0 ] && tar xJf $S/big.tar.xz -C $S/lib
export LD_LIBRARY_PATH=$PWD/$S/lib:${LD_LIBRARY_PATH:-}
F=$S/bin/ferry
M=$S/models/mlp-s.onnx
date -u +%FT%TZ
for mb in 256 512 1024; do for p in fp32 fp16; do
  echo "max-batch $mb, $p, workers 4"
  $F bench $M --device cuda --batcher --batch-sizes 1 --workers 4 --max-batch $mb --precision $p \
      --concurrency 256,1024 --duration ${DURATION:-1.5} --quiet 2>&1 | tail -2
done; done
