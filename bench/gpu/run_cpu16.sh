#!/bin/bash
# bench/gpu/run_cpu16.sh - the CPU backend on the GPU machine's 16 cores:
# ferry bench, PyTorch and ONNX Runtime (CPU execution provider) in one run,
# on the bundled mlp-s (bench/compare.py --ort). Carry .devlibs/gpu
# (bench/gpu/stage.sh). Logs and JSON in $OUT.
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
nproc; lscpu | grep -E "Model name|^Core|^Thread|^Socket" || true
python3 bench/compare.py --ferry $F --model $M --device cpu --compare-threading --latency \
    --batch-sizes ${BATCHES:-1,8,32,256,4096} --duration ${DURATION:-1} --ort \
    --json "$OUT/cpu16-ort.json" 2>&1 | grep -v "^compare.py" | tee "$OUT/cpu16-ort.log"
date -u +%FT%TZ
