#!/bin/sh
# tests/cli/serve_signal.sh FERRY MODEL - `ferry serve` started, then sent
# SIGTERM: it must say it stops and exit 0 within 30 s. Run by ctest in
# every build, the TSan one included (make tsan): there a signal used to
# wait forever for a thread parked in a raw futex (util/thread.h).
set -u
FERRY=$1 MODEL=$2
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
"$FERRY" serve "$MODEL" --port 0 2>"$LOG" &
PID=$!
i=0
until grep -q "^listening on port" "$LOG"; do
    i=$((i + 1))
    if [ $i -gt 600 ] || ! kill -0 $PID 2>/dev/null; then
        echo "ferry serve did not start:"; cat "$LOG"; kill -9 $PID 2>/dev/null; exit 1
    fi
    sleep 0.1
done
kill -TERM $PID
i=0
while kill -0 $PID 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 300 ]; then
        echo "ferry serve still running 30 s after SIGTERM:"; cat "$LOG"; kill -9 $PID; exit 1
    fi
    sleep 0.1
done
wait $PID
RC=$?
grep -q "stopped" "$LOG" || { echo "no 'stopped' line:"; cat "$LOG"; exit 1; }
if grep -q "ThreadSanitizer\|AddressSanitizer" "$LOG"; then cat "$LOG"; exit 1; fi
[ $RC -eq 0 ] || { echo "exit status $RC:"; cat "$LOG"; exit 1; }
echo "ferry serve stopped on SIGTERM (exit 0)"
