import onnxruntime as ort, numpy as np, time, sys
so = ort.SessionOptions(); so.intra_op_num_threads = 2
s = ort.InferenceSession("/tmp/gru_bench.onnx", so, providers=["CPUExecutionProvider"])
for b in (1, 32):
    x = np.random.default_rng(0).integers(0, 10000, (b, 64)).astype(np.int64)
    for _ in range(3): s.run(None, {"input_ids": x})
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 3: s.run(None, {"input_ids": x}); n += 1
    print(f"ort b{b} {n * b / (time.perf_counter() - t0):.1f}")
