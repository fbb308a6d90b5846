#!/usr/bin/env python3
"""PyTorch's error on gen.py's grid-warp model in fp16 and bf16 storage,
emulated on the CPU: torch 1.13 has no CPU grid_sample in bf16 (nor conv2d
in fp16), so every tensor is rounded to the 16-bit type after each op and
computed in fp32 between (what a GPU's 16-bit path does: fp32 arithmetic,
16-bit storage). The anchor of test_parity_cuda's bf16 tolerance for
grid-warp (2026-12-07: fp16 3.2e-3, bf16 3.0e-2 against float64; Ferry on an
H100 3.1e-2 to 3.3e-2 in bf16).

    /usr/bin/python3 bench/gpu/torch_precision_grid.py
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "models"))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import gen  # noqa: E402


def r(t, dt):
    return t.to(dt).to(torch.float32)


def main():
    s = {x["name"]: x for x in gen.REAL}["grid-warp"]
    m = gen.build(s["build"], s["seed"])
    for dt in (torch.float16, torch.bfloat16):
        worst = 0.0
        for b in (1, 3, 32):
            xs = [gen.make_input(x, s["seed"], k, b) for k, x in enumerate(s["inputs"])]
            ref = gen.run64(gen.to_float64(m), xs)[0]
            x = r(torch.from_numpy(xs[0]), dt)
            w, bias = r(m.conv.weight.detach(), dt), r(m.conv.bias.detach(), dt)
            t = r(torch.tanh(r(F.conv2d(x, w, bias, padding=1), dt)), dt)
            g = r(r(m.base, dt) + r(0.3 * t.permute(0, 2, 3, 1), dt), dt)
            y = r(F.grid_sample(x, g, mode="bilinear", padding_mode="zeros",
                                align_corners=False), dt)
            y = r(y + r(F.grid_sample(x, r(g * 1.2, dt), mode="bilinear", padding_mode="border",
                                      align_corners=True), dt), dt)
            y = r(y + r(F.grid_sample(x, r(g * 1.4, dt), mode="bilinear",
                                      padding_mode="reflection", align_corners=False), dt), dt)
            y = y.double().numpy().reshape(ref.shape)
            worst = max(worst, float(np.linalg.norm(y - ref) / np.linalg.norm(ref)))
        print(f"grid-warp {str(dt)[6:]:9s} {worst:.2e}")


if __name__ == "__main__":
    main()
