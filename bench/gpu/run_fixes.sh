#!/bin/bash
# bench/gpu/run_fixes.sh - one device call that checks the fixes of
# 2026-12-07 16:10 UTC, after `NO_MLP=1 TEST_MODELS=... FAMILIES=hf
# bench/gpu/stage.sh BUILD` (carry .devlibs/gpu and .devlibs/diag):
#   1. convolutions: the new default (graph API for bias-only and
#      ReLU-ending epilogues, our depthwise kernel) against the legacy calls
#      on the CNNs of .devlibs/diag at batch 3 and 32 (run_conv_diag.sh)
#   2. test_conv_epilogues
#   3. the Hugging Face exports in fp16/bf16 (finfo(float32).min masks now
#      saturate to the 16-bit range) and T5 on CUDA (NaN at 16:02 even in
#      fp32): worst relative error against PyTorch at batch 3; T5's
#      intermediate values printed by the CPU and CUDA side by side
#   4. mobilenet_v2 fp16 against PyTorch's best path (bench/gpu/real_gpu.py)
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
MODES="default:X=1" BATCHES="3 32" \
    timeout 80 bash bench/gpu/run_conv_diag.sh 2>&1 | tee "$OUT/diag.txt"
FERRY_TEST_FILTER=test_conv_epilogues timeout 40 $S/bin/test_cuda_backend >"$OUT/unit.log" 2>&1
echo "test_conv_epilogues rc=$? $(grep -c 'rel err' "$OUT/unit.log") checks"
T=$S/tm
D=.devlibs/diag/t5
for m in hf-bert hf-gpt2 hf-t5-encoder; do
    [ -f $T/$m.onnx ] || { echo "$m: not staged"; continue; }
    ins=$(python3 -c "
import json; m=[x for x in json.load(open('$T/manifest.json'))['models'] if x['name']=='$m'][0]
print(' '.join('-i $T/' + i['files']['3'] for i in m['inputs']))")
    ref=$T/$(python3 -c "
import json; m=[x for x in json.load(open('$T/manifest.json'))['models'] if x['name']=='$m'][0]
print(m['outputs'][0]['files']['3'])")
    printf "%-16s" $m
    for p in fp32 fp16 bf16; do
        rm -f /tmp/o.npy
        timeout 20 $F run $T/$m.onnx $ins -o /tmp/o.npy --device cuda --precision $p >/tmp/hf.log 2>&1
        python3 -c "
import numpy as np
try:
    r = np.load('$ref').astype(np.float64); o = np.load('/tmp/o.npy').astype(np.float64)
    print(' %s %9.2e' % ('$p', np.abs(o - r).max() / np.abs(r).max()), end='')
except Exception as e:
    print(' %s %9s' % ('$p', 'FAIL'), end='')
"
    done
    echo
done
for m in t5_few t5_all; do
    for dev in cpu cuda; do
        timeout 20 $F run $D/$m.onnx -i $D/hf-t5-encoder.in.input_ids.1.npy \
            -i $D/hf-t5-encoder.in.attention_mask.1.npy --device $dev >"$OUT/$m.$dev.txt" 2>&1
    done
    echo "== $m: cpu | cuda (first values of each output)"
    paste -d'|' <(cut -c1-110 "$OUT/$m.cpu.txt") <(sed 's/.*: //' "$OUT/$m.cuda.txt" | cut -c1-45) | head -n 70
done
export PYTHONUNBUFFERED=1
timeout 100 python3 bench/gpu/real_gpu.py --ferry $F --models mobilenet_v2 --batcher 0 \
    --duration 0.5 --repeats 1 --json "$OUT/mbv2.json" >"$OUT/mbv2.txt" 2>"$OUT/mbv2.err"
cat "$OUT/mbv2.txt"
