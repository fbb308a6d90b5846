#!/bin/bash
# bench/gpu/probe.sh - first look at a GPU machine: what the CUDA API costs
# the host per call and what PCIe carries (api_cost), then Ferry's stack
# beside PyTorch's, the 65536 pipelined sweep and the batcher at 1024.
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
nvidia-smi --query-gpu=pcie.link.gen.max,pcie.link.width.max --format=csv,noheader; nproc
echo "== api_cost"
$S/bin/api_cost
echo "== stack, ferry vs pytorch"
python3 bench/compare.py --ferry $F --model $M --device cuda --batch-sizes 32 \
    --stack --duration $D 2>&1 | grep -v "^compare.py"
echo "== 65536 fp16, workers 4, 8 in flight"
$F bench $M --device cuda --sweep --precision fp16 --io-dtype f16 --graphs --workers 4 \
    --inflight 8 --batch-sizes 256,65536 --duration $D --quiet 2>&1 | tail -2
echo "== batcher fp16 workers 4"
$F bench $M --device cuda --batcher --batch-sizes 1 --workers 4 --precision fp16 --concurrency 256,1024 --duration $D --quiet 2>&1 | tail -3
