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
timeout 150 "$SAN" --tool racecheck --racecheck-report all --error-exitcode 9 \
    "$S/bin/test_cuda_backend" >"$OUT/racecheck.log" 2>&1; r_rc=$?
grep -E "ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY" "$OUT/memcheck.log" "$OUT/racecheck.log"

"$S/bin/bench_forward" "$@" >"$OUT/bench.log" 2>&1; b_rc=$?

echo
echo "== CUDA backend device run =="
echo "tests rc=$t_rc  memcheck rc=$m_rc  racecheck rc=$r_rc  bench rc=$b_rc  (0 = pass; 9 = sanitizer errors; 124 = timeout)"
grep -E "rel err" "$OUT/test.log" | sed 's/^/  /' | head -40
cat "$OUT/bench.log"
