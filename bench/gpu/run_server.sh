#!/bin/bash
# bench/gpu/run_server.sh - `ferry serve` on the GPU machine driven by wrk
# (carried with its libluajit in .devlibs/gpu, staged by bench/gpu/stage.sh),
# then the PyTorch baseline server (bench/torch_server.py on CUDA, uvicorn
# carried in .devlibs/gpu/py.tar.xz) the same way, in the same run.
# TORCH_ARGS adds torch_server.py options (e.g. "--processes 8").
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
export PATH=$PWD/$S/bin:$PATH
nproc
echo "== ferry serve --device cuda --threads 8, wrk -t8; then torch_server.py --device cuda"
MODEL=$S/models/mlp-s.onnx WRK_THREADS=8 DURATION=${DURATION:-4} TORCH=${TORCH:-1} \
    PYTHON=${PYTHON:-python3} TORCH_ARGS="--device cuda ${TORCH_ARGS:-}" \
    bench/wrk/run.sh $S/bin -- --device cuda --threads 8 2>&1
