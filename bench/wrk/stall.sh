#!/bin/sh
# bench/wrk/stall.sh - connections that `ferry serve` stopped serving under
# wrk, counted the way issue 14 found them: wrk does not report a request
# that never completes, so every 2 s this looks at the server's sockets
# (ss) for one with a request in its receive queue and nothing read for
# over 2 s. Prints, per run, the most such sockets seen at once and wrk's
# requests/s.
#
# usage: bench/wrk/stall.sh BUILD_DIR [CONNS] [SECONDS] [RUNS] [-- serve options]
# Example: bench/wrk/stall.sh build 256 10 20
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:-build}; C=${2:-256}; D=${3:-10}; R=${4:-1}
shift $(( $# < 4 ? $# : 4 ))
[ "${1:-}" = "--" ] && shift
command -v wrk >/dev/null || { echo "stall.sh: wrk not found (apt-get install wrk)" >&2; exit 1; }
LOG=$(mktemp)
trap 'rm -f "$LOG" "$LOG.wrk"' EXIT
run=0
while [ $run -lt "$R" ]; do
    "$B/ferry" serve "$B/models/mlp-s.onnx" --port 0 "$@" 2>"$LOG" &
    P=$!
    i=0
    until grep -q 'listening on port' "$LOG"; do
        i=$((i + 1)); [ $i -gt 600 ] && { cat "$LOG" >&2; exit 1; }
        sleep 0.1
    done
    PORT=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$LOG")
    wrk -t1 -c"$C" -d"${D}s" -s "$HERE/infer.lua" "http://127.0.0.1:$PORT" >"$LOG.wrk" 2>&1 &
    W=$!
    max=0; t=0
    while [ $t -lt $((D - 2)) ]; do
        sleep 2; t=$((t + 2))
        n=$(ss -tni state established "( sport = :$PORT )" | awk '
            /^[0-9]/ { rq = $1 }
            /lastrcv:/ { for (i = 1; i <= NF; i++) if ($i ~ /^lastrcv:/) {
                split($i, a, ":"); if (rq > 0 && a[2] > 2000) n++ } }
            END { print n + 0 }')
        [ "$n" -gt "$max" ] && max=$n
    done
    wait $W || true
    kill -TERM $P; wait $P || true
    echo "run $run: $C connections, ${D} s: stalled sockets (most at once) $max, wrk $(awk '/^Requests\/sec:/ {print $2}' "$LOG.wrk") req/s"
    run=$((run + 1))
done
