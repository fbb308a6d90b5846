#!/usr/bin/python3
"""The real-model benchmark set, exported to ONNX with seeded random weights.

    models.py --out DIR [--only NAME,...] [--force]

Writes DIR/NAME.onnx for each model below (dynamic batch axis 'batch' on every
input and output; opset 17; torch 1.13's TorchScript exporter) and
DIR/models.json: {"models": [{"name", "onnx", "inputs": [{"name", "dtype",
"shape" (-1: batch), "low", "high"}], "outputs": [names]}]}.
bench/real_models.py imports build() to get the same nn.Module (same seed, same
weights) and make_inputs() for the same inputs, so ONNX Runtime, PyTorch and
Ferry all run one set of weights.

  resnet18      torchvision resnet18, 3x224x224, 1000 classes
  mobilenet_v2  torchvision mobilenet_v2, 3x224x224, 1000 classes
  bert          BERT-style encoder: 4 layers, d 256, 4 heads, FFN 1024, vocab
                30522, input_ids + attention_mask [N,128] int64
  vit_tiny      torchvision VisionTransformer: 224, patch 16, d 192, 6 layers,
                3 heads, MLP 768 (ViT-Tiny's shape at half its depth)
  lstm          embedding 128 (vocab 10000), 2-layer LSTM hidden 256, sequence
                64, Linear on the last step (10 classes)
  resnet50      torchvision resnet50 (GPU table only)
  bert_base     BERT-base's shape: 12 layers, d 768, 12 heads, FFN 3072,
                sequence 128 (GPU table only)

BatchNorm statistics are measured on random inputs (tests/models/zoo.py
randomize_norms): with torchvision's init-time statistics the activations of
deep random nets shrink towards denormals, which changes the timings.
"""
import argparse
import inspect
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "models"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import zoo  # noqa: E402

OPSET = 17


def ids(name, t, high, low=0):
    return {"name": name, "dtype": "int64", "shape": [-1, t], "low": low, "high": high}


def img224():
    return [{"name": "input", "dtype": "float32", "shape": [-1, 3, 224, 224]}]


def _tv(ctor):
    def build():
        import torchvision.models as tvm
        return getattr(tvm, ctor)(weights=None)
    return build


def _vit_tiny():
    from torchvision.models import VisionTransformer
    return VisionTransformer(image_size=224, patch_size=16, num_layers=6, num_heads=3,
                             hidden_dim=192, mlp_dim=768)


# name -> (builder, inputs, outputs, seed)
MODELS = {
    "resnet18": (_tv("resnet18"), img224(), ["output"], 101),
    "mobilenet_v2": (_tv("mobilenet_v2"), img224(), ["output"], 102),
    "bert": (lambda: zoo.BertEncoder(vocab=30522, d=256, layers=4, heads=4, ff=1024,
                                     max_len=128),
             [ids("input_ids", 128, 30522), ids("attention_mask", 128, 2)],
             ["last_hidden_state", "pooler_output"], 103),
    "vit_tiny": (_vit_tiny, img224(), ["output"], 104),
    "lstm": (lambda: zoo.RnnClassifier("lstm", vocab=10000, emb=128, hidden=256, layers=2,
                                       classes=10),
             [ids("input_ids", 64, 10000)], ["output"], 105),
    # The GPU issue's shapes (bench/gpu/real_gpu.py), exported on the GPU
    # machine: too large to carry there, too slow for this CPU's table.
    "resnet50": (_tv("resnet50"), img224(), ["output"], 106),
    "bert_base": (lambda: zoo.BertEncoder(vocab=30522, d=768, layers=12, heads=12, ff=3072,
                                          max_len=128),
                  [ids("input_ids", 128, 30522), ids("attention_mask", 128, 2)],
                  ["last_hidden_state", "pooler_output"], 107),
}

# What bench/real_models.py runs by default (the CPU issue's table).
CPU_SET = ["resnet18", "mobilenet_v2", "bert", "vit_tiny", "lstm"]


def make_inputs(name, batch, seed=0):
    """Seeded numpy inputs of model name at batch size batch (attention masks:
    padding at the end, each sequence at least half full)."""
    rng = np.random.default_rng([seed, batch])
    xs = []
    for spec in MODELS[name][1]:
        shape = [batch if d == -1 else d for d in spec["shape"]]
        if spec["dtype"] == "float32":
            xs.append(rng.standard_normal(shape, dtype=np.float32))
        elif spec["name"] == "attention_mask":
            t = shape[1]
            lengths = rng.integers(t // 2, t + 1, size=batch)
            xs.append((np.arange(t)[None, :] < lengths[:, None]).astype(np.int64))
        else:
            xs.append(rng.integers(spec["low"], spec["high"], size=shape, dtype=np.int64))
    return xs


def build(name):
    """The eval-mode nn.Module of model name, seeded weights, calibrated norms."""
    builder, _, _, seed = MODELS[name]
    torch.manual_seed(seed)
    module = builder().eval()
    calibration = [tuple(torch.from_numpy(x) for x in make_inputs(name, 4, seed=1000 + j))
                   for j in range(2)]
    zoo.randomize_norms(module, seed, calibration)
    return module.eval()


def export(name, out):
    path = os.path.join(out, f"{name}.onnx")
    module = build(name)
    _, in_specs, out_names, _ = MODELS[name]
    dummies = tuple(torch.from_numpy(x) for x in make_inputs(name, 2, seed=7))
    kw = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kw["dynamo"] = False
    in_names = [s["name"] for s in in_specs]
    torch.onnx.export(module, dummies, path, opset_version=OPSET, input_names=in_names,
                      output_names=out_names,
                      dynamic_axes={n: {0: "batch"} for n in in_names + out_names},
                      do_constant_folding=True, **kw)
    return path


def manifest(out):
    return {"models": [{"name": n, "onnx": f"{n}.onnx", "inputs": spec[1], "outputs": spec[2]}
                       for n, spec in MODELS.items()]}


def export_all(out, only=(), force=False, log=print):
    os.makedirs(out, exist_ok=True)
    for name in (only or CPU_SET):
        path = os.path.join(out, f"{name}.onnx")
        if not force and os.path.exists(path) and os.path.getmtime(path) >= max(
                os.path.getmtime(__file__), os.path.getmtime(zoo.__file__)):
            continue
        log(f"models.py: exporting {name}")
        export(name, out)
    with open(os.path.join(out, "models.json"), "w") as f:
        json.dump(manifest(out), f, indent=2)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    export_all(args.out, set(filter(None, args.only.split(","))), args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
