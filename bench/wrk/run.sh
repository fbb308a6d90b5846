#!/bin/sh
# bench/wrk/run.sh - HTTP throughput and latency of `ferry serve` with wrk.
#
# Starts `ferry serve` on mlp-s, drives it with wrk at 16, 64 and 256
# connections for each request kind (KServe v2 JSON; Triton binary tensors),
# and prints one row per run: requests/s, p50, p99 and non-200 answers.
# With TORCH=1 it then measures the PyTorch baseline server the same way.
#
# usage: bench/wrk/run.sh [BUILD_DIR] [-- extra `ferry serve` options]
# environment:
#   DURATION=5          seconds per run (after a 1 s warm-up run)
#   CONNS="16 64 256"   connection counts
#   WRK_THREADS=1       wrk threads (wrk shares the machine with the server)
#   SCRIPTS="infer infer_binary"
#   MODEL=BUILD_DIR/models/mlp-s.onnx
#   TORCH=1             then the same table for the PyTorch baseline server
#                       (bench/torch_server.py: uvicorn + a torch nn.Sequential
#                       + an asyncio dynamic batcher; python3-uvicorn), same run
#   TORCH_ARGS="..."    extra bench/torch_server.py options (e.g. --device cuda)
# Example: bench/wrk/run.sh build -- --workers 1 --max-delay-us 200
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=build
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
    BUILD=$1
    shift
fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then
    shift
fi
FERRY=$BUILD/ferry
MODEL=${MODEL:-$BUILD/models/mlp-s.onnx}
DURATION=${DURATION:-5}
CONNS=${CONNS:-"16 64 256"}
WRK_THREADS=${WRK_THREADS:-1}
SCRIPTS=${SCRIPTS:-"infer infer_binary"}

command -v wrk >/dev/null || { echo "run.sh: wrk not found (apt-get install wrk)" >&2; exit 1; }
[ -x "$FERRY" ] || { echo "run.sh: $FERRY not built" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "run.sh: $MODEL missing (the build makes it)" >&2; exit 1; }

TMP=$(mktemp -d)
LOG=$TMP/serve.log
SERVER=
stop_server() {
    if [ -n "$SERVER" ]; then
        kill -TERM "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
        SERVER=
    fi
}
cleanup() {
    stop_server
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# start_server CMD...: runs CMD in the background; sets URL once it listens.
start_server() {
    : >"$LOG"
    "$@" 2>"$LOG" &
    SERVER=$!
    PORT=
    i=0
    while [ $i -lt 600 ]; do
        PORT=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$LOG")
        [ -n "$PORT" ] && break
        kill -0 "$SERVER" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
        sleep 0.1
        i=$((i + 1))
    done
    [ -n "$PORT" ] || { echo "run.sh: $1 did not start" >&2; cat "$LOG" >&2; exit 1; }
    URL=http://127.0.0.1:$PORT
}

# table LABEL: one row per request kind and connection count against $URL.
table() {
    printf '%-7s %-14s %6s %10s %10s %10s %8s\n' server request conns req/s p50 p99 non-200
    for s in $SCRIPTS; do
        for c in $CONNS; do
            t=$WRK_THREADS
            [ "$t" -gt "$c" ] && t=$c
            wrk -t"$t" -c"$c" -d1s -s "$HERE/$s.lua" "$URL" >/dev/null 2>&1 || true
            wrk -t"$t" -c"$c" -d"${DURATION}s" --latency -s "$HERE/$s.lua" "$URL" \
                >"$TMP/wrk.out" 2>&1 || true
            rps=$(awk '/^Requests\/sec:/ {print $2}' "$TMP/wrk.out")
            p50=$(awk '$1 == "50%" {print $2}' "$TMP/wrk.out")
            p99=$(awk '$1 == "99%" {print $2}' "$TMP/wrk.out")
            bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$TMP/wrk.out")
            err=$(awk '/Socket errors:/ {print $0}' "$TMP/wrk.out")
            printf '%-7s %-14s %6s %10s %10s %10s %8s %s\n' "$1" "$s" "$c" "${rps:-?}" \
                "${p50:-?}" "${p99:-?}" "${bad:-0}" "$err"
        done
    done
}

start_server "$FERRY" serve "$MODEL" --name mlp-s --port 0 "$@"
echo "ferry serve $MODEL $* (port $PORT); wrk -t$WRK_THREADS, ${DURATION}s per run; $(nproc) cores"
table ferry
curl --noproxy '*' -s "$URL/metrics" 2>/dev/null |
    awk '/^nv_inference_count\{/ {n=$2} /^nv_inference_exec_count\{/ {b=$2}
         END {if (b > 0) printf "mean batch: %.1f samples (%d samples in %d batches)\n", n/b, n, b}' || true
stop_server

if [ "${TORCH:-0}" = 1 ]; then
    PY=${PYTHON:-/usr/bin/python3}
    # shellcheck disable=SC2086
    start_server "$PY" "$HERE/../torch_server.py" "$MODEL" --name mlp-s --port 0 ${TORCH_ARGS:-}
    head -n 1 "$LOG"
    table torch
    stop_server
fi
