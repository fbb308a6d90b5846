#!/usr/bin/env python3
"""What Python costs over C, on one machine in one run (BENCHMARKS.md,
"Python"):

1. call overhead at batch 1: ferry.Engine(x) from Python against the same
   ferry_engine_run called in a C loop (Engine._time_c), same engine and
   input; the difference is the Python layer (argument parsing, buffer
   export, the output array, releasing the GIL);
2. closed-loop dynamic batching of one-sample requests: ferry.DynamicBatcher
   from P Python threads against `ferry bench --batcher` (the C batcher with
   as many C clients), and the seed's approach, PyTorch behind a Python
   batcher (bench/torch_reference.py --batcher), at the same max batch and
   delay; and the GIL's own ceiling for P threads that each release and
   retake it once a call (gil_ceiling), which bounds any Python client.

usage: PYTHONPATH=build/python /usr/bin/python3 python/bench/python_vs_c.py \\
           [--build build] [--clients 64] [--duration 3] [--json out.json]
"""
import argparse
import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def call_overhead(ferry, model, features, calls):
    """Medians of single calls, Python and C interleaved (the machine may be
    shared: both see the same moments). _time_c(x, 1) times one
    ferry_engine_run inside C; a Python call is timed around engine(x)."""
    e = ferry.Engine(model, num_threads=1, batch_size=256)
    x = np.random.default_rng(0).uniform(-1, 1, (1, features)).astype(np.float32)
    e.warmup()
    clock = time.perf_counter
    py, c = np.empty(calls), np.empty(calls)
    for k in range(calls):
        t0 = clock()
        e(x)
        py[k] = clock() - t0
        c[k] = e._time_c(x, 1)
    # perf_counter's own cost, measured the same way, is not Python's overhead
    t = np.empty(1000)
    for k in range(1000):
        t0 = clock()
        t[k] = clock() - t0
    py_us, c_us = (np.median(py) - np.median(t)) * 1e6, np.median(c) * 1e6
    return {"python_us": py_us, "c_us": c_us, "overhead_us": py_us - c_us}


def closed_loop(clients, seconds, make_call):
    """clients threads, each calling make_call(i)() in a loop for seconds
    after they all started; calls per second over all of them."""
    stop = threading.Event()
    counts = [0] * clients
    start = threading.Barrier(clients + 1)

    def client(i):
        call, n = make_call(i), 0
        start.wait()
        while not stop.is_set():
            call()
            n += 1
        counts[i] = n

    ts = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def python_batcher(ferry, model, clients, seconds, max_batch, delay_us, workers=0,
                   preferred=None):
    e = ferry.Engine(model, batch_size=max_batch, num_threads=workers)
    e.warmup()
    b = ferry.DynamicBatcher(e, max_batch=max_batch, max_delay_us=delay_us,
                             preferred_batch_sizes=preferred)
    xs = np.random.default_rng(1).uniform(-1, 1, (clients, 256)).astype(np.float32)
    rps = closed_loop(clients, seconds, lambda i: functools.partial(b.infer, xs[i]))
    st = b.stats()
    b.close()
    return {"requests_per_s": rps, "mean_batch": st["samples"] / max(st["batches"], 1)}


def gil_ceiling(clients, seconds):
    """What P Python threads can do at all when each call releases the GIL
    once and takes it back, with no Ferry in it: hashlib.sha1 of 2 KiB
    (CPython releases the GIL above 2047 bytes; ~2 us of work). Every
    DynamicBatcher.infer does the same one release and one retake, so its
    requests/s cannot pass this whatever the batcher does."""
    data = b"x" * 2048
    rps = closed_loop(clients, seconds, lambda i: functools.partial(hashlib.sha1, data))
    return {"requests_per_s": rps, "mean_batch": None}


def c_batcher(cli, model, clients, seconds, max_batch):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "f.json")
        subprocess.run([cli, "bench", model, "--device", "cpu", "--duration", str(seconds),
                        "--json", out, "--quiet", "--batcher", "--concurrency", str(clients),
                        "--max-batch", str(max_batch), "--repeat", "1"],  # rounds repeat here
                       check=True, capture_output=True)
        with open(out) as f:
            r = json.load(f)
    row = [p for p in r["batcher"] if p["concurrency"] == clients][0]
    return {"requests_per_s": row["requests_per_s"], "mean_batch": row.get("mean_batch")}


def torch_batcher(model, clients, seconds, max_batch, delay_us):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "t.json")
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "torch_reference.py"),
                        "--model", model, "--device", "cpu", "--duration", str(seconds),
                        "--json", out, "--quiet", "--batch-sizes", "1", "--batcher",
                        "--concurrency", str(clients), "--max-batch", str(max_batch),
                        "--max-delay-us", str(delay_us)], check=True, capture_output=True)
        with open(out) as f:
            r = json.load(f)
    row = [p for p in r["batcher"] if p["concurrency"] == clients][0]
    return {"requests_per_s": row["requests_per_s"], "mean_batch": row.get("mean_batch")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--max-delay-us", type=int, default=500)
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--variants", default="",
                    help="extra DynamicBatcher runs each round, ';'-separated, each "
                    "'workers=W' and/or 'pref=S' (comma-joined: 'workers=2,pref=64'): "
                    "is the limit the GIL, or the batcher's batches of ~1.5 on many "
                    "idle workers?")
    ap.add_argument("--json")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.build, "python"))
    import ferry

    model = os.path.join(a.build, "models", "mlp-s.onnx")
    cli = os.path.join(a.build, "ferry")
    r = {"model": "mlp-s", "clients": a.clients, "max_batch": a.max_batch,
         "max_delay_us": a.max_delay_us}
    # a model of one 4x4 layer shows the Python layer alone; mlp-s, with it
    # the cache effects of a real forward between calls
    with tempfile.TemporaryDirectory() as d:
        tiny = os.path.join(d, "tiny.onnx")
        subprocess.run([cli, "make-model", "mlp", "--dims", "4,4", "--act", "relu", "-o", tiny],
                       check=True, capture_output=True)
        r["call_tiny"] = call_overhead(ferry, tiny, 4, a.calls)
    r["call"] = call_overhead(ferry, model, 256, a.calls)
    for k, name in (("call_tiny", "4x4 layer"), ("call", "mlp-s")):
        c = r[k]
        print(f"batch 1, one thread, {name:<9}: Python {c['python_us']:7.2f} us/call, "
              f"C {c['c_us']:7.2f} us/call, overhead {c['overhead_us']:.2f} us (medians)")
    # the three batchers in turn, repeats times: a shared machine's load
    # changes over a minute, and each round sees the same moment
    kinds = [("c_batcher", "C batcher, C clients"),
             ("py_batcher", "ferry.DynamicBatcher, Python threads"),
             ("gil_ceiling", "GIL ceiling (no Ferry: sha1 of 2 KiB)")]
    if not a.skip_torch:
        kinds.append(("torch_batcher", "PyTorch + Python batcher (the seed)"))
    variants = []
    for v in filter(None, a.variants.split(";")):
        kw = dict(kv.split("=") for kv in v.split(","))
        variants.append((v, {"workers": int(kw.get("workers", 0)),
                             "preferred": [int(kw["pref"])] if "pref" in kw else None}))
        kinds.append(("py " + v, "DynamicBatcher " + v))
    rounds = []
    for _ in range(a.repeats):
        rd = {"c_batcher": c_batcher(cli, model, a.clients, a.duration, a.max_batch),
              "py_batcher": python_batcher(ferry, model, a.clients, a.duration, a.max_batch,
                                           a.max_delay_us),
              "gil_ceiling": gil_ceiling(a.clients, a.duration)}
        if not a.skip_torch:
            rd["torch_batcher"] = torch_batcher(model, a.clients, a.duration, a.max_batch,
                                                a.max_delay_us)
        for v, kw in variants:
            rd["py " + v] = python_batcher(ferry, model, a.clients, a.duration, a.max_batch,
                                           a.max_delay_us, **kw)
        rd["ratio"] = rd["py_batcher"]["requests_per_s"] / rd["c_batcher"]["requests_per_s"]
        rounds.append(rd)
        print("round: " + ", ".join(f"{k} {rd[k]['requests_per_s']:,.0f}" for k, _ in kinds)
              + f", DynamicBatcher / C {rd['ratio']:.0%}")
    r["rounds"] = rounds
    for k, name in kinds:
        v = [rd[k]["requests_per_s"] for rd in rounds]
        mb = [rd[k]["mean_batch"] for rd in rounds if rd[k]["mean_batch"] is not None]
        r[k] = {"requests_per_s": float(np.median(v)),
                "mean_batch": float(np.median(mb)) if mb else None}
        print(f"{name:<40} {a.clients} clients: {r[k]['requests_per_s']:>10,.0f} req/s "
              f"(median of {len(v)})" + (f"  mean batch {r[k]['mean_batch']:.1f}" if mb else ""))
    print(f"DynamicBatcher / C batcher, per round: median "
          f"{np.median([rd['ratio'] for rd in rounds]):.0%}; DynamicBatcher / GIL ceiling "
          f"{np.median([rd['py_batcher']['requests_per_s'] / rd['gil_ceiling']['requests_per_s'] for rd in rounds]):.0%}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
