#!/usr/bin/python3
"""PyTorch's side of bench/rnn_microbench.c: nn.LSTM / nn.GRU inference on
the same shapes, one thread, best of many trials.

Usage: /usr/bin/python3 bench/rnn_torch.py [lstm|gru] [I] [H] [seq] [seconds]
"""
import sys
import time

import torch


def main():
    kind = sys.argv[1] if len(sys.argv) > 1 else "lstm"
    I, H, seq = (int(a) for a in (sys.argv[2:5] + ["128", "256", "64"][len(sys.argv[2:5]):]))
    secs = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    torch.set_num_threads(1)
    for bidir in (False, True):
        mod = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(I, H, bidirectional=bidir).eval()
        for batch in (1, 32):
            x = torch.randn(seq, batch, I)
            best, n, end = 1e9, 0, time.perf_counter() + secs
            with torch.inference_mode():
                while n < 5 or time.perf_counter() < end:
                    t0 = time.perf_counter()
                    mod(x)
                    best = min(best, time.perf_counter() - t0)
                    n += 1
            print(f"torch {kind} {'bidirectional' if bidir else 'forward      '} batch {batch:3d}: "
                  f"best {best * 1e3:8.3f} ms of {n} runs")


if __name__ == "__main__":
    main()
