#!/usr/bin/env python3
"""Writes tests/models/fixtures/: small models exported by a newer PyTorch's
default (dynamo) exporter, which Debian's torch 1.13 cannot produce, with
float64 references, so that CI checks what today's exporter emits (the
attention-mask GatherND of transformers 5, index tuples built from the batch
position, broadcast shapes computed as Shape(Max(a, b)), opset 18 forms).
gen.py copies them into its output and manifest like its own models.

Run with torch >= 2.9, onnxscript and transformers >= 5 (a separate virtual
environment), from the repository root:

    $PY tests/models/dynamo_fixtures.py

Per fixture NAME: NAME.onnx, NAME.npz (in.INPUT.b and ref.OUTPUT.b for b in
1, 3, 32) and NAME.json (the manifest entry's fields).
"""
import json
import os

import numpy as np
import onnx
import torch
import transformers as hf
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
BATCHES = (1, 3, 32)


class First(nn.Module):
    """A Hugging Face model's first output as a tensor, as a user wraps it."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask):
        return self.m(input_ids, attention_mask=attention_mask)[0]


def bert():
    c = hf.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, vocab_size=100, max_position_embeddings=32)
    c._attn_implementation = "eager"
    return First(hf.BertModel(c))


def inputs(b, seed):
    rng = np.random.default_rng([seed, b])
    ids = rng.integers(0, 100, (b, 16)).astype(np.int64)
    mask = np.ones((b, 16), np.int64)
    for i in range(b):  # padded tails of different lengths
        mask[i, 16 - (i % 5):] = 0
    return [ids, mask]


FIXTURES = [("hf-bert-dynamo", bert, ["input_ids", "attention_mask"], ["last_hidden_state"], 60)]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, build, in_names, out_names, seed in FIXTURES:
        torch.manual_seed(seed)
        m = build().eval()
        xs = [torch.from_numpy(x) for x in inputs(2, seed + 1000)]
        path = os.path.join(OUT, f"{name}.onnx")
        dim = torch.export.Dim.DYNAMIC
        torch.onnx.export(m, tuple(xs), path, input_names=in_names, output_names=out_names,
                          dynamic_shapes=tuple({0: dim} for _ in xs))
        model = onnx.load(path)  # the exporter may write the weights beside it
        if os.path.exists(path + ".data"):
            os.remove(path + ".data")
        onnx.save(model, path)  # one file, weights inline
        m64 = m.double()
        arrays = {}
        for b in BATCHES:
            xb = inputs(b, seed)
            with torch.no_grad():
                y = m64(*[torch.from_numpy(x) for x in xb])
            for n, x in zip(in_names, xb):
                arrays[f"in.{n}.{b}"] = x
            arrays[f"ref.{out_names[0]}.{b}"] = y.numpy()
        np.savez_compressed(os.path.join(OUT, f"{name}.npz"), **arrays)
        ops = sorted({n.op_type for n in model.graph.node})
        meta = {"name": name, "family": "dynamo", "opset": model.opset_import[0].version,
                "exporter": f"torch {torch.__version__} (dynamo), transformers {hf.__version__}",
                "inputs": [{"name": n, "dtype": "int64", "shape": [-1, 16], "low": 0,
                            "high": 100} for n in in_names],
                "outputs": out_names, "ops": ops}
        with open(os.path.join(OUT, f"{name}.json"), "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")
        print(f"{name}: opset {meta['opset']}, {len(ops)} op types, "
              f"{os.path.getsize(path) / 1e3:.0f} KB")


if __name__ == "__main__":
    main()
