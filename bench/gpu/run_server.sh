#!/bin/bash
# bench/gpu/run_server.sh - `ferry serve` on the GPU machine driven by wrk
# (carried with its libluajit in .devlibs/gpu, staged by bench/gpu/stage.sh).
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
export PATH=$PWD/$S/bin:$PATH
nproc; date -u +%FT%TZ
for dev in cuda; do
  echo "== ferry serve --device $dev --threads 8, wrk -t8"
  MODEL=$S/models/mlp-s.onnx WRK_THREADS=8 DURATION=${DURATION:-4} \
      bench/wrk/run.sh $S/bin -- --device $dev --threads 8 2>&1
done
