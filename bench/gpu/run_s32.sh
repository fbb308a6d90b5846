#!/bin/bash
# bench/gpu/run_s32.sh - the device session of 2026-12-07 23:40 UTC, one
# call. Staged by
#   bench/gpu/stage_cudnn.sh /tmp/bc MODELS hf-bert-dynamo,rnn-states,lstm,gru
#   TEST_MODELS=/nonexistent NO_MLP=1 bench/gpu/stage.sh /tmp/bc
# carry .devlibs/cudnn, .devlibs/cudnn-m1, .devlibs/gpu (49 MB):
#   1. test_rnn_plain (LSTM/GRU with sequence_lens, new on CUDA) and
#      test_gather_nd (new on CUDA), never run on a GPU before
#   2. parity of hf-bert-dynamo (GatherND with batch positions), rnn-states,
#      lstm, gru
#   3. the GIL's ceiling beside the C batcher and DynamicBatcher on 16 cores
#      and on 2 (python/bench/python_vs_c.py, issue 16)
#   4. BERT-base fp16 at batch 1: Nsight Compute's time of every kernel of
#      one forward, summed by kernel (issue 15's 1.2x at batch 1); then
#      FERRY_GEMM_TUNE with split-K candidates against the default
#   5. issue 17 on the device's 16-core CPU: bert-var-256, lengths 8..128,
#      the three modes (bench/varlen_bench.c, staged by run_varlen.sh stage)
set -u
cd "$(dirname "$0")/../.."
S=.devlibs/cudnn
for t in bin lib; do [ -d $S/$t ] || tar xJf $S/$t.tar.xz -C $S; done
export LD_LIBRARY_PATH="$PWD/$S/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/ferry-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name --format=csv,noheader; date -u +%FT%TZ
echo "== 1. unit"
for t in test_rnn_plain test_gather_nd; do
    FERRY_TEST_FILTER=$t timeout 90 $S/bin/test_cuda_backend >"$OUT/$t.log" 2>&1
    echo "$t rc=$? $(grep -c 'rel err' "$OUT/$t.log") checks; worst: $(grep -o 'rel err [0-9.e+-]*' "$OUT/$t.log" | sort -k3 -g | tail -1)"
    grep -E -B3 "FAIL|rror" "$OUT/$t.log" | head -12
done
echo "== 2. parity of set 1"
OUT=$OUT PARITY_TIMEOUT=150 timeout 170 bash bench/gpu/run_cudnn.sh 1 2>&1 | tail -12
echo "== 3. python vs C"
(
    S=.devlibs/gpu
    . bench/gpu/env.sh >/dev/null
    P=/tmp/pb
    mkdir -p $P/models && cp $F $P/ferry && cp $M $P/models/ && cp -r $S/python $P/
    for cores in 16 2; do
        echo "-- $cores cores"
        pin=""; [ $cores = 2 ] && pin="taskset -c 0,1"
        timeout 150 $pin python3 python/bench/python_vs_c.py --build $P --clients 64 --duration 3 \
            --repeats 3 --calls 5000 --json "$OUT/py-${cores}core.json" 2>&1 | tail -8
    done
)
echo "== 4. BERT-base fp16 batch 1: kernels of one forward"
mkdir -p /tmp/rg
[ -f /tmp/rg/bert_base.onnx ] || timeout 120 python3 -c "
import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('bert_base', '/tmp/rg')" 2>&1 | tail -1
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
timeout 200 $NCU --clock-control none --metrics gpu__time_duration.sum,launch__grid_size,launch__block_size --csv \
    $S/bin/ferry run /tmp/rg/bert_base.onnx --random 1 --device cuda --precision fp16 --max-batch 1 -o /tmp/o.npy \
    >"$OUT/ncu-bert1.csv" 2>"$OUT/ncu-bert1.err"
echo "ncu rc $?"; tail -3 "$OUT/ncu-bert1.err"
python3 - "$OUT/ncu-bert1.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if not rows: print("no rows"); sys.exit()
h = rows[0]; ki = h.index("Kernel Name"); vi = h.index("Metric Value"); ui = h.index("Metric Unit"); mi = h.index("Metric Name")
ii = h.index("ID")
by = collections.defaultdict(dict)
for r in rows[1:]:
    by[r[ii]]["k"] = r[ki][:80]; by[r[ii]][r[mi]] = (float(r[vi].replace(",", "")), r[ui])
tot = collections.Counter(); cnt = collections.Counter(); grid = {}
for d in by.values():
    v, u = d["gpu__time_duration.sum"]; v = v / 1000 if u == "nsecond" else v
    tot[d["k"]] += v; cnt[d["k"]] += 1
    grid[d["k"]] = (d.get("launch__grid_size", (0,))[0], d.get("launch__block_size", (0,))[0])
s = sum(tot.values())
print(f"total {s:.1f} us in {sum(cnt.values())} kernels (every forward run)")
for k, v in tot.most_common(16):
    print(f"{v:8.1f} us {cnt[k]:4d}x {v/cnt[k]:6.1f} grid {grid[k][0]:6.0f}x{grid[k][1]:4.0f}  {k}")
PY
echo "-- default vs FERRY_GEMM_TUNE=1 (cuBLASLt's first 8 and split-K 2-8 of its first 3, timed), interleaved"
for r in 1 2; do
for v in "default:X=1" "tune:FERRY_GEMM_TUNE=2"; do
    printf "%-8s r$r " ${v%%:*}
    env ${v#*:} timeout 90 $S/bin/ferry bench /tmp/rg/bert_base.onnx --device cuda --precision fp16 --graphs --sweep \
        --batch-sizes 1,8 --duration 1 --repeat 1 --quiet 2>"$OUT/tune-$r-${v%%:*}.err" |
        awk '$1 ~ /^(1|8)$/ {printf "b%s %s  ", $1, $2} END {print ""}'
done
done
grep -o "batch [0-9]*: .*(split [0-9]*)" "$OUT/tune-1-tune.err" | sed 's/candidate.*(split/split/' | sort | uniq -c
grep "gemm tune" "$OUT/tune-1-tune.err" | head -8
echo "== 5. varlen on the 16-core CPU (buckets every 8 tokens, then the defaults)"
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
