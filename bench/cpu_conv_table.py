#!/usr/bin/env python3
"""Merges cpu_conv_bench (C) and cpu_conv_bench.py (PyTorch) outputs into one
markdown table of thread-CPU ms: (a) plain nchw, (b) reorders at the
boundary, (c) blocked, the AUTO choice, and torch.

    python3 bench/cpu_conv_table.py C_OUT.txt TORCH_OUT.txt
"""
import sys


def rows(path, torch):
    out = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        f = line.replace("|", " ").split()
        if torch:
            out[(f[0], int(f[1]))] = float(f[3])
        else:
            out[(f[0], int(f[1]))] = [float(v) for v in f[6:9]] + [int(f[-1])]
    return out


def auto_is_direct(name):
    # cpu_conv.c's conv_plain_auto on these shapes: 1x1 stride 1, >= 14x14
    return name.startswith("mv2.pw") and not name.startswith(("mv2.pw576-160", "mv2.pw160-960",
                                                              "mv2.pw960", "mv2.pw320"))


def main():
    c, t = rows(sys.argv[1], False), rows(sys.argv[2], True)
    print("| shape | n | (a) plain | (b) reorder | (c) blocked | auto | torch 1.13 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    tot = {}
    for (name, n), (a, b, cc, count) in c.items():
        au = a if auto_is_direct(name) else b
        tr = t.get((name, n), float("nan"))
        print(f"| {name} | {n} | {a:.3f} | {b:.3f} | {cc:.3f} | {au:.3f} | {tr:.3f} |")
        k = (name[:3], n)
        s = tot.setdefault(k, [0.0] * 5)
        for i, v in enumerate((a, b, cc, au, tr)):
            s[i] += v * count
    for (net, n), s in tot.items():
        print(f"| **{net} all convs** | {n} | {s[0]:.1f} | {s[1]:.1f} | {s[2]:.1f} | {s[3]:.1f} "
              f"| {s[4]:.1f} |")


if __name__ == "__main__":
    main()
