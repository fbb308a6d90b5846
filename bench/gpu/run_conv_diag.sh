#!/bin/bash
# bench/gpu/run_conv_diag.sh - which convolutions come out wrong on CUDA
# above batch 1: each model of $DIAG (ONNX files and in.B.npy inputs) run by
# `ferry run` on the CPU (fp32, the reference) and on CUDA in tf32 and fp16
# under each mode below, at batch 3 (BATCHES), worst relative error per run.
# Modes name the epilogue kinds given to cuDNN's graph API
# (FERRY_CUDNN_GRAPH, cuda_conv.c graph_epilogue_ok) and our depthwise
# kernel (FERRY_CUDA_DEPTHWISE=ours). After bench/gpu/stage.sh (its ferry);
# carry .devlibs/gpu and $DIAG.
set -u
cd "$(dirname "$0")/../.."
DIAG=${DIAG:-.devlibs/diag}
. bench/gpu/env.sh >/dev/null
O=/tmp/diag
mkdir -p $O
nvidia-smi --query-gpu=name --format=csv,noheader
MODES=${MODES:-"legacy:FERRY_CUDNN=legacy relu:FERRY_CUDNN_GRAPH=relu res:FERRY_CUDNN_GRAPH=res bias:FERRY_CUDNN_GRAPH=bias default:X=1 legacy+dw:FERRY_CUDNN=legacy,FERRY_CUDA_DEPTHWISE=ours relu+dw:FERRY_CUDNN_GRAPH=relu,FERRY_CUDA_DEPTHWISE=ours"}
printf "%-20s %-10s %5s" model mode batch
for p in tf32 fp16; do printf " %10s" $p; done
echo
for m in $DIAG/*.onnx; do
    n=$(basename $m .onnx)
    for b in ${BATCHES:-3}; do
        $F run $m -i $DIAG/in.$b.npy -o $O/$n.ref.$b.npy --device cpu >/dev/null 2>&1
        for md in $MODES; do
            name=${md%%:*} envs=${md#*:}
            printf "%-20s %-10s %5s" $n $name $b
            for p in tf32 fp16; do
                rm -f $O/o.npy
                env ${envs//,/ } timeout 60 $F run $m -i $DIAG/in.$b.npy -o $O/o.npy --device cuda \
                    --precision $p >$O/log 2>&1
                python3 -c "
import numpy as np, sys
try:
    r = np.load('$O/$n.ref.$b.npy').astype(np.float64); o = np.load('$O/o.npy').astype(np.float64)
    print(' %10.2e' % (np.abs(o - r).max() / max(np.abs(r).max(), 1e-30)), end='')
except Exception as e:
    print(' %10s' % 'FAIL', end='')
"
            done
            echo
        done
    done
done
