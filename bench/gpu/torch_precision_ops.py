#!/usr/bin/env python3
"""PyTorch's own error on gen.py models with discontinuities (thresholds,
argmax, isfinite, sort order), emulated on the CPU, the anchor of their
loose tolerances in tests/engine/test_parity_cuda.c (three times PyTorch's
error, rounded up to one digit):

  bf16  the whole model in torch.bfloat16 (weights and activations; torch
        1.13's CPU kernels compute in fp32 and store bf16)
  tf32  fp32, with the inputs and weights of every Linear, RNN and Conv2d
        rounded to tf32 (10-bit mantissa, round to nearest), what a GPU's
        TF32 matmul reads

Each against gen.py's float64 reference, worst relative L2 error per output
over batch 1, 3 and 32. 2026-12-07: user-acts tf32 5.9e-3, bf16 1.2e-1;
user-select bf16 2.8e-3 (values) and 2.7e-2 (indices: values that differ
in fp32 tie in bf16, and the order of ties is not the order of the fp32
values).

    .venv/bin/python bench/gpu/torch_precision_ops.py user-acts user-select
"""
import copy
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "models"))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import gen  # noqa: E402


def tf32(t):
    i = t.float().contiguous().view(torch.int32)
    return ((i + 0x1000) & ~0x1fff).view(torch.float32)


def as_tf32(m):
    m = copy.deepcopy(m).float()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (torch.nn.Linear, torch.nn.RNNBase, torch.nn.Conv2d)):
                for p in mod.parameters(recurse=False):
                    p.copy_(tf32(p))
                mod.register_forward_pre_hook(lambda _, a: tuple(
                    tf32(x) if torch.is_tensor(x) and x.is_floating_point() else x for x in a))
    return m, torch.float32


def as_bf16(m):
    return copy.deepcopy(m).to(torch.bfloat16), torch.bfloat16


def worst(s, m, make):
    mm, dt = make(m)
    out = {}
    for b in (1, 3, 32):
        xs = [gen.make_input(x, s["seed"], k, b) for k, x in enumerate(s["inputs"])]
        refs = gen.run64(gen.to_float64(m), xs)
        with torch.no_grad():
            ys = mm(*[torch.from_numpy(x).to(dt) if x.dtype == np.float32 else torch.from_numpy(x)
                      for x in xs])
        ys = ys if isinstance(ys, (tuple, list)) else [ys]
        for k, (y, ref) in enumerate(zip(ys, refs)):
            y = y.double().numpy().reshape(ref.shape)
            e = float(np.linalg.norm(y - ref) / max(np.linalg.norm(ref), 1e-30))
            out[k] = max(out.get(k, 0.0), e)
    return out


def main():
    specs = {x["name"]: x for x in gen.REAL}
    for name in sys.argv[1:] or ["user-acts", "user-select"]:
        s = specs[name]
        m = gen.build(s["build"], s["seed"])
        for label, make in (("tf32", as_tf32), ("bf16", as_bf16)):
            errs = worst(s, m, make)
            print(f"{name:12s} {label}  " + "  ".join(f"out {k} {v:.1e}" for k, v in errs.items()))


if __name__ == "__main__":
    main()
