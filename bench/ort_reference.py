#!/usr/bin/python3
"""bench/ort_reference.py - ONNX Runtime on the same ONNX file, measured the
way bench/torch_reference.py measures PyTorch, for bench/compare.py --ort.

    ort_reference.py --model mlp-s.onnx [--device cpu|cuda]
        [--batch-sizes 1,8,32,256] [--compare-threading --threads 1,4,8,16]
        [--duration 1.0] [--intra-threads N] [--json out.json] [--quiet]

Sections (JSON keys as torch_reference.py's):
  "sweep":     one caller, batch b, fp32, host in and out:
               [{"batch", "samples_per_s", "p50_us", "p90_us", "p99_us"}]
  "threading": N callers of one session, batch 1 each: [{"threads", "samples_per_s"}]
The session is ONNX Runtime's defaults (all graph optimizations; on the CPU
an intra-op pool of one thread per physical core unless --intra-threads);
--device cuda takes the CUDA execution provider and fails when the installed
onnxruntime has none.
"""
import argparse
import json
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import int_list  # noqa: E402


def note(msg, quiet=False):
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def percentiles_us(lat_s):
    if not lat_s:
        return None, None, None
    a = np.sort(np.asarray(lat_s)) * 1e6
    return tuple(round(float(a[min(len(a) - 1, int(q * len(a)))]), 1) for q in (0.5, 0.9, 0.99))


def timed(call, duration):
    """call() in a loop after a warm-up; returns (calls, seconds, latencies)."""
    t_end = time.perf_counter() + min(0.3, max(0.05, 0.2 * duration))
    call()
    while time.perf_counter() < t_end:
        call()
    lat, t0 = [], time.perf_counter()
    now = t0
    while now < t0 + duration:
        s = now
        call()
        now = time.perf_counter()
        lat.append(now - s)
    return len(lat), now - t0, lat


def threads_rate(n, call, duration):
    """n threads calling call() (one sample each) in a loop; samples/s over a
    window of `duration` seconds after a warm-up (calls counted as they end)."""
    counts = [0] * n  # one slot per thread, written by that thread only
    stop, go = threading.Event(), threading.Barrier(n + 1)

    def body(k):
        call()
        go.wait()
        while not stop.is_set():
            call()
            counts[k] += 1

    ts = [threading.Thread(target=body, args=(k,), daemon=True) for k in range(n)]
    for t in ts:
        t.start()
    go.wait()
    time.sleep(min(0.3, max(0.05, 0.2 * duration)))
    c0, t0 = sum(counts), time.perf_counter()
    time.sleep(duration)
    c1, t1 = sum(counts), time.perf_counter()
    stop.set()
    for t in ts:
        t.join()
    return (c1 - c0) / (t1 - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--batch-sizes", type=int_list, default=[1, 4, 8, 16, 32, 256])
    ap.add_argument("--compare-threading", action="store_true")
    ap.add_argument("--threads", type=int_list, default=None)
    ap.add_argument("--intra-threads", type=int, default=0,
                    help="intra-op threads of the session (default: ONNX Runtime's)")
    ap.add_argument("--duration", type=float, default=1.0)
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    try:
        import onnxruntime as ort
    except ImportError:
        raise SystemExit("ort_reference.py: onnxruntime is not installed (no Debian package; "
                         "pip install onnxruntime where a registry is reachable)")
    providers = ["CPUExecutionProvider"]
    if a.device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise SystemExit(f"ort_reference.py: this onnxruntime {ort.__version__} has no CUDA "
                             f"execution provider ({', '.join(ort.get_available_providers())})")
        providers = ["CUDAExecutionProvider"]
    so = ort.SessionOptions()
    if a.intra_threads:
        so.intra_op_num_threads = a.intra_threads
    sess = ort.InferenceSession(a.model, so, providers=providers)
    inp = sess.get_inputs()[0]
    feat = int(np.prod([d for d in inp.shape[1:]]))
    rng = np.random.default_rng(0)
    res = {"tool": "onnxruntime", "version": ort.__version__,
           "device": f"{a.device} ({providers[0]})", "sweep": [], "threading": []}

    for b in a.batch_sizes:
        x = rng.standard_normal((b, feat), dtype=np.float32).reshape([b] + list(inp.shape[1:]))
        n, secs, lat = timed(lambda: sess.run(None, {inp.name: x}), a.duration)
        p50, p90, p99 = percentiles_us(lat)
        res["sweep"].append({"batch": b, "samples_per_s": round(n * b / secs, 1),
                             "p50_us": p50, "p90_us": p90, "p99_us": p99})
        note(f"  ort sweep batch {b:>6}: {n * b / secs:>14,.0f} samples/s", a.quiet)
    if a.compare_threading:
        x1 = rng.standard_normal((1, feat), dtype=np.float32).reshape([1] + list(inp.shape[1:]))
        for t in a.threads or [s for s in a.batch_sizes if s <= 64]:
            sps = threads_rate(t, lambda: sess.run(None, {inp.name: x1}), a.duration)
            res["threading"].append({"threads": t, "batch": 1, "samples_per_s": round(sps, 1)})
            note(f"  ort threading {t:>3} threads x batch 1: {sps:>12,.0f} samples/s", a.quiet)
    if a.json:
        with open(a.json, "w") as f:
            f.write(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
