#!/usr/bin/env python3
"""Runs every model of a gen.py manifest through ONNX Runtime and compares with
the float64 references, as the parity tests compare Ferry: a check of the
exporter, of the opset 18/21 rewrites and of each model's "tol" (is it
reachable by a float32 runtime?). Not part of CTest: onnxruntime comes from
PyPI (make venv).

    .venv/bin/python tests/models/check_ort.py --models DIR [--only NAME,...]

Prints one line per model, output and batch size: relative L2 error and max
abs error; exits 1 when one exceeds the model's tol or a model fails to load.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort


def rel_err(y, ref):
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    den = np.linalg.norm(ref)
    return float(np.linalg.norm(y - ref) / (den if den > 0 else 1.0)), float(np.abs(y - ref).max())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", required=True, help="gen.py --out directory")
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--manifest", default="manifest.json")
    args = ap.parse_args(argv)
    with open(os.path.join(args.models, args.manifest)) as f:
        man = json.load(f)
    only = set(filter(None, args.only.split(",")))
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 2, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    bad = []
    print(f"onnxruntime {ort.__version__}")
    for m in man["models"]:
        if only and m["name"] not in only:
            continue
        try:
            sess = ort.InferenceSession(os.path.join(args.models, m["onnx"]), so,
                                        providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f"{m['name']:20s} LOAD FAILED: {e}")
            bad.append(m["name"])
            continue
        worst = 0.0
        for b in m["batch_sizes"]:
            feed = {i["name"]: np.load(os.path.join(args.models, i["files"][str(b)]))
                    for i in m["inputs"]}
            ys = sess.run([o["name"] for o in m["outputs"]], feed)
            for o, y in zip(m["outputs"], ys):
                ref = np.load(os.path.join(args.models, o["files"][str(b)]))
                if y.shape != ref.shape:
                    print(f"{m['name']:20s} {o['name']} b={b}: shape {y.shape} != {ref.shape}")
                    bad.append(m["name"])
                    continue
                if ref.dtype.kind in "iub":
                    mism = int((y != ref).sum())
                    print(f"{m['name']:20s} {o['name']:18s} b={b:<4d} {mism} of {ref.size} "
                          "differ (exact)")
                    if mism:
                        bad.append(m["name"])
                    continue
                rel, mx = rel_err(y, ref)
                worst = max(worst, rel)
                print(f"{m['name']:20s} {o['name']:18s} b={b:<4d} rel {rel:.2e}  max abs {mx:.2e}"
                      f"  (tol {m['tol']:.0e})")
        if worst > m["tol"]:
            bad.append(m["name"])
    if bad:
        print(f"FAILED: {', '.join(sorted(set(bad)))}")
        return 1
    print("all within tol")
    return 0


if __name__ == "__main__":
    sys.exit(main())
