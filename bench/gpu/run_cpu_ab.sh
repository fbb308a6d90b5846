#!/bin/bash
# bench/gpu/run_cpu_ab.sh - A/B of CPU-backend builds on the GPU machine's
# 16 cores: $S/bin/ferry-A, ferry-B (staged by hand next to ferry) and the
# staged ferry, alternating, ferry bench --sweep on mlp-s. Logs in $OUT.
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
B=${BATCHES:-1,8,32,256,4096}
for round in 1 2; do
    for v in ferry-A ferry-B ferry; do
        [ -x $S/bin/$v ] || continue
        echo "== $v round $round"
        $S/bin/$v bench $M --device cpu --sweep --batch-sizes $B --duration ${DURATION:-1} \
            --quiet 2>&1 | tail -5
    done
done | tee "$OUT/cpu-ab.log"
for t in ${THREADS:-}; do  # e.g. THREADS="1 2 4 8": FERRY_CPU_THREADS sweep
    echo "== ferry FERRY_CPU_THREADS=$t"
    FERRY_CPU_THREADS=$t $S/bin/ferry bench $M --device cpu --sweep --latency --batch-sizes 1,8,32,256 \
        --duration ${DURATION:-1} --quiet 2>&1 | tail -4
done | tee -a "$OUT/cpu-ab.log"
