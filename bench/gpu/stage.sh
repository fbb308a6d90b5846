#!/bin/bash
# bench/gpu/stage.sh - build here (no GPU needed) and stage what a device run
# needs into .devlibs/gpu/ (git-ignored, carried to the device): the ferry
# binary, the bundled model and the Debian shared libraries a stock Ubuntu
# 24.04 + CUDA 13 image lacks.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build-gpu}
S=${S:-.devlibs/gpu}
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$B" -j2 --target ferry_cli models test_cuda_backend test_parity_cuda test_engine test_cuda_fused test_batcher_cuda
rm -rf "$S" && mkdir -p "$S/bin" "$S/lib" "$S/models"
cp "$B/ferry" "$B/test_cuda_backend" "$B/test_parity_cuda" "$B/test_cuda_fused" "$B/test_batcher_cuda" "$B/test_engine" "$S/bin/"
# the API-cost probe (plain CUDA, no Ferry code)
/usr/local/cuda/bin/nvcc -O2 -arch=sm_90 bench/gpu/api_cost.cu -lcublasLt -o "$S/bin/api_cost"
# wrk for bench/gpu/run_server.sh, when installed here (its libluajit follows below)
[ -x /usr/bin/wrk ] && cp /usr/bin/wrk "$S/bin/"
strip "$S"/bin/*
# the parity models without mlp-l (too large to carry), when a build made them:
# the MLP family, and those of FAMILIES (comma-separated, e.g. rnn,dlrm)
TM=${TEST_MODELS:-build/test-models}
export FAMILIES=${FAMILIES:-mlp}
if [ -f "$TM/manifest.json" ]; then
    mkdir -p "$S/tm"
    python3 - "$TM" "$S/tm" <<'PY'
import json, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
# NO_MLP=1 leaves the MLP family (and its external-data files) behind when
# the carry is tight
fams = set(os.environ["FAMILIES"].split(",")) | (set() if os.environ.get("NO_MLP") else {"mlp"})
m = json.load(open(f"{src}/manifest.json"))
# all families would not fit the carry limit (64 MiB): the MLPs and those asked
m["models"] = [x for x in m["models"] if x["name"] not in ("mlp-l", "mlp-s-ext", "bert-var-256")
               and x.get("family", "mlp") in fams]
for x in m["models"]:
    for f in x["files"] + [x["onnx"]] + x.get("extra_files", []):
        shutil.copy(f"{src}/{f}", dst)
json.dump(m, open(f"{dst}/manifest.json", "w"))
PY
    if [ -z "${NO_MLP:-}" ]; then
        for f in "$TM"/*.bin "$TM"/*.data; do [ -f "$f" ] && cp "$f" "$S/tm/"; done
    fi
    tar cJf "$S/tm.tar.xz" -C "$S" tm && rm -rf "$S/tm"
fi
cp "$B/models/mlp-s.onnx" "$S/models/"
# the Python package for the GPU machine's python3.12 (python/bench/python_vs_c.py
# there), built against libferry.so when this machine has 3.12's headers (pyenv)
PY312=${PY312_INCLUDE:-/root/.pyenv/versions/3.12.1/include/python3.12}
if [ -f "$PY312/Python.h" ]; then
    cmake --build "$B" -j2 --target ferry_shared
    mkdir -p "$S/python/ferry"
    cp python/ferry/*.py "$S/python/ferry/"
    gcc -O2 -shared -fPIC -I"$PY312" -Iinclude python/ferry/_ferry.c "$B/lib/libferry.so.0" \
        -o "$S/python/ferry/_ferry.cpython-312-x86_64-linux-gnu.so"
    cp -L "$B/lib/libferry.so.0" "$S/lib/"
fi
# uvicorn for bench/torch_server.py (pure Python; the machine has no registry):
# bench/torch_server.py appends TORCH_PYPATH behind the machine's own packages
PY=/usr/lib/python3/dist-packages
if [ -d $PY/uvicorn ]; then
    tar cJf "$S/py.tar.xz" -C $PY --exclude=__pycache__ uvicorn h11 click asgiref
fi
for bin in "$S"/bin/*; do
    ldd "$bin" | awk '/=> \// {print $3}' |
        grep -Ev 'libc\.so|libm\.so|libstdc|libgcc_s|ld-linux|libpthread|librt|libdl|libcublas|libcudart|libcudnn' || true
done | sort -u | while read -r lib; do cp -L "$lib" "$S/lib/"; done
# the libraries travel compressed (the carry limit is 64 MiB; env.sh
# unpacks them when libopenblas is missing)
(cd "$S/lib" && big=$(ls 2>/dev/null || true) &&
    [ -n "$big" ] && tar cJf ../big.tar.xz $big && rm $big) || true
# the binaries travel compressed too (bench/gpu/env.sh unpacks them)
tar cJf "$S/bin.tar.xz" -C "$S" bin && rm -rf "$S/bin"
du -sh "$S"
