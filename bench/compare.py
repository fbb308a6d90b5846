#!/usr/bin/python3
"""Ferry and PyTorch side by side, in one run, on the same model and weights.

    compare.py --model mlp-s.onnx [--ferry build/ferry] [--device cpu|cuda]
        [--batch-sizes 1,4,8,16,32,256] [--latency] [--compare-threading] [--stack]
        [--batcher --concurrency 1,16,64,256,1024] [--gpu-best] [--duration 1.0]
        [--ort] [--json combined.json]

Runs `ferry bench MODEL ... --json A`, then bench/torch_reference.py with the
same options (one after the other, never at once: they would share the
machine), and prints each section with the ratio ferry/pytorch. --gpu-best adds
a second ferry run (fp16, f16 host tensors, CUDA graphs) to set against
PyTorch's fp16 + pinned + CUDA graph figures. With no section
named, runs --compare-threading and --stack, as ferry bench does. --ferry-json
and --torch-json reuse results already measured instead of running the tools.
--ort adds ONNX Runtime (bench/ort_reference.py, the same file through its
default session) as a third column of the sweep and threading tables.
The numbers in BENCHMARKS.md come from this script.
"""
import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def int_list(s):
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{s}'")


def csv(xs):
    return ",".join(str(x) for x in xs)


def run(cmd, what):
    print(f"compare.py: running {what}: {' '.join(shlex.quote(c) for c in cmd)}",
          file=sys.stderr, flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout)
        raise SystemExit(f"compare.py: {what} failed (exit status {p.returncode})")
    return p.stdout


def load(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"compare.py: {what} JSON '{path}': {e}")


def ferry_cmd(a, out):
    cmd = [a.ferry, "bench", a.model, "--device", a.device, "--duration", str(a.duration),
           "--json", out, "--quiet", "--sweep"]  # sections only as asked, like torch_reference
    if a.batch_sizes:
        cmd += ["--batch-sizes", csv(a.batch_sizes)]
    for flag in ("compare_threading", "stack", "latency", "batcher"):
        if getattr(a, flag):
            cmd.append("--" + flag.replace("_", "-"))
    if a.batcher:
        cmd += ["--concurrency", csv(a.concurrency)]
    if a.threads:
        cmd += ["--threads", csv(a.threads)]
    return cmd + shlex.split(a.ferry_args)


def ferry_gpu_best_cmd(a, out):
    """ferry's counterpart of torch_reference.py --gpu-best: a sweep in fp16 with f16 host
    tensors and CUDA graphs; --sweep keeps ferry bench from adding threading and the stack."""
    return [a.ferry, "bench", a.model, "--device", a.device, "--duration", str(a.duration),
            "--json", out, "--quiet", "--batch-sizes", csv(a.gpu_best_batches), "--precision",
            "fp16", "--io-dtype", "f16", "--graphs", "--latency", "--sweep"] + shlex.split(a.ferry_args)


def torch_cmd(a, out):
    cmd = [sys.executable, os.path.join(HERE, "torch_reference.py"), "--model", a.model,
           "--device", a.device, "--duration", str(a.duration), "--json", out, "--quiet",
           "--batch-sizes", csv(a.batch_sizes)]
    for flag in ("compare_threading", "stack", "latency", "batcher", "gpu_best"):
        if getattr(a, flag):
            cmd.append("--" + flag.replace("_", "-"))
    if a.batcher:
        cmd += ["--concurrency", csv(a.concurrency)]
    if a.gpu_best:
        cmd += ["--gpu-best-batches", csv(a.gpu_best_batches)]
    if a.threads:
        cmd += ["--threads", csv(a.threads)]
    return cmd + shlex.split(a.torch_args)


def ort_cmd(a, out):
    cmd = [sys.executable, os.path.join(HERE, "ort_reference.py"), "--model", a.model,
           "--device", a.device, "--duration", str(a.duration), "--json", out, "--quiet",
           "--batch-sizes", csv(a.batch_sizes)]
    if a.compare_threading:
        cmd.append("--compare-threading")
    if a.threads:
        cmd += ["--threads", csv(a.threads)]
    return cmd + shlex.split(a.ort_args)


# ------------------------------------------------------------------ tables

def num(x, spec=",.0f"):
    return "-" if x is None else format(x, spec)


def ratio(f, t):
    if f is None or t is None or t == 0:
        return None
    return f / t


def rfmt(r):
    return "-" if r is None else f"{r:.2f}x"


def by_key(rows, key):
    return {r.get(key): r for r in rows or []}


def ort_cols(O, key, k, f):
    """The onnxruntime columns of a row (empty without --ort)."""
    if O is None:
        return ""
    o = by_key(O.get(key), k[0]).get(k[1], {}).get("samples_per_s")
    return f" {num(o):>14} {rfmt(ratio(f, o)):>9}"


def ort_head(O):
    return "" if O is None else f" {'onnxruntime':>14} {'f/ort':>9}"


def sweep_table(F, T, latency, O=None):
    fr, tr = by_key(F.get("sweep"), "batch"), by_key(T.get("sweep"), "batch")
    keys = sorted(set(fr) | set(tr))
    out = []
    if not keys:
        return out
    print("\nbatch-size sweep: one caller, batch b, fp32, host to host (samples/s)")
    head = f"{'batch':>7} {'ferry':>14} {'pytorch':>14} {'ratio':>9}" + ort_head(O)
    if latency:
        head += f"   {'p50 us f/pt':>17} {'p99 us f/pt':>19}"
    print(head)
    for b in keys:
        f, t = fr.get(b, {}), tr.get(b, {})
        r = ratio(f.get("samples_per_s"), t.get("samples_per_s"))
        line = f"{b:>7} {num(f.get('samples_per_s')):>14} {num(t.get('samples_per_s')):>14} " \
               f"{rfmt(r):>9}" + ort_cols(O, "sweep", ("batch", b), f.get("samples_per_s"))
        if latency:
            line += f"   {num(f.get('p50_us'), ',.1f'):>8}/{num(t.get('p50_us'), ',.1f'):<8}" \
                    f" {num(f.get('p99_us'), ',.1f'):>9}/{num(t.get('p99_us'), ',.1f'):<9}"
        print(line)
        row = {"batch": b, "ferry": f.get("samples_per_s"),
               "pytorch": t.get("samples_per_s"), "ratio": r}
        if O is not None:
            row["onnxruntime"] = by_key(O.get("sweep"), "batch").get(b, {}).get("samples_per_s")
        out.append(row)
    return out


def threading_table(F, T, O=None):
    fr, tr = by_key(F.get("threading"), "threads"), by_key(T.get("threading"), "threads")
    keys = sorted(set(fr) | set(tr))
    out = []
    if not keys:
        return out
    print("\nthreading: N callers, each batch 1 (samples/s)")
    print(f"{'threads':>7} {'ferry':>14} {'pytorch':>14} {'ratio':>9}" + ort_head(O))
    for n in keys:
        f = fr.get(n, {}).get("samples_per_s")
        t = tr.get(n, {}).get("samples_per_s")
        r = ratio(f, t)
        print(f"{n:>7} {num(f):>14} {num(t):>14} {rfmt(r):>9}" +
              ort_cols(O, "threading", ("threads", n), f))
        row = {"threads": n, "ferry": f, "pytorch": t, "ratio": r}
        if O is not None:
            row["onnxruntime"] = by_key(O.get("threading"), "threads").get(n, {}).get(
                "samples_per_s")
        out.append(row)
    return out


def stack_table(F, T):
    fs, ts = F.get("stack") or [], T.get("stack") or []
    out = []
    if not fs and not ts:
        return out
    tmap = by_key(ts, "step")
    print("\noptimization stack (samples/s; cumulative gain over each tool's own baseline)")
    print(f"{'step':<24} {'ferry':>14} {'pytorch':>14} {'ratio':>9} {'cumul. f':>9} "
          f"{'cumul. pt':>9}")
    for i in range(max(len(fs), len(ts))):
        f = fs[i] if i < len(fs) else {}
        # match by step name; fall back to position
        t = tmap.get(f.get("step")) or (ts[i] if i < len(ts) else {})
        step = f.get("step") or t.get("step")
        fv, tv = f.get("samples_per_s"), t.get("samples_per_s")
        r = ratio(fv, tv)
        fcol = num(fv) if not f.get("skipped") else "skipped"
        tcol = num(tv) if not t.get("skipped") else "skipped"
        print(f"{step:<24} {fcol:>14} {tcol:>14} {rfmt(r):>9} {rfmt(f.get('cumulative')):>9} "
              f"{rfmt(t.get('cumulative')):>9}")
        for who, row in (("ferry", f), ("pytorch", t)):
            if row.get("skipped"):
                print(f"{'':<24}   {who} skipped: {row['skipped'][:100]}")
        out.append({"step": step, "ferry": fv, "pytorch": tv, "ratio": r,
                    "ferry_config": f.get("config"), "pytorch_config": t.get("config")})
    return out


def batcher_table(F, T):
    fr, tr = by_key(F.get("batcher"), "concurrency"), by_key(T.get("batcher"), "concurrency")
    keys = sorted(set(fr) | set(tr))
    out = []
    if not keys:
        return out
    print("\ndynamic batcher, closed loop: C clients, one single-sample request each")
    print(f"{'clients':>7} {'ferry req/s':>13} {'pytorch req/s':>14} {'ratio':>9} "
          f"{'p99 us ferry':>13} {'p99 us pt':>11} {'batch f':>8} {'batch pt':>8}")
    for c in keys:
        f, t = fr.get(c, {}), tr.get(c, {})
        r = ratio(f.get("requests_per_s"), t.get("requests_per_s"))
        print(f"{c:>7} {num(f.get('requests_per_s')):>13} {num(t.get('requests_per_s')):>14} "
              f"{rfmt(r):>9} {num(f.get('p99_us')):>13} {num(t.get('p99_us')):>11} "
              f"{num(f.get('mean_batch'), '.1f'):>8} {num(t.get('mean_batch'), '.1f'):>8}")
        out.append({"concurrency": c, "ferry": f.get("requests_per_s"),
                    "pytorch": t.get("requests_per_s"), "ratio": r,
                    "ferry_p99_us": f.get("p99_us"), "pytorch_p99_us": t.get("p99_us")})
    return out


def gpu_best_table(G, T):
    """G: ferry's fp16 + f16 io + graphs sweep (None when not run)."""
    rows = T.get("gpu_best") or []
    if not rows:
        return []
    fr = by_key((G or {}).get("sweep"), "batch")
    print("\nGPU best, host to host: fp16, f16 host tensors, CUDA graphs (PyTorch: pinned)")
    print(f"{'batch':>7} {'ferry':>16} {'pytorch':>16} {'ratio':>9} {'p99 us f':>10} "
          f"{'p99 us pt':>10}")
    out = []
    for t in rows:
        f = fr.get(t["batch"], {})
        r = ratio(f.get("samples_per_s"), t.get("samples_per_s"))
        print(f"{t['batch']:>7} {num(f.get('samples_per_s')):>16} "
              f"{num(t.get('samples_per_s')):>16} {rfmt(r):>9} {num(f.get('p99_us')):>10} "
              f"{num(t.get('p99_us')):>10}")
        out.append({"batch": t["batch"], "ferry": f.get("samples_per_s"),
                    "pytorch": t.get("samples_per_s"), "ratio": r})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="ferry bench and PyTorch side by side")
    ap.add_argument("--model", default="build/models/mlp-s.onnx")
    ap.add_argument("--ferry", default="build/ferry", help="the ferry binary (build/ferry)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if torch sees "
                                                   "one, else cpu)")
    ap.add_argument("--batch-sizes", type=int_list, default=[1, 4, 8, 16, 32, 256])
    ap.add_argument("--latency", action="store_true")
    ap.add_argument("--compare-threading", action="store_true")
    ap.add_argument("--threads", type=int_list, default=None,
                    help="threading N list (default: sweep sizes up to 64, as ferry bench)")
    ap.add_argument("--stack", action="store_true")
    ap.add_argument("--batcher", action="store_true")
    ap.add_argument("--concurrency", type=int_list, default=[1, 16, 64, 256, 1024])
    ap.add_argument("--gpu-best", action="store_true",
                    help="both at their best on the GPU: fp16, half-precision host tensors, "
                         "CUDA graphs, at --gpu-best-batches")
    ap.add_argument("--gpu-best-batches", type=int_list, default=[256, 4096, 65536])
    ap.add_argument("--ferry-gpu-best-json", help="use these ferry --gpu-best results")
    ap.add_argument("--duration", type=float, default=1.0, help="seconds per point")
    ap.add_argument("--ferry-args", default="", help="more options for ferry bench")
    ap.add_argument("--torch-args", default="", help="more options for torch_reference.py")
    ap.add_argument("--ferry-json", help="use these ferry results instead of running it")
    ap.add_argument("--torch-json", help="use these PyTorch results instead of running it")
    ap.add_argument("--ort", action="store_true",
                    help="also ONNX Runtime (bench/ort_reference.py) in the sweep and "
                         "threading tables, run third")
    ap.add_argument("--ort-args", default="", help="more options for ort_reference.py")
    ap.add_argument("--json", metavar="FILE", help="write both results and the ratios")
    a = ap.parse_args(argv)
    if not (a.compare_threading or a.stack or a.batcher):
        a.compare_threading = a.stack = True
    if a.device is None:
        try:
            import torch
            a.device = "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            a.device = "cpu"

    with tempfile.TemporaryDirectory(prefix="ferry-compare-") as tmp:
        if a.ferry_json:
            F = load(a.ferry_json, "ferry")
        else:
            out = os.path.join(tmp, "ferry.json")
            run(ferry_cmd(a, out), "ferry bench")
            F = load(out, "ferry")
        G = None
        if a.ferry_gpu_best_json:
            G = load(a.ferry_gpu_best_json, "ferry gpu-best")
        elif a.gpu_best and not a.ferry_json:
            out = os.path.join(tmp, "ferry-gpu-best.json")
            run(ferry_gpu_best_cmd(a, out), "ferry bench (gpu best)")
            G = load(out, "ferry gpu-best")
        if a.torch_json:
            T = load(a.torch_json, "pytorch")
        else:
            out = os.path.join(tmp, "pytorch.json")
            run(torch_cmd(a, out), "torch_reference.py")
            T = load(out, "pytorch")
        O = None
        if a.ort:
            out = os.path.join(tmp, "ort.json")
            run(ort_cmd(a, out), "ort_reference.py")
            O = load(out, "onnxruntime")

    print(f"model   {a.model}")
    print(f"ferry   {F.get('version')} on {F.get('device')}")
    print(f"pytorch {T.get('version')} on {T.get('device')}")
    if O is not None:
        print(f"onnxruntime {O.get('version')} on {O.get('device')}")
    print("ratio = ferry / pytorch (above 1: ferry is faster)")
    ratios = {
        "sweep": sweep_table(F, T, a.latency, O),
        "threading": threading_table(F, T, O),
        "stack": stack_table(F, T),
        "batcher": batcher_table(F, T),
        "gpu_best": gpu_best_table(G, T),
    }
    if a.json:
        combined = {"date": datetime.datetime.now(datetime.timezone.utc)
                    .isoformat(timespec="seconds"),
                    "model": a.model, "device": a.device, "duration_s": a.duration,
                    "ferry": F, "ferry_gpu_best": G, "pytorch": T, "onnxruntime": O,
                    "ratios": ratios}
        with open(a.json, "w") as f:
            json.dump(combined, f, indent=2)
            f.write("\n")
        print(f"\nwrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
