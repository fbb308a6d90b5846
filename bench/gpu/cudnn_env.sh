# bench/gpu/cudnn_env.sh - sourced (from the repository root) by the device
# scripts that run what bench/gpu/stage_cudnn.sh staged (run_s32.sh on):
# unpacks its binaries and libraries, sets the library path, makes the log
# folder OUT and prints the GPU and the time. S names the stage.
S=.devlibs/cudnn
for t in bin lib; do [ -d $S/$t ] || tar xJf $S/$t.tar.xz -C $S; done
export LD_LIBRARY_PATH="$PWD/$S/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/ferry-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name --format=csv,noheader; date -u +%FT%TZ
