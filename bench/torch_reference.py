#!/usr/bin/python3
"""The PyTorch side of `ferry bench`: the same measurements, on the same weights.

    torch_reference.py --model mlp-s.onnx [--device cpu|cuda] [--batch-sizes 1,4,8,16,32,256]
        [--latency] [--compare-threading] [--threads 8] [--stack]
        [--batcher --concurrency 1,16,64,256,1024] [--gpu-best]
        [--duration 1.0] [--torch-threads N] [--json FILE]

The model is rebuilt in torch from the ONNX file: every Gemm (or MatMul + Add)
becomes an nn.Linear with the file's weights, and the nodes between two of them
become the activation (Relu; the Erf pattern or Gelu: exact GELU; Sigmoid, Tanh),
with a trailing Softmax / LogSoftmax kept. Anything else is not an MLP and is
refused with the node named.

Every timed call on CUDA is host to host: it copies the input from host memory
to the device and the output back, as a caller of `ferry run` or of the C API
sees it. Models run under torch.inference_mode after a warm-up.

The JSON (--json) has the schema `ferry bench --json` writes, so that
bench/compare.py can put the two side by side:
  {"impl": "pytorch", "version", "device", "model", "date",
   "sweep":     [{"batch", "samples_per_s", "p50_us", "p90_us", "p99_us"}],
   "threading": [{"threads", "batch": 1, "samples_per_s"}],
   "stack":     [{"step", "config", "samples_per_s", "gain", "cumulative", "skipped"}],
   "batcher":   [{"concurrency", "requests_per_s", "p50_us", "p99_us", "mean_batch"}],
   "gpu_best":  [{"batch", "precision", "samples_per_s", "p50_us", "p90_us", "p99_us"}]}
Stack steps: baseline, + dynamic batch sizing, + pipelining, + reduced precision,
+ graph capture (the names ferry bench uses);
a step that cannot run here has samples_per_s null and "skipped" saying why, and
the next step's gain is measured against the last step that ran.
"""
import argparse
import datetime
import json
import math
import os
import platform
import queue
import sys
import threading
import time

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

QUIET = False


def note(msg):
    """Progress on stderr, as each point finishes (--quiet: none)."""
    if not QUIET:
        print(msg, file=sys.stderr, flush=True)


# the step names `ferry bench` uses, so that compare.py can match rows
STACK_STEPS = ["baseline", "+ dynamic batch sizing", "+ pipelining", "+ reduced precision",
               "+ graph capture"]


# ------------------------------------------------------------------ ONNX -> torch

class NotAnMLP(ValueError):
    pass


def _attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _activation(path, ops, nodes, final):
    """The torch module for the nodes between two linear layers (or after the last)."""
    kinds = set(ops)
    if not kinds:
        return None
    if "Erf" in kinds and kinds <= {"Div", "Mul", "Erf", "Add"}:
        return nn.GELU()
    if kinds == {"Gelu"}:
        return nn.GELU(approximate=_attr(nodes[0], "approximate", b"none").decode())
    if kinds == {"Relu"}:
        return nn.ReLU()
    if kinds == {"Sigmoid"}:
        return nn.Sigmoid()
    if kinds == {"Tanh"}:
        return nn.Tanh()
    if final and kinds == {"Softmax"}:
        return nn.Softmax(dim=_attr(nodes[0], "axis", -1))
    if final and kinds == {"LogSoftmax"}:
        return nn.LogSoftmax(dim=_attr(nodes[0], "axis", -1))
    where = "after the last layer" if final else "between two layers"
    raise NotAnMLP(f"{path}: nodes {', '.join(sorted(kinds))} {where} (first: '{nodes[0].name}') "
                   f"are not an MLP activation (Relu, GELU, Sigmoid, Tanh; a final Softmax or "
                   f"LogSoftmax)")


def load_mlp(path):
    """Rebuilds the MLP of an ONNX file as an nn.Sequential of float32 modules.

    Returns (module, in_features, out_features, description)."""
    m = onnx.load(path)  # resolves external data next to the file
    g = m.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            inits[n.output[0]] = numpy_helper.to_array(_attr(n, "value", None))
    nodes = [n for n in g.node if n.op_type != "Constant"]

    layers, segment, seg_nodes, dims = [], [], [], []
    skip = set()
    for i, n in enumerate(nodes):
        if i in skip:
            continue
        if n.op_type in ("Gemm", "MatMul"):
            if n.op_type == "Gemm":
                if _attr(n, "transA", 0):
                    raise NotAnMLP(f"{path}: node '{n.name}' (Gemm) has transA=1")
                w = inits.get(n.input[1])
                if w is None:
                    raise NotAnMLP(f"{path}: node '{n.name}' (Gemm): weight is not an initializer")
                w = w * _attr(n, "alpha", 1.0)
                if not _attr(n, "transB", 0):
                    w = w.T
                b = inits.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
                if len(n.input) > 2 and n.input[2] and b is None:
                    raise NotAnMLP(f"{path}: node '{n.name}' (Gemm): bias is not an initializer")
                if b is not None:
                    b = b * _attr(n, "beta", 1.0)
            else:
                w = inits.get(n.input[1])
                if w is None or w.ndim != 2:
                    raise NotAnMLP(f"{path}: node '{n.name}' (MatMul): weight is not a 2-D "
                                   f"initializer")
                w = w.T
                b = None
                nxt = nodes[i + 1] if i + 1 < len(nodes) else None
                if nxt is not None and nxt.op_type == "Add" and n.output[0] in nxt.input:
                    other = [x for x in nxt.input if x != n.output[0]]
                    if other and other[0] in inits:
                        b = inits[other[0]]
                        skip.add(i + 1)
            if segment and not layers:
                raise NotAnMLP(f"{path}: nodes {', '.join(sorted(set(segment)))} come before the "
                               f"first Gemm/MatMul layer (first: '{seg_nodes[0].name}'); not an "
                               f"MLP")
            act = _activation(path, segment, seg_nodes, final=False)
            if act is not None:
                layers.append(act)
            out_f, in_f = w.shape
            lin = nn.Linear(in_f, out_f, bias=b is not None)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.array(w, dtype=np.float32, order="C")))
                if b is not None:
                    lin.bias.copy_(torch.from_numpy(np.array(b, dtype=np.float32).reshape(-1)))
            if dims and dims[-1] != in_f:
                raise NotAnMLP(f"{path}: node '{n.name}': {in_f} inputs after a layer of "
                               f"{dims[-1]} outputs")
            if not dims:
                dims.append(in_f)
            dims.append(out_f)
            layers.append(lin)
            segment, seg_nodes = [], []
        else:
            segment.append(n.op_type)
            seg_nodes.append(n)
    if not dims:
        raise NotAnMLP(f"{path}: no Gemm or MatMul layer")
    act = _activation(path, segment, seg_nodes, final=True)
    if act is not None:
        layers.append(act)
    desc = "-".join(str(d) for d in dims) + " " + ",".join(
        type(l).__name__ for l in layers if not isinstance(l, nn.Linear))
    return nn.Sequential(*layers).eval(), dims[0], dims[-1], desc


# ------------------------------------------------------------------ measuring

def percentiles_us(lat_s):
    if not lat_s:
        return None, None, None
    a = np.asarray(lat_s) * 1e6
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return round(float(p50), 1), round(float(p90), 1), round(float(p99), 1)


def warmup_s(duration):
    return min(0.3, max(0.05, 0.2 * duration))


def time_calls(call, duration):
    """Calls call() in a loop on this thread; returns (calls, seconds, latencies)."""
    t_end = time.perf_counter() + warmup_s(duration)
    for _ in range(3):
        call()
    while time.perf_counter() < t_end:
        call()
    lat = []
    t0 = time.perf_counter()
    t_end = t0 + duration
    now = t0
    while now < t_end:
        s = now
        call()
        now = time.perf_counter()
        lat.append(now - s)
    return len(lat), now - t0, lat


def run_threads(n_threads, make_worker, duration):
    """Runs n_threads threads, each calling its own worker() (which returns the
    samples it completed) in a loop, and returns samples/s: the samples of calls
    that completed inside the timed window, over the window. The window lasts
    `duration` seconds after a warm-up, longer if needed (up to 20x) until every
    thread has completed two calls in it, so that slow calls still count."""
    barrier = threading.Barrier(n_threads + 1)
    stop = threading.Event()
    done = [[] for _ in range(n_threads)]  # per thread: (completion time, samples)
    errors = []

    def body(k):
        try:
            with torch.inference_mode():  # thread-local: enter it in every thread
                worker = make_worker(k)
                worker()
                barrier.wait()
                log = done[k]
                while not stop.is_set():
                    n = worker()
                    log.append((time.perf_counter(), n))
        except Exception as e:  # report it; do not leave the others at the barrier
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=body, args=(k,), daemon=True) for k in range(n_threads)]
    for t in threads:
        t.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    start = time.perf_counter() + warmup_s(duration)
    end = start + duration
    if not errors:
        time.sleep(max(0.0, end - time.perf_counter()))
        while not errors and time.perf_counter() < start + 20 * duration and any(
                sum(1 for t, _ in log if t >= start) < 2 for log in done):
            time.sleep(0.01)
        end = max(end, time.perf_counter())
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    samples = sum(n for log in done for t, n in log if start <= t <= end)
    return samples / (end - start)


class Bench:
    def __init__(self, args):
        self.args = args
        self.dev = torch.device(args.device)
        self.cuda = self.dev.type == "cuda"
        self.model32, self.in_f, self.out_f, self.desc = load_mlp(args.model)
        self.model32 = self.model32.to(self.dev)
        self.half_dtype = torch.float16 if self.cuda else torch.bfloat16
        if getattr(args, "half", None):
            self.half_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[args.half]
        self._model_half = None

    def model_half(self):
        if self._model_half is None:
            import copy
            self._model_half = copy.deepcopy(self.model32).to(self.half_dtype)
        return self._model_half

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def host_input(self, b, dtype=torch.float32, pin=False):
        x = torch.randn(b, self.in_f, dtype=torch.float32).to(dtype)
        return x.pin_memory() if pin and self.cuda else x

    # one host-to-host call: copy in, run, copy out
    def forward(self, model, x_host, dtype=torch.float32):
        x = x_host.to(self.dev, non_blocking=True)
        if dtype != torch.float32:
            x = x.to(dtype)
        y = model(x)
        if dtype != torch.float32:
            y = y.float()
        return y

    def make_loop(self, model, b, depth, dtype, device_sync):
        """A worker: issue `depth` batches of b samples, then sync once and copy
        every output back to the host (depth 1: the plain call)."""
        x_host = self.host_input(b)

        def worker():
            ys = [self.forward(model, x_host, dtype) for _ in range(depth)]
            if device_sync:
                self.sync()
            for y in ys:
                y.cpu()
            return b * depth

        return worker

    # ---- sweep: one thread, batch b, fp32
    def sweep(self):
        out = []
        for b in self.args.batch_sizes:
            x_host = self.host_input(b)
            with torch.inference_mode():
                def call():
                    self.forward(self.model32, x_host).cpu()
                    self.sync()
                n, secs, lat = time_calls(call, self.args.duration)
            p50, p90, p99 = percentiles_us(lat)
            out.append({"batch": b, "samples_per_s": round(n * b / secs, 1), "p50_us": p50,
                        "p90_us": p90, "p99_us": p99})
            note(f"  sweep batch {b:>6}: {n * b / secs:>14,.0f} samples/s")
        return out

    # ---- threading: N threads, each batch 1 in a loop
    def threading_cmp(self):
        out = []
        for t in self.args.threads:
            sps = run_threads(t, lambda k: self.make_loop(self.model32, 1, 1, torch.float32,
                                                           False), self.args.duration)
            out.append({"threads": t, "batch": 1, "samples_per_s": round(sps, 1)})
            note(f"  threading {t:>3} threads x batch 1: {sps:>12,.0f} samples/s")
        return out

    # ---- the optimization stack of the seed, step by step
    def stack(self):
        n = self.args.stack_threads
        half = "fp16" if self.cuda else "bf16"
        steps = [
            (STACK_STEPS[0], f"{n} threads x batch 1, fp32, device sync per call",
             lambda: run_threads(n, lambda k: self.make_loop(self.model32, 1, 1, torch.float32,
                                                             True), self.args.duration)),
            (STACK_STEPS[1], "2 threads x batch 32, fp32, device sync per call",
             lambda: run_threads(2, lambda k: self.make_loop(self.model32, 32, 1, torch.float32,
                                                             True), self.args.duration)),
            (STACK_STEPS[2], "2 threads x batch 32, fp32, 8 batches in flight per sync",
             lambda: run_threads(2, lambda k: self.make_loop(self.model32, 32, 8, torch.float32,
                                                             True), self.args.duration)),
            (STACK_STEPS[3], f"2 threads x batch 32, {half}, 8 batches in flight per sync",
             self.stack_half),
            (STACK_STEPS[4], "2 threads x batch 32, fp16, 8 in flight, CUDA graph per slot, "
                           "pinned host buffers, stream sync", self.stack_graph),
        ]
        out, last, base = [], None, None
        for name, config, fn in steps:
            skipped, sps = None, None
            try:
                sps = fn()
            except Skip as e:
                skipped = str(e)
            except (RuntimeError, NotImplementedError) as e:
                skipped = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            if sps is not None:
                base = base or sps
                gain = sps / last if last else 1.0
                last = sps
            entry = {"step": name, "config": config,
                     "samples_per_s": None if sps is None else round(sps, 1),
                     "gain": None if sps is None else round(gain, 3),
                     "cumulative": None if sps is None else round(sps / base, 3),
                     "skipped": skipped}
            out.append(entry)
            note(f"  stack {name:<22}: " + (f"{sps:>12,.0f} samples/s" if sps is not None
                                             else f"skipped: {skipped}"))
        return out

    def stack_half(self):
        model = self.model_half()
        with torch.inference_mode():  # does this build run the model in half precision?
            self.forward(model, self.host_input(2), self.half_dtype).cpu()
        return run_threads(2, lambda k: self.make_loop(model, 32, 8, self.half_dtype, True),
                           self.args.duration)

    def capture(self, model, x_dev, stream):
        """A CUDA graph of y = model(x_dev) captured on stream; returns (graph, y)."""
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm up on the capture stream, as torch recommends
                model(x_dev)
        stream.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=stream):
            y = model(x_dev)
        return g, y

    def stack_graph(self):
        if not self.cuda:
            raise Skip("CUDA graphs need --device cuda")
        model = self.model_half()
        depth, b = 8, 32
        per_thread = []
        with torch.inference_mode():
            for _ in range(2):  # capture on this thread, before the workers start
                s = torch.cuda.Stream()
                slots = []
                for _ in range(depth):
                    x_dev = torch.zeros(b, self.in_f, device=self.dev)
                    g, y = self.capture(lambda x: model(x.half()).float(), x_dev, s)
                    slots.append((x_dev, g, y, torch.empty(b, self.out_f).pin_memory()))
                per_thread.append((s, slots, self.host_input(b, pin=True)))
        torch.cuda.synchronize()

        def make_worker(k):
            s, slots, x_host = per_thread[k]

            def worker():
                with torch.cuda.stream(s):
                    for x_dev, g, y, out_host in slots:
                        x_dev.copy_(x_host, non_blocking=True)
                        g.replay()
                        out_host.copy_(y, non_blocking=True)
                s.synchronize()
                return b * depth

            return worker

        return run_threads(2, make_worker, self.args.duration)

    # ---- the Python dynamic batcher of the seed, closed loop
    def batcher(self):
        out = []
        for c in self.args.concurrency:
            r = self.batcher_point(c)
            out.append(r)
            note(f"  batcher {c:>5} clients: {fmt(r['requests_per_s']):>10} req/s, "
                 f"p50 {fmt(r['p50_us'])} us, p99 {fmt(r['p99_us'])} us, "
                 f"mean batch {fmt(r['mean_batch'], '.1f')}")
        return out

    def batcher_point(self, clients):
        max_batch, max_delay = self.args.max_batch, self.args.max_delay_us * 1e-6
        q = queue.SimpleQueue()
        stop_clients = threading.Event()
        stop_batcher = threading.Event()
        batches = []  # (time, size)
        model = self.model32

        def batcher_thread():
            with torch.inference_mode():
                while not stop_batcher.is_set():
                    try:
                        first = q.get(timeout=0.05)
                    except queue.Empty:
                        continue
                    batch = [first]
                    deadline = time.perf_counter() + max_delay
                    while len(batch) < max_batch:
                        try:
                            batch.append(q.get_nowait())
                            continue
                        except queue.Empty:
                            pass
                        left = deadline - time.perf_counter()
                        if left <= 0:
                            break
                        try:
                            batch.append(q.get(timeout=left))
                        except queue.Empty:
                            break
                    x = torch.cat([r[0] for r in batch])
                    y = self.forward(model, x).cpu()
                    for i, r in enumerate(batch):
                        r[2][0] = y[i]
                        r[1].release()  # completes the client's future
                    batches.append((time.perf_counter(), len(batch)))

        results = [None] * clients

        def client(k):
            x = torch.randn(1, self.in_f)
            lock = threading.Lock()
            slot = [None]
            done = []
            while not stop_clients.is_set():
                lock.acquire()
                t0 = time.perf_counter()
                q.put((x, lock, slot))
                lock.acquire()  # released by the batcher once slot holds the answer
                lock.release()
                t1 = time.perf_counter()
                done.append((t1, t1 - t0))
            results[k] = done

        old_stack = threading.stack_size()
        threading.stack_size(512 * 1024)
        try:
            bt = threading.Thread(target=batcher_thread, daemon=True)
            bt.start()
            cts = [threading.Thread(target=client, args=(k,), daemon=True)
                   for k in range(clients)]
            for t in cts:
                t.start()
        finally:
            threading.stack_size(old_stack)
        t_start = time.perf_counter() + warmup_s(self.args.duration)
        t_end = t_start + self.args.duration
        time.sleep(max(0.0, t_end - time.perf_counter()))
        stop_clients.set()
        for t in cts:
            t.join()
        stop_batcher.set()
        bt.join()
        lat = [l for r in results for (t, l) in r if t_start <= t <= t_end]
        sizes = [s for (t, s) in batches if t_start <= t <= t_end]
        p50, _, p99 = percentiles_us(lat)
        return {"concurrency": clients, "requests_per_s": round(len(lat) / self.args.duration, 1),
                "p50_us": p50, "p99_us": p99,
                "mean_batch": round(float(np.mean(sizes)), 2) if sizes else None}

    # ---- the GPU table: fp16, pinned fp16 host buffers, CUDA graph
    def gpu_best(self):
        if not self.cuda:
            note("  gpu-best: skipped (needs --device cuda)")
            return []
        model = self.model_half()
        out = []
        for b in self.args.gpu_best_batches:
            with torch.inference_mode():
                s = torch.cuda.Stream()
                x_dev = torch.zeros(b, self.in_f, device=self.dev, dtype=self.half_dtype)
                g, y = self.capture(model, x_dev, s)
                x_host = self.host_input(b, self.half_dtype, pin=True)
                y_host = torch.empty(b, self.out_f, dtype=self.half_dtype).pin_memory()

                def call():
                    with torch.cuda.stream(s):
                        x_dev.copy_(x_host, non_blocking=True)
                        g.replay()
                        y_host.copy_(y, non_blocking=True)
                    s.synchronize()
                n, secs, lat = time_calls(call, self.args.duration)
                del g, y, x_dev
            p50, p90, p99 = percentiles_us(lat)
            out.append({"batch": b, "precision": str(self.half_dtype).replace("torch.", ""), "samples_per_s": round(n * b / secs, 1),
                        "p50_us": p50, "p90_us": p90, "p99_us": p99})
            note(f"  gpu-best batch {b:>6}: {n * b / secs:>14,.0f} samples/s")
            torch.cuda.empty_cache()
        return out


class Skip(Exception):
    pass


# ------------------------------------------------------------------ report

def device_name(dev):
    if dev.type == "cuda":
        return f"cuda:{torch.cuda.current_device()} {torch.cuda.get_device_name()}"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"cpu {name} ({torch.get_num_threads()} torch threads)"


def fmt(x, spec=",.0f"):
    return "-" if x is None else format(x, spec)


def print_report(r, args):
    print(f"PyTorch {r['version']} on {r['device']}")
    print(f"model {r['model']} ({r['model_desc']})")
    if r["sweep"]:
        print("\nbatch-size sweep (1 thread, fp32, host to host)")
        head = f"{'batch':>7} {'samples/s':>14}"
        if args.latency:
            head += f" {'p50 us':>10} {'p90 us':>10} {'p99 us':>10}"
        print(head)
        for e in r["sweep"]:
            line = f"{e['batch']:>7} {fmt(e['samples_per_s']):>14}"
            if args.latency:
                line += (f" {fmt(e['p50_us'], ',.1f'):>10} {fmt(e['p90_us'], ',.1f'):>10}"
                         f" {fmt(e['p99_us'], ',.1f'):>10}")
            print(line)
    if r["threading"]:
        print("\nthreading (N threads, each batch 1) vs batching (1 thread, batch N)")
        by_batch = {e["batch"]: e["samples_per_s"] for e in r["sweep"]}
        print(f"{'N':>5} {'threading':>14} {'batching':>14} {'ratio':>7}")
        for e in r["threading"]:
            bat = by_batch.get(e["threads"])
            ratio = f"{bat / e['samples_per_s']:.1f}x" if bat and e["samples_per_s"] else "-"
            print(f"{e['threads']:>5} {fmt(e['samples_per_s']):>14} {fmt(bat):>14} {ratio:>7}")
    if r["stack"]:
        print("\noptimization stack")
        print(f"{'step':<22} {'samples/s':>14} {'gain':>7} {'cumul.':>8}  config")
        for e in r["stack"]:
            if e["skipped"]:
                print(f"{e['step']:<22} {'skipped':>14} {'':>7} {'':>8}  {e['skipped']}")
            else:
                print(f"{e['step']:<22} {fmt(e['samples_per_s']):>14} {e['gain']:>6.2f}x "
                      f"{e['cumulative']:>7.2f}x  {e['config']}")
    if r["batcher"]:
        print(f"\nPython dynamic batcher (max_batch {args.max_batch}, max_delay "
              f"{args.max_delay_us:g} us), closed loop, 1 sample per request")
        print(f"{'clients':>8} {'req/s':>12} {'p50 us':>10} {'p99 us':>11} {'mean batch':>11}")
        for e in r["batcher"]:
            print(f"{e['concurrency']:>8} {fmt(e['requests_per_s']):>12} "
                  f"{fmt(e['p50_us']):>10} {fmt(e['p99_us']):>11} "
                  f"{fmt(e['mean_batch'], '.1f'):>11}")
    if r["gpu_best"]:
        print("\nGPU best (fp16, pinned fp16 host buffers, CUDA graph, host to host)")
        print(f"{'batch':>7} {'samples/s':>16} {'p50 us':>10} {'p99 us':>10}")
        for e in r["gpu_best"]:
            print(f"{e['batch']:>7} {fmt(e['samples_per_s']):>16} {fmt(e['p50_us'], ',.1f'):>10}"
                  f" {fmt(e['p99_us'], ',.1f'):>10}")


def int_list(s):
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{s}'")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="The PyTorch side of `ferry bench`.")
    ap.add_argument("--model", required=True, help="ONNX MLP (Gemm/MatMul layers)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch-sizes", type=int_list, default=[1, 4, 8, 16, 32, 256],
                    help="sweep batch sizes (default 1,4,8,16,32,256; '' for no sweep)")
    ap.add_argument("--latency", action="store_true", help="print p50/p90/p99 per batch size")
    ap.add_argument("--compare-threading", action="store_true",
                    help="N threads each running batch 1 in a loop")
    ap.add_argument("--threads", type=int_list, default=None,
                    help="thread counts N for --compare-threading (default: every sweep batch "
                         "size up to 64, as ferry bench does); the largest is the stack "
                         "baseline's N (default 8)")
    ap.add_argument("--stack", action="store_true", help="the seed's optimization stack")
    ap.add_argument("--batcher", action="store_true", help="Python dynamic batcher, closed loop")
    ap.add_argument("--concurrency", type=int_list, default=[1, 16, 64, 256, 1024],
                    help="batcher client threads (default 1,16,64,256,1024)")
    ap.add_argument("--max-batch", type=int, default=256, help="batcher max batch (256)")
    ap.add_argument("--max-delay-us", type=float, default=500.0,
                    help="batcher max delay in us (500)")
    ap.add_argument("--gpu-best", action="store_true",
                    help="fp16 + pinned + CUDA graph at batch 256, 4096, 65536 (CUDA only)")
    ap.add_argument("--gpu-best-batches", type=int_list, default=[256, 4096, 65536],
                    help="batch sizes of --gpu-best (default 256,4096,65536)")
    ap.add_argument("--half", choices=["fp16", "bf16"], default=None,
                    help="reduced precision for the stack and --gpu-best (cuda: fp16)")
    ap.add_argument("--duration", type=float, default=1.0, help="seconds per point (1.0)")
    ap.add_argument("--torch-threads", type=int, default=0,
                    help="torch intra-op threads (default: all cores)")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    if args.threads is not None and (not args.threads or min(args.threads) < 1):
        ap.error("--threads: need positive thread counts")
    args.stack_threads = max(args.threads) if args.threads else 8
    if args.threads is None:
        args.threads = [b for b in args.batch_sizes if b <= 64] or [8]
    return args


def main(argv=None):
    global QUIET
    args = parse_args(argv)
    QUIET = args.quiet
    torch.set_num_threads(args.torch_threads or os.cpu_count() or 1)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, as in Ferry
        torch.backends.cudnn.allow_tf32 = False
    try:
        bench = Bench(args)
    except Exception as e:  # not an MLP, unreadable, not ONNX: say why, no traceback
        print(f"torch_reference.py: {e}", file=sys.stderr)
        return 2
    r = {"impl": "pytorch", "version": torch.__version__, "device": device_name(bench.dev),
         "model": args.model, "model_desc": bench.desc,
         "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
         "options": {"duration_s": args.duration, "torch_threads": torch.get_num_threads(),
                     "max_batch": args.max_batch, "max_delay_us": args.max_delay_us},
         "sweep": [], "threading": [], "stack": [], "batcher": [], "gpu_best": []}
    # the threading comparison wants batching at the same N
    if args.compare_threading and args.batch_sizes:
        args.batch_sizes = sorted(set(args.batch_sizes) | set(args.threads))
    if args.batch_sizes:
        r["sweep"] = bench.sweep()
    if args.compare_threading:
        r["threading"] = bench.threading_cmp()
    if args.stack:
        r["stack"] = bench.stack()
    if args.batcher:
        r["batcher"] = bench.batcher()
    if args.gpu_best:
        r["gpu_best"] = bench.gpu_best()
    print_report(r, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
