#!/usr/bin/python3
"""Reference data for tests/backend/test_cpu_rnn.c: ONNX LSTM, GRU and RNN cases.

Each case is a folder OUT/<name>/ with params.txt (key=value lines), the f32
inputs the kernel gets (X, W, R and, when the case has them, B, P, lens
(int32), h0, c0) and the float64 expected outputs Y, Y_h (and Y_c for LSTM),
all .npy in ONNX's layout for the case. OUT/cases.txt lists the folders.

Expected outputs come from PyTorch's nn.LSTM / nn.GRU / nn.RNN in float64 where
PyTorch can express the case (its gate orders converted to ONNX's; reverse
as forward over the time-flipped input; sequence_lens as a packed
sequence), else from a float64 numpy transcription of the ONNX operator
pages (peepholes, input_forget, clip, GRU linear_before_reset=0). Every
PyTorch case is also run through the numpy transcription, and the two must
agree to 1e-10, so that the transcription is itself checked.

Usage: /usr/bin/python3 rnn_ref.py --out DIR
"""
import argparse
import os
import sys
import zlib

import numpy as np
import torch

# ------------------------------------------------------ ONNX, in numpy


def sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def onnx_rnn(kind, X, W, R, B, P, lens, h0, c0, direction, layout, clip=None,
             input_forget=0, lbr=0):
    """ONNX LSTM/GRU/RNN in float64, one batch entry and step at a time (kind
    "rnn_tanh" and "rnn_relu" are the RNN with that activation)."""
    X = X.astype(np.float64)
    if layout == 1:
        X = X.transpose(1, 0, 2)
        h0 = None if h0 is None else h0.transpose(1, 0, 2)
        c0 = None if c0 is None else c0.transpose(1, 0, 2)
    seq, batch, _ = X.shape
    D, GH, _ = W.shape
    H = R.shape[2]
    G = GH // H
    W = W.astype(np.float64)
    R = R.astype(np.float64)
    B = np.zeros((D, 2 * GH)) if B is None else B.astype(np.float64)
    P = np.zeros((D, 3 * H)) if P is None else P.astype(np.float64)
    cl = (lambda v: np.clip(v, -clip, clip)) if clip else (lambda v: v)
    Y = np.zeros((seq, D, batch, H))
    Yh = np.zeros((D, batch, H))
    Yc = np.zeros((D, batch, H))
    for d in range(D):
        rev = direction == "reverse" or d == 1
        Wg = np.split(W[d], G)
        Rg = np.split(R[d], G)
        Wb = np.split(B[d, :GH], G)
        Rb = np.split(B[d, GH:], G)
        Pi, Po, Pf = np.split(P[d], 3)
        for b in range(batch):
            L = seq if lens is None else int(lens[b])
            h = np.zeros(H) if h0 is None else h0[d, b].astype(np.float64)
            c = np.zeros(H) if c0 is None else c0[d, b].astype(np.float64)
            for t in (range(L - 1, -1, -1) if rev else range(L)):
                x = X[t, b]
                if kind == "lstm":  # i, o, f, c
                    a = [x @ Wg[k].T + h @ Rg[k].T + Wb[k] + Rb[k] for k in range(4)]
                    i = sig(cl(a[0] + Pi * c))
                    f = 1.0 - i if input_forget else sig(cl(a[2] + Pf * c))
                    g = np.tanh(cl(a[3]))
                    c = f * c + i * g
                    o = sig(cl(a[1] + Po * c))
                    h = o * np.tanh(c)
                elif kind.startswith("rnn"):
                    a = cl(x @ Wg[0].T + h @ Rg[0].T + Wb[0] + Rb[0])
                    h = np.maximum(a, 0.0) if kind == "rnn_relu" else np.tanh(a)
                else:  # z, r, h
                    z = sig(cl(x @ Wg[0].T + h @ Rg[0].T + Wb[0] + Rb[0]))
                    r = sig(cl(x @ Wg[1].T + h @ Rg[1].T + Wb[1] + Rb[1]))
                    if lbr:
                        n = np.tanh(cl(x @ Wg[2].T + r * (h @ Rg[2].T + Rb[2]) + Wb[2]))
                    else:
                        n = np.tanh(cl(x @ Wg[2].T + (r * h) @ Rg[2].T + Rb[2] + Wb[2]))
                    h = (1.0 - z) * n + z * h
                Y[t, d, b] = h
            Yh[d, b] = h
            Yc[d, b] = c
    if layout == 1:
        Y = Y.transpose(2, 0, 1, 3)
        Yh = Yh.transpose(1, 0, 2)
        Yc = Yc.transpose(1, 0, 2)
    return Y, Yh, Yc


# --------------------------------------------------- PyTorch, float64

# ONNX gate k is PyTorch's gate ORDER[k] (LSTM: i,o,f,c from i,f,g,o;
# GRU: z,r,h from r,z,n).
ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn_tanh": [0], "rnn_relu": [0]}


def to_onnx_gates(kind, m):
    H = m.shape[0] // len(ORDER[kind])
    return np.concatenate([m[k * H:(k + 1) * H] for k in ORDER[kind]])


def torch_rnn(kind, X, W, R, B, lens, h0, c0, direction, layout):
    """The same case through nn.LSTM/nn.GRU (GRU: linear_before_reset=1)."""
    D, GH, I = W.shape
    H = R.shape[2]
    kw = dict(bias=B is not None, batch_first=layout == 1, bidirectional=D == 2)
    if kind.startswith("rnn"):
        mod = torch.nn.RNN(I, H, nonlinearity=kind[4:], **kw).double()
    else:
        mod = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(I, H, **kw).double()
    G = GH // H
    inv = np.argsort(ORDER[kind])  # PyTorch gate j is ONNX gate inv[j]

    def from_onnx(m):
        return np.concatenate([m[k * H:(k + 1) * H] for k in inv])

    with torch.no_grad():
        for d in range(D):
            sfx = "_reverse" if d == 1 else ""
            getattr(mod, "weight_ih_l0" + sfx).copy_(torch.from_numpy(from_onnx(W[d]).astype(np.float64)))
            getattr(mod, "weight_hh_l0" + sfx).copy_(torch.from_numpy(from_onnx(R[d]).astype(np.float64)))
            if B is not None:
                getattr(mod, "bias_ih_l0" + sfx).copy_(torch.from_numpy(from_onnx(B[d, :GH]).astype(np.float64)))
                getattr(mod, "bias_hh_l0" + sfx).copy_(torch.from_numpy(from_onnx(B[d, GH:]).astype(np.float64)))
    assert G == len(ORDER[kind])
    x = torch.from_numpy(X.astype(np.float64))
    rev = direction == "reverse"
    seq_dim = 1 if layout == 1 else 0
    seq = X.shape[seq_dim]
    batch = X.shape[1 - seq_dim]

    def state(s):  # ONNX [D,batch,H] (layout 1: [batch,D,H]) -> PyTorch [D,batch,H]
        if s is None:
            return torch.zeros(D, batch, H, dtype=torch.float64)
        s = s.astype(np.float64)
        return torch.from_numpy(s.transpose(1, 0, 2).copy() if layout == 1 else s)

    hx = (state(h0), state(c0)) if kind == "lstm" else state(h0)
    with torch.no_grad():
        if lens is not None:
            assert not rev, "reverse with sequence_lens: numpy only"
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                x, torch.from_numpy(lens.astype(np.int64)), batch_first=layout == 1,
                enforce_sorted=False)
            out, hn = mod(packed, hx)
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=layout == 1,
                                                          total_length=seq)
        else:
            if rev:
                x = torch.flip(x, [seq_dim])
            y, hn = mod(x, hx)
            if rev:
                y = torch.flip(y, [seq_dim])
    hn, cn = hn if kind == "lstm" else (hn, torch.zeros_like(hn))
    y = y.numpy()
    if layout == 0:
        Y = y.reshape(seq, batch, D, H).transpose(0, 2, 1, 3)
        Yh, Yc = hn.numpy(), cn.numpy()
    else:
        Y = y.reshape(batch, seq, D, H)
        Yh, Yc = hn.numpy().transpose(1, 0, 2), cn.numpy().transpose(1, 0, 2)
    return Y, Yh, Yc


# ------------------------------------------------------------- cases

DIRS = {"forward": 0, "reverse": 1, "bidirectional": 2}


def make_case(out, name, kind, H, I, seq, batch, direction="forward", layout=0,
              bias=True, init=False, lens=None, peep=False, clip=None,
              input_forget=0, lbr=None, wscale=0.6, ref="torch"):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    D = 2 if direction == "bidirectional" else 1
    G = len(ORDER[kind])
    lbr = (1 if ref == "torch" else 0) if (kind == "gru" and lbr is None) else (lbr or 0)
    f32 = lambda *s, sc=1.0: (rng.uniform(-sc, sc, s)).astype(np.float32)
    X = f32(*((batch, seq, I) if layout == 1 else (seq, batch, I)))
    W = f32(D, G * H, I, sc=wscale)
    R = f32(D, G * H, H, sc=wscale)
    B = f32(D, 2 * G * H, sc=wscale) if bias else None
    P = f32(D, 3 * H, sc=wscale) if peep else None
    st = (batch, D, H) if layout == 1 else (D, batch, H)
    h0 = f32(*st) if init else None
    c0 = f32(*st) if (init and kind == "lstm") else None
    L = None if lens is None else np.array(lens, dtype=np.int32)

    Y, Yh, Yc = onnx_rnn(kind, X, W, R, B, P, L, h0, c0, direction, layout, clip,
                         input_forget, lbr)
    if ref == "torch":
        assert P is None and clip is None and not input_forget and (kind != "gru" or lbr == 1)
        Tt = torch_rnn(kind, X, W, R, B, L, h0, c0, direction, layout)
        for a, b, what in zip(Tt, (Y, Yh, Yc), ("Y", "Y_h", "Y_c")):
            err = np.abs(a - b).max()
            if err > 1e-10:
                sys.exit(f"rnn_ref.py: {name}: PyTorch and the ONNX transcription differ "
                         f"in {what} by {err:g}")
        Y, Yh, Yc = Tt

    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    with open(os.path.join(d, "params.txt"), "w") as fp:
        for k, v in dict(kind={"lstm": 0, "gru": 1}.get(kind, 2),
                         relu=int(kind == "rnn_relu"), hidden=H, input=I, seq=seq,
                         batch=batch, direction=DIRS[direction], layout=layout,
                         lbr=lbr, input_forget=input_forget, has_clip=int(clip is not None),
                         clip=clip or 0.0, ref=ref).items():
            fp.write(f"{k}={v}\n")
    arrays = dict(X=X, W=W, R=R, B=B, P=P, lens=L, h0=h0, c0=c0, Y=Y, Y_h=Yh)
    if kind == "lstm":
        arrays["Y_c"] = Yc
    for k, v in arrays.items():
        if v is not None:
            np.save(os.path.join(d, k + ".npy"), np.ascontiguousarray(v))
    return name


def all_cases(out):
    n = []
    for kind in ("lstm", "gru"):
        k = kind
        # PyTorch-checked: directions, layouts, batch 1/3/32, odd H and I,
        # initial states given and absent, no bias, ragged lengths.
        n.append(make_case(out, f"{k}_torch_fwd_l0_b1", k, 5, 7, 6, 1))
        n.append(make_case(out, f"{k}_torch_fwd_l1_b3_init", k, 5, 7, 6, 3, layout=1, init=True))
        n.append(make_case(out, f"{k}_torch_rev_l0_b3_init", k, 5, 7, 6, 3, "reverse", init=True))
        n.append(make_case(out, f"{k}_torch_rev_l1_b1", k, 5, 7, 4, 1, "reverse", layout=1))
        n.append(make_case(out, f"{k}_torch_bi_l0_b32_init", k, 5, 7, 5, 32, "bidirectional",
                           init=True))
        n.append(make_case(out, f"{k}_torch_bi_l1_b3", k, 6, 3, 7, 3, "bidirectional", layout=1))
        n.append(make_case(out, f"{k}_torch_bi_l0_b3_nobias", k, 5, 7, 5, 3, "bidirectional",
                           bias=False, init=True))
        n.append(make_case(out, f"{k}_torch_fwd_l0_b3_lens", k, 5, 7, 6, 3, lens=[6, 2, 4],
                           init=True))
        n.append(make_case(out, f"{k}_torch_bi_l1_b3_lens", k, 5, 7, 6, 3, "bidirectional",
                           layout=1, lens=[3, 6, 1], init=True))
        n.append(make_case(out, f"{k}_torch_bi_l0_b32_large", k, 67, 33, 12, 32,
                           "bidirectional", init=True, wscale=0.15))
        n.append(make_case(out, f"{k}_torch_fwd_l0_b1_large", k, 129, 64, 9, 1, wscale=0.15))
        # Numpy transcription of the ONNX pages: reverse with ragged lengths
        # (each entry starts at its own last step), a zero length.
        n.append(make_case(out, f"{k}_onnx_rev_l0_b3_lens", k, 5, 7, 6, 3, "reverse",
                           lens=[6, 2, 4], init=True, ref="onnx",
                           lbr=1 if k == "gru" else None))
        n.append(make_case(out, f"{k}_onnx_bi_l1_b3_lens0", k, 5, 7, 5, 3, "bidirectional",
                           layout=1, lens=[0, 5, 3], init=True, ref="onnx"))
        n.append(make_case(out, f"{k}_onnx_bi_l0_b3_clip", k, 5, 7, 6, 3, "bidirectional",
                           clip=0.7, wscale=1.5, init=True, ref="onnx"))
    # LSTM only: peepholes, input_forget.
    n.append(make_case(out, "lstm_onnx_fwd_l0_b3_peep", "lstm", 5, 7, 6, 3, peep=True,
                       init=True, ref="onnx"))
    n.append(make_case(out, "lstm_onnx_bi_l1_b32_peep_lens", "lstm", 5, 7, 6, 32,
                       "bidirectional", layout=1, peep=True, init=True, ref="onnx",
                       lens=[(i * 5) % 7 for i in range(32)]))
    n.append(make_case(out, "lstm_onnx_rev_l0_b3_forget", "lstm", 5, 7, 6, 3, "reverse",
                       input_forget=1, peep=True, init=True, ref="onnx"))
    # LSTM at H 40 and 48 (whole vectors and a tail in the gate pass):
    # ragged lengths with a zero, peepholes, clip, layout 1, reverse with
    # input_forget, and one PyTorch-checked.
    n.append(make_case(out, "lstm_onnx_fwd_l1_b32_h40", "lstm", 40, 9, 7, 32,
                       layout=1, peep=True, init=True, clip=0.9, wscale=0.4, ref="onnx",
                       lens=[(i * 3) % 8 for i in range(32)]))
    n.append(make_case(out, "lstm_onnx_rev_l0_b3_h40_forget", "lstm", 40, 9, 7, 3,
                       "reverse", input_forget=1, peep=True, init=True, wscale=0.4,
                       lens=[7, 0, 3], ref="onnx"))
    n.append(make_case(out, "lstm_torch_fwd_l0_b3_h48", "lstm", 48, 5, 6, 3,
                       lens=[6, 2, 4], init=True, wscale=0.3))
    # H a multiple of 16 from batch 2 up: the recurrent GEMM on R packed
    # once (cpu_rnn.c rec_gemm), with row blocks of 6 and a tail (7 = 6+1,
    # 32 = 5x6+2), both directions, GRU's second GEMM on R's last third.
    n.append(make_case(out, "lstm_torch_bi_l0_b7_h32_packed", "lstm", 32, 9, 5, 7,
                       "bidirectional", init=True, wscale=0.3))
    n.append(make_case(out, "lstm_onnx_fwd_l1_b32_h64_packed", "lstm", 64, 11, 6, 32,
                       layout=1, peep=True, init=True, wscale=0.3, ref="onnx",
                       lens=[(i * 3) % 7 for i in range(32)]))
    n.append(make_case(out, "gru_onnx_bi_l0_b32_h32_lbr0_packed", "gru", 32, 5, 4, 32,
                       "bidirectional", lbr=0, init=True, wscale=0.3, ref="onnx"))
    n.append(make_case(out, "gru_torch_fwd_l1_b5_h16_packed", "gru", 16, 6, 5, 5, layout=1,
                       init=True, wscale=0.3))
    # RNN, tanh and relu: directions, layouts, odd H, ragged lengths, H 32
    # packed, and clip (numpy).
    for k in ("rnn_tanh", "rnn_relu"):
        n.append(make_case(out, f"{k}_torch_fwd_l0_b1", k, 5, 7, 6, 1))
        n.append(make_case(out, f"{k}_torch_bi_l1_b3_init", k, 5, 7, 6, 3, "bidirectional",
                           layout=1, init=True))
        n.append(make_case(out, f"{k}_torch_rev_l0_b3", k, 6, 3, 5, 3, "reverse"))
        n.append(make_case(out, f"{k}_torch_fwd_l0_b3_lens", k, 5, 7, 6, 3, lens=[6, 2, 4],
                           init=True))
        n.append(make_case(out, f"{k}_torch_bi_l0_b7_h32_packed", k, 32, 9, 5, 7,
                           "bidirectional", init=True, wscale=0.3))
        n.append(make_case(out, f"{k}_onnx_rev_l1_b3_lens0_clip", k, 5, 7, 6, 3, "reverse",
                           layout=1, lens=[0, 6, 3], clip=0.6, wscale=1.5, init=True,
                           ref="onnx"))
    # GRU: linear_before_reset 0 (PyTorch has 1 only) and 1 with clip.
    n.append(make_case(out, "gru_onnx_fwd_l0_b1_lbr0", "gru", 5, 7, 6, 1, lbr=0, ref="onnx"))
    n.append(make_case(out, "gru_onnx_bi_l1_b32_lbr0_init", "gru", 5, 7, 6, 32,
                       "bidirectional", layout=1, lbr=0, init=True, ref="onnx"))
    n.append(make_case(out, "gru_onnx_rev_l0_b3_lbr0_large", "gru", 67, 33, 8, 3, "reverse",
                       lbr=0, init=True, wscale=0.15, ref="onnx"))
    n.append(make_case(out, "gru_onnx_bi_l0_b3_lbr1_clip", "gru", 5, 7, 6, 3, "bidirectional",
                       lbr=1, clip=0.5, wscale=1.5, ref="onnx"))
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(1)
    names = all_cases(a.out)
    with open(os.path.join(a.out, "cases.txt"), "w") as fp:
        fp.write("\n".join(names) + "\n")
    print(f"rnn_ref.py: {len(names)} cases in {a.out}")


if __name__ == "__main__":
    main()
