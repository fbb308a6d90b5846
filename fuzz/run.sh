#!/bin/sh
# fuzz/run.sh - runs each libFuzzer harness for SECONDS on a fresh seed
# corpus plus what earlier runs kept (FUZZ_BUILD_DIR/corpus-*), and fails
# on the first finding (a crash, a sanitizer report, a leak or a timeout);
# the input that found it is left in FUZZ_BUILD_DIR as crash-*, leak-* or
# timeout-*. Prints libFuzzer's final statistics per harness.
#
# usage: fuzz/run.sh FUZZ_BUILD_DIR [SECONDS=60] [MODEL_DIR...]
set -eu
B=$1
S=${2:-60}
[ $# -ge 2 ] && shift 2 || shift $#
SEEDS=$B/seeds
rm -rf "$SEEDS"
mkdir -p "$SEEDS" "$B/corpus-infer" "$B/corpus-model" "$B/corpus-config"
"$(dirname "$0")/make_corpus.sh" "$B" "$SEEDS" "$@"
HERE=$(cd "$(dirname "$0")" && pwd)
run() { # NAME CORPUS SEEDS [libFuzzer options]
    name=$1; corpus=$2; seeds=$3; shift 3
    echo "== $name: $S s"
    (cd "$B" && ASAN_OPTIONS=detect_leaks=1:$ASAN_EXTRA ./fuzz/"$name" -max_total_time="$S" \
        -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 "$@" "$corpus" "$seeds") \
        >"$B/$name.log" 2>&1 || { tail -60 "$B/$name.log"; echo "fuzz: $name found something" >&2; exit 1; }
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
        "$B/$name.log" || true
    grep -E ' (cov|ft): ' "$B/$name.log" | tail -1
}
ASAN_EXTRA=
run fuzz_infer_request "$(cd "$B" && pwd)/corpus-infer" "$(cd "$SEEDS" && pwd)/infer" \
    -dict="$HERE/infer.dict" -max_len=65536
run fuzz_model_config "$(cd "$B" && pwd)/corpus-config" "$(cd "$SEEDS" && pwd)/config" \
    -dict="$HERE/pbtxt.dict" -max_len=16384
# A model may claim tensors larger than memory; the loader's answer is
# FERRY_ENOMEM when malloc says no. ASan aborts on such a request, and
# libFuzzer on any single one over -rss_limit_mb, instead of malloc saying
# no; and claims of gigabytes that succeed make each run take 60 ms. So
# mallocs over 256 MiB return NULL: what runs is the loader's own path.
# (fuzz/regressions/model/typed-tensor-claims-*: typed data whose dims claim
# 2 GB or 8 TB, allocated before the count is checked in tensor_to_value.)
ASAN_EXTRA=allocator_may_return_null=1:max_allocation_size_mb=256
run fuzz_model_load "$(cd "$B" && pwd)/corpus-model" "$(cd "$SEEDS" && pwd)/model" \
    -max_len=262144
