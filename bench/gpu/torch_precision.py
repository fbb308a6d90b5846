#!/usr/bin/env python3
"""PyTorch's own error at each precision on the parity test's CNN models:
the anchor for the CUDA parity tolerances of those models.

    python3 bench/gpu/torch_precision.py [--models a,b] [--refs DIR] [--batches 1,3,32]

Each model is built as tests/models/gen.py builds it (same builder, seed and
BatchNorm calibration), its float64 reference computed on the CPU, then run
on the GPU in fp32 (TF32 off), tf32, fp16 and bf16 (weights and input cast,
channels_last), and the relative L2 error ||y - ref|| / ||ref|| printed per
precision, the worst over the batch sizes (the parity test's: 1, 3, 32):
what a framework's best path loses to rounding alone on these random-weight
nets. With --refs (a folder of gen.py's M.ref.B.npy), the float64 output is
checked against the stored reference first (ref64: largest difference over
the largest value): ~0 means the weights here are the ONNX files' weights.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.environ.get("GEN_DIR", os.path.join(HERE, "..", "..", "tests", "models"))
sys.path.insert(0, GEN)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import gen  # noqa: E402
import zoo  # noqa: E402

CNNS = ("resnet18,mobilenet_v2,mobilenet_v3_small,efficientnet_b0,densenet121,"
        "shufflenet_v2_x0_5,regnet_x_400mf,convnext,squeezenet1_0,vit,cnn1d,autoencoder,unet")


def rel(y, ref):
    y = y.double().cpu().numpy().reshape(ref.shape)
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=CNNS)
    ap.add_argument("--refs", default="")
    ap.add_argument("--batches", default="1,3,32")
    a = ap.parse_args()
    specs = {s["name"]: s for s in gen.REAL}
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, cuDNN "
          f"{torch.backends.cudnn.version()}, batches {a.batches}")
    print(f"{'model':20s} {'ref64':>9s} {'fp32':>9s} {'tf32':>9s} {'fp16':>9s} {'bf16':>9s}")
    for name in a.models.split(","):
        s = specs[name]
        seed, in_specs = s["seed"], s["inputs"]
        module = gen.build(s["build"], seed)
        cal_b = s.get("calibrate_batch", 8)
        cal = [tuple(torch.from_numpy(gen.make_input(x, seed + 2000 + j, k, cal_b))
                     for k, x in enumerate(in_specs)) for j in range(2)]
        zoo.randomize_norms(module, seed, cal)
        worst, same = [0.0] * 4, 0.0
        for b in map(int, a.batches.split(",")):
            xs = [gen.make_input(x, seed, k, b) for k, x in enumerate(in_specs)]
            ref = gen.run64(gen.to_float64(module), xs)[0]
            path = os.path.join(a.refs, f"{name}.ref.{b}.npy")
            if a.refs and os.path.exists(path):
                stored = np.load(path)
                same = max(same, float(np.abs(stored - ref).max() / np.abs(stored).max()))
            for i, prec in enumerate(("fp32", "tf32", "fp16", "bf16")):
                torch.backends.cudnn.allow_tf32 = prec == "tf32"
                torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
                dt = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(prec, torch.float32)
                m = gen.copy.deepcopy(module).cuda().to(dt)
                x = torch.from_numpy(xs[0]).cuda().to(dt)
                if x.dim() == 4:
                    m = m.to(memory_format=torch.channels_last)
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.inference_mode():
                    worst[i] = max(worst[i], rel(m(x), ref))
        row = worst
        same = f"{same:.0e}" if a.refs else "-"
        print(f"{name:20s} {same:>9s} " + " ".join(f"{v:9.2e}" for v in row), flush=True)


if __name__ == "__main__":
    main()
