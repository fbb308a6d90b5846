#!/usr/bin/env python3
"""Models exported by a newer PyTorch's default exporter (torch >= 2.9:
`torch.onnx.export` is the dynamo-based one, opset 18+, ONNX functions
inlined by onnxscript), the way a user of today's PyTorch calls it, then run
with `ferry run` at batch 1 and 3 and compared with PyTorch (fp32 eager;
float64 where the model allows it). gen.py pins the TorchScript exporter
(dynamo=False) for its checked-in references; this script checks the other
one. Not part of CI: it needs torch >= 2.9 and onnxscript (a separate
virtual environment: `pip install torch onnxscript torchvision`).

    PY=/path/to/venv/bin/python; $PY tests/models/dynamo_exports.py --ferry build/ferry [--only REGEX]

One line per model: the worst relative error max|ours - ref| / max|ref|, or
the first line of the failure (export or Ferry).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zoo  # noqa: E402

try:
    import torchvision
except Exception:  # noqa: BLE001
    torchvision = None


def img(c, h):
    return lambda rng, b: [rng.standard_normal((b, c, h, h), dtype=np.float32)]


def ids(t, vocab):
    return lambda rng, b: [rng.integers(0, vocab, (b, t)).astype(np.int64)]


def bert_in(rng, b):
    x = rng.integers(0, 1000, (b, 16)).astype(np.int64)
    m = np.ones((b, 16), np.int64)
    m[:, 12:] = 0
    return [x, m]


def tv(name, **kw):
    def build():
        m = getattr(torchvision.models, name)(weights=None, **kw)
        m.eval()
        with torch.no_grad():  # BatchNorm statistics from random batches
            m.train()
            for _ in range(2):
                m(torch.randn(4, 3, 64, 64))
            m.eval()
        return m
    return build


class SegOut(nn.Module):
    """torchvision's segmentation models return a dict; a user exports ['out']."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)["out"]


def seg(name):
    def build():
        m = getattr(torchvision.models.segmentation, name)(weights=None, weights_backbone=None,
                                                           num_classes=5)
        with torch.no_grad():
            m.train()
            m(torch.randn(4, 3, 64, 64))
        return SegOut(m.eval())
    return build


def video(name):
    def build():
        m = getattr(torchvision.models.video, name)(weights=None, num_classes=7)
        with torch.no_grad():
            m.train()
            m(torch.randn(4, 3, 4, 32, 32))
        return m.eval()
    return build


def vit_tiny():
    m = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2,
                                             num_heads=4, hidden_dim=64, mlp_dim=128,
                                             num_classes=10)
    nn.init.normal_(m.heads.head.weight, std=0.2)  # torchvision starts it at zero
    return m.eval()


CASES = [
    ("mlp", lambda: nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.LayerNorm(64), nn.Linear(64, 10)),
     lambda rng, b: [rng.standard_normal((b, 32), dtype=np.float32)]),
    ("bert", lambda: zoo.BertEncoder(vocab=1000, d=64, layers=2, heads=4, ff=128, max_len=32),
     bert_in),
    ("gpt", lambda: zoo.GptDecoder(vocab=512, d=64, layers=2, heads=4, ff=128, max_len=32),
     ids(16, 512)),
    ("lstm", lambda: zoo.RnnClassifier("lstm"), ids(12, 500)),
    ("gru-bidir", lambda: zoo.RnnClassifier("gru", bidirectional=True), ids(12, 500)),
    ("cnn1d", zoo.Cnn1d, lambda rng, b: [rng.standard_normal((b, 4, 64), dtype=np.float32)]),
    ("unet", zoo.UNet, img(3, 32)),
    ("autoencoder", zoo.ConvAutoencoder, img(1, 32)),
    ("tabular", zoo.TabularMLP, lambda rng, b: [rng.standard_normal((b, 20), dtype=np.float32)]),
    ("torch-encoder", zoo.TorchEncoder, ids(16, 1000)),
]
if torchvision is not None:
    CASES += [
        ("resnet18", tv("resnet18"), img(3, 64)),
        ("mobilenet_v2", tv("mobilenet_v2"), img(3, 64)),
        ("mobilenet_v3_small", tv("mobilenet_v3_small"), img(3, 64)),
        ("efficientnet_b0", tv("efficientnet_b0"), img(3, 64)),
        ("convnext_tiny", tv("convnext_tiny"), img(3, 64)),
        ("shufflenet_v2_x0_5", tv("shufflenet_v2_x0_5"), img(3, 64)),
        ("vit-tiny", vit_tiny, img(3, 32)),
        ("swin_t", tv("swin_t"), img(3, 64)),
        ("densenet121", tv("densenet121"), img(3, 64)),
        ("regnet_y_400mf", tv("regnet_y_400mf"), img(3, 64)),
        ("mnasnet0_5", tv("mnasnet0_5"), img(3, 64)),
        ("lraspp_mobilenet_v3_large", seg("lraspp_mobilenet_v3_large"), img(3, 64)),
        ("r3d_18", video("r3d_18"), lambda rng, b: [rng.standard_normal((b, 3, 4, 32, 32),
                                                                        dtype=np.float32)]),
    ]

try:
    import transformers as hf
except Exception:  # noqa: BLE001
    hf = None


class HfOut(nn.Module):
    """A Hugging Face model returning its first output as a plain tensor, as a
    user wraps one for torch.onnx.export."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask=None):
        return self.m(input_ids, attention_mask=attention_mask)[0]


class HfVision(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, pixel_values):
        return self.m(pixel_values)[0]


def hf_model(cfg_name, model_name, wrap=HfOut, **cfg):
    def build():
        c = getattr(hf, cfg_name)(**cfg)
        c._attn_implementation = "eager"
        return wrap(getattr(hf, model_name)(c).eval())
    return build


if hf is not None:
    small = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128, vocab_size=1000)
    CASES += [
        ("hf-bert", hf_model("BertConfig", "BertModel", **small), bert_in),
        ("hf-gpt2", hf_model("GPT2Config", "GPT2Model", n_embd=64, n_layer=2, n_head=4,
                             vocab_size=1000), ids(16, 1000)),
        ("hf-llama", hf_model("LlamaConfig", "LlamaModel", num_key_value_heads=2, **small),
         ids(16, 1000)),
        ("hf-distilbert", hf_model("DistilBertConfig", "DistilBertModel", dim=64, n_layers=2,
                                   n_heads=4, hidden_dim=128, vocab_size=1000), bert_in),
        ("hf-roberta", hf_model("RobertaConfig", "RobertaModel", **small), bert_in),
        ("hf-t5-encoder", hf_model("T5Config", "T5EncoderModel", d_model=64, d_kv=16, d_ff=128,
                                   num_layers=2, num_heads=4, vocab_size=1000), bert_in),
        ("hf-clip-text", hf_model("CLIPTextConfig", "CLIPTextModel", **small), bert_in),
        ("hf-qwen2", hf_model("Qwen2Config", "Qwen2Model", num_key_value_heads=2, **small),
         ids(16, 1000)),
        ("hf-mistral", hf_model("MistralConfig", "MistralModel", num_key_value_heads=2, **small),
         ids(16, 1000)),
        ("hf-phi3", hf_model("Phi3Config", "Phi3Model", num_key_value_heads=2, pad_token_id=0,
                             **small), ids(16, 1000)),
        ("hf-gemma", hf_model("GemmaConfig", "GemmaModel", num_key_value_heads=2, head_dim=16,
                              **small), ids(16, 1000)),
        ("hf-modernbert", hf_model("ModernBertConfig", "ModernBertModel", pad_token_id=0,
                                   bos_token_id=1, eos_token_id=2, cls_token_id=1,
                                   sep_token_id=2, **small), bert_in),
        ("hf-vit", hf_model("ViTConfig", "ViTModel", wrap=HfVision, image_size=32, patch_size=8,
                            **{k: v for k, v in small.items() if k != "vocab_size"}), img(3, 32)),
    ]


def rel_err(y, ref):
    if y.shape != ref.shape:
        return f"shape {y.shape} != {ref.shape}"
    d = np.abs(y.astype(np.float64) - ref.astype(np.float64)).max()
    s = np.abs(ref.astype(np.float64)).max()
    return float(d / s) if s > 0 else float(d)


def run(name, build, inputs, ferry, tmp):
    torch.manual_seed(0)
    try:
        m = build().eval()
    except Exception as e:  # noqa: BLE001
        return f"build: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}"
    rng = np.random.default_rng(0)
    xs = inputs(rng, 2)
    names = [f"in{i}" for i in range(len(xs))]
    path = os.path.join(tmp, f"{name}.onnx")
    dyn = {n: {0: "batch"} for n in names}
    try:
        with torch.no_grad():
            outs = m(*[torch.from_numpy(x) for x in xs])
        n_out = len(outs) if isinstance(outs, (tuple, list)) else 1
        onames = [f"out{i}" for i in range(n_out)]
        dyn.update({o: {0: "batch"} for o in onames})
        args = tuple(torch.from_numpy(x) for x in xs)
        try:
            torch.onnx.export(m, args, path, input_names=names, output_names=onames,
                              dynamic_axes=dyn)
        except Exception:  # noqa: BLE001
            # what the exporter's own message tells a user to do next: give
            # dynamic_shapes (a dynamic batch on every input) instead
            dim = torch.export.Dim.DYNAMIC
            torch.onnx.export(m, args, path, input_names=names, output_names=onames,
                              dynamic_shapes=tuple({0: dim} for _ in args))
    except Exception as e:  # noqa: BLE001
        return f"export: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}"
    worst = 0.0
    for b in (1, 3):
        xs = inputs(np.random.default_rng([1, b]), b)
        with torch.no_grad():
            refs = m(*[torch.from_numpy(x) for x in xs])
        refs = [r.numpy() for r in (refs if isinstance(refs, (tuple, list)) else [refs])]
        args = []
        for i, x in enumerate(xs):
            p = os.path.join(tmp, f"in{i}.npy")
            np.save(p, x)
            args += ["-i", p]
        for i in range(len(refs)):
            args += ["-o", os.path.join(tmp, f"out{i}.npy")]
        r = subprocess.run([ferry, "run", path, *args], capture_output=True, text=True)
        if r.returncode:
            return "ferry: " + (r.stderr.strip().splitlines() or ["?"])[-1][:400]
        for i, ref in enumerate(refs):
            e = rel_err(np.load(os.path.join(tmp, f"out{i}.npy")), ref)
            if isinstance(e, str):
                return f"batch {b} output {i}: {e}"
            worst = max(worst, e)
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ferry", default="build/ferry")
    ap.add_argument("--only", default="")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}")
    bad = 0
    tmp = tempfile.mkdtemp(prefix="ferry-dynamo-")
    for name, build, inputs in CASES:
        if a.only and not re.search(a.only, name):
            continue
        r = run(name, build, inputs, a.ferry, tmp)
        ok = isinstance(r, float) and r <= a.tol
        bad += not ok
        print(f"{name:22s} {'ok  ' if ok else 'FAIL'} {r if isinstance(r, str) else f'{r:.2e}'}",
              flush=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
