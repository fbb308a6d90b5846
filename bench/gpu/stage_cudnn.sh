#!/bin/bash
# bench/gpu/stage_cudnn.sh - stages a device run of the convolutional
# models on CUDA (bench/gpu/run_cudnn.sh) from a CUDA build made here:
#   $STAGE/bin.tar.xz   ferry, test_parity_cuda, test_cuda_backend (stripped)
#   $STAGE/lib.tar.xz   the Debian libraries they link that the device lacks
#                       (CUDA's, cuDNN's included, stay behind: the device
#                       has them)
#   $STAGE/run_cudnn.sh
#   $STAGE-mK/tm.tar    model set K: the parity models named in the K-th
#                       argument (comma-separated), with a manifest of them
# The weights do not compress and the carry limit is 64 MiB a call, so the
# models travel in sets, one call each; the binaries stay on the warm
# machine between calls (they are in an ignored folder there).
#   stage_cudnn.sh BUILD_DIR MODELS_DIR SET1 [SET2 ...]
# STAGE defaults to .devlibs/cudnn of the checkout the device tool sends.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=$1 TM=$2
shift 2
S=${STAGE:-.devlibs/cudnn}
rm -rf "$S" "$S"-m* && mkdir -p "$S/bin" "$S/lib"
cp "$B/ferry" "$B/test_parity_cuda" "$B/test_cuda_backend" "$S/bin/"
strip "$S"/bin/*
for bin in "$S"/bin/*; do
    ldd "$bin" | awk '/=> \// {print $3}' |
        grep -Ev 'libc\.so|libm\.so|libstdc|libgcc_s|ld-linux|libpthread|librt|libdl|libcublas|libcudart|libcudnn' || true
done | sort -u | while read -r lib; do cp -L "$lib" "$S/lib/"; done
tar cJf "$S/lib.tar.xz" -C "$S" lib && rm -rf "$S/lib"
tar cJf "$S/bin.tar.xz" -C "$S" bin && rm -rf "$S/bin"
cp bench/gpu/run_cudnn.sh "$S/"
k=0
for set in "$@"; do
    k=$((k + 1))
    D="$S-m$k"
    mkdir -p "$D/tm"
    python3 - "$TM" "$D/tm" "$set" <<'PY'
import json, shutil, sys
src, dst, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
m = json.load(open(f"{src}/manifest.json"))
m["models"] = [x for x in m["models"] if x["name"] in names]
missing = set(names) - {x["name"] for x in m["models"]}
if missing:
    sys.exit(f"not in the manifest: {sorted(missing)}")
for x in m["models"]:
    for f in x["files"] + [x["onnx"]] + x.get("extra_files", []):
        shutil.copy(f"{src}/{f}", dst)
json.dump(m, open(f"{dst}/manifest.json", "w"))
PY
    tar cf "$D/tm.tar" -C "$D" tm && rm -rf "$D/tm"
done
du -sh "$S" "$S"-m*
