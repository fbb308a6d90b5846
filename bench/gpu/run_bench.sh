#!/bin/bash
# bench/gpu/run_bench.sh - the GPU numbers of BENCHMARKS.md, Ferry and PyTorch
# in one run on the device machine. Stage first, here: bench/gpu/stage.sh.
# On the device: bench/gpu/run_bench.sh OUTDIR
set -u
cd "$(dirname "$0")/../.."
OUT=${1:-/tmp/ferry-gpu}
mkdir -p "$OUT"
S=.devlibs/gpu
# the two big libraries travel compressed (the carry limit is 64 MiB)
[ -f $S/big.tar.xz ] && [ ! -f $S/lib/libopenblas.so.0 ] && tar xJf $S/big.tar.xz -C $S/lib
export LD_LIBRARY_PATH=$PWD/$S/lib:${LD_LIBRARY_PATH:-}
F=$S/bin/ferry
M=$S/models/mlp-s.onnx
PY=${PYTHON:-python3}
D=${DURATION:-1}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
date -u +%FT%TZ | tee -a "$OUT/gpu.txt"
$F info "$M" | tail -4
$F make-model mlp --dims 1024,4096,4096,1024 --act gelu --seed 0 -o /tmp/mlp-l.onnx

echo "== 0. CUDA backend tests"
$S/bin/test_cuda_backend 2>&1 | tail -3
echo "== 1. sweep, threading and the stack (fp32 sweep), ferry vs pytorch"
$PY bench/compare.py --ferry $F --model $M --device cuda --batch-sizes 1,8,32,256,4096 \
    --compare-threading --stack --latency --duration $D --json "$OUT/stack.json" 2>&1 | tee "$OUT/stack.txt"
echo "== 2. GPU best, fp16 with f16 host tensors, CUDA graphs; ferry synchronous and pipelined"
$PY bench/compare.py --ferry $F --model $M --device cuda --gpu-best \
    --gpu-best-batches 256,4096,65536 --duration $D --ferry-args "--workers 1" \
    --json "$OUT/best-sync.json" 2>&1 | tee "$OUT/best-sync.txt"
$F bench $M --device cuda --sweep --precision fp16 --io-dtype f16 --graphs --workers 4 \
    --inflight 8 --batch-sizes 256,4096,65536 --latency --duration $D --quiet \
    --json "$OUT/best-pipelined.json" 2>&1 | tee "$OUT/best-pipelined.txt"
echo "== 3. mlp-l bf16, batch 65536"
$F bench /tmp/mlp-l.onnx --device cuda --sweep --precision bf16 --io-dtype bf16 --graphs \
    --workers 4 --inflight 4 --batch-sizes 65536 --duration $D --quiet \
    --json "$OUT/mlpl.json" 2>&1 | tee "$OUT/mlpl.txt"
$PY bench/torch_reference.py --model /tmp/mlp-l.onnx --device cuda --batch-sizes '' \
    --gpu-best --gpu-best-batches 65536 --half bf16 --duration $D \
    --json "$OUT/mlpl-torch.json" 2>&1 | tail -6
echo "== 4. dynamic batcher, closed loop, ferry vs pytorch"
$PY bench/compare.py --ferry $F --model $M --device cuda --batcher \
    --concurrency 1,16,64,256,1024 --batch-sizes 1 --duration $D \
    --json "$OUT/batcher.json" 2>&1 | tee "$OUT/batcher.txt"
