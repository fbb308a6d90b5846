#!/usr/bin/env python3
"""Real models on the GPU: Ferry against PyTorch's best path, same weights,
same machine, one run (issue 15's table in BENCHMARKS.md).

    python3 bench/gpu/real_gpu.py --ferry .devlibs/gpu/bin/ferry \\
        [--models bert_base,resnet50,mobilenet_v2,vit_tiny] [--batch-sizes 1,8,64,256] \\
        [--duration 2] [--dir /tmp/real-gpu] [--batcher 256] [--json OUT.json]

Each model is built by bench/models.py (seeded weights) and exported here
with this machine's torch (TorchScript exporter, opset 17, dynamic batch),
so nothing large travels. Every timed call is host to host: inputs start in
host memory and outputs end there, as a caller of the C API sees it.

Columns, samples/s at batch b:
  torch eager   fp32 nn.Module, pageable host tensors in and out (b = 1 only)
  torch best    fp16 weights and activations (float inputs cast on the GPU),
                channels_last for images, one CUDA graph per batch size
                captured after a warm-up (cudnn.benchmark on: convolution
                algorithms timed per shape), inputs copied from pinned host
                memory into the graph's static input and the output copied
                back to pinned memory; synchronous, as one caller runs it
  ferry         `ferry bench --device cuda --precision fp16 --graphs --sweep`
                (one synchronous call at a time, f32 host tensors in and out)
  ferry k=4     the same with --inflight 4 (four batches in flight)
and, with --batcher C, `ferry bench --batcher --concurrency C` (single-sample
requests from C closed-loop clients through the dynamic batcher, fp16).
Each figure is the median of --repeats runs of --duration seconds.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import models as bm  # noqa: E402


def note(msg):
    print(msg, file=sys.stderr, flush=True)


def timed(call, batch, duration, repeats):
    """Median samples/s of call() over repeats runs of duration seconds."""
    for _ in range(3):
        call()
    torch.cuda.synchronize()
    rates = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            call()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= duration:
                break
        rates.append(n * batch / dt)
    return statistics.median(rates), min(rates), max(rates)


def host_inputs(name, batch):
    return [torch.from_numpy(x) for x in bm.make_inputs(name, batch)]


def torch_eager(module, name, batch, duration, repeats):
    dev = torch.device("cuda")
    m = module.to(dev).float()
    xs = host_inputs(name, batch)

    def call():
        with torch.inference_mode():
            out = m(*[x.to(dev) for x in xs])
            out = out if isinstance(out, (tuple, list)) else (out,)
            [o.cpu() for o in out]
    return timed(call, batch, duration, repeats)


def torch_best(module, name, batch, duration, repeats):
    """fp16 + channels_last + one CUDA graph, pinned host in and out, and
    cuDNN's algorithms timed per shape (cudnn.benchmark), as Ferry does."""
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    m = module.to(dev).half()
    image = any(len(s["shape"]) == 4 for s in bm.MODELS[name][1])
    if image:
        m = m.to(memory_format=torch.channels_last)
    host = [x.pin_memory() for x in host_inputs(name, batch)]
    static = [torch.empty_like(x, device=dev) for x in host]
    for s, h in zip(static, host):
        s.copy_(h)

    def fwd():
        xs = []
        for s in static:
            if s.is_floating_point():
                s = s.half()
                if s.dim() == 4:
                    s = s.contiguous(memory_format=torch.channels_last)
            xs.append(s)
        out = m(*xs)
        out = out if isinstance(out, (tuple, list)) else (out,)
        return [o.float() for o in out]

    with torch.inference_mode():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                fwd()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outs = fwd()
    host_out = [torch.empty(o.shape, dtype=o.dtype, pin_memory=True) for o in outs]

    def call():
        for s, h in zip(static, host):
            s.copy_(h, non_blocking=True)
        graph.replay()
        for h, o in zip(host_out, outs):
            h.copy_(o, non_blocking=True)
        torch.cuda.current_stream().synchronize()
    return timed(call, batch, duration, repeats)


def ferry_bench(ferry, onnx, args, extra, tag):
    """Runs `ferry bench` with --json; returns its JSON (None on failure)."""
    out = os.path.join(args.dir, f"{os.path.basename(onnx)}.{tag}.json")
    cmd = [ferry, "bench", onnx, "--device", "cuda", "--precision", "fp16", "--quiet",
           "--duration", str(args.duration), "--repeat", str(args.repeats), "--json", out] + extra
    note("  $ " + " ".join(cmd))
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        note(f"  ferry failed ({p.returncode}): {p.stderr.strip()[-600:]}")
        return None
    with open(out) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ferry", required=True)
    ap.add_argument("--models", default="bert_base,resnet50,mobilenet_v2,vit_tiny")
    ap.add_argument("--batch-sizes", default="1,8,64,256")
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/real-gpu")
    ap.add_argument("--batcher", type=int, default=256, help="clients (0: skip)")
    ap.add_argument("--skip-torch", action="store_true", help="Ferry's columns only")
    ap.add_argument("--json")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "models": {}}
    for name in args.models.split(","):
        note(f"== {name}")
        onnx = os.path.join(args.dir, f"{name}.onnx")
        module = bm.build(name)
        if not os.path.exists(onnx):
            t0 = time.time()
            bm.export(name, args.dir)
            note(f"  exported in {time.time() - t0:.0f} s")
        row = {"torch_eager_b1": None, "sweep": {b: {} for b in batches}}
        for b in batches if not args.skip_torch else []:
            try:
                row["sweep"][b]["torch_best"] = torch_best(bm.build(name), name, b, args.duration,
                                                           args.repeats)
            except Exception as e:
                note(f"  torch best b={b} failed: {e}")
            torch.cuda.empty_cache()
        try:
            if args.skip_torch:
                raise RuntimeError("--skip-torch")
            row["torch_eager_b1"] = torch_eager(module, name, 1, args.duration, args.repeats)
        except Exception as e:  # a model torch cannot run here is reported, not fatal
            note(f"  torch eager failed: {e}")
        bs = ",".join(str(b) for b in batches)
        for tag, extra in (("sync", []), ("k4", ["--inflight", "4"])):
            j = ferry_bench(args.ferry, onnx, args,
                            ["--sweep", "--graphs", "--batch-sizes", bs] + extra, tag)
            for p in (j or {}).get("sweep", []):
                row["sweep"].setdefault(p["batch"], {})[f"ferry_{tag}"] = p["samples_per_s"]
        if args.batcher:
            j = ferry_bench(args.ferry, onnx, args,
                            ["--batcher", "--concurrency", str(args.batcher)], "batcher")
            row["batcher"] = (j or {}).get("batcher")
        report["models"][name] = row
        note(json.dumps(row, default=str))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=str)

    def fmt(v):
        if v is None:
            return "n/a"
        return f"{v[0]:,.0f}" if isinstance(v, (tuple, list)) else f"{v:,.0f}"
    print(f"{report['gpu']}, torch {report['torch']}, {report['date']}; samples/s, host in/out")
    print(f"{'model':12} {'batch':>5} {'torch eager':>12} {'torch best':>11} {'ferry':>9} "
          f"{'ferry k=4':>10} {'ferry/best':>10}")
    for name, row in report["models"].items():
        for b, r in row["sweep"].items():
            best = r.get("torch_best")
            fy = max([v for k, v in r.items() if k.startswith("ferry") and v] or [0]) or None
            ratio = f"{fy / best[0]:.2f}x" if fy and best else "n/a"
            eager = fmt(row["torch_eager_b1"]) if b == 1 else ""
            print(f"{name:12} {b:>5} {eager:>12} {fmt(best):>11} {fmt(r.get('ferry_sync')):>9} "
                  f"{fmt(r.get('ferry_k4')):>10} {ratio:>10}")
        for p in row.get("batcher") or []:
            print(f"{name:12} batcher {p['concurrency']} clients: {p['requests_per_s']:,.0f} req/s, "
                  f"p99 {p['p99_us'] / 1e3:.1f} ms, mean batch {p.get('mean_batch', 0):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
