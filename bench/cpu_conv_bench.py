#!/usr/bin/env python3
"""PyTorch's F.conv2d on the shapes of bench/cpu_conv_bench.c (parsed from
it, so the two lists cannot drift), best of several trials, as the anchor
for the oneDNN layouts. Timing only.

    /usr/bin/python3 bench/cpu_conv_bench.py [batches=1,32] [threads=1] [filter]
"""
import os
import re
import sys
import time

import torch
import torch.nn.functional as F

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu_conv_bench.c")
ROW = re.compile(r'\{"([\w.\-]+)", (\d+), (\d+), (\d+), (\d+), (\d+), (\d+), (\d+), (\d+)\}')


def shapes():
    with open(SRC) as f:
        for m in ROW.finditer(f.read()):
            yield (m.group(1),) + tuple(int(g) for g in m.groups()[1:])


def best_ms(fn):
    """Best wall and thread-CPU ms (as cpu_conv_bench.c: >= 5 trials and
    1 s, at most 40; CPU time leaves out preemption, one thread only)."""
    fn()
    wall = cpu = 1e30
    t_end, i = time.perf_counter() + 1.0, 0
    while i < 40 and (i < 5 or time.perf_counter() < t_end):
        w0, c0 = time.perf_counter(), time.thread_time()
        fn()
        cpu = min(cpu, time.thread_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
        i += 1
    return wall * 1e3, cpu * 1e3


def main():
    batches = [int(b) for b in (sys.argv[1] if len(sys.argv) > 1 else "1,32").split(",")]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    filt = sys.argv[3] if len(sys.argv) > 3 else ""
    torch.set_num_threads(threads)
    print(f"# torch {torch.__version__} threads {threads}; shape n wall_ms thread_cpu_ms gflops(cpu) count")
    for n in batches:
        tot = {"r18": [0.0, 0.0], "mv2": [0.0, 0.0]}
        for name, cin, cout, g, hw, k, s, p, count in shapes():
            if filt not in name:
                continue
            x = torch.randn(n, cin, hw, hw)
            w = torch.randn(cout, cin // g, k, k)
            b = torch.randn(cout)
            with torch.no_grad():
                wall, cpu = best_ms(lambda: F.conv2d(x, w, b, stride=s, padding=p, groups=g))
            oh = (hw + 2 * p - k) // s + 1
            gf = 2.0 * n * cout * oh * oh * (cin // g) * k * k / (cpu * 1e6)
            print(f"{name:<16} {n:3d} {wall:9.3f} {cpu:9.3f} {gf:7.1f} {count}", flush=True)
            tot[name[:3]][0] += wall * count
            tot[name[:3]][1] += cpu * count
        for net, t in tot.items():
            print(f"# {net} n={n} threads={threads} all convs (ms, count-weighted): "
                  f"torch wall {t[0]:.2f} thread-cpu {t[1]:.2f}")


if __name__ == "__main__":
    main()
