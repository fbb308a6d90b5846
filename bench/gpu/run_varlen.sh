#!/bin/bash
# bench/gpu/run_varlen.sh - issue 17 on the GPU: a BERT-style encoder (gen.py's
# bert-var-256: 2 layers, d 256, up to 128 tokens), request lengths uniform in
# 8..128, 64 and 256 closed-loop clients, through the batcher three ways,
# interleaved: (a) length buckets, (b) batching only identical lengths,
# (c) padding every request to 128 (bench/varlen_bench.c).
#
# Here (no GPU needed), after bench/gpu/stage.sh BUILD:
#   bench/gpu/run_varlen.sh stage BUILD [TEST_MODELS]
# On the device:
#   bench/gpu/run_varlen.sh run OUTDIR
# Knobs: DURATION (s a window, default 3), REPEAT (default 5), WORKERS (streams,
# default 4), MAX_BATCH (default 64), PRECISION is not applied (fp32 only).
set -eu
cd "$(dirname "$0")/../.."
S=${S:-.devlibs/gpu}
case "${1:-}" in
stage)
    B=${2:-build-gpu}
    TM=${3:-${TEST_MODELS:-build/test-models}}
    mkdir -p "$S/bin" "$S/lib" "$S/models"
    cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude bench/varlen_bench.c -o "$S/bin/varlen_bench" \
        -L"$B/lib" -lferry -Wl,-rpath,'$ORIGIN/../lib' -lpthread -lm
    cp -L "$B/lib/libferry.so.0" "$S/lib/"
    cp "$TM/bert-var-256.onnx" "$S/models/"
    ;;
run)
    OUT=${2:-/tmp/ferry-gpu}
    . bench/gpu/env.sh >/dev/null # unpacks, finds cuDNN, sets LD_LIBRARY_PATH
    mkdir -p "$OUT"
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/varlen.txt"
    date -u +%FT%TZ | tee -a "$OUT/varlen.txt"
    $S/bin/varlen_bench $S/models/bert-var-256.onnx --device cuda --clients 64,256 \
        --duration "${DURATION:-3}" --repeat "${REPEAT:-5}" --workers "${WORKERS:-4}" \
        --max-batch "${MAX_BATCH:-64}" 2>&1 | tee -a "$OUT/varlen.txt"
    ;;
*)
    echo "usage: $0 stage BUILD [TEST_MODELS] | run OUTDIR" >&2
    exit 2
    ;;
esac
