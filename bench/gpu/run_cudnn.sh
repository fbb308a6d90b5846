#!/bin/bash
# bench/gpu/run_cudnn.sh - one device call of what bench/gpu/stage_cudnn.sh
# staged: parity of model set(s) K (test_parity_cuda: fp32, tf32, fp16,
# bf16, CUDA graphs off and on, batch 1, 3, 32), optionally the backend's
# unit tests (UNIT=1) and compute-sanitizer memcheck over one `ferry run`
# of a convolutional model (MEMCHECK=model, from the sets; PARITY=0 only
# unpacks the sets). Logs go to $OUT;
# a table of the worst relative error per model and precision comes last.
# BENCH=model,.. then runs bench/gpu/real_gpu.py (Ferry fp16 against
# PyTorch's best path) on them, and Ferry again with NCHW activations
# (FERRY_CUDA_LAYOUT=nchw) for the channels-last A/B.
#   .devlibs/cudnn/run_cudnn.sh K [K ...]
set -u
cd "$(dirname "$0")/../.."
S=${STAGE:-.devlibs/cudnn}
OUT=${OUT:-/tmp/ferry-cudnn-out}
mkdir -p "$OUT"
for t in bin lib; do
    [ -d "$S/$t" ] || { [ -f "$S/$t.tar.xz" ] && tar xJf "$S/$t.tar.xz" -C "$S"; } ||
        { echo "MISSING $S/$t.tar.xz: carry $S"; exit 3; }
done
# cuDNN: the toolkit's, else PyTorch's wheel (nvidia-cudnn-cu13)
DNN=
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/lib/x86_64-linux-gnu \
    $(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__) + "/lib")' 2>/dev/null); do
    if [ -f "$d/libcudnn_engines_precompiled.so.9" ] && [ -f "$d/libcudnn.so.9" ]; then DNN=$d; break; fi
done
export LD_LIBRARY_PATH="$PWD/$S/lib:${DNN:+$DNN:}/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
if ldd "$S/bin/test_parity_cuda" | grep -q 'libcublasLt.*not found'; then
    lt=$(find /usr/local /opt /usr/lib -name 'libcublasLt.so.13*' 2>/dev/null | head -1)
    [ -n "$lt" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$lt")"
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
date -u +%FT%TZ
echo "cuDNN from: ${DNN:-not found}; version $(python3 -c 'import ctypes; print(ctypes.CDLL("libcudnn.so.9").cudnnGetVersion())' 2>&1 | tail -1)"
ldd "$S/bin/test_parity_cuda" | grep 'not found'
u=-
if [ "${UNIT:-0}" = 1 ]; then
    "$S/bin/test_cuda_backend" >"$OUT/unit.log" 2>&1; u=$?
    grep -E "^\[  (PASSED|FAILED)|rel err" "$OUT/unit.log" | tail -n 30
fi
rcs=
for k in "$@"; do
    D="$S-m$k"
    T=/tmp/tm-$k
    [ -d "$T" ] || { mkdir -p "$T" && tar xf "$D/tm.tar" -C "$T" --strip-components=1; } ||
        { echo "MISSING $D/tm.tar"; continue; }
    [ "${PARITY:-1}" = 1 ] || continue
    FERRY_TEST_MODELS=$T timeout "${PARITY_TIMEOUT:-400}" "$S/bin/test_parity_cuda" \
        >"$OUT/parity-$k.log" 2>&1
    rcs="$rcs set$k=$?"
done
m=-
if [ -n "${MEMCHECK:-}" ]; then
    T=$(dirname "$(ls /tmp/tm-*/"$MEMCHECK".onnx | head -1)")
    SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    for p in ${MEMCHECK_PRECISIONS:-fp32 fp16}; do
        timeout 200 "$SAN" --tool memcheck --error-exitcode 9 "$S/bin/ferry" run "$T/$MEMCHECK.onnx" \
            -i "$T/$MEMCHECK.in.3.npy" -o /tmp/mc.npy --device cuda --precision $p \
            >>"$OUT/memcheck.log" 2>&1
        m="$m $p:$?"
    done
    grep -E "ERROR SUMMARY" "$OUT/memcheck.log"
fi
if [ -n "${BENCH:-}" ]; then
    B="python3 bench/gpu/real_gpu.py --ferry $S/bin/ferry --models $BENCH --batcher 0 --duration 1 --repeats ${BENCH_REPEATS:-3} ${BENCH_ARGS:-}"
    $B --json "$OUT/bench.json" >"$OUT/bench.txt" 2>"$OUT/bench.err"
    FERRY_CUDA_LAYOUT=nchw $B --skip-torch >"$OUT/bench-nchw.txt" 2>"$OUT/bench-nchw.err"
    echo "== channels-last (default):"; cat "$OUT/bench.txt"
    echo "== FERRY_CUDA_LAYOUT=nchw:"; cat "$OUT/bench-nchw.txt"
    grep -i "failed\|error" "$OUT"/bench*.err | head -5
fi
echo "== unit rc=$u parity$rcs memcheck$m"
cat "$OUT"/parity-*.log 2>/dev/null | grep -E "note:|^\[  FAILED|error|Error" | sort -u | head -40
cat "$OUT"/parity-*.log 2>/dev/null | awk '/ rel err / {
    k = $1 " " $6; v = $11 + 0; if (!(k in w) || v > w[k]) w[k] = v; seen[$1] = 1; p[$6] = 1 }
    END { printf "%-20s %9s %9s %9s %9s\n", "model", "fp32", "tf32", "fp16", "bf16";
          for (m in seen) { printf "%-20s", m;
              split("fp32 tf32 fp16 bf16", ps, " ");
              for (i = 1; i <= 4; i++) { k = m " " ps[i]; if (k in w) printf " %9.2e", w[k]; else printf " %9s", "-" }
              printf "\n" } }'
