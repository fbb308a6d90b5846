#!/bin/bash
# bench/gpu/stage.sh - build here (no GPU needed) and stage what a device run
# needs into .devlibs/gpu/ (git-ignored, carried to the device): the ferry
# binary, the bundled model and the Debian shared libraries a stock Ubuntu
# 24.04 + CUDA 13 image lacks.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build-gpu}
S=.devlibs/gpu
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$B" -j2 --target ferry_cli models test_cuda_backend test_parity_cuda test_engine
rm -rf "$S" && mkdir -p "$S/bin" "$S/lib" "$S/models"
cp "$B/ferry" "$B/test_cuda_backend" "$B/test_parity_cuda" "$B/test_engine" "$S/bin/"
cp "$B/models/mlp-s.onnx" "$S/models/"
for bin in "$S"/bin/*; do
    ldd "$bin" | awk '/=> \// {print $3}' |
        grep -Ev 'libc\.so|libm\.so|libstdc|libgcc_s|ld-linux|libpthread|librt|libdl|libcublas|libcudart' || true
done | sort -u | while read -r lib; do cp -L "$lib" "$S/lib/"; done
# the two big libraries travel compressed (the carry limit is 64 MiB)
(cd "$S/lib" && big=$(ls libopenblas* libdnnl* 2>/dev/null || true) &&
    [ -n "$big" ] && tar cJf ../big.tar.xz $big && rm $big) || true
du -sh "$S"
