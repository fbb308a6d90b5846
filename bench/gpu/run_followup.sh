#!/bin/bash
# bench/gpu/run_followup.sh - the second call of a device session (NOTES.md,
# "The next device session", items 4-7), after `NO_MLP=1 TEST_MODELS=...
# FAMILIES=hf bench/gpu/stage.sh BUILD` (carry .devlibs/gpu and .devlibs/diag):
#   0. bench/gpu/run_conv_diag.sh: which convolution epilogues through
#      cuDNN's graph API come out wrong above batch 1
#   1. CUDA parity of the staged families (Hugging Face exports: the batch-axis
#      Gather, InstanceNormalization, [B*H,T,d] attention on CUDA)
#   2. compute-sanitizer memcheck over test_cuda_backend (attention with its
#      batched loads, pooling, the conv epilogues, dwconv) and racecheck over
#      the attention test
#   3. BERT-base fp16 at batch 1 and 8 against PyTorch's best path (the
#      attention's batched K/V loads; 0.77x/1.12x at k=1 on the H200 at 12:52)
#   4. issue 16: ferry.DynamicBatcher with 2 workers and/or a preferred batch
#      size of 64 against the default on the 16 cores (is it the GIL, or the
#      batcher's batches of 1.5 on 16 idle workers?)
# Logs in $OUT; short summaries last.
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
timeout 200 bash bench/gpu/run_conv_diag.sh >"$OUT/diag.txt" 2>&1
cat "$OUT/diag.txt"
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
timeout 150 $S/bin/test_parity_cuda >"$OUT/parity.log" 2>&1
echo "parity rc=$? $(grep -c '\[       OK \]' "$OUT/parity.log") ok, $(grep -c '\[  FAILED  \]' "$OUT/parity.log") failed" >"$OUT/summary.txt"
grep -E "FAIL|rel err [0-9.e+-]+ >" "$OUT/parity.log" | head -20 >>"$OUT/summary.txt"
timeout 150 $SAN --tool memcheck --error-exitcode 9 $S/bin/test_cuda_backend >"$OUT/memcheck.log" 2>&1
echo "memcheck test_cuda_backend rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log" | tail -1)" >>"$OUT/summary.txt"
FERRY_TEST_FILTER=test_attention timeout 60 $SAN --tool racecheck $S/bin/test_cuda_backend \
    >"$OUT/racecheck.log" 2>&1
echo "racecheck attention rc=$? $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$OUT/racecheck.log" | tail -1)" >>"$OUT/summary.txt"
export PYTHONUNBUFFERED=1
P=/tmp/pb
mkdir -p $P/models && cp $F $P/ferry && cp $M $P/models/ && cp -r $S/python $P/
timeout 110 python3 python/bench/python_vs_c.py --build $P --clients 64 --duration 2 --repeats 2 \
    --calls 2000 --skip-torch --variants "workers=2;pref=64;workers=4,pref=64" \
    --json "$OUT/py-16core.json" >"$OUT/py.txt" 2>&1
cat "$OUT/summary.txt"
tail -n 8 "$OUT/py.txt"
timeout 100 python3 bench/gpu/real_gpu.py --ferry $F --models bert_base --batch-sizes 1,8 --batcher 0 \
    --duration 0.5 --repeats 3 --json "$OUT/bert.json" >"$OUT/bert.txt" 2>"$OUT/bert.err"
tail -n 12 "$OUT/bert.txt"
