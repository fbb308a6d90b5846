#!/usr/bin/python3
"""Exports the test models to ONNX with PyTorch and writes their reference data.

    gen.py --out DIR [--force] [--threads N] [--only NAME,...]

Two kinds of model:
  the MLPs (mlp-s, mlp-l, block, block-13, mnist, mlp-s-ext): one float input
      'input' [N,F], one output 'output', batch sizes 1, 7, 64, 1000;
  the real models (tests/models/zoo.py and torchvision: CNNs, transformers,
      RNNs, a recommender, op mixes; see REAL): any number of float32 / int64
      inputs and outputs, batch sizes 1, 3, 32, some of them rewritten to
      opset 18 and 21 (see upgrade_opset).
Files, for model M and batch size b:
  DIR/M.onnx            dynamic batch axis 'batch' (axis 0 of every input and output)
  DIR/M.in.b.npy        the input when M has one, else DIR/M.in.NAME.b.npy per input:
                        float32 (seeded normal) or int64 (seeded ids in [low, high))
  DIR/M.ref.b.npy       the output when M has one, else DIR/M.ref.NAME.b.npy: the torch
                        module run in float64 (module.double(), float inputs upcast) on
                        that input, float64 (integer outputs keep their dtype)
  DIR/manifest.json     written last, so a run that died half way is redone:
    {"generator", "torch", "onnx", "batch_sizes" (the MLPs'), "ops" (the union of
     the models' op types), "models": [{
      "name", "onnx", "opset", "family", "batch_sizes", "tol" (relative L2 error
      ||out - ref|| / ||ref|| a runtime in fp32 must meet), "tol_reason" (when not
      the default), "ops" (sorted op types, subgraphs included; 'domain:Op' outside
      ai.onnx), "op_variants" (attribute choices: 'Resize:linear/align_corners',
      'Pad:reflect', 'Conv:grouped', 'LSTM:bidirectional', ...), "files" (every file),
      "inputs":  [{"name", "dtype" float32|int64|bool, "shape" (-1: the batch
                   axis), "low", "high" (int inputs: ids in [low, high)),
                   "files": {"b": "file.npy"}}],
      "outputs": [{"name", "dtype", "shape", "files": {"b": "file.npy"}}],
      MLPs also: "input", "output", "in_features", "out_features", "external_data"}]}

The "hf" family (tests/models/hf.py: BERT, DistilBERT, RoBERTa, GPT-2, ViT,
T5's encoder, Whisper's encoder, CLIP's vision tower and text model,
Wav2Vec2, LLaMA, DETR, YOLOS, XLNet from small random configs) is generated only when transformers is importable (make venv-hf;
CMake runs this script with .venv's python when there is one); the manifest
records its version ("transformers", null without), and a change of it
regenerates.

Weights are seeded, so the files are the same on every run with the same torch.
Nothing is regenerated when manifest.json exists, is newer than this script and
zoo.py and every file it lists exists (CTest runs this as the gen_models
fixture). A model that fails to build, export or check fails the run, named, and
no manifest is written.
"""
import argparse
import copy
import inspect
import json
import os
import sys
import time
import traceback
import types

BATCH_SIZES = [1, 7, 64, 1000]
REAL_BATCH_SIZES = [1, 3, 32]
TOL_MLP = 1e-5
TOL_REAL = 1e-4
SPREAD_MIN = 3e-3  # std across samples / mean |y| a real model's outputs must reach
MANIFEST = "manifest.json"
HERE = os.path.dirname(os.path.abspath(__file__))


def transformers_version():
    """The installed transformers' version, or None; without importing it
    (which imports torch: seconds)."""
    import importlib.metadata
    import importlib.util
    if importlib.util.find_spec("transformers") is None:
        return None
    try:
        return importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        return None


def up_to_date(out):
    path = os.path.join(out, MANIFEST)
    if not os.path.exists(path):
        return False
    newest_source = max(os.path.getmtime(os.path.join(HERE, f))
                        for f in (os.path.basename(__file__), "zoo.py", "hf.py",
                                  *[os.path.join("fixtures", x) for x in fixture_files()]))
    if os.path.getmtime(path) < newest_source:
        return False
    try:
        with open(path) as f:
            man = json.load(f)
        names = [f for m in man["models"] for f in m["files"]]
        if man.get("transformers") != transformers_version():
            return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return all(os.path.exists(os.path.join(out, n)) for n in names)


FIXTURES = os.path.join(HERE, "fixtures")


def fixture_files():
    return sorted(os.listdir(FIXTURES)) if os.path.isdir(FIXTURES) else []


def gen_fixture(meta_file, out):
    """A model exported elsewhere (tests/models/dynamo_fixtures.py: a newer
    PyTorch's dynamo exporter, which this torch cannot run), copied with its
    float64 references into out and described as gen_real describes its own."""
    with open(os.path.join(FIXTURES, meta_file)) as f:
        meta = json.load(f)
    name = meta["name"]
    onnx_file = f"{name}.onnx"
    with open(os.path.join(FIXTURES, onnx_file), "rb") as src, \
            open(os.path.join(out, onnx_file), "wb") as dst:
        dst.write(src.read())
    arrays = np.load(os.path.join(FIXTURES, f"{name}.npz"))
    files = [onnx_file]
    inputs = [dict(s, files={}) for s in meta["inputs"]]
    outputs = [{"name": n, "files": {}} for n in meta["outputs"]]
    for b in REAL_BATCH_SIZES:
        for s in inputs:
            f = file_name(name, "in", s["name"], len(inputs), b)
            np.save(os.path.join(out, f), arrays[f"in.{s['name']}.{b}"])
            s["files"][str(b)] = f
            files.append(f)
        for o in outputs:
            y = arrays[f"ref.{o['name']}.{b}"]
            f = file_name(name, "ref", o["name"], len(outputs), b)
            np.save(os.path.join(out, f), y)
            o["files"][str(b)] = f
            o["dtype"], o["shape"] = str(y.dtype), [-1, *y.shape[1:]]
            files.append(f)
    model = onnx.load(os.path.join(out, onnx_file))
    return {"name": name, "onnx": onnx_file, "opset": meta["opset"], "family": meta["family"],
            "batch_sizes": REAL_BATCH_SIZES, "tol": TOL_REAL, "ops": op_types(model),
            "op_variants": op_variants(model), "inputs": inputs, "outputs": outputs,
            "external_data": False, "files": files, "exporter": meta["exporter"]}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="directory for models and data")
    ap.add_argument("--force", action="store_true", help="regenerate even if up to date")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--only", default="",
                    help="comma-separated model names (development: writes manifest.partial.json "
                         "instead of the manifest)")
    return ap.parse_args()


# Decide before importing torch, which alone takes seconds: CTest runs this
# fixture before every test run.
if __name__ == "__main__":
    ARGS = parse_args()
    if not ARGS.force and not ARGS.only and up_to_date(ARGS.out):
        print(f"gen.py: {ARGS.out}/{MANIFEST} is up to date")
        sys.exit(0)

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, HERE)
import zoo  # noqa: E402

try:
    import hf  # noqa: E402 - the "hf" family needs transformers
except ImportError:
    hf = None


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


# ---- the real models --------------------------------------------------------

def image(c, h, w=None):
    """A float32 image input [N,c,h,w] named 'input'."""
    return [{"name": "input", "dtype": "float32", "shape": [-1, c, h, w or h]}]


def ids(name, t, high, low=0):
    """An int64 id input [N,t] (t None: [N]) drawn from [low, high)."""
    return {"name": name, "dtype": "int64", "shape": [-1] if t is None else [-1, t],
            "low": low, "high": high}


def tv(ctor, **kw):
    """A torchvision classification model, random weights, 10 classes."""
    def build():
        import torchvision.models as tvm
        return getattr(tvm, ctor)(weights=None, num_classes=10, **kw)
    return build


def convnext_small_blocks():
    # convnext_tiny's CNBlock / LayerNorm2d / layer scale at depths 2,2,2,2 and
    # widths 48..384 instead of 3,3,9,3 and 96..768: the same ops, 14 MB not 110
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    cfg = [CNBlockConfig(48, 96, 2), CNBlockConfig(96, 192, 2), CNBlockConfig(192, 384, 2),
           CNBlockConfig(384, None, 2)]
    return ConvNeXt(cfg, num_classes=10)


def swin_small():
    # torchvision's Swin at embed 16, depths 2,2, windows of 4 on a 32x32 image:
    # stage 1 (8x8) has 4 windows and a shifted block, whose attention mask
    # torchvision builds with in-place slice writes (ScatterND, folded at load)
    # and whose attention calls F.dropout(p=0.0) with training left True;
    # stage 2 (4x4) is one window, unshifted. 0.5 MB, not swin_t's 110
    from torchvision.models.swin_transformer import SwinTransformer
    return SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 4],
                           window_size=[4, 4], num_classes=10)


def maxvit_small():
    # torchvision's MaxViT at 2 stages of 1 block, partitions of 2 on a 32x32
    # image: its relative-position attention is Einsum ("B G H I D, B G H J D
    # -> B G H I J" and back), with the MBConv and grid/window partitions
    # around it. 0.4 MB, not maxvit_t's 120
    from torchvision.models.maxvit import MaxVit
    return MaxVit(input_size=(32, 32), stem_channels=8, partition_size=2, block_channels=[16, 32],
                  block_layers=[1, 1], head_dim=8, stochastic_depth_prob=0.0, num_classes=10)


def vit_small():
    from torchvision.models import VisionTransformer
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                             hidden_dim=64, mlp_dim=128, num_classes=10)


BERT_IN = [ids("input_ids", 16, 1000), ids("attention_mask", 16, 2)]
BERT_OUT = ["last_hidden_state", "pooler_output"]
DLRM_IN = [{"name": "dense", "dtype": "float32", "shape": [-1, 13]},
           ids("sparse_a", 4, 1000), ids("sparse_b", 3, 500), ids("sparse_c", 2, 200),
           ids("single_d", None, 100)]

# Each entry: name, family, build (a nn.Module factory), inputs (see image/ids),
# outputs (names), opset, seed; optional "upgrade": (base model, opset) for a
# rewrite of an exported model instead of a build, "tol"/"tol_reason",
# "calibrate_batch" (samples per BatchNorm calibration batch, default 8).
REAL = [
    # CNNs (torchvision, random weights, BatchNorm running stats randomized)
    dict(name="resnet18-224", family="resnet", build=tv("resnet18"), inputs=image(3, 224),
         opset=17, seed=11, calibrate_batch=2),
    dict(name="resnet18", family="resnet", build=tv("resnet18"), inputs=image(3, 64),
         opset=13, seed=12),
    dict(name="mobilenet_v2", family="mobilenet", build=tv("mobilenet_v2"), inputs=image(3, 32),
         opset=17, seed=13),
    dict(name="mobilenet_v3_small", family="mobilenet", build=tv("mobilenet_v3_small"),
         inputs=image(3, 32), opset=17, seed=14),
    dict(name="efficientnet_b0", family="efficientnet", build=tv("efficientnet_b0"),
         inputs=image(3, 32), opset=17, seed=15, tol=2e-3,
         tol_reason="random-weight EfficientNet-B0 amplifies float32 rounding (logits ~1e3): "
                    "onnxruntime 1.32 in fp32 is 3e-4..6e-4 from the float64 reference"),
    dict(name="densenet121", family="densenet", build=tv("densenet121"), inputs=image(3, 32),
         opset=17, seed=16),
    dict(name="shufflenet_v2_x0_5", family="shufflenet", build=tv("shufflenet_v2_x0_5"),
         inputs=image(3, 32), opset=15, seed=17),
    dict(name="regnet_x_400mf", family="regnet", build=tv("regnet_x_400mf"), inputs=image(3, 32),
         opset=17, seed=18),
    dict(name="convnext", family="convnext", build=convnext_small_blocks, inputs=image(3, 32),
         opset=17, seed=19),
    dict(name="swin", family="swin", build=swin_small, inputs=image(3, 32), opset=17, seed=36),
    dict(name="maxvit", family="maxvit", build=maxvit_small, inputs=image(3, 32), opset=17,
         seed=37),
    dict(name="squeezenet1_0", family="squeezenet", build=tv("squeezenet1_0"),
         inputs=image(3, 64), opset=14, seed=20),
    # transformers
    dict(name="vit", family="vit", build=vit_small, inputs=image(3, 32), opset=17, seed=21),
    dict(name="bert", family="bert", build=zoo.BertEncoder, inputs=BERT_IN, outputs=BERT_OUT,
         opset=17, seed=22),
    # below 17, LayerNorm is ReduceMean/Sub/Pow/Sqrt/Div: the base of the 18/21 rewrites
    dict(name="bert-14", family="bert", build=zoo.BertEncoder, inputs=BERT_IN, outputs=BERT_OUT,
         opset=14, seed=22),
    dict(name="bert-18", family="bert", upgrade=("bert-14", 18), inputs=BERT_IN,
         outputs=BERT_OUT, seed=22),
    dict(name="bert-21", family="bert", upgrade=("bert-14", 21), inputs=BERT_IN,
         outputs=BERT_OUT, seed=22),
    # a second dynamic axis: 'sequence' on the ids, the mask and the per-token output
    # (length buckets: src/graph/model.c, src/batcher/buckets.c)
    dict(name="bert-var", family="bert", build=zoo.BertEncoder, inputs=BERT_IN,
         outputs=BERT_OUT, opset=17, seed=32,
         sequence=["input_ids", "attention_mask", "last_hidden_state"]),
    # the benchmark's encoder (BENCHMARKS.md, issue 17): 2 layers, d 256, up to 128 tokens
    dict(name="bert-var-256", family="bert",
         build=lambda: zoo.BertEncoder(d=256, layers=2, heads=4, ff=1024, max_len=128),
         inputs=BERT_IN, outputs=BERT_OUT, opset=17, seed=33,
         sequence=["input_ids", "attention_mask", "last_hidden_state"]),
    dict(name="gpt", family="gpt", build=zoo.GptDecoder, inputs=[ids("input_ids", 16, 512)],
         opset=17, seed=23),
    # torch.nn's own transformer modules (nn.MultiheadAttention inside)
    dict(name="torch-encoder", family="torchnn", build=zoo.TorchEncoder,
         inputs=[ids("input_ids", 16, 1000)], opset=17, seed=34),
    dict(name="torch-seq2seq", family="torchnn", build=zoo.TorchSeq2Seq,
         inputs=[{"name": "src", "dtype": "float32", "shape": [-1, 12, 32]},
                 {"name": "tgt", "dtype": "float32", "shape": [-1, 7, 32]}], opset=17, seed=35),
    # RNNs
    dict(name="lstm", family="rnn", build=lambda: zoo.RnnClassifier("lstm"),
         inputs=[ids("input_ids", 12, 500)], opset=17, seed=24),
    dict(name="gru", family="rnn",
         build=lambda: zoo.RnnClassifier("gru", bidirectional=True),
         inputs=[ids("input_ids", 12, 500)], opset=14, seed=25),
    # Embedding -> bidirectional LSTM, time-major: the projection folded into
    # the table at load with no Transpose between (src/graph/fuse_rnn.c)
    dict(name="lstm-bi", family="rnn",
         build=lambda: zoo.RnnClassifier("lstm", bidirectional=True, batch_first=False),
         inputs=[ids("input_ids", 9, 300)], opset=14, seed=49),
    dict(name="rnn-states", family="rnn", build=zoo.RnnStates,
         inputs=[{"name": "x", "dtype": "float32", "shape": [-1, 6, 8]}],
         outputs=["y", "h_n", "c_n", "g", "g_n"], opset=17, seed=48),
    # 1-D and encoder/decoder convolutions
    dict(name="cnn1d", family="cnn1d", build=zoo.Cnn1d,
         inputs=[{"name": "input", "dtype": "float32", "shape": [-1, 4, 64]}], opset=17, seed=26),
    dict(name="cnn1d-18", family="cnn1d", upgrade=("cnn1d", 18),
         inputs=[{"name": "input", "dtype": "float32", "shape": [-1, 4, 64]}], seed=26),
    dict(name="cnn1d-21", family="cnn1d", upgrade=("cnn1d", 21),
         inputs=[{"name": "input", "dtype": "float32", "shape": [-1, 4, 64]}], seed=26),
    dict(name="autoencoder", family="autoencoder", build=zoo.ConvAutoencoder,
         inputs=image(1, 32), opset=17, seed=27),
    dict(name="unet", family="unet", build=zoo.UNet, inputs=image(3, 32), opset=17, seed=28),
    # recommender and tabular
    dict(name="dlrm", family="dlrm", build=zoo.DLRM, inputs=DLRM_IN, opset=17, seed=29),
    dict(name="tabular", family="tabular", build=zoo.TabularMLP,
         inputs=[{"name": "input", "dtype": "float32", "shape": [-1, 20]}], opset=17, seed=30),
    # op coverage
    dict(name="ops-mix", family="ops", build=zoo.OpsMix, inputs=image(4, 8),
         outputs=["mixed", "argmax"], opset=17, seed=31),
    dict(name="ops-mix-18", family="ops", upgrade=("ops-mix", 18), inputs=image(4, 8),
         outputs=["mixed", "argmax"], seed=31),
    dict(name="slice-assign", family="ops", build=zoo.SliceAssign,
         inputs=[{"name": "input", "dtype": "float32", "shape": [-1, 6, 8]}], opset=17, seed=38),
    dict(name="grid-warp", family="ops", build=zoo.GridWarp, inputs=image(3, 16), opset=17,
         seed=39),
    dict(name="scatter-cols", family="ops", build=zoo.ScatterCols,
         inputs=[{"name": "input", "dtype": "float32", "shape": [-1, 6, 8]}], opset=17, seed=55),
    dict(name="user-select", family="ops", build=zoo.UserSelect, inputs=image(3, 5, 6),
         outputs=["values", "indices"], opset=13, seed=56),
    dict(name="user-acts", family="ops", build=zoo.UserActs, inputs=image(3, 5, 6), opset=17,
         seed=57),
    # 3-D convolutions and pools, and an If (LocalResponseNorm)
    dict(name="video3d", family="video", build=zoo.Video3d,
         inputs=[{"name": "input", "dtype": "float32", "shape": [-1, 3, 8, 16, 16]}], opset=17,
         seed=58),
]


# Hugging Face transformers models (tests/models/hf.py), when transformers is
# importable. Ids start at 3, clear of the pad/bos/eos ids; BERT's and GPT-2's
# exports take a 'sequence' axis (length buckets); opsets 14 and 17 both.
HF_SEQ = ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state", "logits"]
HF_PIXELS = [{"name": "pixel_values", "dtype": "float32", "shape": [-1, 3, 32, 32]}]
if hf is not None:
    HF_TEXT = [ids("input_ids", 16, 1000, low=3), ids("attention_mask", 16, 2)]
    REAL += [
        dict(name="hf-bert", family="hf", build=hf.bert,
             inputs=HF_TEXT + [ids("token_type_ids", 16, 2)],
             outputs=["last_hidden_state", "pooler_output"], opset=17, seed=40, sequence=HF_SEQ),
        dict(name="hf-bert-14", family="hf", build=hf.bert,
             inputs=HF_TEXT + [ids("token_type_ids", 16, 2)],
             outputs=["last_hidden_state", "pooler_output"], opset=14, seed=40),
        dict(name="hf-distilbert", family="hf", build=hf.distilbert, inputs=HF_TEXT,
             outputs=["last_hidden_state"], opset=17, seed=41),
        dict(name="hf-roberta", family="hf", build=hf.roberta, inputs=HF_TEXT,
             outputs=["last_hidden_state", "pooler_output"], opset=14, seed=42),
        dict(name="hf-gpt2", family="hf", build=hf.gpt2,
             inputs=[ids("input_ids", 16, 512, low=3), ids("attention_mask", 16, 2)],
             outputs=["last_hidden_state"], opset=17, seed=43, sequence=HF_SEQ),
        dict(name="hf-gpt2-lm", family="hf", build=hf.gpt2_lm,
             inputs=[ids("input_ids", 16, 512, low=3)], outputs=["logits"], opset=14, seed=44),
        dict(name="hf-vit", family="hf", build=hf.vit, inputs=HF_PIXELS,
             outputs=["last_hidden_state", "pooler_output"], opset=17, seed=45),
        dict(name="hf-t5-encoder", family="hf", build=hf.t5_encoder, inputs=HF_TEXT,
             outputs=["last_hidden_state"], opset=17, seed=46, sequence=HF_SEQ),
        dict(name="hf-whisper-encoder", family="hf", build=hf.whisper_encoder,
             inputs=[{"name": "input_features", "dtype": "float32", "shape": [-1, 16, 64]}],
             outputs=["last_hidden_state"], opset=17, seed=47),
        dict(name="hf-clip-vision", family="hf", build=hf.clip_vision, inputs=HF_PIXELS,
             outputs=["last_hidden_state", "pooler_output"], opset=14, seed=48),
        dict(name="hf-clip-text", family="hf", build=hf.clip_text, inputs=HF_TEXT,
             outputs=["last_hidden_state", "pooler_output"], opset=17, seed=49),
        dict(name="hf-wav2vec2", family="hf", build=hf.wav2vec2,
             inputs=[{"name": "input_values", "dtype": "float32", "shape": [-1, 400]}],
             outputs=["last_hidden_state", "extract_features"], opset=17, seed=50),
        dict(name="hf-llama", family="hf", build=hf.llama, inputs=HF_TEXT,
             outputs=["last_hidden_state"], opset=17, seed=51),
        dict(name="hf-detr", family="hf", build=hf.detr, inputs=HF_PIXELS,
             outputs=["logits", "encoder_last_hidden_state"], opset=17, seed=52),
        dict(name="hf-yolos", family="hf", build=hf.yolos, inputs=HF_PIXELS,
             outputs=["logits", "last_hidden_state"], opset=17, seed=53),
        dict(name="hf-xlnet", family="hf", build=hf.xlnet, inputs=HF_TEXT,
             outputs=["last_hidden_state"], opset=17, seed=54),
    ]


def build(builder, seed):
    torch.manual_seed(seed)
    return builder().eval()


def export_kwargs():
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        return {"dynamo": False}  # newer torch: keep the TorchScript exporter's graphs
    return {}


def export(module, path, opset, in_features):
    dummy = torch.zeros(2, in_features, dtype=torch.float32)
    torch.onnx.export(
        module, dummy, path, opset_version=opset, input_names=["input"],
        output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        do_constant_folding=True, **export_kwargs())
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


def op_types(model):
    """Sorted op types of the graph and of every subgraph (Loop, If, Scan bodies)."""
    return sorted({op for op, _ in walk_nodes(model.graph)})


def walk_nodes(g):
    """(op type, node) of every node, subgraphs included; 'domain:Op' outside ai.onnx."""
    for n in g.node:
        yield (n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}"), n
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from walk_nodes(a.g)
            for sub in a.graphs:
                yield from walk_nodes(sub)


def op_variants(model):
    """The attribute choices a runtime has to implement separately, as sorted
    'Op:variant' strings (Resize modes, Pad modes, 1-D/grouped/dilated Conv,
    RNN directions, ...), for the coverage list."""
    init_dims = {t.name: len(t.dims) for t in model.graph.initializer}
    out = set()
    for op, n in walk_nodes(model.graph):
        at = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        dec = {k: v.decode() if isinstance(v, bytes) else v for k, v in at.items()}
        if op == "Resize":
            out.add(f"Resize:{dec.get('mode', 'nearest')}/"
                    f"{dec.get('coordinate_transformation_mode', 'half_pixel')}"
                    + (f"/{dec.get('nearest_mode', 'round_prefer_floor')}"
                       if dec.get("mode", "nearest") == "nearest" else ""))
        elif op == "Pad":
            out.add(f"Pad:{dec.get('mode', 'constant')}")
        elif op in ("Conv", "ConvTranspose", "MaxPool", "AveragePool"):
            k = at.get("kernel_shape") or []
            if not k and len(n.input) > 1 and n.input[1] in init_dims:
                k = [0] * (init_dims[n.input[1]] - 2)
            if k:
                out.add(f"{op}:{len(k)}d")
            if at.get("group", 1) > 1:
                out.add(f"{op}:grouped")
            if any(d != 1 for d in at.get("dilations", [])):
                out.add(f"{op}:dilated")
            if any(st != 1 for st in at.get("strides", [])):
                out.add(f"{op}:strided")
            if at.get("ceil_mode", 0):
                out.add(f"{op}:ceil_mode")
            if any(p for p in at.get("output_padding", [])):
                out.add(f"{op}:output_padding")
        elif op in ("LSTM", "GRU", "RNN"):
            out.add(f"{op}:{dec.get('direction', 'forward')}")
        elif op == "Gemm":
            out.add("Gemm:transB" if at.get("transB", 0) else "Gemm:B")
        elif op == "Loop":
            body = sorted({o for o, _ in walk_nodes(at["body"])})
            out.add(f"Loop:body({' '.join(body)})")
        elif op == "Trilu":
            out.add(f"Trilu:{'upper' if at.get('upper', 1) else 'lower'}")
    return sorted(out)


# ---- opset 18+ by rewriting --------------------------------------------------

# ops whose 'axes' attribute became an input at opset 18 (ReduceSum, Squeeze,
# Unsqueeze and Split's 'split' already moved at 13)
AXES_INPUT_18 = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                 "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}
# the IR version each opset came with (onnx/helper.py VERSION_TABLE)
IR_OF_OPSET = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10}


def upgrade_opset(model, target):
    """An opset-13..17 model (as torch 1.13 exports) rewritten for opset target
    (18..21): the Reduce* 'axes' attributes become int64 inputs (initializers in
    the main graph, Constant nodes in subgraphs) and the imports are bumped. No
    op in torch's output changed meaning from 13 to 21 otherwise: 19..21 only
    added types (float8, int4), attributes whose defaults keep the old
    behaviour (Pad 'axes', Resize 'antialias', Cast 'saturate'), and new ops."""
    m = copy.deepcopy(model)
    base = max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    if base < 13 or target < 18 or target not in IR_OF_OPSET:
        raise ValueError(f"upgrade_opset: {base} -> {target} not supported")
    count = [0]

    def fix(g, top):
        nodes = []
        for n in g.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    fix(a.g, False)
                for sub in a.graphs:
                    fix(sub, False)
            axes = [a for a in n.attribute if a.name == "axes"]
            if n.op_type in AXES_INPUT_18 and axes:
                name = f"{n.name or n.output[0]}_axes_{count[0]}"
                count[0] += 1
                t = numpy_helper.from_array(np.array(axes[0].ints, dtype=np.int64), name)
                if top:
                    g.initializer.append(t)
                else:
                    nodes.append(helper.make_node("Constant", [], [name], value=t))
                n.attribute.remove(axes[0])
                n.input.append(name)
            if n.op_type == "Split" and any(a.name == "split" for a in n.attribute):
                raise ValueError("upgrade_opset: Split with a 'split' attribute (opset < 13)")
            nodes.append(n)
        del g.node[:]
        g.node.extend(nodes)

    fix(m.graph, True)
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = target
    m.ir_version = IR_OF_OPSET[target]
    return m


def check_model(model_or_path, opset):
    """onnx.checker when the installed onnx knows the opset; Debian 12's onnx
    1.12 stops at 17, so opset 18+ files are checked structurally there (each
    Reduce* has its axes input) and run through onnxruntime by
    tests/models/check_ort.py."""
    if onnx.defs.onnx_opset_version() >= opset:
        onnx.checker.check_model(model_or_path, full_check=True)
        return
    m = model_or_path if isinstance(model_or_path, onnx.ModelProto) else onnx.load(model_or_path)
    for n in m.graph.node:
        if n.op_type in AXES_INPUT_18 and any(a.name == "axes" for a in n.attribute):
            raise ValueError(f"node {n.name} ({n.op_type}): axes is still an attribute")


# ---- inputs, references ------------------------------------------------------

def make_input(spec, seed, k, b):
    """Input k of a real model at batch b: seeded, the same on every run."""
    rng = np.random.default_rng([seed, b, k])
    shape = [b if d == -1 else d for d in spec["shape"]]
    if spec["dtype"] == "float32":
        return rng.standard_normal(shape, dtype=np.float32)
    if spec["name"] == "attention_mask":
        # padding at the end of each sequence, every sample with >= 1 token
        t = shape[1]
        lengths = rng.integers(1, t + 1, size=b)
        lengths[0] = t  # one full sequence
        return (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)
    return rng.integers(spec["low"], spec["high"], size=shape, dtype=np.int64)


def grouped_conv_by_unfold(self, x, weight, bias):
    """nn.Conv2d._conv_forward for grouped and depthwise convolutions in float64:
    im2col (F.unfold) and one batched matmul over the groups. torch's CPU
    float64 grouped conv loops over groups through its slow path: 40 s for
    MobileNetV2's batch-32 reference, 1 s this way; the same sums in float64."""
    if self.padding_mode != "zeros":
        x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
        padding = (0, 0)
    else:
        padding = self.padding
    n, c, h, w = x.shape
    g, (kh, kw) = self.groups, self.kernel_size
    cols = F.unfold(x, (kh, kw), dilation=self.dilation, padding=padding, stride=self.stride)
    oh = (h + 2 * padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
    ow = (w + 2 * padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
    cols = cols.reshape(n, g, (c // g) * kh * kw, oh * ow)
    y = torch.matmul(weight.reshape(g, -1, (c // g) * kh * kw), cols)  # [n,g,o/g,L]
    y = y.reshape(n, -1, oh, ow)
    return y if bias is None else y + bias.reshape(1, -1, 1, 1)


def to_float64(module):
    """A float64 copy of module for the references, grouped convs made fast."""
    m64 = copy.deepcopy(module).double()
    for m in m64.modules():
        if isinstance(m, nn.Conv2d) and m.groups > 1 and isinstance(m.padding, tuple):
            m._conv_forward = types.MethodType(grouped_conv_by_unfold, m)
    return m64


def run64(module64, xs):
    """The float64 reference: float inputs upcast, integer inputs as they are."""
    args = [torch.from_numpy(x).double() if x.dtype.kind == "f" else torch.from_numpy(x)
            for x in xs]
    with torch.inference_mode():
        ys = module64(*args)
    ys = ys if isinstance(ys, (tuple, list)) else (ys,)
    return [y.numpy() for y in ys]


def file_name(model, kind, spec_name, n, b):
    """M.in.b.npy / M.ref.b.npy for one tensor, M.in.NAME.b.npy when several."""
    return f"{model}.{kind}.{b}.npy" if n == 1 else f"{model}.{kind}.{spec_name}.{b}.npy"


def gen_real(spec, out, built):
    """Exports (or rewrites) one real model, writes its data; returns its manifest entry."""
    name, seed, opset_req = spec["name"], spec["seed"], spec.get("opset")
    in_specs = spec["inputs"]
    out_names = spec.get("outputs", ["output"])
    onnx_file = f"{name}.onnx"
    path = os.path.join(out, onnx_file)
    if "upgrade" in spec:
        base, opset_req = spec["upgrade"]
        if base not in built:
            raise ValueError(f"base model {base} not generated (list it first)")
        module = built[base]
        m = upgrade_opset(onnx.load(os.path.join(out, f"{base}.onnx")), opset_req)
        check_model(m, opset_req)
        onnx.save(m, path)
    else:
        module = build(spec["build"], seed)
        cal_b = spec.get("calibrate_batch", 8)  # BatchNorm statistics: see randomize_norms
        calibration = [tuple(torch.from_numpy(make_input(s, seed + 2000 + j, k, cal_b))
                             for k, s in enumerate(in_specs)) for j in range(2)]
        zoo.randomize_norms(module, seed, calibration)
        dummies = [torch.from_numpy(make_input(s, seed + 1000, k, 2))
                   for k, s in enumerate(in_specs)]
        names = [s["name"] for s in in_specs] + out_names
        torch.onnx.export(
            module, tuple(dummies), path, opset_version=opset_req,
            input_names=[s["name"] for s in in_specs], output_names=out_names,
            dynamic_axes={n: {0: "batch", **({1: "sequence"} if n in spec.get("sequence", ())
                                              else {})} for n in names},
            do_constant_folding=True,
            **export_kwargs())
        check_model(path, opset_req)
    built[name] = module
    module64 = to_float64(module)
    model = onnx.load(path)
    graph_inputs = [i.name for i in model.graph.input]
    if graph_inputs[:len(in_specs)] != [s["name"] for s in in_specs]:
        raise ValueError(f"graph inputs {graph_inputs} are not {[s['name'] for s in in_specs]}")

    files = [onnx_file]
    inputs = [dict(s, files={}) for s in in_specs]
    outputs = [{"name": n, "files": {}} for n in out_names]
    for b in REAL_BATCH_SIZES:
        xs = [make_input(s, seed, k, b) for k, s in enumerate(in_specs)]
        ys = run64(module64, xs)
        if len(ys) != len(out_names):
            raise ValueError(f"{len(ys)} outputs, expected {out_names}")
        for k, (s, x) in enumerate(zip(inputs, xs)):
            f = file_name(name, "in", s["name"], len(inputs), b)
            np.save(os.path.join(out, f), x)
            s["files"][str(b)] = f
            files.append(f)
        for o, y in zip(outputs, ys):
            if y.shape[0] != b or (y.dtype.kind == "f" and not np.isfinite(y).all()):
                raise ValueError(f"output {o['name']} at batch {b}: shape {y.shape}, "
                                 "or non-finite values")
            # a reference that hardly depends on the input passes whatever a
            # runtime computes (the vanishing logits of random-weight nets)
            spread = y.std(axis=0).mean() / (np.abs(y).mean() + 1e-30) if b > 1 else 1.0
            if y.dtype.kind == "f" and spread < SPREAD_MIN:
                raise ValueError(f"output {o['name']} at batch {b} is nearly the same for "
                                 f"every sample (spread {spread:.1e} < {SPREAD_MIN:.0e})")
            f = file_name(name, "ref", o["name"], len(outputs), b)
            np.save(os.path.join(out, f), y)
            o["files"][str(b)] = f
            o["dtype"], o["shape"] = str(y.dtype), [-1, *y.shape[1:]]
            files.append(f)
    entry = {"name": name, "onnx": onnx_file, "opset": opset_of(path),
             "family": spec["family"], "batch_sizes": REAL_BATCH_SIZES,
             "tol": spec.get("tol", TOL_REAL), "ops": op_types(model),
             "op_variants": op_variants(model), "inputs": inputs,
             "outputs": outputs, "external_data": False, "files": files}
    if "tol_reason" in spec:
        entry["tol_reason"] = spec["tol_reason"]
    return entry


def main():
    args = ARGS
    out = args.out
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(args.threads)
    only = set(filter(None, args.only.split(",")))
    t_start = time.monotonic()
    manifest = {"generator": "tests/models/gen.py", "torch": torch.__version__,
                "onnx": onnx.__version__, "transformers": transformers_version(), "batch_sizes": BATCH_SIZES, "models": []}
    made = {}

    def record(name, onnx_file, opset, in_f, out_f, external, extra_files=()):
        files = [onnx_file, *extra_files]
        for b in BATCH_SIZES:
            files += [f"{name}.in.{b}.npy", f"{name}.ref.{b}.npy"]
        per_b = {str(b): f"{name}.in.{b}.npy" for b in BATCH_SIZES}
        ref_b = {str(b): f"{name}.ref.{b}.npy" for b in BATCH_SIZES}
        model = onnx.load(os.path.join(out, onnx_file), load_external_data=False)
        ops, variants = op_types(model), op_variants(model)
        manifest["models"].append({
            "name": name, "onnx": onnx_file, "opset": opset, "input": "input",
            "output": "output", "in_features": in_f, "out_features": out_f,
            "external_data": external, "batch_sizes": BATCH_SIZES, "files": files,
            "family": "mlp", "tol": TOL_MLP, "ops": ops, "op_variants": variants,
            "inputs": [{"name": "input", "dtype": "float32", "shape": [-1, in_f],
                        "files": per_b}],
            "outputs": [{"name": "output", "dtype": "float64", "shape": [-1, out_f],
                         "files": ref_b}]})

    for name, builder, opset, seed, in_f, out_f in MODELS:
        if only and name not in only and not (name == EXTERNAL[1] and EXTERNAL[0] in only):
            continue
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
    if not only or ext_name in only:
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
        record(ext_name, f"{ext_name}.onnx", opset_of(os.path.join(out, f"{src}.onnx")), in_f,
               out_f, True, extra_files=[data_file])

    built, failed = {}, []
    for spec in REAL:
        name = spec["name"]
        if only and name not in only and not any(
                s.get("upgrade", ("",))[0] == name and s["name"] in only for s in REAL):
            continue
        t0 = time.monotonic()
        try:
            entry = gen_real(spec, out, built)
        except Exception:  # noqa: BLE001 - name the model, go on, fail at the end
            traceback.print_exc()
            print(f"gen.py: FAILED: model {name}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        manifest["models"].append(entry)
        print(f"gen.py: {name} (opset {entry['opset']}, {len(entry['ops'])} op types) in "
              f"{time.monotonic() - t0:.1f}s", flush=True)
    for meta in (f for f in fixture_files() if f.endswith(".json")):
        name = meta[:-5]
        if only and name not in only:
            continue
        try:
            manifest["models"].append(gen_fixture(meta, out))
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            print(f"gen.py: FAILED: fixture {name}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        print(f"gen.py: {name} (a fixture: {manifest['models'][-1]['exporter']})", flush=True)
    if failed:
        print(f"gen.py: FAILED: {', '.join(failed)}; no manifest written", file=sys.stderr)
        return 1

    # the coverage list: every op type any model uses
    manifest["ops"] = sorted({op for m in manifest["models"] for op in m["ops"]})
    target = "manifest.partial.json" if only else MANIFEST
    tmp = os.path.join(out, target + ".tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.replace(tmp, os.path.join(out, target))
    size = sum(os.path.getsize(os.path.join(out, f)) for m in manifest["models"]
               for f in m["files"])
    print(f"gen.py: wrote {len(manifest['models'])} models ({size / 1e6:.0f} MB) to "
          f"{out}/{target} in {time.monotonic() - t_start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
