#!/bin/sh
# fuzz/make_corpus.sh - the fuzzers' seed corpora.
#
# usage: fuzz/make_corpus.sh FUZZ_BUILD_DIR OUT_DIR [MODEL_DIR...]
#
# OUT_DIR/infer: infer request bodies for fuzz_infer_request's model, and
#   fuzz/regressions/infer (inputs that found something once; model alike)
# OUT_DIR/config: config.pbtxt files (fuzz_model_config), and
#   fuzz/regressions/config
# OUT_DIR/model: small ONNX models: fuzz_seeds' (one per operator family,
#   with their attributes: add a case in fuzz/fuzz_seeds.c when an operator
#   is added), then every .onnx of at most 256 KiB under the MODEL_DIRs
#   (default: build/models and build/test-models, which the build and
#   tests/models/gen.py make: new test models are picked up as they come).
set -eu
B=$1
OUT=$2
shift 2
[ $# -gt 0 ] || set -- build/models build/test-models
"$B/fuzz/fuzz_seeds" "$OUT"
# inputs that found something once stay in the corpus
HERE=$(cd "$(dirname "$0")" && pwd)
for k in model infer config; do
    [ -d "$HERE/regressions/$k" ] && cp "$HERE/regressions/$k"/* "$OUT/$k/" 2>/dev/null || true
done
for d in "$@"; do
    [ -d "$d" ] || continue
    find "$d" -name '*.onnx' -size -257k | while read -r f; do
        cp "$f" "$OUT/model/$(basename "$(dirname "$f")")-$(basename "$f")"
    done
done
echo "fuzz corpus: $(ls "$OUT/model" | wc -l) models, $(ls "$OUT/infer" | wc -l) requests," \
    "$(ls "$OUT/config" | wc -l) configs in $OUT"
