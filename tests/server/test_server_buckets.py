#!/usr/bin/env python3
"""`ferry serve` on a model with length buckets (issue 17): KServe v2 requests of
different lengths to one model, batched together, each answered with its own
outputs at its own length.

gen.py's bert-var (input_ids, attention_mask [N, sequence], up to 64 tokens) is
served twice: with buckets 8,16,32,64 (requests padded and batched), and with one
bucket per length the test sends (every request runs at its own length, unpadded:
the reference). Environment (set by CTest): FERRY_CLI, FERRY_TEST_MODELS.
"""
import json
import os
import sys
import threading
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server import CLI, Server, call  # noqa: E402

MODELS = os.environ.get("FERRY_TEST_MODELS", "")
BERT = os.path.join(MODELS, "bert-var.onnx")
INFER = "/v2/models/bert-var/infer"
LENGTHS = [1, 5, 8, 13, 27, 40, 64]


def body(ids, mask=None, mask_type="INT64"):
    ids = np.asarray(ids)
    mask = np.ones_like(ids) if mask is None else np.asarray(mask)
    return {"inputs": [
        {"name": "input_ids", "datatype": "INT64", "shape": list(ids.shape),
         "data": ids.reshape(-1).tolist()},
        {"name": "attention_mask", "datatype": mask_type, "shape": list(mask.shape),
         "data": mask.reshape(-1).tolist()}]}


def infer(srv, b):
    c = srv.conn()
    try:
        st, _, data = call(c, "POST", INFER, b)
    finally:
        c.close()
    return st, json.loads(data)


def setUpModule():
    if not CLI or not os.path.exists(BERT):
        raise unittest.SkipTest("FERRY_CLI / FERRY_TEST_MODELS/bert-var.onnx missing")


class Buckets(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server("--length-buckets", "8,16,32,64", "--max-delay-us", "2000",
                         model=BERT)
        cls.ref = Server("--length-buckets", ",".join(map(str, LENGTHS)), model=BERT)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.ref.stop()

    def test_metadata_marks_the_length_axis(self):
        c = self.srv.conn()
        st, _, data = call(c, "GET", "/v2/models/bert-var")
        c.close()
        self.assertEqual(st, 200)
        doc = json.loads(data)
        self.assertEqual(doc["inputs"][0]["shape"], [-1, -1])
        self.assertEqual(doc["outputs"][0]["shape"], [-1, -1, 64])
        self.assertEqual(doc["outputs"][1]["shape"], [-1, 64])

    def test_random_lengths_from_threads_match_alone(self):
        rng = np.random.default_rng(17)
        reqs = []
        for _ in range(48):
            n = int(rng.integers(1, 3))
            t = int(rng.choice(LENGTHS))
            reqs.append(rng.integers(0, 1000, size=(n, t)))
        got = [None] * len(reqs)

        def client(k):
            for i in range(k, len(reqs), 8):
                got[i] = infer(self.srv, body(reqs[i]))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for ids, (st, doc) in zip(reqs, got):
            self.assertEqual(st, 200, doc)
            rst, rdoc = infer(self.ref, body(ids))
            self.assertEqual(rst, 200, rdoc)
            outs = {o["name"]: o for o in doc["outputs"]}
            for o in rdoc["outputs"]:
                mine = outs[o["name"]]
                self.assertEqual(mine["shape"], o["shape"])
                a, r = np.array(mine["data"]), np.array(o["data"])
                self.assertLessEqual(np.abs(a - r).max(), 1e-5 * np.abs(r).max(),
                                     (ids.shape, o["name"]))
        self.assertEqual(got[0][1]["outputs"][0]["shape"][:2], list(reqs[0].shape))

    def test_longer_than_every_bucket(self):
        st, doc = infer(self.srv, body(np.zeros((1, 65), np.int64)))
        self.assertEqual(st, 400)
        self.assertIn("length 65, longer than the longest length bucket (64", doc["error"])

    def test_empty_sequence(self):
        st, doc = infer(self.srv, body(np.zeros((1, 0), np.int64)))
        self.assertEqual(st, 400)
        self.assertIn("length 0: a sequence needs at least one token", doc["error"])

    def test_mask_of_the_wrong_dtype(self):
        st, doc = infer(self.srv, body(np.zeros((1, 4), np.int64), np.full((1, 4), 0.5),
                                       mask_type="FP32"))
        self.assertEqual(st, 400)
        self.assertIn("attention_mask", doc["error"])
        self.assertIn("INT64", doc["error"])

    def test_lengths_disagree(self):
        st, doc = infer(self.srv, body(np.zeros((1, 6), np.int64), np.ones((1, 5), np.int64)))
        self.assertEqual(st, 400)
        self.assertIn("length 5, but the request has 6", doc["error"])

    def test_metrics_report_padding(self):
        self.assertEqual(infer(self.srv, body(np.ones((1, 12), np.int64)))[0], 200)
        c = self.srv.conn()
        st, _, data = call(c, "GET", "/metrics")
        c.close()
        self.assertEqual(st, 200)
        text = data.decode()
        self.assertIn('ferry_request_padding_percent_bucket{model="bert-var",version="1",'
                      'le="30"}', text)
        self.assertIn("ferry_padding_positions_total{", text)


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
