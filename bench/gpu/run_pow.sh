#!/bin/bash
# bench/gpu/run_pow.sh - Pow with negative bases on CUDA (T5's RMSNorm was
# NaN under --use_fast_math's __powf): test_broadcast, and hf-t5-encoder
# against PyTorch at batch 3 in every precision. Carry .devlibs/gpu.
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/env.sh
FERRY_TEST_FILTER=test_broadcast timeout 40 $S/bin/test_cuda_backend 2>&1 | grep -E "POW|Pow|PASSED|FAILED"
T=$S/tm
m=hf-t5-encoder
for p in fp32 tf32 fp16 bf16; do
    timeout 20 $F run $T/$m.onnx -i $T/$m.in.input_ids.3.npy -i $T/$m.in.attention_mask.3.npy \
        -o /tmp/o.npy --device cuda --precision $p >/dev/null 2>&1
    python3 -c "
import numpy as np
r = np.load('$T/$m.ref.3.npy'); o = np.load('/tmp/o.npy')
print('$m $p rel err %.2e' % (np.abs(o - r).max() / np.abs(r).max()))"
done
