#!/bin/bash
# bench/gpu/run_cuda_h.sh - one device run of what bench/gpu/stage_cuda.sh
# staged: the CUDA backend's unit tests, parity of every staged model at
# fp32/tf32/fp16/bf16 with CUDA graphs off and on, the fused-MLP and
# batcher tests, then compute-sanitizer memcheck over the unit tests.
# Logs go to $OUT (the device tool's return folder); a summary is printed
# last. Carry .devlibs/cuda.
set -u
cd "$(dirname "$0")/../.."
S=${STAGE:-.devlibs/cuda}
OUT=${OUT:-/tmp/ferry-cuda-out}
mkdir -p "$OUT"
for t in bin lib tm; do [ -d $S/$t ] || tar xJf $S/$t.tar.xz -C $S; done
export LD_LIBRARY_PATH="$PWD/$S/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
if ldd "$S/bin/test_cuda_backend" | grep -q 'libcublasLt.*not found'; then
    lt=$(find /usr/local /opt /usr/lib -name 'libcublasLt.so.13*' 2>/dev/null | head -1)
    [ -n "$lt" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$lt")"
fi
export FERRY_TEST_MODELS=$PWD/$S/tm
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
"$S/bin/test_cuda_backend" >"$OUT/unit.log" 2>&1; u=$?
timeout 420 "$S/bin/test_parity_cuda" >"$OUT/parity.log" 2>&1; p=$?
"$S/bin/test_cuda_fused" >"$OUT/fused.log" 2>&1; f=$?
timeout 60 "$S/bin/test_batcher_cuda" >"$OUT/batcher.log" 2>&1; b=$?
m=-
if [ "${MEMCHECK:-1}" = 1 ]; then
    SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    timeout 120 "$SAN" --tool memcheck --error-exitcode 9 "$S/bin/test_cuda_backend" \
        >"$OUT/memcheck.log" 2>&1; m=$?
    grep -E "ERROR SUMMARY" "$OUT/memcheck.log"
fi
echo "== unit rc=$u parity rc=$p fused rc=$f batcher rc=$b memcheck rc=$m"
grep -E "FAILED|PASSED|SKIPPED|note:" "$OUT/unit.log" | head -30
grep -E "note:|FAILED|^\[  PASSED|^\[  FAILED" "$OUT/parity.log" | head -40
grep -E "FAILED|PASSED" "$OUT/fused.log" "$OUT/batcher.log" | head
