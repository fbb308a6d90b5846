#!/usr/bin/python3
"""Exports the test models to ONNX with PyTorch and writes their reference data.

    gen.py --out DIR [--force]

For each model M and batch size b in 1, 7, 64, 1000:
  DIR/M.onnx         the model, dynamic batch axis 'batch', input 'input', output 'output'
  DIR/M.in.b.npy     a seeded float32 input of b samples
  DIR/M.ref.b.npy    the float64 output of the same torch module run in double on that
                     input (upcast), the ground truth the parity tests compare against
  DIR/manifest.json  models, opsets, batch sizes; written last, so a run that died
                     half way is redone

Weights are seeded, so the files are the same on every run with the same torch.
Nothing is regenerated when manifest.json exists, is newer than this script and
every file it lists exists (CTest runs this as the gen_models fixture).
"""
import argparse
import copy
import inspect
import json
import os
import sys
import time

BATCH_SIZES = [1, 7, 64, 1000]
MANIFEST = "manifest.json"


def up_to_date(out):
    path = os.path.join(out, MANIFEST)
    if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(__file__):
        return False
    try:
        with open(path) as f:
            man = json.load(f)
        names = [f for m in man["models"] for f in m["files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return all(os.path.exists(os.path.join(out, n)) for n in names)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="directory for models and data")
    ap.add_argument("--force", action="store_true", help="regenerate even if up to date")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    return ap.parse_args()


# Decide before importing torch, which alone takes seconds: CTest runs this
# fixture before every test run.
if __name__ == "__main__":
    ARGS = parse_args()
    if not ARGS.force and up_to_date(ARGS.out):
        print(f"gen.py: {ARGS.out}/{MANIFEST} is up to date")
        sys.exit(0)

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


class MLP(nn.Sequential):
    """Linear layers with one activation between them and an optional head."""

    def __init__(self, dims, act, head=None):
        layers = []
        for i in range(len(dims) - 1):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                layers.append(act())
        if head is not None:
            layers.append(head)
        super().__init__(*layers)


class Block(nn.Module):
    """x -> LayerNorm -> Linear -> GELU -> Linear -> + x -> Softmax(-1)."""

    def __init__(self, width=256, hidden=1024):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)
        self.softmax = nn.Softmax(dim=-1)
        with torch.no_grad():  # default LayerNorm is 1/0: make it do something
            self.norm.weight.copy_(1.0 + 0.1 * torch.randn(width))
            self.norm.bias.copy_(0.1 * torch.randn(width))

    def forward(self, x):
        return self.softmax(x + self.fc2(self.act(self.fc1(self.norm(x)))))


# name, builder, opset, seed, in_features, out_features
MODELS = [
    ("mlp-s", lambda: MLP([256, 512, 512, 256], nn.ReLU), 17, 1, 256, 256),
    ("mlp-l", lambda: MLP([1024, 4096, 4096, 1024], nn.GELU), 14, 2, 1024, 1024),
    ("block", lambda: Block(), 17, 3, 256, 256),
    # below opset 17, torch exports LayerNorm as ReduceMean/Sub/Pow/Sqrt/Div
    ("block-13", lambda: Block(), 13, 3, 256, 256),
    ("mnist", lambda: MLP([784, 300, 100, 10], nn.ReLU, nn.LogSoftmax(dim=-1)), 13, 4, 784, 10),
]
# mlp-s again, every initializer in one external data file
EXTERNAL = ("mlp-s-ext", "mlp-s")


def build(builder, seed):
    torch.manual_seed(seed)
    return builder().eval()


def export(module, path, opset, in_features):
    dummy = torch.zeros(2, in_features, dtype=torch.float32)
    kw = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kw["dynamo"] = False  # newer torch: keep the TorchScript exporter's graphs
    torch.onnx.export(
        module, dummy, path, opset_version=opset, input_names=["input"],
        output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        do_constant_folding=True, **kw)
    onnx.checker.check_model(path)


def input_for(seed, b, in_features):
    rng = np.random.default_rng([seed, b])
    return rng.standard_normal((b, in_features), dtype=np.float32)


def reference(module64, x):
    with torch.inference_mode():
        return module64(torch.from_numpy(x).double()).numpy()


def opset_of(path):
    m = onnx.load(path, load_external_data=False)
    return max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))


def main():
    args = ARGS
    out = args.out
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(args.threads)
    t_start = time.monotonic()
    manifest = {"generator": "tests/models/gen.py", "torch": torch.__version__,
                "onnx": onnx.__version__, "batch_sizes": BATCH_SIZES, "models": []}
    made = {}

    def record(name, onnx_file, opset, in_f, out_f, external, extra_files=()):
        files = [onnx_file, *extra_files]
        for b in BATCH_SIZES:
            files += [f"{name}.in.{b}.npy", f"{name}.ref.{b}.npy"]
        manifest["models"].append({
            "name": name, "onnx": onnx_file, "opset": opset, "input": "input",
            "output": "output", "in_features": in_f, "out_features": out_f,
            "external_data": external, "batch_sizes": BATCH_SIZES, "files": files})

    for name, builder, opset, seed, in_f, out_f in MODELS:
        t0 = time.monotonic()
        module = build(builder, seed)
        path = os.path.join(out, f"{name}.onnx")
        export(module, path, opset, in_f)
        module64 = copy.deepcopy(module).double()  # the same weights, in float64
        for b in BATCH_SIZES:
            x = input_for(seed, b, in_f)
            y = reference(module64, x)
            assert y.shape == (b, out_f) and y.dtype == np.float64
            assert np.isfinite(y).all(), f"{name}: reference has non-finite values"
            np.save(os.path.join(out, f"{name}.in.{b}.npy"), x)
            np.save(os.path.join(out, f"{name}.ref.{b}.npy"), y)
        made[name] = (seed, in_f, out_f)
        record(name, f"{name}.onnx", opset_of(path), in_f, out_f, False)
        print(f"gen.py: {name} (opset {opset}) in {time.monotonic() - t0:.1f}s", flush=True)

    ext_name, src = EXTERNAL
    data_file = f"{ext_name}.onnx.data"
    m = onnx.load(os.path.join(out, f"{src}.onnx"))
    data_path = os.path.join(out, data_file)
    if os.path.exists(data_path):  # onnx appends to an existing data file
        os.remove(data_path)
    onnx.save_model(m, os.path.join(out, f"{ext_name}.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=data_file, size_threshold=0)
    onnx.checker.check_model(os.path.join(out, f"{ext_name}.onnx"))
    for b in BATCH_SIZES:
        for kind in ("in", "ref"):
            arr = np.load(os.path.join(out, f"{src}.{kind}.{b}.npy"))
            np.save(os.path.join(out, f"{ext_name}.{kind}.{b}.npy"), arr)
    seed, in_f, out_f = made[src]
    record(ext_name, f"{ext_name}.onnx", opset_of(os.path.join(out, f"{src}.onnx")), in_f, out_f,
           True, extra_files=[data_file])

    tmp = os.path.join(out, MANIFEST + ".tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.replace(tmp, os.path.join(out, MANIFEST))
    print(f"gen.py: wrote {len(manifest['models'])} models to {out} "
          f"in {time.monotonic() - t_start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
