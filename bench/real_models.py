#!/usr/bin/env python3
"""Real models (bench/models.py) on the CPU: ONNX Runtime, PyTorch and, when
given, Ferry, on the same ONNX files and weights.

    .venv/bin/python bench/real_models.py [--models DIR] [--only NAME,...]
        [--batch-sizes 1,32] [--duration 2.0] [--repeats 3] [--threads 2]
        [--ferry build/ferry] [--ferry-base OTHER/ferry] [--no-jit] [--json OUT.json]

Run with .venv/bin/python (make venv): onnxruntime comes from PyPI, torch and
numpy from Debian. Exports the models to DIR (default bench/real-models, not
in git) when missing or older than their definitions.

Columns, each samples/s at batch b, one caller, inputs in host memory:
  ort        onnxruntime InferenceSession, CPUExecutionProvider,
             intra_op_num_threads=T, inter_op_num_threads=1, sequential,
             ORT_ENABLE_ALL
  torch      the same nn.Module (bench/models.py build()), torch.set_num_threads(T),
             torch.inference_mode
  torch_jit  torch.jit.trace + torch.jit.freeze of it (--no-jit: skipped)
  ferry      `ferry bench MODEL --device cpu --sweep --batch-sizes b --json`
             (--ferry PATH); a model Ferry cannot load or feed yet shows n/a,
             and the JSON keeps Ferry's message
  ferry_base the same with --ferry-base PATH (another build, for a before/after
             in one run): its runs alternate with ferry's, one each
  --interleave: ORT's runs alternate with Ferry's too (ORT, ferry[, ferry_base],
             ORT, ...), and each Ferry run is also given over the ORT run before it
Each row: a warm-up, then --repeats runs of --duration seconds each; the
median and the spread (min..max) of the repeats. The JSON also records the
machine (cores, load average before and after: this machine may be shared).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import models as bm  # noqa: E402


def note(msg):
    print(msg, file=sys.stderr, flush=True)


def rate(call, batch, duration, repeats):
    """samples/s of call() (batch samples each): warm-up of max(3 calls, 0.2 *
    duration), then repeats runs of duration seconds; returns the list of rates."""
    call()
    t_end = time.perf_counter() + 0.2 * duration
    n = 1
    while n < 3 or time.perf_counter() < t_end:
        call()
        n += 1
    rates = []
    for _ in range(repeats):
        calls, t0 = 0, time.perf_counter()
        now = t0
        while now < t0 + duration or calls == 0:
            call()
            calls += 1
            now = time.perf_counter()
        rates.append(calls * batch / (now - t0))
    return rates


def summary(rates):
    if not rates:
        return None
    return {"samples_per_s": float(np.median(rates)), "min": float(min(rates)),
            "max": float(max(rates)), "repeats": [round(r, 2) for r in rates]}


def ort_session(path, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ferry_help(cli):
    try:
        p = subprocess.run([cli, "bench", "--help"], capture_output=True, text=True, timeout=30)
    except OSError as e:
        return f"cannot run {cli}: {e}"
    return p.stdout + p.stderr


def ferry_rates(cli, path, batch, duration, repeats, threads, input_files):
    """`ferry bench` on one model and batch size, repeats times; (rates, error).
    Inputs: where `ferry bench --help` lists --input NAME=FILE.npy (the
    multi-input / int64 support the lead is adding), the same .npy files the
    other columns use are passed; otherwise ferry bench makes its own."""
    help_text = ferry_help(cli)
    args = [cli, "bench", path, "--device", "cpu", "--sweep", "--batch-sizes", str(batch),
            "--duration", str(duration), "--quiet"]
    if re.search(r"--repeat\b", help_text):  # the runs are repeated here, interleaved
        args += ["--repeat", "1"]
    if re.search(r"--workers\b", help_text):
        args += ["--workers", str(threads)]
    if re.search(r"--input\b", help_text):
        for name, f in input_files.items():
            args += ["--input", f"{name}={f}"]
    rates = []
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "f.json")
        for _ in range(repeats):
            p = subprocess.run(args + ["--json", out], capture_output=True, text=True,
                               timeout=600)
            if p.returncode != 0:
                msg = (p.stderr.strip() or p.stdout.strip()).splitlines()
                return rates, f"rc {p.returncode}: {msg[-1] if msg else ''} ({shlex.join(args)})"
            with open(out) as f:
                r = json.load(f)
            row = [e for e in r.get("sweep", []) if e.get("batch") == batch]
            if not row:
                return rates, f"no batch {batch} in ferry's sweep"
            rates.append(float(row[0]["samples_per_s"]))
    return rates, None


def bench_model(name, path, args, batch_sizes):
    rows = []
    module = bm.build(name)
    sess = None
    if not args.no_ort:
        sess = ort_session(path, args.threads)
    for b in batch_sizes:
        xs = bm.make_inputs(name, b)
        ts = tuple(torch.from_numpy(x) for x in xs)
        feed = {s["name"]: x for s, x in zip(bm.MODELS[name][1], xs)}
        row = {"model": name, "batch": b}
        if sess is not None and not (args.interleave and args.ferry):
            note(f"{name} b={b}: onnxruntime")
            row["ort"] = summary(rate(lambda: sess.run(None, feed), b, args.duration,
                                      args.repeats))
        if not args.no_torch:
            note(f"{name} b={b}: pytorch eager")
            with torch.inference_mode():
                row["torch"] = summary(rate(lambda: module(*ts), b, args.duration,
                                            args.repeats))
            if not args.no_jit:
                note(f"{name} b={b}: pytorch jit.trace + freeze")
                try:
                    with torch.no_grad():
                        jm = torch.jit.freeze(torch.jit.trace(module, ts, check_trace=False))
                    with torch.inference_mode():
                        row["torch_jit"] = summary(rate(lambda: jm(*ts), b, args.duration,
                                                        args.repeats))
                except Exception as e:  # noqa: BLE001 - a column, not the run
                    row["torch_jit"] = None
                    row["torch_jit_error"] = str(e).splitlines()[0]
        if args.ferry:
            note(f"{name} b={b}: ferry")
            with tempfile.TemporaryDirectory() as d:
                files = {}
                for s, x in zip(bm.MODELS[name][1], xs):
                    files[s["name"]] = os.path.join(d, f"{s['name']}.npy")
                    np.save(files[s["name"]], x)
                # With --ferry-base the two builds alternate, one run each,
                # so that both see the same moments of a shared machine.
                clis = [("ferry", args.ferry)] + (
                    [("ferry_base", args.ferry_base)] if args.ferry_base else [])
                rates = {c: [] for c, _ in clis}
                ort_rates = []
                errs = {}
                if sess is not None and args.interleave:
                    note(f"{name} b={b}: onnxruntime, interleaved")
                    rate(lambda: sess.run(None, feed), b, 0.5 * args.duration, 1)
                for _ in range(args.repeats):
                    if sess is not None and args.interleave:
                        ort_rates += rate(lambda: sess.run(None, feed), b, args.duration, 1)
                    for col, cli in clis:
                        if col in errs:
                            continue
                        r, err = ferry_rates(cli, path, b, args.duration, 1, args.threads, files)
                        rates[col] += r
                        if err:
                            errs[col] = err
            if ort_rates:
                row["ort"] = summary(ort_rates)
            for col, _ in clis:
                row[col] = summary(rates[col])
                # per round against the ORT run just before it
                if ort_rates and len(rates[col]) == len(ort_rates):
                    ratios = sorted(f / o for f, o in zip(rates[col], ort_rates))
                    row[f"{col}_over_ort"] = {"median": float(np.median(ratios)),
                                              "min": ratios[0], "max": ratios[-1]}
                if col in errs:
                    row[f"{col}_error"] = errs[col]
        rows.append(row)
    return rows


def fmt(cell):
    if not cell:
        return "n/a"
    return f"{cell['samples_per_s']:.1f} ({cell['min']:.1f}-{cell['max']:.1f})"


def print_table(rows, cols):
    head = ["model", "batch"] + cols
    table = [[r["model"], str(r["batch"])] + [fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *table)]
    print("samples/s: median of the repeats (min-max)")
    for line in [head] + table:
        print("  ".join(x.ljust(w) for x, w in zip(line, widths)))
    for r in rows:
        for c in cols:
            q = r.get(f"{c}_over_ort")
            if q:
                print(f"{r['model']} b={r['batch']} {c}/ort per round: {q['median']:.2f}x "
                      f"({q['min']:.2f}-{q['max']:.2f})")
    for r in rows:
        for c in cols:
            if r.get(f"{c}_error"):
                print(f"{r['model']} b={r['batch']} {c}: {r[f'{c}_error']}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=os.path.join(HERE, "real-models"))
    ap.add_argument("--only", default="")
    ap.add_argument("--batch-sizes", default="1,32")
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ferry", help="path to the ferry CLI: adds a Ferry column")
    ap.add_argument("--ferry-base", help="a second ferry CLI (say, main's build): a "
                    "ferry_base column, its runs alternating with --ferry's")
    ap.add_argument("--interleave", action="store_true",
                    help="with --ferry: one ORT run before each round of Ferry runs, "
                    "instead of all of ORT's runs first, and Ferry/ORT per round")
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-jit", action="store_true")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    only = [n for n in args.only.split(",") if n] or list(bm.CPU_SET)
    unknown = [n for n in only if n not in bm.MODELS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; known: {list(bm.MODELS)}")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    bm.export_all(args.models, set(only), log=note)

    versions = {"torch": torch.__version__, "numpy": np.__version__}
    if not args.no_ort:
        import onnxruntime
        versions["onnxruntime"] = onnxruntime.__version__
    if args.ferry:
        versions["ferry_bench_help"] = ferry_help(args.ferry).splitlines()[:1]
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "host": platform.node(), "cpu": platform.processor() or platform.machine(),
              "cores": os.cpu_count(), "threads": args.threads, "duration_s": args.duration,
              "repeats": args.repeats, "versions": versions,
              "loadavg_before": os.getloadavg(), "models": {}, "rows": []}
    for name in only:
        path = os.path.join(args.models, f"{name}.onnx")
        result["models"][name] = {"onnx": os.path.abspath(path),
                                  "bytes": os.path.getsize(path),
                                  "inputs": bm.MODELS[name][1]}
        result["rows"] += bench_model(name, path, args, batch_sizes)
    result["loadavg_after"] = os.getloadavg()
    cols = [c for c in ("ort", "torch", "torch_jit", "ferry_base", "ferry")
            if any(c in r for r in result["rows"])]
    print_table(result["rows"], cols)
    print(f"load average before {result['loadavg_before']}, after {result['loadavg_after']} "
          f"({result['cores']} cores)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
