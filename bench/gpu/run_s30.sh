#!/bin/bash
# bench/gpu/run_s30.sh - the second call on the machine run_s28.sh warmed
# (same staging, carry .devlibs/cudnn): run_s26.sh's batcher at 256 clients
# (resnet50, BERT-base fp16) with 2, 4 and 6 streams against the engine's
# best batch throughput (issue 15's 80% goal).
set -u
cd "$(dirname "$0")/../.."
S=.devlibs/cudnn
for t in bin lib; do [ -d $S/$t ] || tar xJf $S/$t.tar.xz -C $S; done
S=$S WORKERS="${WORKERS:-2 4 6}" timeout 560 bash bench/gpu/run_s26.sh 2>&1 | grep -v "^20..-"
