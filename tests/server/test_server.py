#!/usr/bin/env python3
"""End-to-end tests of `ferry serve` (KServe v2 / Open Inference Protocol).

Starts the real CLI on a free port and talks to it with http.client only.
Environment (set by CTest): FERRY_CLI, FERRY_BUILD_DIR (models/mlp-s.onnx).
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import numpy as np

CLI = os.environ.get("FERRY_CLI", "")
BUILD = os.environ.get("FERRY_BUILD_DIR", "")
MODEL = os.path.join(BUILD, "models", "mlp-s.onnx")
INFER = "/v2/models/mlp-s/infer"


class Server:
    """A `ferry serve` process on a port it picks itself (--port 0)."""

    def __init__(self, *args, model=MODEL, env=None):
        argv = [CLI, "serve"] + ([model] if model else []) + ["--port", "0"] + list(args)
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env=None if env is None else {**os.environ, **env})
        self.lines = []
        self.port = None
        got = threading.Event()

        def drain():
            for line in self.proc.stderr:
                self.lines.append(line)
                m = re.match(r"listening on port (\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    got.set()
            got.set()

        self.drain = threading.Thread(target=drain, daemon=True)
        self.drain.start()
        if not got.wait(120) or self.port is None:
            self.proc.kill()
            raise RuntimeError("ferry serve did not start: " + "".join(self.lines))

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self.drain.join(timeout)  # every line it wrote is in self.lines
            self.proc.stderr.close()


def call(conn, method, path, body=None, headers=None):
    """One request on conn; returns (status, headers dict lowercased, body bytes)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    h = {} if headers is None else dict(headers)
    if body is not None and "Content-Type" not in h:
        h["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def infer_body(x, datatype="FP32", nested=False, **extra):
    x = np.asarray(x)
    data = x.tolist() if nested else x.reshape(-1).tolist()
    body = {"inputs": [{"name": "input", "datatype": datatype, "shape": list(x.shape),
                        "data": data}]}
    body.update(extra)
    return body


def binary_body(x, datatype="FP32", outputs=None, **extra):
    """Triton binary extension: JSON header, then the raw tensor bytes."""
    raw = np.ascontiguousarray(x).tobytes()
    hdr = {"inputs": [{"name": "input", "datatype": datatype, "shape": list(x.shape),
                       "parameters": {"binary_data_size": len(raw)}}]}
    if outputs is not None:
        hdr["outputs"] = outputs
    hdr.update(extra)
    js = json.dumps(hdr).encode()
    return js + raw, {"Inference-Header-Content-Length": str(len(js)),
                      "Content-Type": "application/octet-stream"}


def outputs_of(body):
    doc = json.loads(body)
    return {o["name"]: o for o in doc["outputs"]}, doc


def raw_exchange(port, data, timeout=10):
    """Sends data as it is on a new connection and reads until the server
    closes it: the requests http.client will not write. Returns the bytes
    read; a test fails if the server neither answers nor closes in time."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out
            out += d
    finally:
        s.close()


def parse_responses(raw):
    """The HTTP/1.1 responses in raw, each (status, headers lowercased, body)."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, raw[:300]
        lines = head.decode("latin-1").split("\r\n")
        h = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            h[k.strip().lower()] = v.strip()
        n = int(h.get("content-length", 0))
        out.append((int(lines[0].split()[1]), h, rest[:n]))
        raw = rest[n:]
    return out


def split_binary(headers, body):
    n = int(headers["inference-header-content-length"])
    return json.loads(body[:n]), body[n:]


def reference(x):
    """What `ferry run` computes for x (the CLI's own batch path)."""
    with tempfile.TemporaryDirectory() as d:
        np.save(os.path.join(d, "in.npy"), x)
        subprocess.run([CLI, "run", MODEL, "-i", os.path.join(d, "in.npy"), "-o",
                        os.path.join(d, "out.npy")], check=True, capture_output=True,
                       timeout=300)
        return np.load(os.path.join(d, "out.npy"))


SRV = None
CONV = None  # the same, converting other datatypes to the model's


def setUpModule():
    global SRV, CONV
    if not CLI or not os.path.exists(MODEL):
        raise unittest.SkipTest("FERRY_CLI / FERRY_BUILD_DIR/models/mlp-s.onnx missing")
    SRV = Server("--max-batch", "64")
    CONV = Server("--max-batch", "64", "--convert-datatypes")


def tearDownModule():
    for s in (SRV, CONV):
        if s:
            rc = s.stop()
            assert rc == 0, "ferry serve exited %r: %s" % (rc, "".join(s.lines))


class Endpoints(unittest.TestCase):
    def setUp(self):
        self.c = SRV.conn()

    def tearDown(self):
        self.c.close()

    def get_json(self, path, status=200):
        st, h, body = call(self.c, "GET", path)
        self.assertEqual(st, status, body)
        self.assertTrue(h["content-type"].startswith("application/json"))
        return json.loads(body)

    def empty(self, path, status=200):
        st, h, body = call(self.c, "GET", path)
        self.assertEqual((st, body), (status, b""), path)
        self.assertEqual(h["content-length"], "0")
        self.assertNotIn("content-type", h)

    def test_health(self):
        # the protocol's health answer is the status alone, with an empty body
        self.empty("/v2/health/live")
        self.empty("/v2/health/ready")

    def test_server_metadata(self):
        doc = self.get_json("/v2")
        self.assertEqual(doc["name"], "ferry")
        self.assertRegex(doc["version"], r"^\d+\.\d+\.\d+")
        self.assertEqual(doc["extensions"], ["binary_tensor_data", "schedule_policy"])

    def test_model_metadata(self):
        want = {"name": "mlp-s", "versions": ["1"], "platform": "onnx_onnxv1",
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 256]}],
                "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, 256]}]}
        self.assertEqual(self.get_json("/v2/models/mlp-s"), want)
        self.assertEqual(self.get_json("/v2/models/mlp-s/versions/1"), want)

    def test_model_ready(self):
        self.empty("/v2/models/mlp-s/ready")
        self.empty("/v2/models/mlp-s/versions/1/ready")

    def test_escaped_slash_and_nul_in_path(self):
        # routing sees the path's segments as sent: %2F and %00 are not
        # decoded (into a separator, or a NUL cutting the path short), so
        # such a name is just an unknown model; other escapes are
        for path, frag in [("/v2/models/mlp-s%2Fready", "unknown model 'mlp-s%2Fready'"),
                           ("/v2/models/mlp-s%2fready", "unknown model 'mlp-s%2fready'"),
                           ("/v2/models/mlp-s%00/ready", "unknown model 'mlp-s%00'"),
                           ("/v2/models/mlp-s%2Fversions%2F1", "unknown model"),
                           ("/v2/models/mlp-s/ready%00", "unknown path")]:
            doc = self.get_json(path, 404)
            self.assertIn(frag, doc["error"], path)
        st, _, body = call(self.c, "POST", "/v2/models/mlp-s%2Finfer",
                           infer_body(np.zeros((1, 256))))
        self.assertEqual(st, 404, body)
        self.empty("/v2/models/ml%70-s/re%61dy")

    def test_head(self):
        st, _, body = call(self.c, "HEAD", "/v2/health/live")
        self.assertEqual((st, body), (200, b""))

    def test_not_found(self):
        for path, frag in [("/v2/models/nope", "unknown model 'nope'"),
                           ("/v2/models/nope/ready", "unknown model"),
                           ("/v2/models/mlp-s/versions/7", "unknown version '7'"),
                           ("/v2/models/mlp-s/versions/7/ready", "unknown version"),
                           ("/v2/models/mlp-s/bogus", "unknown path"),
                           ("/v3", "unknown path"), ("/", "unknown path")]:
            doc = self.get_json(path, 404)
            self.assertIn(frag, doc["error"], path)
        st, _, body = call(self.c, "POST", "/v2/models/nope/infer", infer_body(np.zeros((1, 256))))
        self.assertEqual(st, 404, body)
        st, _, body = call(self.c, "POST", "/v2/models/mlp-s/versions/9/infer",
                           infer_body(np.zeros((1, 256))))
        self.assertEqual(st, 404, body)

    def test_method_not_allowed(self):
        st, h, body = call(self.c, "GET", INFER)
        self.assertEqual(st, 405)
        self.assertEqual(h["allow"], "POST")
        self.assertIn("error", json.loads(body))
        st, h, _ = call(self.c, "POST", "/v2/models/mlp-s", {})
        self.assertEqual(st, 405)
        self.assertIn("GET", h["allow"])
        st, _, _ = call(self.c, "DELETE", "/v2/health/live")
        self.assertEqual(st, 405)

    def test_keepalive_reuses_connection(self):
        x = np.random.default_rng(1).standard_normal((1, 256)).astype(np.float32)
        call(self.c, "GET", "/v2/health/live")
        sock = self.c.sock
        self.assertIsNotNone(sock)
        for i in range(40):
            st, _, body = call(self.c, "POST", INFER, infer_body(x, id=str(i)))
            self.assertEqual(st, 200, body)
            self.assertEqual(json.loads(body)["id"], str(i))
            st, _, _ = call(self.c, "GET", "/v2/models/mlp-s/ready")
            self.assertEqual(st, 200)
        # errors keep the connection too
        st, _, _ = call(self.c, "POST", INFER, b"{bad json")
        self.assertEqual(st, 400)
        st, _, _ = call(self.c, "GET", "/v2/models/nope")
        self.assertEqual(st, 404)
        self.assertIs(self.c.sock, sock, "the server closed a keep-alive connection")

    def test_metrics(self):
        x = np.ones((3, 256), np.float32)
        for _ in range(5):
            st, _, _ = call(self.c, "POST", INFER, infer_body(x))
            self.assertEqual(st, 200)
        call(self.c, "POST", INFER, b"nope")
        st, h, body = call(self.c, "GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("text/plain"))
        text = body.decode()
        vals = {}
        for line in text.splitlines():
            if line.startswith("#") or line.startswith("nv_gpu_") or not line:
                continue  # (GPU gauges, where a driver is: class Metrics)
            m = re.match(r'^([a-z_]+)\{(.*)\} (\d+(\.\d+)?(e-?\d+)?)$', line)
            self.assertIsNotNone(m, "bad metrics line: %r" % line)
            self.assertIn('model="mlp-s",version="1"', m.group(2))
            vals.setdefault(m.group(1), []).append((m.group(2), float(m.group(3))))
        one = lambda k: vals[k][0][1]
        for k in ["nv_inference_request_success", "nv_inference_request_failure",
                  "nv_inference_count", "nv_inference_exec_count",
                  "nv_inference_request_duration_us", "nv_inference_queue_duration_us",
                  "nv_inference_compute_input_duration_us",
                  "nv_inference_compute_infer_duration_us",
                  "nv_inference_compute_output_duration_us",
                  "nv_inference_pending_request_count"]:
            self.assertIn(k, vals)
        self.assertGreaterEqual(one("nv_inference_request_success"), 5)
        # failures by Triton's reasons: the body "nope" is a bad request
        reasons = {re.search(r'reason="(\w+)"', lab).group(1): v
                   for lab, v in vals["nv_inference_request_failure"]}
        self.assertEqual(sorted(reasons), ["BACKEND", "CANCELED", "OTHER", "REJECTED"])
        self.assertGreaterEqual(reasons["OTHER"], 1)
        self.assertEqual(reasons["CANCELED"], 0)
        # compute time is counted per request, each its batch's (Triton's
        # way): at least the per-batch sum (both rounded to microseconds)
        self.assertGreaterEqual(one("nv_inference_compute_infer_duration_us"),
                                one("ferry_compute_duration_seconds_sum") * 1e6
                                - one("nv_inference_exec_count"))
        self.assertGreaterEqual(one("nv_inference_count"), 15)
        self.assertGreaterEqual(one("nv_inference_exec_count"), 1)
        self.assertLessEqual(one("nv_inference_exec_count"), one("nv_inference_count"))
        buckets = [v for lab, v in vals["ferry_batch_size_bucket"]]
        self.assertEqual(buckets, sorted(buckets), "histogram buckets must be cumulative")
        self.assertIn('le="+Inf"', vals["ferry_batch_size_bucket"][-1][0])
        self.assertEqual(buckets[-1], one("ferry_batch_size_count"))
        self.assertEqual(one("ferry_batch_size_count"), one("nv_inference_exec_count"))


PROMTOOL = shutil.which("promtool")


class Metrics(unittest.TestCase):
    """/metrics as Prometheus' own linter reads it (promtool, from Debian's
    prometheus package: make deps installs it), and the GPU gauges."""

    def scrape(self, srv):
        c = srv.conn()
        try:
            # some traffic first: successes, and a failure of each kind we can cause
            for body in [infer_body(np.ones((2, 256))), b"nope",
                         infer_body(np.ones((1, 256)), parameters={"priority": 9})]:
                call(c, "POST", INFER, body)
            st, _, body = call(c, "GET", "/metrics")
            self.assertEqual(st, 200)
            return body
        finally:
            c.close()

    def promtool(self, text):
        """The metric names promtool finds fault with, and its whole output."""
        if not PROMTOOL:
            self.skipTest("promtool not found: install Debian's prometheus package "
                          "(make deps does)")
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                           timeout=60)
        out = (r.stdout + r.stderr).decode()
        self.assertNotIn("error while linting", out)  # a parse error, not a lint
        names = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*):? ", out, re.M))
        return names, out, r.returncode

    def test_promtool_passes_ferry_names(self):
        text = self.scrape(SRV)
        names, out, rc = self.promtool(text)
        ferry = {n for n in re.findall(rb"^# TYPE (\w+)", text, re.M)
                 if n.startswith(b"ferry_")}
        self.assertEqual(len(ferry), 5, ferry)
        # only Triton's names, kept as Triton spells them (counters without
        # _total, _us units), may be reported
        self.assertTrue(all(n.startswith("nv_") for n in names), out)
        self.assertEqual(rc != 0, bool(names), out)

    def test_gpu_gauges(self):
        """With NVML present (a stand-in library with two GPUs, the second
        unable to report utilization), Triton's per-GPU gauges appear."""
        fake = os.environ.get("FERRY_FAKE_NVML", os.path.join(BUILD, "fake-nvml"))
        if not os.path.exists(os.path.join(fake, "libnvidia-ml.so.1")):
            self.skipTest("the stand-in NVML (fake_nvml) is not built")
        s = Server(env={"LD_LIBRARY_PATH": fake})
        try:
            text = self.scrape(s).decode()
        finally:
            self.assertEqual(s.stop(), 0, "".join(s.lines))
        gauges = re.findall(r'^(nv_gpu_\w+)\{gpu_uuid="([^"]+)"\} (\S+)$', text, re.M)
        self.assertEqual(gauges, [
            ("nv_gpu_utilization", "GPU-fake-0", "0.37"),
            ("nv_gpu_memory_total_bytes", "GPU-fake-0", "85899345920"),
            ("nv_gpu_memory_total_bytes", "GPU-fake-1", "85899345920"),
            ("nv_gpu_memory_used_bytes", "GPU-fake-0", "3221225472"),
            ("nv_gpu_memory_used_bytes", "GPU-fake-1", "1024")])
        self.assertIn("# TYPE nv_gpu_utilization gauge", text)
        if PROMTOOL:
            names, out, _ = self.promtool(text.encode())
            self.assertFalse({n for n in names if n.startswith("nv_gpu_")}, out)


class Logs(unittest.TestCase):
    """--log-level and --access-log: what each level shows on stderr."""

    LINE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z %s "

    def run_server(self, *args):
        s = Server(*args)
        try:
            c = s.conn()
            call(c, "GET", "/v2/health/live")
            call(c, "POST", INFER, infer_body(np.ones((1, 256))))
            call(c, "POST", INFER, infer_body(np.ones((1, 256)), "FP64"))
            c.close()
        finally:
            self.assertEqual(s.stop(), 0, "".join(s.lines))
        return "".join(s.lines)

    def test_info_default(self):
        text = self.run_server()
        for what in [r"model mlp-s version 1 \(%s\): in input f32 \[N,256\]; out output f32 "
                     r"\[N,256\]; on cpu.*, 1 worker, fp32, max batch 256$" % re.escape(MODEL),
                     r"ferry \d+\.\d+\.\d+: batcher max delay 500 us, .*1 priority level "
                     r"\(default 1\).*log level info$",
                     r"devices: cpu", r"serving mlp-s at http://127\.0\.0\.1:\d+ \(version 1\)$",
                     r"SIGTERM: stopping", r"stopped$"]:
            self.assertRegex(text, re.compile(self.LINE % "I" + what, re.M))
        self.assertRegex(text, re.compile(r"^listening on port \d+$", re.M))
        # one line for the failed request, none for the others (no access log)
        failed = re.findall(self.LINE % "W" + r"(.*)$", text, re.M)
        self.assertEqual(failed, ["request failed: model mlp-s version 1: 400 OTHER: inference "
                                  "input 'input' data-type is 'FP64', but model 'mlp-s' "
                                  "expects 'FP32'"])
        self.assertNotIn('"GET /v2/health/live"', text)

    def test_access_log(self):
        for args, letter in [(["--access-log"], "I"), (["--log-level", "verbose"], "V")]:
            text = self.run_server(*args)
            got = re.findall(self.LINE % letter + r'127\.0\.0\.1 "(\S+ \S+)" (\d+) (\d+) '
                             r'\d+\.\d{3} ms$', text, re.M)
            self.assertEqual([(r, st) for r, st, _ in got],
                             [("GET /v2/health/live", "200"), ("POST " + INFER, "200"),
                              ("POST " + INFER, "400")], (args, text))
            self.assertEqual(got[0][2], "0")  # health: an empty body

    def test_error_level_is_quiet(self):
        text = self.run_server("--log-level", "error")
        self.assertEqual(text.strip().splitlines(), [text.strip().splitlines()[0]])
        self.assertRegex(text, r"^listening on port \d+\n$")
        text = self.run_server("--log-level", "warn")
        self.assertNotRegex(text, re.compile(self.LINE % "I", re.M))
        self.assertRegex(text, re.compile(self.LINE % "W" + "request failed", re.M))

    def test_bad_level(self):
        r = subprocess.run([CLI, "serve", MODEL, "--log-level", "debug"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--log-level wants error, warn, info or verbose, got 'debug'", r.stderr)

    def test_cuda_without_driver_says_so(self):
        """A CUDA build on a machine without a GPU: --device cuda is refused
        in plain words, with no source file in them."""
        info = subprocess.run([CLI, "info"], capture_output=True, text=True, timeout=60)
        if "cuda: not built" in info.stdout + info.stderr:
            self.skipTest("a CPU-only build")
        if re.search(r"cuda:\d ", info.stdout):
            self.skipTest("this machine has a CUDA device")
        r = subprocess.run([CLI, "serve", MODEL, "--device", "cuda", "--port", "0"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"no NVIDIA (driver|GPU) found.*: --device cuda needs one; "
                                   r"use --device cpu")
        self.assertNotRegex(r.stderr, r"\.(c|cu|h):\d")
        self.assertNotIn("insufficient", r.stderr)


class Framing(unittest.TestCase):
    """Where a request's body ends must be beyond doubt (request smuggling):
    what is refused is refused at once, and the connection closed."""

    def one_reply(self, data):
        t = time.monotonic()
        replies = parse_responses(raw_exchange(SRV.port, data))
        self.assertLess(time.monotonic() - t, 5, "the server waited for more")
        self.assertEqual(len(replies), 1, replies)  # nothing after the headers was served
        st, h, body = replies[0]
        self.assertEqual(h["connection"].lower(), "close")
        self.assertTrue(h["content-type"].startswith("application/json"))
        return st, json.loads(body)["error"]

    def test_two_content_lengths(self):
        smuggled = b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n"
        for a, b in [(3, 3), (3, 0), (0, 3)]:
            req = (b"POST /v2/health/live HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                   b"Content-length: %d\r\n\r\nabc" % (a, b)) + smuggled
            st, msg = self.one_reply(req)
            self.assertEqual(st, 400, (a, b))
            self.assertIn("2 Content-Length headers", msg)
        body = json.dumps(infer_body(np.ones((1, 256)))).encode()
        req = (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Length: %d\r\n"
               b"\r\n" % (INFER.encode(), len(body), len(body))) + body + smuggled
        self.assertEqual(self.one_reply(req)[0], 400)

    def test_transfer_encoding_with_content_length(self):
        for te in [b"chunked", b"gzip"]:
            req = (b"POST /v2/health/live HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: %s\r\n"
                   b"Content-Length: 5\r\n\r\n0\r\n\r\nGET /v2 HTTP/1.1\r\nHost: x\r\n\r\n" % te)
            st, msg = self.one_reply(req)
            self.assertEqual(st, 400, te)
            self.assertIn("Transfer-Encoding '%s' and Content-Length" % te.decode(), msg)

    def test_unknown_transfer_coding(self):
        for te in [b"gzip", b"identity", b"gzip, chunked", b"chunked, gzip", b"chunked;x=1"]:
            for method, path in [(b"POST", INFER.encode()), (b"GET", b"/v2/health/live")]:
                req = (b"%s %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: %s\r\n\r\n"
                       b"5\r\nhello\r\n" % (method, path, te))
                st, msg = self.one_reply(req)
                self.assertEqual(st, 501, (te, method))
                self.assertIn("Transfer-Encoding '%s' is not supported" % te.decode(), msg)
        req = (b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % INFER.encode())
        st, msg = self.one_reply(req)
        self.assertEqual(st, 501)
        self.assertIn("2 Transfer-Encoding headers", msg)

    def test_chunked_body_is_read(self):
        # exactly "chunked", in any case, is what MHD decodes: served normally
        x = np.random.default_rng(5).standard_normal((1, 256)).astype(np.float32)
        body = json.dumps(infer_body(x)).encode()
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 1000]), body[i:i + 1000])
                          for i in range(0, len(body), 1000))
        req = (b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ChUnKeD\r\n"
               b"Connection: close\r\n\r\n" % INFER.encode()) + chunks + b"0\r\n\r\n"
        (st, _, data), = parse_responses(raw_exchange(SRV.port, req))
        self.assertEqual(st, 200, data[:300])
        self.assertEqual(len(json.loads(data)["outputs"][0]["data"]), 256)


class Infer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(0)
        cls.x = rng.standard_normal((5, 256)).astype(np.float32)
        cls.ref = reference(cls.x)

    def setUp(self):
        self.c = SRV.conn()

    def tearDown(self):
        self.c.close()

    def infer(self, body, headers=None, status=200):
        st, h, data = call(self.c, "POST", INFER, body, headers)
        self.assertEqual(st, status, data[:500])
        return h, data

    def check_out(self, out, shape=(5, 256), ref=None):
        self.assertEqual(out["datatype"], "FP32")
        self.assertEqual(out["shape"], list(shape))
        y = np.array(out["data"], np.float32).reshape(shape)
        np.testing.assert_allclose(y, self.ref if ref is None else ref, rtol=1e-5, atol=1e-5)
        return y

    def test_mixed_number_forms(self):
        # plain decimals, 17-digit and exponent forms in one array: the fast
        # loop takes each in place, and every form reads as strtof reads it
        x = self.x[:1]
        forms = ["%.4f", "%.17g", "%.6e", "%.9g", "%d"]
        nums = []
        for i, v in enumerate(x.ravel().tolist()):
            f = forms[i % len(forms)]
            nums.append(f % (round(v) if f == "%d" else v))
        xs = np.array([np.float32(float(t)) for t in nums], np.float32).reshape(1, 256)
        body = ('{"inputs":[{"name":"input","datatype":"FP32","shape":[1,256],"data":[%s]}]}'
                % ",".join(nums)).encode()
        h, data = self.infer(body)
        outs, _ = outputs_of(data)
        self.check_out(outs["output"], shape=(1, 256), ref=reference(xs))

    def test_body_over_a_mebibyte(self):
        # a body read past the first allocation (the server reserves at most
        # 1 MiB up front, then grows it as the bytes arrive)
        x = np.random.default_rng(11).standard_normal((64, 256)).astype(np.float32)
        body = json.dumps(infer_body(x.astype(np.float64))).encode()
        body = body[:-1] + b" \n" * (1 << 19) + b"}"
        self.assertGreater(len(body), 1 << 20)
        h, data = self.infer(body)
        outs, _ = outputs_of(data)
        self.check_out(outs["output"], shape=(64, 256), ref=reference(x))

    def test_flat_matches_cli_run(self):
        h, data = self.infer(infer_body(self.x, id="req-1"))
        self.assertTrue(h["content-type"].startswith("application/json"))
        outs, doc = outputs_of(data)
        self.assertEqual(doc["model_name"], "mlp-s")
        self.assertEqual(doc["model_version"], "1")
        self.assertEqual(doc["id"], "req-1")
        self.assertEqual(list(outs), ["output"])
        self.check_out(outs["output"])

    def test_single_samples_match(self):
        for i in range(5):
            _, data = self.infer(infer_body(self.x[i:i + 1]))
            self.check_out(outputs_of(data)[0]["output"], (1, 256), self.ref[i:i + 1])

    def test_nested(self):
        _, data = self.infer(infer_body(self.x, nested=True))
        self.check_out(outputs_of(data)[0]["output"])

    def test_datatype_mismatch(self):
        # Triton's refusal, word for word, for JSON and binary data alike
        msg = "inference input 'input' data-type is '%s', but model 'mlp-s' expects 'FP32'"
        for dt in ["FP64", "FP16", "INT32", "BOOL"]:
            _, data = self.infer(infer_body(np.ones((1, 256)), dt), status=400)
            self.assertEqual(json.loads(data)["error"], msg % dt)
        body, h = binary_body(np.ones((2, 256), np.float16), "FP16")
        _, data = self.infer(body, h, status=400)
        self.assertEqual(json.loads(data)["error"], msg % "FP16")

    def test_datatypes(self):
        # --convert-datatypes: values exact in every datatype give the FP32 result
        self.c.close()
        self.c = CONV.conn()
        xi = np.random.default_rng(3).integers(-4, 5, (5, 256))
        ref = reference(xi.astype(np.float32))
        for dt in ["FP32", "FP64", "FP16", "BF16", "INT32", "INT64"]:
            _, data = self.infer(infer_body(xi, dt))
            self.check_out(outputs_of(data)[0]["output"], ref=ref)
        # FP16 rounds its data first: 0.1 is read as fp16(0.1)
        xh = np.full((1, 256), 0.1)
        _, data = self.infer(infer_body(xh, "FP16"))
        y = self.check_out(outputs_of(data)[0]["output"], (1, 256),
                           reference(xh.astype(np.float16).astype(np.float32)))
        self.assertIsNotNone(y)

    def test_requested_outputs(self):
        _, data = self.infer(infer_body(self.x, outputs=[{"name": "output"}]))
        self.check_out(outputs_of(data)[0]["output"])
        _, data = self.infer(infer_body(self.x, outputs=[{"name": "nope"}]), status=400)
        self.assertIn("unknown output 'nope'", json.loads(data)["error"])

    def test_binary_in_json_out(self):
        body, h = binary_body(self.x)
        _, data = self.infer(body, h)
        self.check_out(outputs_of(data)[0]["output"])

    def test_binary_in_binary_out(self):
        body, h = binary_body(self.x, outputs=[{"name": "output",
                                                "parameters": {"binary_data": True}}], id="b")
        rh, data = self.infer(body, h)
        self.assertEqual(rh["content-type"], "application/octet-stream")
        doc, raw = split_binary(rh, data)
        self.assertEqual(doc["id"], "b")
        out = doc["outputs"][0]
        self.assertEqual(out["parameters"]["binary_data_size"], 5 * 256 * 4)
        self.assertNotIn("data", out)
        self.assertEqual(len(raw), 5 * 256 * 4)
        y = np.frombuffer(raw, np.float32).reshape(5, 256)
        np.testing.assert_allclose(y, self.ref, rtol=1e-5, atol=1e-5)

    def test_binary_fp16_input(self):
        self.c.close()
        self.c = CONV.conn()  # converted to the model's FP32
        xi = np.random.default_rng(4).integers(-3, 4, (2, 256)).astype(np.float16)
        body, h = binary_body(xi, "FP16")
        _, data = self.infer(body, h)
        self.check_out(outputs_of(data)[0]["output"], (2, 256),
                       reference(xi.astype(np.float32)))

    def test_binary_data_output_parameter(self):
        rh, data = self.infer(infer_body(self.x, parameters={"binary_data_output": True}))
        self.assertEqual(rh["content-type"], "application/octet-stream")
        doc, raw = split_binary(rh, data)
        y = np.frombuffer(raw, np.float32).reshape(5, 256)
        np.testing.assert_allclose(y, self.ref, rtol=1e-5, atol=1e-5)
        # a per-output binary_data false overrides it
        rh, data = self.infer(infer_body(self.x, parameters={"binary_data_output": True},
                                         outputs=[{"name": "output",
                                                   "parameters": {"binary_data": False}}]))
        self.assertTrue(rh["content-type"].startswith("application/json"))
        self.assertNotIn("inference-header-content-length", rh)
        self.check_out(outputs_of(data)[0]["output"])

    def test_json_floats_read_back_exactly(self):
        rh, data = self.infer(infer_body(self.x, parameters={"binary_data_output": True}))
        _, raw = split_binary(rh, data)
        _, data = self.infer(infer_body(self.x))
        y = np.array(outputs_of(data)[0]["output"]["data"], np.float32).reshape(5, 256)
        self.assertTrue(np.array_equal(y, np.frombuffer(raw, np.float32).reshape(5, 256)))


class BadRequests(unittest.TestCase):
    def setUp(self):
        self.c = SRV.conn()

    def tearDown(self):
        self.c.close()

    def bad(self, body, frag, headers=None, status=400):
        st, h, data = call(self.c, "POST", INFER, body, headers)
        self.assertEqual(st, status, data)
        self.assertTrue(h["content-type"].startswith("application/json"))
        msg = json.loads(data)["error"]
        self.assertIn(frag, msg)

    def test_json(self):
        self.bad(b"{\"inputs\": [", "malformed JSON")
        self.bad(b"", "empty")
        self.bad(b"[1,2]", "JSON object")
        self.bad({"x": 1}, "'inputs'")
        self.bad({"inputs": [{"datatype": "FP32", "shape": [1, 256], "data": [0] * 256}]},
                 "'name'")
        self.bad({"id": 5, "inputs": []}, "'id'")
        body, _ = binary_body(np.zeros((1, 256), np.float32))
        self.bad(body, "Inference-Header-Content-Length")  # binary without the header
        self.bad(json.dumps(infer_body(np.zeros((1, 256)))).encode() + b"}", "after the JSON")

    def test_datatype(self):
        self.bad(infer_body(np.zeros((1, 256)), "FP8"), "unknown datatype 'FP8'")
        self.bad(infer_body(np.zeros((1, 256)), "BYTES"), "unknown datatype")
        self.bad(infer_body(np.full((1, 256), 0.5), "INT32"), "data-type is 'INT32'")
        conv = CONV.conn()
        try:
            st, _, data = call(conv, "POST", INFER, infer_body(np.full((1, 256), 0.5), "INT32"))
        finally:
            conv.close()
        self.assertEqual(st, 400, data)
        self.assertIn("not a valid INT32", json.loads(data)["error"])
        body = infer_body(np.zeros((1, 256)))
        body["inputs"][0]["data"][3] = "x"
        self.bad(body, "element 3")

    def test_shape(self):
        self.bad(infer_body(np.zeros((1, 255))), "shape does not match")
        self.bad(infer_body(np.zeros((256,))), "shape does not match")
        self.bad(infer_body(np.zeros((1, 1, 256))), "shape does not match")
        self.bad(infer_body(np.zeros((0, 256))), "batch dimension")
        # a huge claimed shape is refused before anything is allocated
        body = infer_body(np.zeros((1, 256)))
        body["inputs"][0]["shape"] = [1000000000000, 256]
        self.bad(body, "larger than the model's max batch")
        body = infer_body(np.zeros((2, 256)))
        body["inputs"][0]["data"].pop()
        self.bad(body, "511 elements")
        body = infer_body(np.zeros((2, 256)))
        body["inputs"][0]["data"].append(1.0)
        self.bad(body, "more than the 512")
        body = infer_body(np.zeros((2, 256)), nested=True)
        body["inputs"][0]["data"][1].pop()
        self.bad(body, "255 entries at depth 1")
        body = infer_body(np.zeros((2, 256)), nested=True)
        body["inputs"][0]["data"].append([0.0] * 256)
        self.bad(body, "3 entries at depth 0")
        body = infer_body(np.zeros((2, 256)), nested=True)
        body["inputs"][0]["shape"] = [2, 256]
        body["inputs"][0]["data"][0][0] = [1.0]
        self.bad(body, "not a number")

    def test_missing_and_unknown_input(self):
        self.bad({"inputs": []}, "missing input 'input'")
        body = infer_body(np.zeros((1, 256)))
        body["inputs"][0]["name"] = "x"
        self.bad(body, "unknown input 'x'")
        body = infer_body(np.zeros((1, 256)))
        body["inputs"].append(body["inputs"][0])
        self.bad(body, "given twice")
        body = infer_body(np.zeros((1, 256)))
        del body["inputs"][0]["data"]
        self.bad(body, "neither 'data'")

    def test_batch_over_max(self):
        self.bad(infer_body(np.zeros((65, 256))), "")

    def test_binary_sizes(self):
        x = np.zeros((2, 256), np.float32)
        body, h = binary_body(x)
        self.bad(body[:-4], "binary", h)  # short
        self.bad(body + b"\0\0\0\0", "after the JSON header", h)  # extra bytes
        h2 = dict(h)
        h2["Inference-Header-Content-Length"] = str(len(body) + 10)
        self.bad(body, "exceeds the body", h2)
        for v in ["abc", "+%d" % (len(body) - 2048), "-3", "5 5", "0x10", "1e3", "9" * 30]:
            h2["Inference-Header-Content-Length"] = v
            self.bad(body, "bad Inference-Header-Content-Length '%s'" % v, h2)
        # a request that is not an infer does not read the header
        for method, path, status in [("GET", "/v2/health/live", 200), ("GET", "/zzz", 404),
                                     ("GET", "/v2/models/nope/infer", 404),
                                     ("POST", "/v2/models/nope/infer", 404),
                                     ("GET", INFER, 405)]:
            st, _, data = call(self.c, method, path, body if method == "POST" else None,
                               {"Inference-Header-Content-Length": "-3"})
            self.assertEqual(st, status, (method, path, data[:200]))
        hdr = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 256],
                           "parameters": {"binary_data_size": 100}}]}
        js = json.dumps(hdr).encode()
        self.bad(js + b"\0" * 100, "binary_data_size must be 2048",
                 {"Inference-Header-Content-Length": str(len(js))})

    def test_bad_parameters(self):
        self.bad(infer_body(np.zeros((1, 256)), parameters={"timeout": "x"}), "timeout")
        self.bad(infer_body(np.zeros((1, 256)), parameters={"binary_data_output": 1}),
                 "binary_data_output")
        # timeout and priority are whole numbers within range, not cast
        for name, v, shown in [("priority", 3000000000, "3000000000"), ("priority", 1e30, "1e+30"),
                               ("priority", 1.5, "1.5"), ("priority", -1, "-1"),
                               ("timeout", 1e30, "1e+30"), ("timeout", 0.5, "0.5"),
                               ("timeout", -1, "-1"), ("timeout", 2 ** 50 + 1, "1125899906842625")]:
            self.bad(infer_body(np.zeros((1, 256)), parameters={name: v}),
                     "parameter '%s' is %s: it must be an integer" % (name, shown))
        self.bad(infer_body(np.zeros((1, 256)), parameters={"priority": "1"}),
                 "parameter 'priority' must be an integer in 0..2147483647")
        # in range, a level the model lacks (one level unless --priority-levels)
        self.bad(infer_body(np.zeros((1, 256)), parameters={"priority": 2147483647}),
                 "parameter 'priority' is 2147483647: model 'mlp-s' has 1 priority level (1 is "
                 "the highest, 0 the default, 1); ferry serve --priority-levels N enables more")
        self.bad(infer_body(np.zeros((1, 256)), parameters={"priority": 2}), "is 2: model")
        for params in [{"priority": 0}, {"priority": 1}, {"timeout": 2 ** 50},
                       {"timeout": 0, "priority": 0.0}]:
            st, _, data = call(self.c, "POST", INFER, infer_body(np.zeros((1, 256)),
                                                                 parameters=params))
            self.assertEqual(st, 200, (params, data[:200]))

    def test_data_and_binary_data(self):
        # an input with both: which one is meant is not ours to guess
        x = np.zeros((1, 256), np.float32)
        raw = x.tobytes()
        hdr = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 256],
                           "data": [1.0] * 256, "parameters": {"binary_data_size": len(raw)}}]}
        js = json.dumps(hdr).encode()
        self.bad(js + raw, "input 'input' has both 'data' and a binary_data_size parameter",
                 {"Inference-Header-Content-Length": str(len(js))})
        hdr["inputs"][0]["data"] = "ignored?"
        js = json.dumps(hdr).encode()
        self.bad(js + raw, "has both 'data'", {"Inference-Header-Content-Length": str(len(js))})


class Parser(unittest.TestCase):
    """The request reader (src/server/kserve_parse.c): any key order, nested
    or flat data, every datatype, exact numbers, and a 400 naming the byte
    for whatever is not JSON."""

    @classmethod
    def setUpClass(cls):
        cls.x = np.random.default_rng(7).standard_normal((2, 256)).astype(np.float32)

    def setUp(self):
        self.c = CONV.conn()  # every datatype reaches the reader

    def tearDown(self):
        self.c.close()

    def post(self, body, status=200):
        st, h, data = call(self.c, "POST", INFER, body)
        self.assertEqual(st, status, data[:300])
        doc = json.loads(data.decode("utf-8"))  # strict UTF-8: errors echo client bytes
        return doc

    def output(self, body):
        return np.array(self.post(body)["outputs"][0]["data"], np.float32)

    def binary_ref(self, x):
        body, h = binary_body(x, outputs=[{"name": "output", "parameters": {"binary_data": True}}])
        st, rh, data = call(self.c, "POST", INFER, body, h)
        self.assertEqual(st, 200, data[:300])
        return np.frombuffer(split_binary(rh, data)[1], np.float32)

    def test_number_spellings_equal_binary(self):
        # the same float32 values as %.4f-like short decimals, Python's
        # 17-digit reprs of float32, %.9g, exponent forms: all must read to
        # the exact floats the binary extension sends
        x = self.x
        ref = self.binary_ref(x)
        flat = [float(v) for v in x.reshape(-1)]
        for fmt in ["%r", "%.9g", "%.9e", "%.12E", "%.20g"]:
            data = ",".join(fmt % v for v in flat)
            body = ('{"inputs":[{"name":"input","datatype":"FP32","shape":[2,256],"data":[%s]}]}'
                    % data).encode()
            y = self.output(body)
            self.assertTrue(np.array_equal(y, ref), fmt)

    def test_key_order_and_nesting(self):
        ref = self.binary_ref(self.x)
        nested = self.x.tolist()
        # data before name, datatype and shape: decoded after the object is read
        body = ('{"outputs":[{"parameters":{"binary_data":false},"name":"output"}],'
                '"inputs":[{"data":%s,"shape":[2,256],"datatype":"FP32","name":"input"}],'
                '"id":"late"}' % json.dumps(nested)).encode()
        doc = self.post(body)
        self.assertEqual(doc["id"], "late")
        self.assertTrue(np.array_equal(np.array(doc["outputs"][0]["data"], np.float32), ref))
        body = ('{"inputs":[{"data":%s,"name":"input","shape":[2,256],"datatype":"FP32"}]}'
                % json.dumps(self.x.reshape(-1).tolist())).encode()
        self.assertTrue(np.array_equal(self.output(body), ref))
        # whitespace everywhere, a UTF-8 BOM, escapes in keys and names
        body = ('\ufeff { "inputs" : [ { "n\\u0061me" : "inp\\u0075t" ,\n"datatype":"FP32",'
                '\t"shape" : [ 2 , 256 ] , "data" : %s } ] }\r\n'
                % json.dumps(nested, indent=1)).encode()
        self.assertTrue(np.array_equal(self.output(body), ref))
        # a key that is not read may repeat
        body = ('{"x":1,"inputs":[{"name":"input","datatype":"FP32","shape":[2,256],"y":2,'
                '"data":%s,"y":3}],"x":[]}' % json.dumps(nested)).encode()
        self.assertTrue(np.array_equal(self.output(body), ref))

    def test_duplicate_keys(self):
        # one that is read may not: parsers differ on which value counts.
        # Each case: (members before "inputs", after it, in the input), key
        inp = '{"name":"input","datatype":"FP32","shape":[1,256],"data":%s%%s}' % json.dumps(
            [1.0] * 256)
        cases = [
            ("", ',"inputs":5', "", "inputs"),
            ("", ',"outputs":[],"outputs":[]', "", "outputs"),
            ('"id":"a",', ',"id":"b"', "", "id"),
            ('"id":"a","i\\u0064":"b",', "", "", "id"),
            ('"parameters":{},', ',"parameters":{}', "", "parameters"),
            ('"parameters":{"timeout":1,"timeout":0},', "", "", "timeout"),
            ('"parameters":{"priority":1,"priority":0},', "", "", "priority"),
            ('"parameters":{"binary_data_output":true,"binary_data_output":false},', "", "",
             "binary_data_output"),
            ("", "", ',"data":"ignored"', "data"),
            ("", "", ',"name":"input"', "name"),
            ("", "", ',"datatype":"FP64"', "datatype"),
            ("", "", ',"shape":[1,256]', "shape"),
            ("", "", ',"parameters":{},"parameters":{}', "parameters"),
            ("", "", ',"parameters":{"binary_data_size":1,"binary_data_size":1}',
             "binary_data_size"),
            ("", ',"outputs":[{"name":"output","name":"x"}]', "", "name"),
            ("", ',"outputs":[{"name":"output","parameters":{"binary_data":true,'
             '"binary_data":false}}]', "", "binary_data")]
        for before, after, in_extra, key in cases:
            extra = '{%s"inputs":[%s]%s}' % (before, inp % in_extra, after)
            msg = self.post(extra.encode(), 400)["error"]
            self.assertEqual(msg, "duplicate key '%s'" % key, extra[:200])

    def test_every_datatype(self):
        xi = np.random.default_rng(9).integers(0, 2, (2, 256))
        ref = self.binary_ref(xi.astype(np.float32))
        for dt in ["FP32", "FP64", "FP16", "BF16", "INT32", "INT64", "INT8", "UINT8", "BOOL"]:
            for nested in (False, True):
                y = self.output(infer_body(xi, dt, nested=nested))
                self.assertTrue(np.array_equal(y, ref), (dt, nested))
        body = infer_body(xi, "BOOL")
        body["inputs"][0]["data"] = [bool(v) for v in body["inputs"][0]["data"]]
        self.assertTrue(np.array_equal(self.output(body), ref))
        # integral spellings are integers; int64 extremes are range-checked exactly
        body = infer_body(np.ones((2, 256)), "INT64")
        body["inputs"][0]["data"][0] = 9223372036854775807
        self.post(body)
        body["inputs"][0]["data"][0] = 9223372036854775808
        self.assertIn("element 0 (9.22337e+18) is not a valid INT64", self.post(body, 400)["error"])
        ones = np.ones((2, 256), np.int64)
        body = json.dumps(infer_body(ones, "INT32")).replace("[1, ", "[1.0e0, ", 1)
        self.assertIn("[1.0e0, ", body)
        self.post(body.encode())
        for v, dt in [(2147483648, "INT32"), (-129, "INT8"), (256, "UINT8"), (-1, "UINT8"),
                      (2, "BOOL"), (0.5, "INT64"), ("1e999", "INT32")]:
            body = json.dumps(infer_body(ones, dt)).replace("[1, 1,", "[1, %s," % v, 1)
            self.assertIn("element 1", self.post(body.encode(), 400)["error"], (v, dt))
        body = infer_body(np.ones((2, 256)), "FP32")
        body["inputs"][0]["data"][5] = True
        self.assertIn("element 5 of 'data' is not a number", self.post(body, 400)["error"])

    def test_huge_and_tiny_exponents(self):
        body = json.dumps(infer_body(np.ones((2, 256)))).replace("1.0, 1.0,", "1e-99999, 1.0,", 1)
        self.post(body.encode())
        body = json.dumps(infer_body(np.ones((2, 256)))).replace("1.0, 1.0,", "0e99999, 1.0,", 1)
        self.post(body.encode())

    def test_out_of_range_floats(self):
        # a number too large for its datatype would be infinity: refused,
        # naming the element, whichever path (flat fast loop, nested, other
        # datatypes) reads it; FP64 data is refused where the model's FP32
        # cannot hold it
        for v, dt, shown, what in [
                ("1e39", "FP32", "1e+39", "FP32"), ("3.5e38", "FP32", "3.5e+38", "FP32"),
                ("-1e400", "FP32", "-1e400", "FP32"), ("4" + "0" * 38, "FP32", "4e+38", "FP32"),
                ("3.4028236e38", "FP32", "3.40282e+38", "FP32"),
                ("70000", "FP16", "70000", "FP16"), ("-65520", "FP16", "-65520", "FP16"),
                ("1e39", "BF16", "1e+39", "BF16"), ("1e400", "FP64", "1e400", "FP64"),
                ("1e39", "FP64", "1e+39", "FP32")]:
            for nested in (False, True):
                body = json.dumps(infer_body(np.ones((1, 256)), dt, nested=nested))
                body = body.replace("1.0, 1.0, 1.0,", "1.0, 1.0, %s," % v, 1)
                msg = self.post(body.encode(), 400)["error"]
                self.assertIn("input 'input': element 2 (%s) is out of range for %s"
                              % (shown, what), msg, (v, dt, nested))
        # the largest of each type, and what rounds down to it, still reads
        for v, dt in [("3.4028235e38", "FP32"), ("-3.4028234663852886e38", "FP32"),
                      ("3" + "0" * 38, "FP32"), ("65519", "FP16"), ("3.38e38", "BF16"),
                      ("3.4e38", "FP64")]:
            body = json.dumps(infer_body(np.ones((1, 256)), dt)).replace("1.0,", "%s," % v, 1)
            self.post(body.encode())

    def test_out_of_range_binary(self):
        # FP64 binary data converted to the model's FP32: a finite value too
        # large for it is refused; NaN and infinities pass as they are
        x = np.ones((1, 256), np.float64)
        x[0, 7] = 1e39
        body, h = binary_body(x, "FP64")
        st, _, data = call(self.c, "POST", INFER, body, h)
        self.assertEqual(st, 400, data[:300])
        self.assertIn("input 'input': element 7 (1e+39) is out of range for FP32",
                      json.loads(data)["error"])
        x[0, 7] = np.inf
        body, h = binary_body(x, "FP64")
        st, _, data = call(self.c, "POST", INFER, body, h)
        self.assertEqual(st, 200, data[:300])
        self.assertIn(None, json.loads(data)["outputs"][0]["data"])

    def malformed(self, body, at=None, frag="malformed JSON"):
        msg = self.post(body, 400)["error"]
        self.assertIn(frag, msg, body[:200])
        if at is not None:
            self.assertIn("at byte %d" % at, msg, body[:200])
        return msg

    def test_malformed(self):
        good = json.dumps(infer_body(np.ones((1, 256)))).encode()
        head = good.index(b"[1.0") + 1
        for bad in [b"1e", b"--1", b"01", b"1.", b"+1", b".5", b"-", b"1e+", b"NaN", b"Infinity",
                    b"-Infinity", b"0x10", b"1.0.0", b"tru", b"nul", b"'1'", b"1 2"]:
            body = good[:head] + bad + good[head + 3:]
            self.malformed(body)
        self.malformed(b'{"inputs": [', 12)
        self.malformed(b'{"inputs" 5}', 10)
        self.malformed(b'{"id": "\\x"}', 8)
        self.malformed(b'{"id": "\\ud800"}', 8)
        self.malformed(b'{"id": "abc', 11)
        self.malformed(b'{"id": 1,}', 9)
        self.malformed(b'{inputs: []}', 1)
        # every truncation of a good request is refused with a JSON error
        for n in range(0, len(good) - 1, 97):
            st, _, data = call(self.c, "POST", INFER, good[:n] if n else b" ")
            self.assertEqual(st, 400, n)
            json.loads(data.decode("utf-8"))
        # deep nesting: refused, not a stack overflow
        deep = b'{"x":' + b"[" * 200000 + b"]" * 200000 + b',"inputs":[]}'
        self.malformed(deep, frag="nesting")
        body = json.dumps(infer_body(np.ones((1, 256)), nested=True)).encode()
        body = body.replace(b'"data": [[', b'"data": [' + b"[" * 1100, 1)
        self.malformed(body, frag="nesting")

    def test_mutations_agree_with_a_strict_json_parser(self):
        # 600 random byte flips, insertions and deletions of good requests:
        # the server never answers 5xx, always with a JSON body, and it
        # refuses as "malformed JSON" exactly what Python's own parser
        # refuses (allowing only for what json.loads is lenient about:
        # NaN/Infinity, lone surrogates, duplicate keys are not syntax), and
        # never accepts what that parser refuses
        rng = np.random.default_rng(11)
        goods = [json.dumps(infer_body(self.x[:1], id="m\u00e9")).encode(),
                 json.dumps(infer_body(self.x[:2], nested=True,
                                       outputs=[{"name": "output"}])).encode()]
        alphabet = b'{}[]",:0123456789.eE+-tfnul \\\x00\xff'
        for i in range(600):
            b = bytearray(goods[i % 2])
            for _ in range(1 + rng.integers(3)):
                at = int(rng.integers(len(b)))
                op = rng.integers(3)
                ch = alphabet[int(rng.integers(len(alphabet)))]
                if op == 0:
                    b[at] = ch
                elif op == 1:
                    b.insert(at, ch)
                elif len(b) > 1:
                    del b[at]
            body = bytes(b)
            st, _, data = call(self.c, "POST", INFER, body)
            self.assertLess(st, 500, body[:300])
            msg = json.loads(data.decode("utf-8"))  # always a JSON body
            try:
                text = body.decode("utf-8")
                strict_ok = True
                json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
            except (UnicodeDecodeError, ValueError):
                strict_ok = False
            said_malformed = st == 400 and "malformed JSON" in msg.get("error", "")
            if strict_ok:
                self.assertFalse(said_malformed, (body[:300], msg))
            else:
                self.assertEqual(st, 400, (body[:300], msg))

    def test_error_text_is_valid_json(self):
        # names with escaped control characters and NULs come back escaped:
        # the error is still UTF-8 JSON
        for name in [b"a\\u0001b", b"q\\u0000r", b"\\n"]:
            body = b'{"inputs":[{"name":"' + name + b'","datatype":"FP32","shape":[1,256],"data":[]}]}'
            msg = self.post(body, 400)["error"]
            self.assertIn("unknown input", msg)
        body = infer_body(np.ones((1, 256)), outputs=[{"name": "o\u00e9\n"}])
        self.assertIn("unknown output 'o\u00e9\n'", self.post(body, 400)["error"])
        st, _, data = call(self.c, "GET", "/v2/models/%FF%01x")
        self.assertEqual(st, 404)
        self.assertIn("\ufffd\x01x", json.loads(data.decode("utf-8"))["error"])

    def test_strings_are_strict_json(self):
        # RFC 8259: strings are UTF-8 without raw control characters, and
        # whitespace is space, tab, CR and LF only; a request that a strict
        # parser in front of us would refuse is refused here too
        good = json.dumps(infer_body(np.ones((1, 256)), id="ID")).encode()
        at = good.index(b'"ID"') + 1
        for bad, what in [(b"\xff\xfe", "UTF-8"), (b"\xc0\xaf", "UTF-8"),
                          (b"\xe0\x80\xaf", "UTF-8"), (b"\xed\xa0\x80", "UTF-8"),
                          (b"\xf4\x90\x80\x80", "UTF-8"), (b"\xe2\x82", "UTF-8"),
                          (b"\xc3", "UTF-8"), (b"\x80", "UTF-8"), (b"a\x00b", "control"),
                          (b"\x01", "control"), (b"\n", "control"), (b"\x1f", "control")]:
            body = good[:at] + bad + good[at + 2:]
            msg = self.malformed(body, at + bad.startswith(b"a"))  # the bad byte's offset
            self.assertIn(what, msg, bad)
        # in keys, names and skipped values too
        inp = '"name":"input","datatype":"FP32","shape":[1,256],"data":%s' % ([1.0] * 256)
        for body in [b'{"x\x01":1,"inputs":[{%s}]}', b'{"inputs":[{%s,"n":"\xff"}]}',
                     b'{"inputs":[{%s}],"outputs":[{"name":"out\tput"}]}',
                     b'{"inputs":[{%s}],"x":["\xc3"]}']:
            self.malformed(body % inp.encode())
        # the same characters escaped are fine; the id comes back as it was,
        # NUL included
        for s in ["\u00e9\U0001f600", "a\x00b\x01\n\t", "\x00"]:
            doc = self.post(json.dumps(infer_body(np.ones((1, 256)), id=s)).encode())
            self.assertEqual(doc["id"], s)
        for s in ["\u00e9", "\u20ac\U0001f600"]:  # and as UTF-8 itself
            raw = json.dumps(infer_body(np.ones((1, 256)), id=s), ensure_ascii=False).encode()
            self.assertIn(s.encode(), raw)
            self.assertEqual(self.post(raw)["id"], s)
        # whitespace other than space, tab, CR and LF is not whitespace
        for ws in [b"\x0b", b"\x0c", b"\x00", b"\x1f", b"\xa0"]:
            for old in [b'{"inputs"', b'[1.0, ', b'1.0, 1.0]']:
                new = old.replace(b"{", b"{" + ws).replace(b", ", b"," + ws)
                if old == b'1.0, 1.0]':
                    new = b'1.0, 1.0' + ws + b']'
                body = good.replace(old, new, 1)
                self.assertNotEqual(body, good)
                self.malformed(body)
        body = good.replace(b", ", b",\r\n\t ").replace(b"{", b"\n{ ", 1)
        self.assertEqual(self.post(body)["id"], "ID")

    def test_empty_model_name(self):
        for method, path in [("POST", "/v2/models//infer"), ("GET", "/v2/models//ready"),
                             ("GET", "/v2/models/"), ("POST", "/v2/models//versions/1/infer")]:
            st, _, data = call(self.c, method, path, infer_body(np.ones((1, 256)))
                                if method == "POST" else None)
            self.assertEqual(st, 404, path)
            self.assertIn("model name is empty", json.loads(data)["error"], path)


class Limits(unittest.TestCase):
    def test_413_body_too_large(self):
        s = Server("--max-body", "4000")
        try:
            c = s.conn()
            x = np.zeros((1, 256), np.float32)
            st, _, body = call(c, "POST", INFER, infer_body(x))  # ~1 KB: fits
            self.assertEqual(st, 200, body)
            st, h, body = call(c, "POST", INFER, infer_body(np.zeros((8, 256))))
            self.assertEqual(st, 413)
            self.assertIn("--max-body", json.loads(body)["error"])
            c.close()
            c = s.conn()
            st, _, _ = call(c, "GET", "/v2/health/live")
            self.assertEqual(st, 200)
            c.close()
        finally:
            self.assertEqual(s.stop(), 0, "".join(s.lines))

    def test_endless_chunk_is_cut_off(self):
        """A chunk that claims 2^64-1 bytes: MHD lets us answer only after the
        last chunk, so the body is read and dropped up to --max-body + 64 MiB
        and then the connection is closed (it used to be read for as long as
        the client sent). A chunked body that ends gets its 413."""
        s = Server("--max-body", "1024")
        try:
            c = socket.create_connection(("127.0.0.1", s.port), timeout=60)
            c.sendall(b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n")
            block, sent, closed = bytes(1 << 20), 0, False
            while sent < (80 << 20):
                try:
                    c.sendall(block)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                sent += len(block)
            if not closed:  # the close may still be on its way
                c.settimeout(10)
                try:
                    closed = c.recv(1) == b""
                except ConnectionResetError:
                    closed = True
                except socket.timeout:
                    closed = False
            c.close()
            self.assertTrue(closed, "the server read 80 MiB of one chunk")
            c = socket.create_connection(("127.0.0.1", s.port), timeout=60)
            c.sendall(b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n800\r\n" + bytes(2048) +
                      b"\r\n0\r\n\r\n")
            self.assertIn(b"HTTP/1.1 413", c.recv(4096))
            c.close()
        finally:
            self.assertEqual(s.stop(), 0, "".join(s.lines))

    def test_503_queue_full_and_504_timeout(self):
        # One engine worker kept busy by batches of 256 samples: requests
        # queue behind it, and with --max-queue 1 most of a burst is refused.
        s = Server("--max-queue", "1", "--workers", "1", "--max-batch", "256")
        try:
            body = json.dumps(infer_body(np.zeros((1, 256), np.float32))).encode()
            big, big_h = binary_body(np.ones((256, 256), np.float32))
            results, hog_codes, done = [], [], threading.Event()

            def hog():
                c = s.conn()
                while not done.is_set():
                    st, _, _ = call(c, "POST", INFER, big, big_h)
                    hog_codes.append(st)
                    if st != 200:
                        c.close()
                        c = s.conn()
                c.close()

            def one():
                c = s.conn()
                try:
                    for _ in range(4):
                        st, h, data = call(c, "POST", INFER, body)
                        results.append((st, h, data))
                        if st != 200:
                            c.close()
                            c = s.conn()
                finally:
                    c.close()

            hogs = [threading.Thread(target=hog) for _ in range(2)]
            for t in hogs:
                t.start()
            time.sleep(0.2)
            ts = [threading.Thread(target=one) for _ in range(16)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(120)
            done.set()
            for t in hogs:
                t.join(120)
            self.assertTrue(set(hog_codes) <= {200, 503}, hog_codes)
            self.assertIn(200, hog_codes)
            codes = sorted(st for st, _, _ in results)
            self.assertEqual(len(codes), 64)
            self.assertTrue(set(codes) <= {200, 503}, codes)
            self.assertIn(503, codes)
            for st, h, data in results:
                if st == 503:
                    self.assertEqual(h["retry-after"], "1")
                    self.assertIn("queue is full", json.loads(data)["error"])
                else:
                    self.assertEqual(len(json.loads(data)["outputs"][0]["data"]), 256)

            # a 1 us deadline passes before the dispatcher can run the request
            self.expect_504(s, parameters={"timeout": 1})
        finally:
            self.assertEqual(s.stop(), 0, "".join(s.lines))

    def test_priority_levels(self):
        """--priority-levels 2: requests of priority 1 form batches before
        those of the default level 2, whatever their arrival order. The
        engine (one worker, two batch slots) is kept busy by two batches of
        max-batch samples while three requests queue; the sizes of the
        batches then formed show the order the queue was read in."""
        m = 16384
        s = Server("--priority-levels", "2", "--workers", "1", "--max-batch", str(m))
        try:
            def send(n, prio, out):
                c = s.conn(timeout=600)
                params = {} if prio is None else {"priority": prio}
                body, h = binary_body(np.ones((n, 256), np.float32), parameters=params,
                                      outputs=[{"name": "output",
                                                "parameters": {"binary_data": True}}])
                st, _, data = call(c, "POST", INFER, body, h)
                out.append((n, st, data[:200]))
                c.close()

            def metrics():
                c = s.conn()
                st, _, body = call(c, "GET", "/metrics")
                c.close()
                text = body.decode()
                one = lambda k: int(re.search(r"^%s\{[^}]*\} (\d+)$" % k, text, re.M).group(1))
                le = {b: int(v) for b, v in re.findall(
                    r'^ferry_batch_size_bucket\{[^}]*le="([^"]+)"\} (\d+)$', text, re.M)}
                return one("nv_inference_pending_request_count"), \
                    one("nv_inference_exec_count"), le

            for attempt in range(3):
                out, ts = [], []
                _, execs, le0 = metrics()
                # two full batches hold both slots: one runs, one waits for it
                for i in range(2):
                    ts.append(threading.Thread(target=send, args=(m, 1, out)))
                    ts[-1].start()
                    while metrics()[1] < execs + i + 1:
                        pass  # until the dispatcher has launched it
                # then, queued in this order while both slots are taken: the
                # default level, then twice the highest
                queued = True
                for i, (n, prio) in enumerate([(10000, None), (4000, 1), (4000, 1)]):
                    ts.append(threading.Thread(target=send, args=(n, prio, out)))
                    ts[-1].start()
                    while queued:
                        pending, e, _ = metrics()
                        if pending >= i + 1:
                            break
                        # a batch launched or done since the two full ones:
                        # a slot was free while these queued (its response
                        # may still be in flight, so out alone is too late)
                        queued = not out and e == execs + 2
                for t in ts:
                    t.join(600)
                self.assertEqual([st for _, st, _ in out], [200] * 5, out)
                if queued:
                    break
            else:
                self.skipTest("the first batches always finished before three more requests "
                              "were queued")
            le = {b: v - le0[b] for b, v in metrics()[2].items()}
            # 16384 x2, then by priority [4000+4000] and [10000]; read in
            # arrival order they would be [10000+4000] and [4000]
            self.assertEqual((le["4096"], le["8192"], le["16384"]), (0, 1, 4), le)
        finally:
            self.assertEqual(s.stop(), 0, "".join(s.lines))

    def test_priority_flags(self):
        s = Server("--priority-levels", "3", "--default-priority-level", "2")
        try:
            c = s.conn()
            for prio in (0, 1, 2, 3):
                st, _, data = call(c, "POST", INFER, infer_body(np.zeros((1, 256)),
                                                                parameters={"priority": prio}))
                self.assertEqual(st, 200, data)
            st, _, data = call(c, "POST", INFER, infer_body(np.zeros((1, 256)),
                                                            parameters={"priority": 4}))
            self.assertEqual(st, 400)
            self.assertEqual(json.loads(data)["error"],
                             "parameter 'priority' is 4: model 'mlp-s' has 3 priority levels "
                             "(1 is the highest, 0 the default, 2)")
            c.close()
        finally:
            self.assertEqual(s.stop(), 0, "".join(s.lines))
        for args, msg in [(["--priority-levels", "9"], "--priority-levels wants an integer in 1..8"),
                          (["--priority-levels", "2", "--default-priority-level", "3"],
                           "--default-priority-level 3 is outside 1..2 (--priority-levels)")]:
            r = subprocess.run([CLI, "serve", MODEL] + args, capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(msg, r.stderr)

    def expect_504(self, s, **extra):
        """Deadlines of 1 us: (nearly) every request expires before it runs;
        the batcher may win a race now and then, so ask a few times."""
        c = s.conn()
        codes = []
        for _ in range(5):
            st, _, data = call(c, "POST", INFER, infer_body(np.zeros((1, 256)), **extra))
            codes.append(st)
            if st == 504:
                self.assertIn("timed out", json.loads(data)["error"])
        c.close()
        self.assertIn(504, codes)
        self.assertTrue(set(codes) <= {200, 504}, codes)

    def test_504_default_timeout(self):
        s = Server("--timeout-us", "1")
        try:
            self.expect_504(s)
            # a request's own timeout overrides the default
            c = s.conn()
            st, _, data = call(c, "POST", INFER, infer_body(np.zeros((1, 256)),
                                                            parameters={"timeout": 30000000}))
            self.assertEqual(st, 200, data)
            c.close()
        finally:
            self.assertEqual(s.stop(), 0, "".join(s.lines))

    def test_connection_timeout(self):
        # idle and half-sent connections are closed after --connection-timeout
        # (they would hold a slot each: slowloris); a request waiting longer
        # than that for its batch is not idle and is answered
        s = Server("--connection-timeout", "1", "--preferred-batch", "4",
                   "--max-delay-us", "2500000")
        try:
            for data in [b"", b"POST /v2/models/mlp-s/infer HTTP/1.1\r\nHost: x\r\n",
                         b"POST /v2/models/mlp-s/infer HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 100\r\n\r\n{\"inputs\""]:
                t = time.monotonic()
                raw_exchange(s.port, data, timeout=20)  # returns once the server closes
                self.assertLess(time.monotonic() - t, 15, data)
            c = s.conn()
            t = time.monotonic()
            st, _, data = call(c, "POST", INFER, infer_body(np.ones((1, 256))))
            self.assertEqual(st, 200, data[:200])
            self.assertGreater(time.monotonic() - t, 2)  # it waited out the delay, suspended
            c.close()
        finally:
            self.assertEqual(s.stop(), 0, "".join(s.lines))


class Repository(unittest.TestCase):
    def test_model_repository_and_named_models(self):
        with tempfile.TemporaryDirectory() as d:
            for v in ("1", "2"):
                os.makedirs(os.path.join(d, "mlp", v))
                shutil.copy(MODEL, os.path.join(d, "mlp", v, "model.onnx"))
            os.makedirs(os.path.join(d, "mlp", "notes"))
            # both versions (the default policy serves the highest alone:
            # test_repository.py)
            with open(os.path.join(d, "mlp", "config.pbtxt"), "w") as f:
                f.write("version_policy: { all { } }\n")
            s = Server("--model-repository", d, "--model", "other=" + MODEL, model=None)
            try:
                c = s.conn()
                st, _, data = call(c, "GET", "/v2/models/mlp")
                self.assertEqual(st, 200)
                self.assertEqual(sorted(json.loads(data)["versions"]), ["1", "2"])
                x = np.ones((1, 256), np.float32)
                for path in ["/v2/models/mlp/versions/2/infer", "/v2/models/mlp/versions/1/infer",
                             "/v2/models/mlp/infer", "/v2/models/other/infer"]:
                    st, _, data = call(c, "POST", path, infer_body(x))
                    self.assertEqual(st, 200, data)
                doc = json.loads(data)
                self.assertEqual(doc["model_name"], "other")
                st, _, _ = call(c, "GET", "/v2/models/mlp-s")
                self.assertEqual(st, 404)
                st, _, data = call(c, "GET", "/metrics")
                self.assertIn('model="mlp",version="2"', data.decode())
                c.close()
            finally:
                self.assertEqual(s.stop(), 0, "".join(s.lines))


class Devices(unittest.TestCase):
    def test_device_list(self):
        """--device cpu,cpu (a replica per device, as cuda:all makes one per
        GPU): metadata lists each device and whether it serves; requests
        from many threads are answered as by one device."""
        s = Server("--device", "cpu,cpu", "--max-batch", "16")
        try:
            c = s.conn()
            st, _, data = call(c, "GET", "/v2/models/mlp-s")
            self.assertEqual(st, 200)
            devs = json.loads(data)["parameters"]["devices"]
            self.assertEqual(len(devs), 2)
            self.assertTrue(all(d["ready"] for d in devs))
            self.assertTrue(devs[0]["name"].startswith("cpu"))
            st, _, _ = call(c, "GET", "/v2/models/mlp-s/ready")
            self.assertEqual(st, 200)
            c.close()
            x = np.random.default_rng(5).uniform(-1, 1, (8, 256)).astype(np.float32)
            want = reference(x)
            bad = []

            def client(i):
                try:
                    cc = s.conn()
                    for k in range(10):
                        row = (i + k) % 8
                        st, _, data = call(cc, "POST", "/v2/models/mlp-s/infer",
                                           infer_body(x[row:row + 1]))
                        got = np.array(outputs_of(data)[0]["output"]["data"], np.float32)
                        if st != 200 or not np.allclose(got, want[row], rtol=1e-5, atol=1e-6):
                            bad.append((i, k, st))
                    cc.close()
                except Exception as e:  # a thread's failure must fail the test
                    bad.append((i, repr(e)))
            th = [threading.Thread(target=client, args=(i,)) for i in range(8)]
            for t in th:
                t.start()
            for t in th:
                t.join()
            self.assertEqual(bad, [])
        finally:
            self.assertEqual(s.stop(), 0, "".join(s.lines))


class Cli(unittest.TestCase):
    def run_cli(self, *args):
        return subprocess.run([CLI, "serve"] + list(args), capture_output=True, text=True,
                              timeout=120)

    def test_help(self):
        p = self.run_cli("--help")
        self.assertEqual(p.returncode, 0)
        for opt in ["--model-repository", "--max-body", "--max-queue", "--timeout-us",
                    "--connection-timeout", "/v2/models/NAME", "SIGTERM"]:
            self.assertIn(opt, p.stdout)

    def test_bad_usage(self):
        for args, frag in [((), "no model"), (("--bogus", "1"), "unknown option"),
                           ((MODEL, "--port", "99999"), "--port"),
                           ((MODEL, "--max-batch"), "needs a value"),
                           ((MODEL, "--connection-timeout", "-1"), "--connection-timeout"),
                           (("--model", "noequals"), "NAME=PATH"),
                           ((MODEL, "--precision", "fp8"), "precision"),
                           ((MODEL, "--preferred-batch", "0"), "--preferred-batch"),
                           ((MODEL, "--preferred-batch", "4,x"), "--preferred-batch")]:
            p = self.run_cli(*args)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn(frag, p.stderr, args)

    def test_preferred_batch(self):
        # four single-sample requests at once, preferred batch 4: they wait
        # for each other (up to 2 s) and run as one batch of 4
        s = Server("--preferred-batch", "4", "--max-delay-us", "2000000")
        try:
            x = np.random.default_rng(3).standard_normal((4, 256)).astype(np.float32)
            ref = reference(x)
            outs = [None] * 4

            def one(i):
                c = s.conn()
                st, _, data = call(c, "POST", INFER, json.dumps(infer_body(x[i:i + 1])).encode())
                c.close()
                outs[i] = (st, data)

            ts = [threading.Thread(target=one, args=(i,)) for i in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
            for i, (st, data) in enumerate(outs):
                self.assertEqual(st, 200, data[:200])
                got = np.array(json.loads(data)["outputs"][0]["data"], np.float32)
                np.testing.assert_allclose(got, ref[i].ravel(), rtol=1e-5, atol=1e-6)
            c = s.conn()
            st, _, data = call(c, "GET", "/metrics")
            c.close()
            m = re.search(r'ferry_batch_size_count\{model="mlp-s"[^}]*\} (\d+)', data.decode())
            self.assertIsNotNone(m, data.decode()[:2000])
            self.assertEqual(int(m.group(1)), 1)  # one batch ran
        finally:
            self.assertEqual(s.stop(), 0)

    def test_data_failure_answers_the_others(self):
        # ids -> Add(ids, ids) -> Gather(table [10, 3]): an index only the
        # model computes, so submit cannot check it. Six requests ride in
        # one batch (preferred size 6); two hold an id whose double is out
        # of range. The batch fails in the engine and runs again in halves:
        # the four good requests get 200 and their rows, the two bad the
        # engine's reason (a 500, as Triton answers a backend's failure: the
        # model, not the request's form, refused them).
        from onnx import TensorProto, helper, numpy_helper
        table = np.arange(30, dtype=np.float32).reshape(10, 3)
        g = helper.make_graph(
            [helper.make_node("Add", ["ids", "ids"], ["idx"]),
             helper.make_node("Gather", ["table", "idx"], ["y"], name="emb")],
            "twice", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 3])],
            [numpy_helper.from_array(table, "table")])
        d = tempfile.mkdtemp()
        path = os.path.join(d, "twice.onnx")
        with open(path, "wb") as f:
            f.write(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
                    .SerializeToString())
        s = Server("--preferred-batch", "6", "--max-delay-us", "2000000", model=path)
        try:
            ids = np.array([[(i + j) % 10 - 5 for j in range(4)] for i in range(6)], np.int64)
            ids[1, 2], ids[4, 0] = 5, -6  # doubled: 10 and -12
            outs = [None] * 6

            def one(i):
                c = s.conn()
                body = {"inputs": [{"name": "ids", "datatype": "INT64", "shape": [1, 4],
                                    "data": ids[i].tolist()}]}
                st, _, data = call(c, "POST", "/v2/models/twice/infer", body)
                c.close()
                outs[i] = (st, data)

            ts = [threading.Thread(target=one, args=(i,)) for i in range(6)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
            for i, (st, data) in enumerate(outs):
                if i in (1, 4):
                    self.assertEqual(st, 500, data[:300])
                    self.assertIn("node 'emb' (Gather): an index in 'idx' is out of range",
                                  json.loads(data)["error"])
                    continue
                self.assertEqual(st, 200, data[:300])
                got = np.array(json.loads(data)["outputs"][0]["data"], np.float32)
                np.testing.assert_array_equal(got, table[(2 * ids[i]) % 10].ravel())
        finally:
            self.assertEqual(s.stop(), 0)
            shutil.rmtree(d)

    def test_unloadable_model(self):
        p = self.run_cli("/nonexistent/model.onnx", "--port", "0")
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent/model.onnx", p.stderr)

    def test_model_fifo_refused(self):
        """A model file that is a FIFO nobody writes is refused at once (the
        open used to wait for a writer forever, and only SIGKILL ended it)."""
        with tempfile.TemporaryDirectory() as d:
            fifo = os.path.join(d, "model.onnx")
            os.mkfifo(fifo)
            t = time.monotonic()
            p = self.run_cli(fifo, "--port", "0")
            self.assertLess(time.monotonic() - t, 5)
            self.assertEqual(p.returncode, 1)
            self.assertIn("not a regular file", p.stderr)

    def test_external_data_fifo_and_symlink_refused(self):
        """External data that is a FIFO is refused at once (it hung the load
        forever); one that is a symbolic link is refused even when the link
        points at a real file (outside the model's folder, here)."""
        import onnx
        with tempfile.TemporaryDirectory() as d:
            mdir, outside = os.path.join(d, "m"), os.path.join(d, "outside")
            os.mkdir(mdir)
            os.mkdir(outside)
            m = onnx.load(MODEL)
            path = os.path.join(mdir, "model.onnx")
            onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
                            location="w.bin", size_threshold=0)
            os.rename(os.path.join(mdir, "w.bin"), os.path.join(outside, "w.bin"))
            os.symlink(os.path.join(outside, "w.bin"), os.path.join(mdir, "w.bin"))
            p = self.run_cli(path, "--port", "0")
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("w.bin' is or passes through a symbolic link", p.stderr)
            os.unlink(os.path.join(mdir, "w.bin"))
            os.mkfifo(os.path.join(mdir, "w.bin"))
            p = self.run_cli(path, "--port", "0")  # subprocess.run's timeout: 120 s
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("w.bin' is a FIFO, not a regular file", p.stderr)


class Shutdown(unittest.TestCase):
    def test_sigterm_under_load(self):
        s = Server("--max-delay-us", "2000")
        body = json.dumps(infer_body(np.ones((1, 256), np.float32))).encode()
        statuses, garbage, lock = [], [], threading.Lock()
        stop = threading.Event()

        def client():
            c = s.conn(timeout=60)
            while not stop.is_set():
                try:
                    st, h, data = call(c, "POST", INFER, body)
                except (ConnectionError, OSError):
                    c.close()  # refused or reset once the server is going away
                    c = s.conn(timeout=60)
                    if s.proc.poll() is not None:
                        break
                    time.sleep(0.01)
                    continue
                except http.client.HTTPException as e:
                    with lock:
                        garbage.append(repr(e))
                    break
                try:
                    doc = json.loads(data)
                    ok = (st == 200 and len(doc["outputs"][0]["data"]) == 256) or \
                         (st == 503 and "error" in doc)
                except (ValueError, KeyError):
                    ok = False
                with lock:
                    statuses.append(st)
                    if not ok:
                        garbage.append((st, data[:200]))
                if st != 200:
                    c.close()
                    c = s.conn(timeout=60)
            c.close()

        ts = [threading.Thread(target=client) for _ in range(32)]
        for t in ts:
            t.start()
        time.sleep(1.5)
        n_before = len(statuses)
        rc = s.stop(signal.SIGTERM)
        stop.set()
        for t in ts:
            t.join(60)
        self.assertEqual(rc, 0, "".join(s.lines))
        self.assertGreater(n_before, 0, "no request was answered before the stop")
        self.assertEqual(garbage, [])
        self.assertTrue(set(statuses) <= {200, 503}, set(statuses))

    def test_keep_alive_client_hears_shutdown(self):
        """A request on an open keep-alive connection right after SIGTERM gets
        503 "shutting down" with Connection: close, not a reset; a new
        connection is refused at once."""
        s = Server()
        body = infer_body(np.ones((1, 256), np.float32))
        c = s.conn(timeout=30)
        try:
            st, _, _ = call(c, "POST", INFER, body)
            self.assertEqual(st, 200)
            s.proc.send_signal(signal.SIGTERM)
            for _ in range(100000):  # answered normally until the stop begins
                st, h, data = call(c, "POST", INFER, body)
                if st != 200 or h.get("connection", "").lower() == "close":
                    break
            # the last answer tells the client that the connection is closing:
            # a request accepted before the stop, or one refused by it
            self.assertEqual(h.get("connection", "").lower(), "close", (st, h))
            if st != 200:
                self.assertEqual(st, 503, data[:200])
                self.assertIn("shutting down", json.loads(data)["error"])
            with self.assertRaises(ConnectionRefusedError):
                c2 = s.conn(timeout=5)
                try:
                    c2.connect()
                finally:
                    c2.close()
        finally:
            c.close()
            self.assertEqual(s.stop(), 0, "".join(s.lines))


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
