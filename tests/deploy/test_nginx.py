#!/usr/bin/env python3
"""deploy/nginx.conf as README.md's "Deploying" runs it: Debian's nginx on
loopback in front of two `ferry serve` replicas, started here as an ordinary
process with everything under a temporary prefix. Infer requests flow
through nginx while one replica is stopped with SIGTERM; every request must
be answered 200, by either replica, and the stopped one must exit 0.

Environment (set by CTest): FERRY_CLI, FERRY_BUILD_DIR (models/mlp-s.onnx).
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
from test_server import INFER, Server  # noqa: E402

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
BODY = json.dumps({"inputs": [{"name": "input", "shape": [1, 256], "datatype": "FP32",
                               "data": [0.25] * 256}]}).encode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def successes(port):
    """nv_inference_request_success of mlp-s on one replica, from /metrics."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    finally:
        c.close()
    m = re.search(r'^nv_inference_request_success\{model="mlp-s",version="1"\} (\d+)', text, re.M)
    return int(m.group(1)) if m else 0


class Clients:
    """Threads sending infer requests through nginx on keep-alive connections
    until stopped; every answer's status is kept, and any exception."""

    def __init__(self, port, n=4):
        self.port = port
        self.cv = threading.Condition()
        self.statuses, self.errors = [], []
        self.stop = False
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def run(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            while not self.stop:
                c.request("POST", INFER, body=BODY, headers={"Content-Type": "application/json"})
                r = c.getresponse()
                data = r.read()
                if r.status == 200:
                    out = json.loads(data)["outputs"][0]
                    ok = out["shape"] == [1, 256] and len(out["data"]) == 256
                else:
                    ok = False
                with self.cv:
                    self.statuses.append(r.status if ok or r.status != 200 else "bad body")
                    if r.status != 200:
                        self.errors.append(data[:300])
                    self.cv.notify_all()
        except Exception as e:  # noqa: BLE001 - reported by the test
            with self.cv:
                self.errors.append(repr(e))
                self.cv.notify_all()
        finally:
            c.close()

    def wait_for(self, n, timeout=120):
        """Blocks until n answers in all (or an error); returns the count."""
        with self.cv:
            self.cv.wait_for(lambda: len(self.statuses) >= n or self.errors, timeout)
            return len(self.statuses)

    def finish(self):
        self.stop = True
        for t in self.threads:
            t.join(120)


@unittest.skipIf(NGINX is None, "nginx is not installed (Debian package nginx; make deps)")
class NginxPair(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.replicas = [Server(), Server()]
        self.port = free_port()
        with open(os.path.join(ROOT, "deploy", "nginx.conf")) as f:
            conf = f.read()
        # the file as it is, with the ports of this run
        for old, new in (("127.0.0.1:8001 ", f"127.0.0.1:{self.replicas[0].port} "),
                         ("127.0.0.1:8002 ", f"127.0.0.1:{self.replicas[1].port} "),
                         ("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{self.port};")):
            self.assertEqual(conf.count(old), 1, old)
            conf = conf.replace(old, new)
        path = os.path.join(self.tmp.name, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        # in the foreground, so that this test owns it; root's workers would
        # otherwise run as nobody, who cannot write the temporary prefix
        glob = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
        self.nginx = subprocess.Popen([NGINX, "-p", self.tmp.name, "-c", path, "-e", "stderr",
                                       "-g", glob], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while True:  # nginx says nothing when it listens: try to connect
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
                break
            except OSError:
                if self.nginx.poll() is not None or time.monotonic() > deadline:
                    self.fail("nginx did not start: " + self.nginx.stderr.read() +
                              self.log("error.log"))
                time.sleep(0.05)

    def log(self, name):
        try:
            with open(os.path.join(self.tmp.name, name)) as f:
                return f.read()
        except OSError:
            return ""

    def tearDown(self):
        if self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)  # graceful
        try:
            self.nginx.wait(60)
        except subprocess.TimeoutExpired:
            self.nginx.kill()
            self.nginx.wait()
        self.nginx.stderr.close()
        for r in self.replicas:
            r.stop()
        self.tmp.cleanup()

    def test_pair_answers_every_request_while_one_replica_stops(self):
        a, b = self.replicas
        clients = Clients(self.port)
        try:
            n0 = clients.wait_for(200)
            self.assertFalse(clients.errors, clients.errors[:3])
            self.assertGreaterEqual(n0, 200)
            # round robin: both replicas answered through nginx
            self.assertGreater(successes(a.port), 0)
            b_before = successes(b.port)
            self.assertGreater(b_before, 0)

            # stop replica a while the requests flow
            self.assertEqual(a.stop(signal.SIGTERM), 0, "".join(a.lines))
            n1 = clients.wait_for(0)
            # a is gone: the next 200 answers can only come from b
            clients.wait_for(n1 + 200)
        finally:
            clients.finish()
        self.assertFalse(clients.errors, (clients.errors[:3], self.log("error.log")[-2000:]))
        bad = [s for s in clients.statuses if s != 200]
        self.assertEqual(bad, [], self.log("error.log")[-2000:])
        self.assertGreaterEqual(len(clients.statuses), n1 + 200)
        self.assertGreaterEqual(successes(b.port) - b_before, 200)
        self.assertIn("stopped", "".join(a.lines))


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
