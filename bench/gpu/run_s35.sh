#!/bin/bash
# bench/gpu/run_s35.sh - why BERT-base's fused attention takes 22 us a
# layer at batch 1 (96 blocks of 2 warps for 12 heads x 128 x 128; ncu
# at 2026-12-08 00:32 UTC): Nsight Compute's full section set on one
# attn_tc launch and one layernorm_kernel launch (stall reasons, memory
# throughput, occupancy, source-level hot spots). Staged as run_s33.sh
# (carry .devlibs/cudnn); about a minute.
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/cudnn_env.sh
mkdir -p /tmp/rg
[ -f /tmp/rg/bert_base.onnx ] || timeout 120 python3 -c "
import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('bert_base', '/tmp/rg')" 2>&1 | tail -1
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
for k in attn_tc layernorm_kernel; do
    timeout 200 $NCU --set full -k regex:$k -c 1 --import-source yes -o "$OUT/ncu-$k" \
        $S/bin/ferry run /tmp/rg/bert_base.onnx --random 1 --device cuda --precision fp16 \
        --max-batch 1 -o /tmp/o.npy >/dev/null 2>"$OUT/ncu-$k.err"
    echo "== $k (rc $?)"
    $NCU --import "$OUT/ncu-$k.ncu-rep" --page details --csv 2>/dev/null |
        grep -E '"(Duration|Achieved Occupancy|Registers Per Thread|Memory Throughput|Compute \(SM\) Throughput|Theoretical Occupancy|Block Limit Registers|Dynamic Shared Memory Per Block)"' |
        awk -F'","' '{print $(NF-2), $(NF-1), $NF}' | head -12
    $NCU --import "$OUT/ncu-$k.ncu-rep" --page raw --csv 2>/dev/null |
        python3 -c "
import csv, sys
r = list(csv.reader(sys.stdin))
if len(r) > 2:
    h, v = r[0], r[2]
    st = sorted(((float(v[i].replace(',', '')), h[i]) for i in range(len(h))
                 if h[i].startswith('smsp__average_warp_latency_issue_stalled') or
                    h[i].startswith('smsp__pcsamp_warps_issue_stalled')
                 if v[i].replace(',', '').replace('.', '', 1).isdigit()), reverse=True)
    for x, n in st[:8]: print(f'{x:12.1f}  {n}')
"
done
date -u +%FT%TZ
