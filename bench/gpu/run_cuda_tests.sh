#!/bin/bash
# bench/gpu/run_cuda_tests.sh - one device run of the CUDA backend: the
# cmocka tests, the same binary under compute-sanitizer memcheck and
# racecheck, then the forward-only micro-benchmark. Prints a short table
# last. Logs go to $OUT (the device tool's return folder) when set.
# Run bench/gpu/build.sh here first; carry .devlibs/cuda-backend.
set -u
cd "$(dirname "$0")/../.."
S=.devlibs/cuda-backend
OUT=${OUT:-/tmp/ferry-cuda-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$PWD/$S/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
if ldd "$S/bin/test_cuda_backend" | grep -q 'libcublasLt.*not found'; then
    lt=$(find /usr/local /opt -name 'libcublasLt.so.13*' 2>/dev/null | head -1)
    [ -n "$lt" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$lt")"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
date -u | tee -a "$OUT/gpu.txt"

"$S/bin/test_cuda_backend" >"$OUT/test.log" 2>&1; t_rc=$?
tail -n 60 "$OUT/test.log"

SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
timeout 200 "$SAN" --tool memcheck --leak-check full --error-exitcode 9 \
    "$S/bin/test_cuda_backend" >"$OUT/memcheck.log" 2>&1; m_rc=$?
FERRY_TEST_NO_THREADS=1 timeout 150 "$SAN" --tool racecheck --racecheck-report all --error-exitcode 9 \
    "$S/bin/test_cuda_backend" >"$OUT/racecheck.log" 2>&1; r_rc=$?
grep -E "ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY" "$OUT/memcheck.log" "$OUT/racecheck.log"

"$S/bin/bench_forward" "$@" >"$OUT/bench.log" 2>&1; b_rc=$?

# Engine smoke through the CLI (host tensors in and out), when staged.
e_rc=-
if [ -x "$S/bin/ferry" ]; then
    F="$S/bin/ferry"
    {
        "$F" info
        "$F" bench "$S/models/mlp-s.onnx" --device cuda --sweep --precision fp16 --io-dtype f16 \
            --batch-sizes 256,4096,65536 --graphs --workers 4 --duration 0.5 --quiet
        "$F" bench "$S/models/mlp-s.onnx" --device cuda --sweep --precision fp32 \
            --batch-sizes 256,65536 --workers 2 --duration 0.5 --quiet
        "$F" make-model mlp --dims 1024,4096,4096,1024 --act gelu --seed 0 -o /tmp/mlp-l.onnx &&
        "$F" bench /tmp/mlp-l.onnx --device cuda --sweep --precision bf16 --io-dtype bf16 \
            --batch-sizes 65536 --graphs --workers 4 --max-batch 16384 --duration 1 --quiet
    } >"$OUT/engine.log" 2>&1; e_rc=$?
fi

echo
echo "== CUDA backend device run =="
echo "tests rc=$t_rc  memcheck rc=$m_rc  racecheck rc=$r_rc  bench rc=$b_rc  engine rc=$e_rc  (0 = pass; 9 = sanitizer errors; 124 = timeout)"
grep -E "rel err" "$OUT/test.log" | sed 's/^/  /' | head -40
cat "$OUT/bench.log"
[ -f "$OUT/engine.log" ] && { echo; echo "== engine smoke (ferry bench, host tensors) =="; grep -v '^$' "$OUT/engine.log" | tail -n 40; }
