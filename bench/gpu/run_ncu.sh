#!/bin/bash
# bench/gpu/run_ncu.sh - where resnet50's time goes on the GPU (issue 15):
# Nsight Compute's duration of every kernel of one fp16 forward at batch
# 64 (legacy cuDNN calls, then the graph API), summed by kernel name; the
# batch-256 sweep with f32 and f16 host tensors (what the host copies
# cost); graph vs legacy outputs. Needs .devlibs/cudnn (stage_cudnn.sh)
# and /tmp/real-gpu/resnet50.onnx (real_gpu.py exports it).
set -u
cd "$(dirname "$0")/../.."
S=.devlibs/cudnn
OUT=${OUT:-/tmp/ferry-ncu-out}
mkdir -p "$OUT"
for t in bin lib; do [ -d "$S/$t" ] || tar xJf "$S/$t.tar.xz" -C "$S"; done
DNN=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__) + "/lib")' 2>/dev/null)
export LD_LIBRARY_PATH="$PWD/$S/lib:${DNN:+$DNN:}/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
F=$S/bin/ferry
M=/tmp/real-gpu/resnet50.onnx
mkdir -p /tmp/real-gpu
[ -f $M ] || python3 -c "
import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('resnet50', '/tmp/real-gpu')" >/dev/null 2>&1
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for api in legacy graph; do
    FERRY_CUDNN=$api timeout 200 $NCU --clock-control none --metrics gpu__time_duration.sum --csv \
        $F run $M --random 64 --device cuda --precision fp16 --max-batch 64 -o /tmp/o-$api.npy \
        >"$OUT/ncu-$api.csv" 2>"$OUT/ncu-$api.err"
    echo "== $api: kernels of two forwards at batch 64 (rc $?), by total time"
    python3 - "$OUT/ncu-$api.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if not rows: print("no rows"); sys.exit()
h = rows[0]; ki = h.index("Kernel Name"); vi = h.index("Metric Value"); ui = h.index("Metric Unit")
tot = collections.Counter(); cnt = collections.Counter()
for r in rows[1:]:
    v = float(r[vi].replace(",", "")); v = v / 1000 if r[ui] == "nsecond" else v
    k = r[ki][:90]; tot[k] += v; cnt[k] += 1
s = sum(tot.values())
print(f"total {s/1000:.2f} ms in {sum(cnt.values())} kernels")
for k, v in tot.most_common(14): print(f"{v/1000:8.3f} ms {cnt[k]:4d}x  {k}")
PY
done
python3 -c "import numpy as n; a, b = n.load('/tmp/o-graph.npy'), n.load('/tmp/o-legacy.npy'); print('graph vs legacy: max abs diff', abs(a - b).max(), 'of max abs', abs(b).max())"
for io in f32 f16; do
    echo "== sweep, graphs, io $io"
    $F bench $M --device cuda --precision fp16 --graphs --sweep --batch-sizes 64,256 --io-dtype $io \
        --duration 1 --repeat 1 --quiet 2>&1 | tail -3
done
