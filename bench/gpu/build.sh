#!/bin/bash
# bench/gpu/build.sh - builds (here, on a machine without a GPU) what a
# device run needs and stages it in .devlibs/cuda-backend/ (git-ignored):
# bin/test_cuda_backend, bin/bench_forward, and lib/ with the shared
# libraries they link that a stock Ubuntu 24.04 + CUDA 13 image lacks.
# Usage: bench/gpu/build.sh [build-dir]   (default build-cuda)
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build-cuda}
STAGE=.devlibs/cuda-backend
cmake -S . -B "$B" >/dev/null
cmake --build "$B" -j2 --target ferry test_cuda_backend ferry_cli models
mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/models"
# The CLI and the bundled model, for an engine smoke run on the device.
cp "$B/ferry" "$STAGE/bin/"
cp "$B/models/mlp-s.onnx" "$STAGE/models/"
# The bench links the same way CMake links the tests.
gcc -std=c11 -O2 -g -Wall -Wextra -Wshadow -Wstrict-prototypes -D_GNU_SOURCE -DFERRY_HAVE_CUDA=1 \
    -Isrc -Iinclude -isystem /usr/local/cuda/include \
    bench/gpu/bench_forward.c -o "$STAGE/bin/bench_forward" \
    "$B/libferry_internal.a" "$B/libonnx_proto.a" \
    $(pkg-config --libs libprotobuf-c openblas libmicrohttpd libcjson) -lm \
    /usr/local/cuda/lib/libcudart_static.a /usr/local/cuda/lib/libcublasLt.so \
    -ldl -lrt -lpthread -lstdc++
cp "$B/test_cuda_backend" "$STAGE/bin/"
# Shared libs from Debian that the device image may lack (CUDA's own stay behind).
for bin in "$STAGE"/bin/*; do
    ldd "$bin" | awk '/=> \// {print $3}' | grep -Ev 'libc\.so|libm\.so|libstdc|libgcc_s|ld-linux|libpthread|librt|libdl|libcublas|libcudart' || true
done | sort -u | while read -r lib; do cp -L "$lib" "$STAGE/lib/"; done
du -sh "$STAGE"; ls "$STAGE/lib"
