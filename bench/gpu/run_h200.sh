#!/bin/bash
# bench/gpu/run_h200.sh - the issue tables on the GPU machine in one run:
# CUDA tests (fused MLP vs cuBLASLt, PyTorch parity, backend) and memcheck,
# then the stack, the GPU-best sweep, mlp-l and the batcher, each beside
# PyTorch in the same run, with A/B rows for the fused kernel
# (FERRY_CUDA_MLP_MAX_BATCH=0: off; FERRY_CUDA_ZERO_COPY=0: fused but with
# copies). Carry .devlibs/gpu (bench/gpu/stage.sh). Logs and JSON in $OUT.
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
if [ "${TESTS:-1}" = 1 ]; then
    echo "== tests"
    for t in test_cuda_fused test_batcher_cuda test_cuda_backend test_parity_cuda; do
        timeout 300 $S/bin/$t >"$OUT/$t.log" 2>&1; echo "$t rc=$? $(grep -cE '^\[  PASSED' "$OUT/$t.log") groups passed; failed: $(grep -cE '^\[  FAILED' "$OUT/$t.log")"
    done
    grep -E "n=(1|17|256|257) " "$OUT/test_cuda_fused.log" | head -4
    SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    timeout 240 "$SAN" --tool memcheck --error-exitcode 9 $S/bin/test_cuda_fused >"$OUT/memcheck.log" 2>&1
    echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log")"
    FERRY_TEST_QUICK=1 timeout 300 "$SAN" --tool racecheck --error-exitcode 9 $S/bin/test_cuda_fused >"$OUT/racecheck.log" 2>&1
    echo "racecheck (quick) rc=$? $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$OUT/racecheck.log" | tr '\n' ' ')"
fi
echo "== 1. stack, ferry vs pytorch (same run)"
python3 bench/compare.py --ferry $F --model $M --device cuda --batch-sizes 32 \
    --stack --duration $D --json "$OUT/stack.json" 2>&1 | grep -v "^compare.py" | tail -7
for v in FERRY_CUDA_ZERO_COPY=0 FERRY_CUDA_MLP_MAX_BATCH=0; do
    echo "-- stack with $v"
    env $v $F bench $M --device cuda --stack --duration $D --quiet 2>&1 | tail -5
done
echo "== 2. GPU best (fp16, f16 host tensors, graphs): ferry synchronous vs pytorch"
python3 bench/compare.py --ferry $F --model $M --device cuda --gpu-best \
    --gpu-best-batches 32,256,65536 --duration $D --ferry-args "--workers 1" \
    --json "$OUT/best-sync.json" 2>&1 | grep -v "^compare.py" | tail -6
for v in FERRY_CUDA_MLP_MAX_BATCH=256 "FERRY_CUDA_MLP_MAX_BATCH=256 FERRY_CUDA_ZERO_COPY=0" FERRY_CUDA_MLP_MAX_BATCH=0; do
    echo "-- ferry pipelined (4 workers, 8 in flight), $v"
    env $v $F bench $M --device cuda --sweep --precision fp16 --io-dtype f16 --graphs --workers 4 \
        --inflight 8 --batch-sizes 32,64,128,256,65536 --latency --duration $D --quiet 2>&1 | tail -5
done
echo "== 3. mlp-l bf16, batch 65536"
$F make-model mlp --dims 1024,4096,4096,1024 --act gelu --seed 0 -o /tmp/mlp-l.onnx >/dev/null
$F bench /tmp/mlp-l.onnx --device cuda --sweep --precision bf16 --io-dtype bf16 --graphs \
    --workers 4 --inflight 4 --batch-sizes 65536 --duration $D --quiet \
    --json "$OUT/mlpl.json" 2>&1 | tail -1
python3 bench/torch_reference.py --model /tmp/mlp-l.onnx --device cuda --batch-sizes '' \
    --gpu-best --gpu-best-batches 65536 --half bf16 --duration $D \
    --json "$OUT/mlpl-torch.json" 2>&1 | tail -2
echo "== 4. batcher, ferry (4 workers, fp16) vs pytorch's batcher"
python3 bench/compare.py --ferry $F --model $M --device cuda --batcher \
    --concurrency 256,1024 --batch-sizes 1 --duration $D --ferry-args "--workers 4 --precision fp16" \
    --json "$OUT/batcher.json" 2>&1 | grep -v "^compare.py" | tail -5
for v in FERRY_CUDA_MLP_MAX_BATCH=256 FERRY_CUDA_MLP_MAX_BATCH=0; do
    echo "-- ferry batcher, $v"
    env $v $F bench $M --device cuda --batcher --batch-sizes 1 --workers 4 --precision fp16 \
        --concurrency 256,1024 --duration $D --quiet 2>&1 | tail -2
done
[ "${SERVER:-1}" = 1 ] && DURATION=${SERVER_DURATION:-3} bench/gpu/run_server.sh 2>&1 | grep -vE "^\s*$" | tail -16
date -u +%FT%TZ
