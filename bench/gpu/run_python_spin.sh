#!/bin/bash
# bench/gpu/run_python_spin.sh - on the GPU machine's CPU: ferry.DynamicBatcher
# from 64 Python threads against the C batcher at 64 clients (mlp-s, CPU
# engine), with the GIL baton's spinners off (FERRY_PY_SPINNERS=0) and at
# 2, 4 (the default on 16 cores) and 8, interleaved, then pinned to 2 cores
# (spinners off there by default). Needs the Python package staged
# (bench/gpu/stage.sh with pyenv's 3.12 headers). Logs and JSON in $OUT.
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
P=/tmp/pb
mkdir -p $P/models && cp $F $P/ferry && cp $M $P/models/ && cp -r $S/python $P/
python3 -c "import sys, numpy; print(sys.version.split()[0], numpy.__version__)"
export PYTHONUNBUFFERED=1
R=${ROUNDS:-2}
for r in $(seq $R); do
    for sp in 0 4 2 8; do
        FERRY_PY_SPINNERS=$sp timeout 60 python3 python/bench/python_vs_c.py --build $P --clients 64 \
            --duration 2 --repeats 1 --calls 2000 --skip-torch --json "$OUT/spin$sp-r$r.json" \
            >"$OUT/spin$sp-r$r.txt" 2>&1
        echo "16 cores, spinners $sp, round $r: $(grep '^round' "$OUT/spin$sp-r$r.txt")"
    done
done
for sp in 0 1; do
    FERRY_PY_SPINNERS=$sp taskset -c 0,1 timeout 60 python3 python/bench/python_vs_c.py --build $P \
        --clients 64 --duration 2 --repeats 2 --calls 2000 --skip-torch >"$OUT/spin2c$sp.txt" 2>&1
    echo "2 cores, spinners $sp: $(grep '^round' "$OUT/spin2c$sp.txt" | tr '\n' ' ')"
done
