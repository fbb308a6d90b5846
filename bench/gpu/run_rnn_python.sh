#!/bin/bash
# bench/gpu/run_rnn_python.sh - on the GPU machine: CUDA parity of the
# families staged (FAMILIES=rnn,dlrm,ops bench/gpu/stage.sh /tmp/bc), then
# the Python package against the C batcher on its CPU (python/bench/
# python_vs_c.py, mlp-s), pinned to 2 cores as on the development machine
# and on all 16. Logs and JSON in $OUT.
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
echo "== cuda parity"
timeout 300 .devlibs/gpu/bin/test_parity_cuda > "$OUT/parity.log" 2>&1
echo "test_parity_cuda rc=$?"
grep -E "note:|FAILED|PASSED|worst|error" "$OUT/parity.log" | head -40
echo "== python vs C"
P=/tmp/pb
mkdir -p $P/models && cp $F $P/ferry && cp $M $P/models/ && cp -r .devlibs/gpu/python $P/
python3 -c "import sys, numpy, torch; print(sys.version.split()[0], numpy.__version__, torch.__version__)"
export PYTHONUNBUFFERED=1
taskset -c 0,1 python3 python/bench/python_vs_c.py --build $P --clients 64 --duration 3 \
    --repeats 3 --calls 5000 --json "$OUT/py-2core.json" 2>&1 | tail -12
python3 python/bench/python_vs_c.py --build $P --clients 64 --duration 3 --repeats 3 \
    --calls 5000 --json "$OUT/py-16core.json" 2>&1 | tail -12
date -u +%FT%TZ
