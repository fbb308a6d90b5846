#!/bin/bash
# bench/gpu/run_s34.sh - the 16-bit max pool a thread per 8 channels and
# the channels-last global average pool a thread per channel (ncu at 00:32
# UTC: 1.0 ms and 0.23 ms of resnet50's 9.6 ms at batch 256). Staged by
#   bench/gpu/stage_cudnn.sh /tmp/bc MODELS shufflenet_v2_x0_5,mobilenet_v2,squeezenet1_0
# plus the binary before the change, .devlibs/old/bin/ferry.xz; carry
# .devlibs/cudnn, .devlibs/cudnn-m1, .devlibs/old.
#   1. parity of the set (max pools of 24 and 96 channels, mean pools)
#   2. resnet50 fp16, f16 host tensors, graphs, old and new
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/cudnn_env.sh
[ -f .devlibs/old/bin/ferry ] || xz -dk .devlibs/old/bin/ferry.xz
chmod +x .devlibs/old/bin/ferry
echo "== 1. parity"
OUT=$OUT PARITY_TIMEOUT=110 timeout 120 bash bench/gpu/run_cudnn.sh 1 2>&1 | tail -6
echo "== 2. old / new"
mkdir -p /tmp/real-gpu
for m in resnet50; do
    [ -f /tmp/real-gpu/$m.onnx ] || timeout 120 python3 -c "
import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('$m', '/tmp/real-gpu')" 2>&1 | tail -1
done
for r in 1; do
for m in resnet50; do
for io in f16; do
for v in old:.devlibs/old/bin/ferry new:$S/bin/ferry; do
    printf "%-12s io %s %-3s r$r " $m $io ${v%%:*}
    timeout 60 ${v#*:} bench /tmp/real-gpu/$m.onnx --device cuda --precision fp16 --graphs --sweep \
        --batch-sizes 64,256 --io-dtype $io --duration 1 --repeat 1 --quiet 2>&1 |
        awk '$1 ~ /^(64|256)$/ {printf "b%s %s  ", $1, $2} END {print ""}'
done
done
done
done
date -u +%FT%TZ
