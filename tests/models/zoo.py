"""The real-model families of the test suite and of bench/models.py, as torch modules.

Only module definitions live here (gen.py decides sizes, seeds, inputs and
opsets). Everything is written for torch 1.13's TorchScript ONNX exporter:
shapes come from tensor.shape so that they stay symbolic in the graph, and
every output of a sample depends on that sample alone (the engine may split a
batch into chunks).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


def randomize_norms(module, seed, calibration=()):
    """Makes every normalization matter, so that a runtime that ignores one fails
    the parity test, while keeping the signal alive through deep nets.

    BatchNorm running stats are first measured on the calibration batches (a
    tuple of input tuples; train mode, cumulative average), as a trained net's
    would be: torchvision's defaults (mean 0, var 1) against random-weight
    activations make the logits of MobileNet or EfficientNet nearly constant, a
    test that passes whatever the convolutions compute. Then each BatchNorm's
    stats are perturbed and its affine parameters, each LayerNorm's affine
    transform and ConvNeXt's layer scale (1e-6 at init) drawn at random; weights
    left at zero by an init scheme (ViT's head) get small random values.
    Seeded on its own so that the result does not depend on build order."""
    g = torch.Generator().manual_seed(seed)

    def rnd(t, lo, hi):
        return lo + (hi - lo) * torch.rand(t.shape, generator=g, dtype=t.dtype)

    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if bns and calibration:
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        module.train()
        with torch.no_grad():
            for args in calibration:
                module(*args)
        module.eval()
        for m, mom in zip(bns, momenta):
            m.momentum = mom
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                std = m.running_var.sqrt()
                m.running_mean.add_(0.1 * std * rnd(m.running_mean, -1.0, 1.0))
                m.running_var.mul_(rnd(m.running_var, 0.8, 1.25))
                if m.affine:
                    m.weight.copy_(rnd(m.weight, 0.7, 1.3))
                    m.bias.copy_(rnd(m.bias, -0.1, 0.1))
            elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
                m.weight.copy_(rnd(m.weight, 0.7, 1.3))
                m.bias.copy_(rnd(m.bias, -0.1, 0.1))
            elif isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) and not m.weight.any():
                m.weight.copy_(0.05 * torch.randn(m.weight.shape, generator=g))
            if hasattr(m, "layer_scale") and isinstance(m.layer_scale, nn.Parameter):
                m.layer_scale.copy_(rnd(m.layer_scale, 0.3, 1.0))
    return module


class SelfAttention(nn.Module):
    """Multi-head attention written out (MatMul, Softmax), with an additive bias
    [N,1,T,T] or [N,1,1,T] for masks."""

    def __init__(self, d, heads):
        super().__init__()
        self.h, self.dk = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x, bias):
        n, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q = q.reshape(n, t, self.h, self.dk).transpose(1, 2)
        k = k.reshape(n, t, self.h, self.dk).transpose(1, 2)
        v = v.reshape(n, t, self.h, self.dk).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.dk)) + bias
        y = att.softmax(dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(n, t, d))


class EncoderLayer(nn.Module):
    """Post-norm BERT layer: x = LN(x + attn(x)); x = LN(x + FFN(x)), GELU (erf)."""

    def __init__(self, d, heads, ff):
        super().__init__()
        self.attn = SelfAttention(d, heads)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))

    def forward(self, x, bias):
        x = self.ln1(x + self.attn(x, bias))
        return self.ln2(x + self.ff(x))


class BertEncoder(nn.Module):
    """input_ids [N,T] int64, attention_mask [N,T] int64 (1 = token, 0 = padding)
    -> last_hidden_state [N,T,d], pooler_output [N,d] (tanh(Linear(h[:,0])))."""

    def __init__(self, vocab=1000, d=64, layers=2, heads=4, ff=128, max_len=64, types=2):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d)
        self.typ = nn.Embedding(types, d)
        self.ln = nn.LayerNorm(d)
        self.layers = nn.ModuleList(EncoderLayer(d, heads, ff) for _ in range(layers))
        self.pool = nn.Linear(d, d)

    def forward(self, input_ids, attention_mask):
        t = input_ids.shape[1]
        pos = torch.arange(t, device=input_ids.device)
        x = self.tok(input_ids) + self.pos(pos) + self.typ(torch.zeros_like(input_ids))
        x = self.ln(x)
        # BERT's extended mask: 0 where attended, -1e4 on padding, [N,1,1,T]
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return x, torch.tanh(self.pool(x[:, 0]))


class GptDecoder(nn.Module):
    """input_ids [N,T] int64 -> logits [N,T,vocab]; pre-norm blocks, causal mask
    built in the graph from the sequence length (triu of ones, masked_fill)."""

    def __init__(self, vocab=512, d=64, layers=2, heads=4, ff=256, max_len=64):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            self.blocks.append(nn.ModuleDict({
                "ln1": nn.LayerNorm(d), "attn": SelfAttention(d, heads), "ln2": nn.LayerNorm(d),
                "mlp": nn.Sequential(nn.Linear(d, ff), nn.GELU(approximate="tanh"),
                                     nn.Linear(ff, d))}))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids):
        t = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos(torch.arange(t, device=input_ids.device))
        future = torch.triu(torch.ones(t, t, dtype=torch.bool, device=x.device), diagonal=1)
        bias = torch.zeros(t, t, dtype=x.dtype, device=x.device).masked_fill(future, -1e9)
        for b in self.blocks:
            x = x + b["attn"](b["ln1"](x), bias)
            x = x + b["mlp"](b["ln2"](x))
        return self.head(self.ln_f(x))


class TorchEncoder(nn.Module):
    """input_ids [N,T] -> [N,classes] through torch's own nn.TransformerEncoder
    (batch_first, pre-norm): nn.MultiheadAttention's export, time-major
    inside. Its layers are deep copies of one, so the export shares their
    weights (one initializer read by both layers)."""

    def __init__(self, vocab=1000, d=64, heads=4, ff=128, layers=2, classes=5):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, input_ids):
        return self.head(self.enc(self.emb(input_ids)).mean(1))


class TorchSeq2Seq(nn.Module):
    """src [N,S,d], tgt [N,T,d] -> [N,T,d] through torch's nn.Transformer: encoder
    self-attention, decoder self-attention under a causal mask, and cross
    attention from the decoder to the encoder's memory."""

    def __init__(self, d=32, heads=4, ff=64):
        super().__init__()
        self.t = nn.Transformer(d_model=d, nhead=heads, num_encoder_layers=1,
                                num_decoder_layers=1, dim_feedforward=ff, dropout=0.0,
                                batch_first=True)

    def forward(self, src, tgt):
        t = tgt.shape[1]
        causal = torch.triu(torch.full((t, t), float("-inf"), device=tgt.device), 1)
        return self.t(src, tgt, tgt_mask=causal)


class RnnClassifier(nn.Module):
    """input_ids [N,T] int64 -> Embedding -> LSTM or GRU (batch_first) -> Linear on
    the last time step -> logits [N,classes]."""

    def __init__(self, cell, vocab=500, emb=32, hidden=48, layers=2, bidirectional=False,
                 classes=5, batch_first=True):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.batch_first = batch_first
        self.rnn = rnn(emb, hidden, num_layers=layers, batch_first=batch_first,
                       bidirectional=bidirectional)
        self.fc = nn.Linear(hidden * (2 if bidirectional else 1), classes)

    def forward(self, input_ids):
        if self.batch_first:
            y, _ = self.rnn(self.emb(input_ids))
            return self.fc(y[:, -1])
        # time-major: ids transposed before the embedding, so that its rows
        # reach the LSTM with no Transpose between them
        y, _ = self.rnn(self.emb(input_ids.t()))
        return self.fc(y[-1])


class RnnStates(nn.Module):
    """x [N,T,I] -> a 2-layer bidirectional LSTM (batch_first) and a GRU
    (time-major), each started from initial states computed from x, returning
    every output an RNN node has: the sequences and the final hidden and cell
    states, batch-major. The classifiers above read only y[:, -1]; this one
    checks Y_h, Y_c, initial_h and initial_c."""

    def __init__(self, i=8, h=12):
        super().__init__()
        self.h = h
        self.lstm = nn.LSTM(i, h, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = nn.GRU(i, h)
        self.h0 = nn.Linear(i, 4 * h)
        self.c0 = nn.Linear(i, 4 * h)
        self.g0 = nn.Linear(i, h)

    def forward(self, x):
        n, x0 = x.shape[0], x[:, 0]
        h0 = torch.tanh(self.h0(x0)).view(n, 4, self.h).transpose(0, 1).contiguous()
        c0 = self.c0(x0).view(n, 4, self.h).transpose(0, 1).contiguous()
        y, (hn, cn) = self.lstm(x, (h0, c0))
        g, gn = self.gru(x.transpose(0, 1), torch.tanh(self.g0(x0)).unsqueeze(0))
        return (y, hn.transpose(0, 1).reshape(n, -1), cn.transpose(0, 1).reshape(n, -1),
                g.transpose(0, 1), gn.transpose(0, 1).reshape(n, -1))


class Cnn1d(nn.Module):
    """x [N,C,L] -> (Conv1d, BatchNorm1d, ReLU, MaxPool1d) x 2 -> Conv1d ->
    concat(AdaptiveAvgPool1d(1), max over time) -> Linear."""

    def __init__(self, c_in=4, width=32, classes=6):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(c_in, width, 5, padding=2), nn.BatchNorm1d(width), nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(width, width, 3, padding=2, dilation=2), nn.BatchNorm1d(width), nn.ReLU(),
            nn.MaxPool1d(3, stride=2, padding=1),
            nn.Conv1d(width, 2 * width, 3, stride=2, groups=2), nn.ReLU())
        self.avg = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(4 * width, classes)

    def forward(self, x):
        h = self.body(x)
        return self.fc(torch.cat([self.avg(h).flatten(1), h.amax(dim=-1)], dim=1))


class ConvAutoencoder(nn.Module):
    """x [N,1,H,W] -> strided Conv2d encoder -> ConvTranspose2d decoder -> Sigmoid."""

    def __init__(self, c=1, w=16):
        super().__init__()
        self.enc = nn.Sequential(
            nn.Conv2d(c, w, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU())
        self.dec = nn.Sequential(
            nn.ConvTranspose2d(2 * w, w, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(w, c, 4, stride=2, padding=1), nn.Sigmoid())

    def forward(self, x):
        return self.dec(self.enc(x))


def conv_block(c_in, c_out, padding_mode):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode=padding_mode, bias=False),
        nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, padding_mode=padding_mode, bias=False),
        nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Three-level U-Net: reflect/replicate/zero padding, MaxPool2d down; up by
    nearest F.interpolate, bilinear F.interpolate and ConvTranspose2d; skip
    connections by Concat; per-pixel logits [N,classes,H,W]."""

    def __init__(self, c_in=3, w=8, classes=2):
        super().__init__()
        self.d1 = conv_block(c_in, w, "reflect")
        self.d2 = conv_block(w, 2 * w, "replicate")
        self.d3 = conv_block(2 * w, 4 * w, "zeros")
        self.mid = conv_block(4 * w, 4 * w, "reflect")
        self.u3 = conv_block(8 * w, 2 * w, "reflect")
        self.u2 = conv_block(4 * w, w, "zeros")
        self.up1 = nn.ConvTranspose2d(w, w, 2, stride=2)
        self.u1 = conv_block(2 * w, w, "replicate")
        self.out = nn.Conv2d(w, classes, 1)

    def forward(self, x):
        s1 = self.d1(x)
        s2 = self.d2(F.max_pool2d(s1, 2))
        s3 = self.d3(F.max_pool2d(s2, 2))
        m = self.mid(F.max_pool2d(s3, 2))
        y = self.u3(torch.cat([F.interpolate(m, scale_factor=2.0, mode="nearest"), s3], 1))
        y = self.u2(torch.cat([F.interpolate(y, scale_factor=2.0, mode="bilinear",
                                             align_corners=False), s2], 1))
        y = self.u1(torch.cat([self.up1(y), s1], 1))
        return self.out(y)


def mlp(dims, last_act=True):
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if last_act or i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    """DLRM-style click model. dense [N,D] float; for each sparse feature k an
    int64 [N,L_k] bag of ids per sample (EmbeddingBag 'sum' or 'mean', 2-D input:
    fixed bag size, no offsets) and one single id [N] (nn.Embedding). Bottom
    MLP, pairwise dot products of the feature vectors (upper triangle), top MLP
    -> click probability [N,1].

    torch 1.13 exports nn.EmbeddingBag, in both forms (2-D [N,L] ids, or 1-D ids
    + offsets) and every mode, as a Loop over the bags whose body is Gather +
    ReduceSum / ReduceMean / ReduceMax (+ Slice, Cast, Unsqueeze); the 2-D form
    adds Shape/Range/ReduceProd/Reshape around it to make the offsets. The 2-D
    form keeps 'batch' on axis 0 of every input (1-D ids have N*L rows), so
    it is the one tested here."""

    def __init__(self, dense=13, tables=((1000, "sum"), (500, "mean"), (200, "sum")),
                 single=100, d=16):
        super().__init__()
        self.bot = mlp([dense, 32, d])
        self.bags = nn.ModuleList(nn.EmbeddingBag(n, d, mode=mode) for n, mode in tables)
        self.single = nn.Embedding(single, d)
        f = len(tables) + 2
        self.pairs = torch.triu_indices(f, f, offset=1)
        self.top = nn.Sequential(mlp([d + f * (f - 1) // 2, 32, 16]), nn.Linear(16, 1),
                                 nn.Sigmoid())

    def forward(self, dense, *sparse):
        x = self.bot(dense)
        feats = [x] + [bag(ids) for bag, ids in zip(self.bags, sparse)]
        feats.append(self.single(sparse[len(self.bags)]))
        t = torch.stack(feats, dim=1)  # [N,F,d]
        z = torch.bmm(t, t.transpose(1, 2))  # [N,F,F]
        inter = z[:, self.pairs[0], self.pairs[1]]
        return self.top(torch.cat([x, inter], dim=1))


class TabularMLP(nn.Module):
    """x [N,F] -> (Linear, BatchNorm1d, ReLU, Dropout) x 2 -> Linear -> LogSoftmax."""

    def __init__(self, f=20, hidden=64, classes=3):
        super().__init__()
        self.net = nn.Sequential(
            nn.BatchNorm1d(f),
            nn.Linear(f, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(hidden, classes), nn.LogSoftmax(dim=-1))

    def forward(self, x):
        return self.net(x)


class OpsMix(nn.Module):
    """One model per op group the CNNs and transformers above do not reach.
    x [N,4,8,8] float -> a dict of small outputs, each a different op chain.
    Comparisons act on the raw input (exact in float32 and float64) so that no
    rounding difference can flip a mask."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        n = x.shape[0]
        # Resize: linear with align_corners both ways, nearest, downscale
        r1 = F.interpolate(x, size=(12, 12), mode="bilinear", align_corners=True)
        r2 = F.interpolate(x, size=(12, 12), mode="bilinear", align_corners=False)
        r3 = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        resize = torch.cat([r1.flatten(1), r2.flatten(1), r3.flatten(1)], 1)
        # Pad reflect / edge (replicate) / constant
        p = torch.cat([F.pad(x, (1, 2, 2, 1), mode="reflect"),
                       F.pad(x, (1, 2, 2, 1), mode="replicate"),
                       F.pad(x, (1, 2, 2, 1), mode="constant", value=0.5)], 1)
        # Split, Slice with steps (positive and negative), Expand
        a, b = torch.split(self.conv(x), [1, 3], dim=1)
        sl = x[:, :, ::2, 1::3] * 2.0 + x.flip(-1)[:, :, 1:8:2, :3]
        ex = a.expand(n, 3, 8, 8) * b
        # Where, comparisons, Not, Clip, Min/Max
        pos, neg = x > 0.5, x < -0.5
        mid = ~(pos | neg)
        eq = torch.eq(torch.round(x * 2.0), 1.0)
        w = torch.where(mid, x, torch.clamp(x, -0.75, 0.75)) + eq.to(x.dtype)
        w = torch.minimum(w, x.flip(1)) + torch.maximum(x, torch.zeros_like(x)) * 0.5
        # Reduce*, unary math
        u = torch.exp(-torch.abs(x)) + torch.log(torch.abs(x) + 1.0) + torch.reciprocal(
            torch.abs(x) + 1.0) - torch.neg(torch.sqrt(torch.abs(x)))
        red = torch.cat([x.sum(dim=(2, 3)), x.amax(dim=(1, 3)), x.mean(dim=2).flatten(1),
                         x.amin(dim=3).flatten(1), torch.prod(torch.tanh(x), dim=1).flatten(1)],
                        1)
        # Range, ConstantOfShape: an index ramp over a feature axis
        ramp = torch.arange(x.shape[3], dtype=x.dtype, device=x.device) * 0.25
        cos = torch.ones(x.shape[1], x.shape[3], dtype=x.dtype, device=x.device)
        rr = (x[:, :, 0, :] + ramp) * cos
        out = torch.cat([resize, p.flatten(1), sl.flatten(1), ex.flatten(1), w.flatten(1),
                         u.flatten(1), red, rr.flatten(1)], 1)
        return out, torch.argmax(x.flatten(1), dim=1)


class SliceAssign(nn.Module):
    """In-place slice writes on a batch tensor, as users write them:
    y[:, 1:3] = ... exports as ScatterND with index tuples (n, j) from a
    Range over the batch, which must stay in each sample's rows; m[0:2] = 1
    on a tensor shaped by x.shape exports as one folded at load.
    x [N,6,8] float -> [N,6,8]."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        y = self.fc(x).clone()
        y[:, 1:3] = torch.tanh(y[:, 4:6]) * 2.0
        m = x.new_zeros((x.shape[1], 1))
        m[0:2] = 1.0
        return y + m


class UserSelect(nn.Module):
    """torch.topk, torch.sort (a TopK of the whole axis), x.norm(p=1) (ReduceL1)
    and x.std() (ReduceProd of a Shape) as users write them. x [N,3,5,6] ->
    (values [N,147] float, indices [N,135] int64)."""

    def forward(self, x):
        v, i = torch.topk(x, 3, dim=-1)
        s, j = torch.sort(x, dim=1, descending=False)
        values = torch.cat([v.flatten(1), s.flatten(1), x.norm(p=1, dim=-1).flatten(1),
                            x.std(dim=-1).flatten(1)], 1)
        return values, torch.cat([i.flatten(1), j.flatten(1)], 1)


class UserActs(nn.Module):
    """nn.ELU, SELU, CELU, Softsign, Hardshrink, torch.nan_to_num and isfinite
    (IsNaN, IsInf), F.one_hot (OneHot) and nn.RNN with relu, bidirectional
    (RNN), as users write them. x [N,3,5,6] -> [N,1170] float."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.rnn = nn.RNN(18, 8, batch_first=True, nonlinearity="relu", bidirectional=True)

    def forward(self, x):
        y = self.fc(x)
        acts = torch.cat([F.elu(y), F.selu(y), F.celu(y, 0.5), F.softsign(y),
                          F.hardshrink(y, 0.3)], -1)
        lg = torch.log(y)  # NaN below 0
        fin = torch.nan_to_num(lg, nan=0.25, neginf=-2.0) + torch.isfinite(lg).float()
        hot = F.one_hot(y.argmax(1), 6).float()
        seq = self.rnn(y.permute(0, 2, 1, 3).flatten(2))[0]
        return torch.cat([acts.flatten(1), fin.flatten(1), hot.flatten(1), seq.flatten(1)], 1)


class Video3d(nn.Module):
    """A tiny video net as torchvision's r3d_18 / r2plus1d_18 build theirs:
    Conv3d + BatchNorm3d + ReLU, MaxPool3d, a (1,3,3) spatial and a (3,1,1)
    temporal conv (grouped), ConvTranspose3d, AvgPool3d with
    count_include_pad and ceil_mode, a global pool and a head; and
    nn.LocalResponseNorm, whose export is a 3-D AvgPool behind an If.
    x [N,3,8,16,16] -> [N,5+8*4*4]."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(3, 8, 3, padding=1, bias=False), nn.BatchNorm3d(8),
                                  nn.ReLU(), nn.MaxPool3d(2))
        self.sp = nn.Conv3d(8, 8, (1, 3, 3), padding=(0, 1, 1), groups=2)
        self.tm = nn.Conv3d(8, 8, (3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0))
        self.up = nn.ConvTranspose3d(8, 6, 2, stride=2)
        self.pool = nn.AvgPool3d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=True)
        self.head = nn.Linear(6, 5)
        self.lrn = nn.LocalResponseNorm(3, alpha=0.5)

    def forward(self, x):
        y = self.stem(x)                    # [N,8,4,8,8]
        y = torch.relu(self.tm(torch.relu(self.sp(y))))  # [N,8,2,8,8]
        z = self.pool(self.up(y))           # [N,6,3,9,9]
        logits = self.head(z.mean((2, 3, 4)))
        r = self.lrn(y.mean(2))[:, :, ::2, ::2]  # [N,8,4,4]
        return torch.cat([logits, r.flatten(1)], 1)


class ScatterCols(nn.Module):
    """y.scatter(2, idx, src) with constant indices expanded to the batch,
    as users write it: ScatterElements along a sample's own axis (torch
    1.13 cannot export scatter_add's index without static dims).
    x [N,6,8] float -> [N,6,8]."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.register_buffer("cols", torch.tensor([[[7, 0], [3, 4], [1, 5], [6, 2], [0, 1],
                                                    [4, 7]]]))

    def forward(self, x):
        y = self.fc(x)
        idx = self.cols.expand(x.shape[0], -1, -1)
        return y.scatter(2, idx, torch.sigmoid(y[..., :2]))


class GridWarp(nn.Module):
    """An image sampled at a grid computed from it, as spatial transformers
    and optical-flow warps (RAFT) do: GridSample, bilinear, with each
    padding mode and both align_corners. x [N,3,16,16] -> [N,3,16,16].
    (Nearest is left to the unit tests: float32 and float64 grids may round
    a coordinate near a pixel's edge to different pixels.)"""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16),
                                indexing="ij")
        self.register_buffer("base", torch.stack((xs, ys), dim=-1).unsqueeze(0))

    def forward(self, x):
        grid = self.base + 0.3 * torch.tanh(self.conv(x)).permute(0, 2, 3, 1)
        y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        y = y + F.grid_sample(x, grid * 1.2, mode="bilinear", padding_mode="border",
                              align_corners=True)
        return y + F.grid_sample(x, grid * 1.4, mode="bilinear", padding_mode="reflection",
                                 align_corners=False)
