#!/bin/bash
# bench/gpu/stage_cuda.sh - the CUDA issue's copy of stage.sh: builds here
# (no GPU needed) the CUDA tests and the CLI, and stages into .devlibs/cuda
# (git-ignored, carried to the device) the binaries, the parity models of
# the families the CUDA backend is tested on (MLPs without mlp-l, the
# transformers, and a few it must refuse cleanly) and the shared libraries
# a stock Ubuntu 24.04 + CUDA 13 image lacks. Run bench/gpu/run_cuda_h.sh
# there. The device tool sends the session's own checkout, not a helper's
# worktree: from a worktree, copy $STAGE and run_cuda_h.sh into an ignored
# folder of that checkout (its .devlibs/) and carry that folder.
#   stage_cuda.sh [BUILD_DIR] ; TEST_MODELS=DIR picks the models' folder
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build-cuda}
S=${STAGE:-.devlibs/cuda}
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
nice cmake --build "$B" -j2 --target ferry_cli test_cuda_backend test_parity_cuda test_cuda_fused \
    test_batcher_cuda
rm -rf "$S" && mkdir -p "$S/bin" "$S/lib" "$S/tm"
cp "$B/ferry" "$B/test_cuda_backend" "$B/test_parity_cuda" "$B/test_cuda_fused" \
    "$B/test_batcher_cuda" "$S/bin/"
strip "$S"/bin/*
TM=${TEST_MODELS:-$B/tm}
MAN=$TM/manifest.json
[ -f "$MAN" ] || MAN=$TM/manifest.partial.json
python3 - "$TM" "$MAN" "$S/tm" <<'PY'
import json, shutil, sys
src, man, dst = sys.argv[1], sys.argv[2], sys.argv[3]
m = json.load(open(man))
keep = {"mlp-s", "block", "block-13", "mnist", "bert", "bert-14", "bert-18", "bert-21", "gpt",
        "vit", "tabular", "lstm", "cnn1d"}
m["models"] = [x for x in m["models"] if x["name"] in keep]
for x in m["models"]:
    for f in x["files"] + [x["onnx"]] + x.get("extra_files", []):
        shutil.copy(f"{src}/{f}", dst)
json.dump(m, open(f"{dst}/manifest.json", "w"))
PY
tar cJf "$S/tm.tar.xz" -C "$S" tm && rm -rf "$S/tm"
for bin in "$S"/bin/*; do
    ldd "$bin" | awk '/=> \// {print $3}' |
        grep -Ev 'libc\.so|libm\.so|libstdc|libgcc_s|ld-linux|libpthread|librt|libdl|libcublas|libcudart' || true
done | sort -u | while read -r lib; do cp -L "$lib" "$S/lib/"; done
tar cJf "$S/lib.tar.xz" -C "$S" lib && rm -rf "$S/lib"
tar cJf "$S/bin.tar.xz" -C "$S" bin && rm -rf "$S/bin"
du -sh "$S"
