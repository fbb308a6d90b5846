#!/bin/bash
# bench/gpu/run_round.sh - the device session NOTES.md plans, in two calls of
# under ten minutes each, after `FAMILIES=bert,gpt,vit bench/gpu/stage.sh
# BUILD` and `bench/gpu/run_varlen.sh stage BUILD` staged .devlibs/gpu:
#   PART=a: bench/gpu/real_gpu.py on bert_base, resnet50, mobilenet_v2 and
#           vit_tiny (PyTorch's best path in the same run, batcher at 256
#           clients); resnet50 with FERRY_CUDNN_FIND=1 against the default;
#           the batcher on resnet50 with its input copies on the dispatcher
#           (FERRY_BATCHER_DEFER_BYTES=100000000) against the default.
#   PART=b: issue 17 on the GPU (run_varlen.sh run); compute-sanitizer
#           memcheck and racecheck over the attention unit test and memcheck
#           over one fp16 `ferry run` of resnet50; CUDA parity of the staged
#           families.
#   PART=c: where the GPU time goes (FERRY_CUDA_PROFILE's per-operator
#           table) for bert_base at batch 1 and 64 (fused attention and
#           not) and resnet50 at 64 and 256.
# Logs in $OUT; a summary of each step as it ends.
set -u
cd "$(dirname "$0")/../.."
export S=${S:-.devlibs/gpu}
. bench/gpu/env.sh >/dev/null
export PYTHONUNBUFFERED=1
D=/tmp/real-gpu
mkdir -p $D
R=${REPEATS:-3}
case "${PART:-a}" in
a)
    timeout 330 python3 bench/gpu/real_gpu.py --ferry $F --models bert_base,resnet50,mobilenet_v2,vit_tiny \
        --batcher 256 --duration 1 --repeats $R --dir $D --json "$OUT/real.json" \
        >"$OUT/real.txt" 2>"$OUT/real.err"
    echo "== real_gpu.py (rc $?)"; cat "$OUT/real.txt"
    for find in 0 1; do
        echo "== resnet50, FERRY_CUDNN_FIND=$find" >>"$OUT/find.txt"
        FERRY_CUDNN_FIND=$find timeout 60 $F bench $D/resnet50.onnx --device cuda --precision fp16 \
            --graphs --sweep --batch-sizes 1,8,64,256 --duration 1 --repeat $R --quiet \
            >>"$OUT/find.txt" 2>&1
    done
    grep -E "^== |^ +[0-9]+ " "$OUT/find.txt"
    for bytes in 100000000 default; do
        echo "== resnet50 batcher, 256 clients, FERRY_BATCHER_DEFER_BYTES=$bytes" >>"$OUT/defer.txt"
        env $([ $bytes = default ] || echo FERRY_BATCHER_DEFER_BYTES=$bytes) timeout 60 $F bench \
            $D/resnet50.onnx --device cuda --precision fp16 --batcher --concurrency 256 \
            --duration 2 --repeat $R --quiet >>"$OUT/defer.txt" 2>&1
    done
    grep -E "^== |req/s|p99" "$OUT/defer.txt" | head -12
    ;;
b)
    timeout 200 bench/gpu/run_varlen.sh run "$OUT" >"$OUT/varlen.log" 2>&1
    echo "== varlen (rc $?)"; tail -n 12 "$OUT/varlen.log"
    T=$S/bin/test_cuda_backend
    for tool in memcheck racecheck; do
        FERRY_TEST_FILTER=test_attention timeout 60 compute-sanitizer --tool $tool $T \
            >>"$OUT/sanitizer.log" 2>&1
        echo "$tool attention rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer.log" | tail -1)"
    done
    [ -f $D/resnet50.onnx ] || python3 -c "
import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('resnet50', '$D')" >/dev/null 2>&1
    timeout 120 compute-sanitizer --tool memcheck $F run $D/resnet50.onnx --random 2 --device cuda \
        --precision fp16 >>"$OUT/sanitizer.log" 2>&1
    echo "memcheck resnet50 rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer.log" | tail -1)"
    timeout 150 $S/bin/test_parity_cuda >"$OUT/parity.log" 2>&1
    echo "parity rc=$? $(grep -c '\[       OK \]' "$OUT/parity.log") ok, $(grep -c '\[  FAILED  \]' "$OUT/parity.log") failed"
    grep -B3 '\[  FAILED  \]' "$OUT/parity.log" | head -12
    ;;
c)
    for m in bert_base resnet50; do
        [ -f $D/$m.onnx ] || python3 -c "
import sys; sys.path.insert(0, 'bench'); import models as bm; bm.export('$m', '$D')" >/dev/null 2>&1
    done
    prof() { # label, env, model, batch
        echo "== $1"
        env $2 FERRY_CUDA_PROFILE=1 timeout 60 $F bench $D/$3.onnx --device cuda --precision fp16 \
            --batch-sizes $4 --duration 1 --quiet >"$OUT/prof-$1.txt" 2>&1
        grep -vE "^ *$" "$OUT/prof-$1.txt" | head -n 16
    }
    prof bert-b1 "" bert_base 1
    prof bert-b1-unfused FERRY_NO_FUSE_ATTENTION=1 bert_base 1
    prof bert-b64 "" bert_base 64
    prof resnet50-b64 "" resnet50 64
    prof resnet50-b256 "" resnet50 256
    ;;
esac
