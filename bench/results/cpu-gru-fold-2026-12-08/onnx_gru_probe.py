import numpy as np, subprocess, sys
from onnx import helper as h, TensorProto as TP, numpy_helper as nh
ferry = sys.argv[1]
rng = np.random.default_rng(1)
V, I, H, T, N = 9, 5, 3, 4, 3
sig = lambda x: 1 / (1 + np.exp(-x))
def ref(X, W, R, B, D, lbr):
    Tn, Nn, _ = X.shape
    Y = np.zeros((Tn, D, Nn, H))
    for d in range(D):
        Wb, Rb = (B[d, :3*H], B[d, 3*H:]) if B is not None else (np.zeros(3*H), np.zeros(3*H))
        hh = np.zeros((Nn, H))
        steps = range(Tn) if d == 0 else range(Tn - 1, -1, -1)
        for t in steps:
            x = X[t].astype(np.float64)
            z = sig(x @ W[d, :H].T + hh @ R[d, :H].T + Wb[:H] + Rb[:H])
            r = sig(x @ W[d, H:2*H].T + hh @ R[d, H:2*H].T + Wb[H:2*H] + Rb[H:2*H])
            if lbr:
                n = np.tanh(x @ W[d, 2*H:].T + r * (hh @ R[d, 2*H:].T + Rb[2*H:]) + Wb[2*H:])
            else:
                n = np.tanh(x @ W[d, 2*H:].T + (r * hh) @ R[d, 2*H:].T + Rb[2*H:] + Wb[2*H:])
            hh = (1 - z) * n + z * hh
            Y[t, d] = hh
    return Y
bad = 0
for bidir in (0, 1):
    for lbr in (0, 1):
        for with_b in (0, 1):
            D = 2 if bidir else 1
            E = rng.standard_normal((V, I)).astype(np.float32)
            W = (rng.standard_normal((D, 3*H, I)) * .5).astype(np.float32)
            R = (rng.standard_normal((D, 3*H, H)) * .5).astype(np.float32)
            B = rng.standard_normal((D, 6*H)).astype(np.float32) if with_b else None
            inits = [nh.from_array(E, 'E'), nh.from_array(W, 'W'), nh.from_array(R, 'R')]
            if with_b: inits.append(nh.from_array(B, 'B'))
            nodes = [h.make_node('Gather', ['E', 'ids'], ['emb'], axis=0),
                     h.make_node('Transpose', ['emb'], ['embT'], perm=[1, 0, 2]),
                     h.make_node('GRU', ['embT', 'W', 'R'] + (['B'] if with_b else []), ['Y'],
                                 hidden_size=H, linear_before_reset=lbr,
                                 direction='bidirectional' if bidir else 'forward'),
                     h.make_node('Transpose', ['Y'], ['Yb'], perm=[2, 0, 1, 3])]
            g = h.make_graph(nodes, 'g', [h.make_tensor_value_info('ids', TP.INT64, ['N', T])],
                             [h.make_tensor_value_info('Yb', TP.FLOAT, ['N', T, D, H])], inits)
            m = h.make_model(g, opset_imports=[h.make_opsetid('', 14)])
            p = f'/tmp/grup/g{bidir}{lbr}{with_b}'
            open(p + '.onnx', 'wb').write(m.SerializeToString())
            ids = rng.integers(-V, V, (N, T)).astype(np.int64)
            np.save(p + '.ids.npy', ids)
            r = subprocess.run([ferry, 'run', p + '.onnx', '-i', p + '.ids.npy', '-o', p + '.out.npy'],
                               capture_output=True, text=True)
            if r.returncode:
                print(p, 'ferry failed', r.stderr[-300:]); bad += 1; continue
            info = subprocess.run([ferry, 'info', p + '.onnx'], capture_output=True, text=True).stdout
            out = np.load(p + '.out.npy')
            y = ref(E[ids].transpose(1, 0, 2), W, R, B, D, lbr).transpose(2, 0, 1, 3)
            e = float(np.abs(out - y).max() / np.abs(y).max())
            print(f'bidir {bidir} lbr {lbr} B {with_b}: rel err {e:.2e}, folded: {"projected at load" in info}')
            bad += e > 1e-5
sys.exit(bad)
