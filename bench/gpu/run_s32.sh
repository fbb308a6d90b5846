#!/bin/bash
# bench/gpu/run_s32.sh - the device session of 2026-12-07 23:40 UTC, one
# call. Staged by
#   bench/gpu/stage_cudnn.sh /tmp/bc MODELS hf-bert-dynamo,rnn-states,lstm,gru
#   TEST_MODELS=/nonexistent NO_MLP=1 bench/gpu/stage.sh /tmp/bc
# carry .devlibs/cudnn, .devlibs/cudnn-m1, .devlibs/gpu (56 MB; the
# kernel profiles and varlen are run_s33.sh's, a second call):
#   1. test_rnn_plain (LSTM/GRU with sequence_lens, new on CUDA) and
#      test_gather_nd (new on CUDA), never run on a GPU before
#   2. parity of hf-bert-dynamo (GatherND with batch positions), rnn-states,
#      lstm, gru, lstm-bi (the embedding's projection folded at load)
#   3. the GIL's ceiling beside the C batcher and DynamicBatcher on 16 cores
#      (python/bench/python_vs_c.py, issue 16)
#   4. BERT-base fp16 at batch 1 and 8: FERRY_GEMM_TUNE (now with split-K
#      candidates) against the default, interleaved
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/cudnn_env.sh
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
    for cores in 16; do
        echo "-- $cores cores"
        pin=""; [ $cores = 2 ] && pin="taskset -c 0,1"
        timeout 150 $pin python3 python/bench/python_vs_c.py --build $P --clients 64 --duration 3 \
            --repeats 3 --calls 5000 --json "$OUT/py-${cores}core.json" 2>&1 | tail -8
    done
)
echo "== 4. BERT-base fp16: default vs FERRY_GEMM_TUNE (split-K candidates), interleaved"
mkdir -p /tmp/rg
[ -f /tmp/rg/bert_base.onnx ] || timeout 120 python3 -c "
import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('bert_base', '/tmp/rg')" 2>&1 | tail -1
for r in 1 2; do
for v in "default:X=1" "tune:FERRY_GEMM_TUNE=2"; do
    printf "%-8s r$r " ${v%%:*}
    env ${v#*:} timeout 90 $S/bin/ferry bench /tmp/rg/bert_base.onnx --device cuda --precision fp16 --graphs --sweep \
        --batch-sizes 1,8 --duration 1 --repeat 1 --quiet 2>"$OUT/tune-$r-${v%%:*}.err" |
        awk '$1 ~ /^(1|8)$/ {printf "b%s %s  ", $1, $2} END {print ""}'
done
done
grep -o "batch [0-9]*: .*(split [0-9]*)" "$OUT/tune-1-tune.err" | sed 's/candidate.*(split/split/' | sort | uniq -c
grep "gemm tune" "$OUT/tune-1-tune.err" | head -6
date -u +%FT%TZ
