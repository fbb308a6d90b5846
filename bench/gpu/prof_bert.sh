. bench/gpu/env.sh >/dev/null
export PYTHONUNBUFFERED=1
timeout 200 .devlibs/gpu/bin/test_parity_cuda > $OUT/parity.log 2>&1
echo "parity rc=$? $(grep -c '\[       OK \]' $OUT/parity.log) ok, $(grep -c FAILED $OUT/parity.log) failed"
mkdir -p /tmp/rg && python3 -c "
import sys; sys.path.insert(0,'bench'); import models as bm; bm.export('bert_base','/tmp/rg')" 2>&1 | tail -1
FERRY_CUDA_PROFILE=1 $F bench /tmp/rg/bert_base.onnx --device cuda --precision fp16 --sweep --batch-sizes 256 --duration 0.5 --repeat 1 --quiet 2>&1 | grep -A25 "ferry profile" | head -24
$F bench /tmp/rg/bert_base.onnx --device cuda --precision fp16 --graphs --sweep --batch-sizes 1,8,64,256 --duration 1 --repeat 2 --quiet 2>&1 | tail -8
