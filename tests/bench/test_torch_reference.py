#!/usr/bin/python3
"""bench/torch_reference.py and bench/compare.py.

- load_mlp rebuilds each MLP of the test models (gen.py) so that it matches
  PyTorch's float64 reference, refuses the non-MLP ones naming a node, and
  handles the Gemm/MatMul variants of hand-made graphs.
- A very short run writes JSON of the schema ferry bench writes.
- compare.py matches rows and computes ratios (from saved JSON), and, when the
  ferry binary is given (FERRY_CLI), runs both tools end to end.
Kept short: the whole file takes a few seconds of CPU.
"""
import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import compare  # noqa: E402
import torch_reference as tr  # noqa: E402

MODELS = os.environ.get("FERRY_TEST_MODELS", os.path.join(ROOT, "build", "test-models"))


def rel_err(y, ref):
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))


def quiet_main(fn, argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = fn(argv)
    return rc, out.getvalue()


class LoadMLP(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        if not os.path.exists(os.path.join(MODELS, "manifest.json")):
            raise unittest.SkipTest(f"no {MODELS}/manifest.json (run tests/models/gen.py)")

    def check(self, name, b=7):
        m, in_f, out_f, _ = tr.load_mlp(os.path.join(MODELS, f"{name}.onnx"))
        x = np.load(os.path.join(MODELS, f"{name}.in.{b}.npy"))
        ref = np.load(os.path.join(MODELS, f"{name}.ref.{b}.npy"))
        self.assertEqual((in_f, out_f), (x.shape[1], ref.shape[1]))
        with torch.inference_mode():
            y = m(torch.from_numpy(x)).double().numpy()
        self.assertLess(rel_err(y, ref), 1e-5, name)

    def test_mlp_s(self):
        self.check("mlp-s")

    def test_mlp_s_external_data(self):
        self.check("mlp-s-ext")

    def test_mlp_l_gelu_erf_pattern(self):
        self.check("mlp-l", b=1)

    def test_mnist_logsoftmax(self):
        self.check("mnist")

    def test_block_is_not_an_mlp(self):
        for name, node in (("block", "LayerNormalization"), ("block-13", "ReduceMean")):
            with self.assertRaises(tr.NotAnMLP) as cm:
                tr.load_mlp(os.path.join(MODELS, f"{name}.onnx"))
            self.assertIn(node, str(cm.exception))
            self.assertIn(f"{name}.onnx", str(cm.exception))


class HandMade(unittest.TestCase):
    """MatMul + Add, Gemm with transB=0 and alpha/beta, Tanh and Sigmoid."""

    def test_variants(self):
        rng = np.random.default_rng(0)
        w1 = rng.standard_normal((6, 5)).astype(np.float32)  # MatMul: [in, out]
        b1 = rng.standard_normal(5).astype(np.float32)
        w2 = rng.standard_normal((5, 4)).astype(np.float32)  # Gemm transB=0: [in, out]
        b2 = rng.standard_normal(4).astype(np.float32)
        w3 = rng.standard_normal((3, 4)).astype(np.float32)  # Gemm transB=1: [out, in]
        nodes = [
            helper.make_node("MatMul", ["x", "w1"], ["h1"], name="mm"),
            helper.make_node("Add", ["h1", "b1"], ["h2"], name="bias"),
            helper.make_node("Tanh", ["h2"], ["h3"], name="tanh"),
            helper.make_node("Gemm", ["h3", "w2", "b2"], ["h4"], name="g2", alpha=0.5, beta=2.0),
            helper.make_node("Sigmoid", ["h4"], ["h5"], name="sig"),
            helper.make_node("Gemm", ["h5", "w3"], ["y"], name="g3", transB=1),
        ]
        g = helper.make_graph(
            nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
            [numpy_helper.from_array(a, n) for a, n in
             ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"), (w3, "w3"))])
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "t.onnx")
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
            m, in_f, out_f, desc = tr.load_mlp(path)
        self.assertEqual((in_f, out_f), (6, 3))
        self.assertIn("6-5-4-3", desc)
        x = rng.standard_normal((3, 6)).astype(np.float32)
        h = np.tanh(x.astype(np.float64) @ w1 + b1)
        h = 1 / (1 + np.exp(-(0.5 * (h @ w2) + 2.0 * b2)))
        ref = h @ w3.T
        with torch.inference_mode():
            y = m(torch.from_numpy(x)).double().numpy()
        self.assertLess(rel_err(y, ref), 1e-5)


def sample_result(impl, scale):
    return {"impl": impl, "version": "x", "device": "cpu", "model": "m", "date": "d",
            "sweep": [{"batch": 1, "samples_per_s": 100.0 * scale, "p50_us": 10.0,
                       "p90_us": 11.0, "p99_us": 12.0}],
            "threading": [{"threads": 8, "batch": 1, "samples_per_s": 50.0 * scale}],
            "stack": [{"step": s, "config": "", "samples_per_s": 10.0 * scale if i < 4 else None,
                       "gain": 1.0, "cumulative": 1.0,
                       "skipped": None if i < 4 else "no graphs"}
                      for i, s in enumerate(tr.STACK_STEPS)],
            "batcher": [{"concurrency": 16, "requests_per_s": 1000.0 * scale, "p50_us": 5.0,
                         "p99_us": 9.0, "mean_batch": 15.0}]}


class Bench(unittest.TestCase):
    def test_short_run_writes_the_schema(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "mlp.onnx")
            # a small MLP of the bundled shape family, so the run stays cheap
            torch.manual_seed(0)
            net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(),
                                      torch.nn.Linear(32, 8)).eval()
            torch.onnx.export(net, torch.zeros(2, 16), path, input_names=["input"],
                              output_names=["output"], opset_version=13,
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
            js = os.path.join(d, "r.json")
            rc, out = quiet_main(tr.main, [
                "--model", path, "--batch-sizes", "1,4", "--compare-threading", "--threads",
                "2", "--stack", "--batcher", "--concurrency", "1,4", "--latency", "--duration",
                "0.05", "--torch-threads", "1", "--quiet", "--json", js])
            self.assertEqual(rc, 0)
            with open(js) as f:
                r = json.load(f)
        self.assertEqual(r["impl"], "pytorch")
        for k in ("version", "device", "model", "date"):
            self.assertIsInstance(r[k], str)
        self.assertEqual([e["batch"] for e in r["sweep"]], [1, 2, 4])
        for e in r["sweep"]:
            self.assertGreater(e["samples_per_s"], 0)
            self.assertLessEqual(e["p50_us"], e["p90_us"])
            self.assertLessEqual(e["p90_us"], e["p99_us"])
        self.assertEqual([(e["threads"], e["batch"]) for e in r["threading"]], [(2, 1)])
        self.assertEqual([e["step"] for e in r["stack"]], tr.STACK_STEPS)
        self.assertIsNone(r["stack"][0]["skipped"])
        self.assertEqual(r["stack"][0]["gain"], 1.0)
        self.assertEqual(r["stack"][0]["cumulative"], 1.0)
        graph = r["stack"][4]
        self.assertIsNone(graph["samples_per_s"])
        self.assertIn("cuda", graph["skipped"])
        self.assertEqual([e["concurrency"] for e in r["batcher"]], [1, 4])
        for e in r["batcher"]:
            self.assertGreater(e["requests_per_s"], 0)
            self.assertGreaterEqual(e["mean_batch"], 1.0)
            self.assertLessEqual(e["mean_batch"], e["concurrency"])
        self.assertIn("optimization stack", out)
        self.assertEqual(r["gpu_best"], [])

    def test_not_an_mlp_is_a_clean_error(self):
        path = os.path.join(MODELS, "block.onnx")
        if not os.path.exists(path):
            self.skipTest("no test models")
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc, _ = quiet_main(tr.main, ["--model", path, "--duration", "0.01"])
        self.assertEqual(rc, 2)
        self.assertIn("LayerNormalization", err.getvalue())


class Compare(unittest.TestCase):
    def test_ratios_from_saved_json(self):
        with tempfile.TemporaryDirectory() as d:
            fj, tj, cj = (os.path.join(d, n) for n in ("f.json", "t.json", "c.json"))
            with open(fj, "w") as f:
                json.dump(sample_result("ferry", 3.0), f)
            with open(tj, "w") as f:
                json.dump(sample_result("pytorch", 1.0), f)
            rc, out = quiet_main(compare.main, ["--ferry-json", fj, "--torch-json", tj, "--json",
                                                cj, "--batcher", "--stack",
                                                "--compare-threading", "--device", "cpu"])
            self.assertEqual(rc, 0)
            with open(cj) as f:
                c = json.load(f)
        self.assertEqual(c["ferry"]["impl"], "ferry")
        self.assertEqual(c["pytorch"]["impl"], "pytorch")
        for section in ("sweep", "threading", "batcher"):
            self.assertEqual([round(e["ratio"], 6) for e in c["ratios"][section]], [3.0], section)
        stack = c["ratios"]["stack"]
        self.assertEqual([e["step"] for e in stack], tr.STACK_STEPS)
        self.assertEqual([e["ratio"] and round(e["ratio"], 6) for e in stack],
                         [3.0, 3.0, 3.0, 3.0, None])
        self.assertIn("3.00x", out)

    def test_end_to_end_with_ferry(self):
        cli = os.environ.get("FERRY_CLI")
        path = os.path.join(MODELS, "mlp-s.onnx")
        if not cli or not os.access(cli, os.X_OK) or not os.path.exists(path):
            self.skipTest("FERRY_CLI or the test models not available")
        with tempfile.TemporaryDirectory() as d:
            cj = os.path.join(d, "c.json")
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                rc, out = quiet_main(compare.main, [
                    "--model", path, "--ferry", cli, "--device", "cpu", "--batch-sizes", "1,4",
                    "--stack", "--duration", "0.05", "--json", cj,
                    "--torch-args", "--torch-threads 1"])
            self.assertEqual(rc, 0, err.getvalue())
            with open(cj) as f:
                c = json.load(f)
        self.assertEqual([e["batch"] for e in c["ratios"]["sweep"]], [1, 4])
        for e in c["ratios"]["sweep"]:
            self.assertIsNotNone(e["ratio"])
        self.assertEqual([e["step"] for e in c["ratios"]["stack"]][0], "baseline")
        self.assertEqual(len(c["ratios"]["stack"]), 5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
