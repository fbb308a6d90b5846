#!/bin/bash
# bench/gpu/run_real_cpu.sh - the real models (bench/models.py) on the CPU
# of the GPU machine, every column pinned to the same two cores (taskset
# -c 0,1), so that Ferry, ONNX Runtime (2 intra-op threads) and PyTorch
# (2 threads) meet as on a quiet 2-core machine; then the dynamic batcher
# on resnet18 and the BERT encoder at 16 and 64 clients beside the same
# models run unbatched (one sample per call from 16 and 64 threads); then
# the CUDA tests, to check that the MLP-era models still pass there.
# Carry .devlibs/gpu (bench/gpu/stage.sh). Logs and JSON in $OUT.
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
nproc
lscpu | grep -E "Model name" || true
CORES=${CORES:-0,1}
D=${DURATION:-2}
export OMP_NUM_THREADS=2
taskset -c $CORES python3 bench/real_models.py --models /tmp/real-models --ferry $F \
    --batch-sizes 1,32 --duration $D --repeats ${REPEATS:-3} --threads 2 \
    --json "$OUT/real-cpu.json" 2>&1 | tee "$OUT/real-cpu.log" | tail -40
for m in resnet18 bert; do
    echo "== batcher: $m"
    taskset -c $CORES $F bench /tmp/real-models/$m.onnx --device cpu --batcher \
        --concurrency 16,64 --duration $D --quiet --json "$OUT/batcher-$m.json" 2>&1 | tail -12
    taskset -c $CORES $F bench /tmp/real-models/$m.onnx --device cpu --compare-threading \
        --batch-sizes 16,64 --duration $D --quiet --json "$OUT/threads-$m.json" 2>&1 | tail -12
done
echo "== cuda tests"
for t in test_cuda_backend test_parity_cuda; do
    timeout 300 .devlibs/gpu/bin/$t > "$OUT/$t.log" 2>&1
    echo "$t rc=$? $(grep -c '\[  PASSED  \]\|\[       OK \]' "$OUT/$t.log") ok lines, $(grep -c FAILED "$OUT/$t.log") FAILED lines"
done
date -u +%FT%TZ
