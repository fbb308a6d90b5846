#!/bin/bash
# bench/gpu/run_s33.sh - the second device call of 2026-12-07 23:55 UTC
# (staged as run_s32.sh; carry .devlibs/cudnn and .devlibs/gpu):
#   4. BERT-base fp16 at batch 1: Nsight Compute's time of every kernel of
#      one forward, summed by kernel (issue 15's 1.2x at batch 1)
#   6. resnet50 fp16 at batch 256: the same kernel table (issue 15's 40%
#      of the tensor cores), and the sweep with f32 and f16 host tensors
#   7. issue 17 on the device's 16-core CPU: bert-var-256, lengths 8..128,
#      the three modes (bench/varlen_bench.c, staged by run_varlen.sh stage)
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/cudnn_env.sh
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
# kernels CSV -> the table: total, count, mean, grid, name
ktable() {
    python3 - "$1" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if not rows: print("no rows"); sys.exit()
h = rows[0]; ki = h.index("Kernel Name"); vi = h.index("Metric Value"); ui = h.index("Metric Unit")
mi = h.index("Metric Name"); ii = h.index("ID")
by = collections.defaultdict(dict)
for r in rows[1:]:
    by[r[ii]]["k"] = r[ki][:80]; by[r[ii]][r[mi]] = (float(r[vi].replace(",", "")), r[ui])
tot = collections.Counter(); cnt = collections.Counter(); grid = {}
for d in by.values():
    v, u = d["gpu__time_duration.sum"]; v = v / 1000 if u == "nsecond" else v * (1000 if u == "msecond" else 1)
    tot[d["k"]] += v; cnt[d["k"]] += 1
    grid[d["k"]] = (d.get("launch__grid_size", (0,))[0], d.get("launch__block_size", (0,))[0])
s = sum(tot.values())
print(f"total {s:.1f} us in {sum(cnt.values())} kernels (every forward run)")
for k, v in tot.most_common(16):
    print(f"{v:9.1f} us {cnt[k]:4d}x {v/cnt[k]:7.1f} grid {grid[k][0]:6.0f}x{grid[k][1]:4.0f}  {k}")
PY
}
echo "== 4. BERT-base fp16 batch 1: kernels of one forward"
mkdir -p /tmp/rg
[ -f /tmp/rg/bert_base.onnx ] || timeout 120 python3 -c "
import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('bert_base', '/tmp/rg')" 2>&1 | tail -1
timeout 200 $NCU --clock-control none --metrics gpu__time_duration.sum,launch__grid_size,launch__block_size --csv \
    $S/bin/ferry run /tmp/rg/bert_base.onnx --random 1 --device cuda --precision fp16 --max-batch 1 -o /tmp/o.npy \
    >"$OUT/ncu-bert1.csv" 2>"$OUT/ncu-bert1.err"
echo "ncu rc $?"; tail -3 "$OUT/ncu-bert1.err"
ktable "$OUT/ncu-bert1.csv"
echo "== 6. resnet50 fp16 batch 256: kernels of one forward"
mkdir -p /tmp/real-gpu
[ -f /tmp/real-gpu/resnet50.onnx ] || timeout 120 python3 -c "
import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('resnet50', '/tmp/real-gpu')" 2>&1 | tail -1
timeout 240 $NCU --clock-control none --metrics gpu__time_duration.sum,launch__grid_size,launch__block_size --csv \
    $S/bin/ferry run /tmp/real-gpu/resnet50.onnx --random 256 --device cuda --precision fp16 --max-batch 256 -o /tmp/o.npy \
    >"$OUT/ncu-r50.csv" 2>"$OUT/ncu-r50.err"
echo "ncu rc $?"; tail -3 "$OUT/ncu-r50.err"
ktable "$OUT/ncu-r50.csv"
for io in f32 f16; do
    printf "resnet50 io $io: "
    timeout 60 $S/bin/ferry bench /tmp/real-gpu/resnet50.onnx --device cuda --precision fp16 --graphs --sweep \
        --batch-sizes 64,256 --io-dtype $io --duration 1 --repeat 1 --quiet 2>&1 |
        awk '$1 ~ /^(64|256)$/ {printf "b%s %s  ", $1, $2} END {print ""}'
done
echo "== 7. varlen on the 16-core CPU (buckets every 8 tokens, then the defaults)"
(
    S=.devlibs/gpu
    . bench/gpu/env.sh >/dev/null
    B8=$(seq -s, 8 8 128)
    timeout 100 $S/bin/varlen_bench $S/models/bert-var-256.onnx --device cpu --clients 64,256 \
        --duration 2 --repeat 3 --buckets $B8 2>&1 | tail -12
    timeout 100 $S/bin/varlen_bench $S/models/bert-var-256.onnx --device cpu --clients 64,256 \
        --duration 2 --repeat 3 2>&1 | tail -12
)
date -u +%FT%TZ
