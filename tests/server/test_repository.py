#!/usr/bin/env python3
"""`ferry serve --model-repository` as Triton runs one: config.pbtxt's knobs
applied and the fields Ferry ignores reported once, version policies, a
broken model beside good ones, the repository extension (index, load,
unload) in each model control mode, load/unload/reload under continuous
load with every accepted request answered, and poll mode picking up
changed files.

Models are tiny MLPs from `ferry make-model` (input "input" [N,4]), so
that loads are quick. Environment (set by CTest): FERRY_CLI, FERRY_BUILD_DIR.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server import CLI, Server, call  # noqa: E402


def make_model(path, out=2, seed=0):
    """An MLP 4 -> 8 -> out at path (written atomically by make-model)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    subprocess.run([CLI, "make-model", "mlp", "--dims", "4,8,%d" % out, "--seed", str(seed),
                    "-o", path], check=True, capture_output=True, timeout=120)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def body(batch=1):
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": [batch, 4],
                        "data": [0.25] * (4 * batch)}]}


def index(c, **kw):
    st, _, data = call(c, "POST", "/v2/repository/index", kw if kw else None)
    assert st == 200, data
    return json.loads(data)


def versions(c, name):
    st, _, data = call(c, "GET", "/v2/models/" + name)
    return json.loads(data)["versions"] if st == 200 else None


def error_of(data):
    return json.loads(data)["error"]


def wait_for(what, fn, timeout=60):
    """Polls fn until it returns a true value (the server's poll interval
    is a second; this waits for its effect, not for a time)."""
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def stderr_of(s):
    return "".join(s.lines)


class Config(unittest.TestCase):
    def test_fields_applied_and_ignored_fields_reported_once(self):
        with tempfile.TemporaryDirectory() as d:
            make_model(os.path.join(d, "m", "1", "model.onnx"))
            write(os.path.join(d, "m", "config.pbtxt"), """
name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 8
dynamic_batching {
  max_queue_delay_microseconds: 100
  preferred_batch_size: [ 2, 4 ]
  priority_levels: 2
  default_queue_policy { timeout_action: REJECT default_timeout_microseconds: 500000
                         max_queue_size: 7 }
  preserve_ordering: true
}
instance_group [ { count: 2 kind: KIND_CPU } ]
input [ { name: "input" data_type: TYPE_FP32 dims: [ 4 ] },
        { name: "other" data_type: TYPE_FP32 dims: [ 4 ] } ]
optimization { execution_accelerators { cpu_execution_accelerator: [ { name: "x" } ] } }
""")
            s = Server("--model-repository", d, model=None)
            try:
                c = s.conn()
                st, _, data = call(c, "POST", "/v2/models/m/infer", body(9))
                self.assertEqual(st, 400, data)
                self.assertIn("larger than the model's max batch 8", error_of(data))
                st, _, data = call(c, "POST", "/v2/models/m/infer", body(8))
                self.assertEqual(st, 200, data)
                c.close()
            finally:
                self.assertEqual(s.stop(), 0, stderr_of(s))
            err = stderr_of(s)
            cfg = os.path.join(d, "m", "config.pbtxt")
            for field, why in [("dynamic_batching.preserve_ordering", "not applied"),
                               ("instance_group.kind", "not applied: the device is --device"),
                               ("input", "not applied: Ferry reads them from the ONNX model"),
                               ("optimization", "not applied")]:
                line = " W model 'm': %s: field '%s': %s\n" % (cfg, field, why)
                self.assertEqual(err.count(line), 1, err)
            self.assertEqual(err.count(" W model 'm'"), 4, err)
            self.assertIn("model 'm' loaded from %s/m: version 1; max batch 8, max delay 100 us, "
                          "preferred batch 2,4, priority levels 2, timeout 500000 us, "
                          "max queue 7, workers 2" % d, err)

    def test_version_policies(self):
        with tempfile.TemporaryDirectory() as d:
            for name, policy in [("latest1", ""),
                                 ("latest2", "version_policy: { latest { num_versions: 2 } }"),
                                 ("specific", "version_policy { specific { versions: [1, 2] } }"),
                                 ("all", "version_policy { all {} }")]:
                for v in ("1", "2", "10"):
                    make_model(os.path.join(d, name, v, "model.onnx"))
                os.makedirs(os.path.join(d, name, "notes"))  # not a version: skipped
                if policy:
                    write(os.path.join(d, name, "config.pbtxt"), policy + "\n")
            # a file name of its own
            make_model(os.path.join(d, "named", "3", "net.onnx"))
            write(os.path.join(d, "named", "config.pbtxt"), 'default_model_filename: "net.onnx"')
            s = Server("--model-repository", d, model=None)
            try:
                c = s.conn()
                self.assertEqual(versions(c, "latest1"), ["10"])  # 10 > 2, as numbers
                self.assertEqual(sorted(versions(c, "latest2")), ["10", "2"])
                self.assertEqual(sorted(versions(c, "specific")), ["1", "2"])
                self.assertEqual(sorted(versions(c, "all")), ["1", "10", "2"])
                self.assertEqual(versions(c, "named"), ["3"])
                st, _, data = call(c, "POST", "/v2/models/latest1/versions/1/infer", body())
                self.assertEqual(st, 404)
                self.assertEqual(error_of(data), "unknown version '1' of model 'latest1'")
                st, _, data = call(c, "POST", "/v2/models/specific/infer", body())
                self.assertEqual(st, 200, data)
                self.assertEqual(json.loads(data)["model_version"], "2")
                items = [(i["name"], i.get("version"), i.get("state"))
                         for i in index(c) if i["name"] == "latest2"]
                self.assertEqual(items, [("latest2", "2", "READY"), ("latest2", "10", "READY")])
                c.close()
            finally:
                self.assertEqual(s.stop(), 0, stderr_of(s))

    def test_broken_models_beside_good_ones(self):
        with tempfile.TemporaryDirectory() as d:
            make_model(os.path.join(d, "good", "1", "model.onnx"))
            make_model(os.path.join(d, "badcfg", "1", "model.onnx"))
            write(os.path.join(d, "badcfg", "config.pbtxt"),
                  "max_batch_size: 4\ndynamic_batching {\n  preferred_batch_size: x\n}\n")
            os.makedirs(os.path.join(d, "badonnx", "1"))
            write(os.path.join(d, "badonnx", "1", "model.onnx"), "not a model")
            os.makedirs(os.path.join(d, "empty", "notes"))
            make_model(os.path.join(d, "wrongname", "1", "model.onnx"))
            write(os.path.join(d, "wrongname", "config.pbtxt"), '\n\nname: "other"\n')
            make_model(os.path.join(d, "unclosed", "1", "model.onnx"))
            write(os.path.join(d, "unclosed", "config.pbtxt"), "dynamic_batching {\n")
            s = Server("--model-repository", d, model=None)
            try:
                c = s.conn()
                st, _, data = call(c, "POST", "/v2/models/good/infer", body())
                self.assertEqual(st, 200, data)
                err = stderr_of(s)
                for name, frag in [
                        ("badcfg", "%s/badcfg/config.pbtxt: line 3: "
                                   "dynamic_batching.preferred_batch_size: expected an integer "
                                   "in 1..1048576, got 'x'" % d),
                        ("badonnx", "%s/badonnx/1/model.onnx: FERRY_EPARSE" % d),
                        ("empty", "no version directory in %s/empty holds model.onnx "
                                  "(expected %s/empty/1/model.onnx)" % (d, d)),
                        ("wrongname", "%s/wrongname/config.pbtxt: line 3: name 'other' is not "
                                      "the model's directory name 'wrongname'" % d),
                        ("unclosed", "%s/unclosed/config.pbtxt: line 2: expected '}' before "
                                     "the end of the file" % d)]:
                    self.assertIn(" E model '%s' failed to load: %s" % (name, frag), err)
                    st, _, data = call(c, "POST", "/v2/models/%s/infer" % name, body())
                    self.assertEqual(st, 404, data)
                    self.assertIn("model '%s' is not loaded: failed to load: " % name,
                                  error_of(data))
                states = {i["name"]: (i.get("state"), i.get("reason", "")) for i in index(c)}
                self.assertEqual(states["good"], ("READY", ""))
                self.assertEqual(states["badcfg"][0], "UNAVAILABLE")
                self.assertIn("config.pbtxt: line 3:", states["badcfg"][1])
                self.assertEqual([i["name"] for i in index(c, ready=True)], ["good"])
                c.close()
            finally:
                self.assertEqual(s.stop(), 0, stderr_of(s))

    def test_nothing_loads_in_none_mode(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "broken", "1"))
            write(os.path.join(d, "broken", "1", "model.onnx"), "x")
            p = subprocess.run([CLI, "serve", "--model-repository", d, "--port", "0"],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("model 'broken' failed to load", p.stderr)
            self.assertIn("no model to serve", p.stderr)


class Control(unittest.TestCase):
    def test_bad_usage(self):
        with tempfile.TemporaryDirectory() as d:
            make_model(os.path.join(d, "m", "1", "model.onnx"))
            for args, frag in [
                    (("--model-repository", d, "--model-control-mode", "lazy"),
                     "--model-control-mode wants none, explicit or poll, got 'lazy'"),
                    (("--model-repository", d, "--load-model", "m"),
                     "--load-model is for --model-control-mode explicit"),
                    (("--model-repository", d, "--model-control-mode", "poll",
                      "--repository-poll-secs", "0"), "--repository-poll-secs wants an integer"),
                    (("--repository-poll-secs", "x", "--model-repository", d),
                     "--repository-poll-secs wants an integer"),
                    (("--load-model", "m"), "need --model-repository DIR")]:
                p = subprocess.run([CLI, "serve", "--port", "0"] + list(args),
                                   capture_output=True, text=True, timeout=120)
                self.assertEqual(p.returncode, 2, (args, p.stderr))
                self.assertIn(frag, p.stderr, args)
            p = subprocess.run([CLI, "serve", "--model-repository", os.path.join(d, "nope")],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("cannot open model repository '%s/nope'" % d, p.stderr)
            p = subprocess.run([CLI, "serve", "--help"], capture_output=True, text=True,
                               timeout=120)
            for opt in ("--model-control-mode", "--load-model", "--repository-poll-secs",
                        "config.pbtxt", "/v2/repository/index"):
                self.assertIn(opt, p.stdout)

    def test_none_mode_refuses_load_and_unload(self):
        with tempfile.TemporaryDirectory() as d:
            make_model(os.path.join(d, "m", "1", "model.onnx"))
            s = Server("--model-repository", d, model=None)
            try:
                c = s.conn()
                for verb in ("load", "unload"):
                    st, _, data = call(c, "POST", "/v2/repository/models/m/" + verb)
                    self.assertEqual(st, 400, data)
                    self.assertEqual(error_of(data),
                                     "cannot %s 'm': the model control mode is none; requests "
                                     "load and unload models with --model-control-mode explicit"
                                     % verb)
                self.assertEqual([(i["name"], i["state"]) for i in index(c)], [("m", "READY")])
                c.close()
            finally:
                self.assertEqual(s.stop(), 0, stderr_of(s))

    def test_explicit_load_unload(self):
        with tempfile.TemporaryDirectory() as d:
            make_model(os.path.join(d, "a", "1", "model.onnx"))
            make_model(os.path.join(d, "b", "1", "model.onnx"), out=3)
            s = Server("--model-repository", d, "--model-control-mode", "explicit",
                       "--load-model", "a", model=None)
            try:
                c = s.conn()
                self.assertEqual(index(c), [{"name": "a", "version": "1", "state": "READY",
                                             "reason": ""}, {"name": "b"}])
                st, _, data = call(c, "POST", "/v2/models/b/infer", body())
                self.assertEqual(st, 404)
                self.assertEqual(error_of(data), "model 'b' is not loaded (POST "
                                 "/v2/repository/models/NAME/load loads it)")
                st, _, data = call(c, "POST", "/v2/repository/models/b/load")
                self.assertEqual((st, data), (200, b""))
                st, _, data = call(c, "POST", "/v2/models/b/infer", body())
                self.assertEqual(st, 200, data)
                self.assertEqual(json.loads(data)["outputs"][0]["shape"], [1, 3])
                st, _, data = call(c, "POST", "/v2/repository/models/a/unload", {})
                self.assertEqual((st, data), (200, b""))
                st, _, data = call(c, "POST", "/v2/models/a/infer", body())
                self.assertEqual(st, 404)
                self.assertEqual(error_of(data), "model 'a' is not loaded: unloaded")
                self.assertEqual(index(c)[0], {"name": "a", "state": "UNAVAILABLE",
                                               "reason": "unloaded"})
                # unloading what is not loaded is no error; a name the
                # repository does not hold is
                st, _, _ = call(c, "POST", "/v2/repository/models/a/unload")
                self.assertEqual(st, 200)
                for verb, path, frag in [
                        ("load", "zz", "failed to load 'zz': no model directory '%s/zz' in the "
                                       "repository" % d),
                        ("unload", "zz", "failed to unload 'zz': no model directory"),
                        ("load", ".hidden", "cannot load '.hidden': not a model name")]:
                    st, _, data = call(c, "POST", "/v2/repository/models/%s/%s" % (path, verb))
                    self.assertEqual(st, 400, data)
                    self.assertIn(frag, error_of(data))
                    self.assertEqual(index(c)[-1]["name"], "b")  # no entry for a made-up name
                st, _, data = call(c, "POST", "/v2/repository/models/a/load",
                                   {"parameters": {"config": "{}"}})
                self.assertEqual(st, 400)
                self.assertIn("load parameter 'config' is not supported", error_of(data))
                st, _, data = call(c, "POST", "/v2/repository/models/a/load", b"[1]")
                self.assertEqual(st, 400)
                self.assertIn("must be empty or a JSON object", error_of(data))
                st, h, _ = call(c, "GET", "/v2/repository/models/a/load")
                self.assertEqual((st, h["allow"]), (405, "POST"))
                st, _, data = call(c, "POST", "/v2/repository/models/a/reload")
                self.assertEqual(st, 404)
                st, _, data = call(c, "POST", "/v2/repository/index", {"ready": 1})
                self.assertEqual(st, 400)
                self.assertIn("'ready' must be true or false", error_of(data))
                c.close()
            finally:
                self.assertEqual(s.stop(), 0, stderr_of(s))

    def test_poll_mode_picks_up_changes(self):
        with tempfile.TemporaryDirectory() as d:
            make_model(os.path.join(d, "m", "1", "model.onnx"))
            s = Server("--model-repository", d, "--model-control-mode", "poll",
                       "--repository-poll-secs", "1", model=None)
            try:
                c = s.conn()
                st, _, data = call(c, "POST", "/v2/repository/models/m/load")
                self.assertEqual(st, 400)
                self.assertIn("the model control mode is poll", error_of(data))
                # a new version: served in place of the old
                make_model(os.path.join(d, "m", "2", "model.onnx"), out=3)
                wait_for("version 2", lambda: versions(c, "m") == ["2"])
                st, _, data = call(c, "POST", "/v2/models/m/infer", body())
                self.assertEqual(st, 200, data)
                self.assertEqual(json.loads(data)["outputs"][0]["shape"], [1, 3])
                # a changed file of the served version
                make_model(os.path.join(d, "m", "2", "model.onnx"), out=5)

                def width():
                    st, _, data = call(c, "POST", "/v2/models/m/infer", body())
                    return st == 200 and json.loads(data)["outputs"][0]["shape"][1] == 5
                wait_for("the changed model file", width)
                # a changed config
                write(os.path.join(d, "m", "config.pbtxt"), "max_batch_size: 2\n")

                def limited():
                    st, _, _ = call(c, "POST", "/v2/models/m/infer", body(3))
                    return st == 400
                wait_for("max_batch_size 2", limited)
                # a broken config: the model serves on as it was
                write(os.path.join(d, "m", "config.pbtxt"), "max_batch_size: {\n")
                wait_for("the failure reported",
                         lambda: "model 'm' failed to load" in stderr_of(s))
                st, _, data = call(c, "POST", "/v2/models/m/infer", body())
                self.assertEqual(st, 200, data)
                # a new model, then its directory removed
                make_model(os.path.join(d, "n", "1", "model.onnx"))
                wait_for("model n", lambda: versions(c, "n") == ["1"])
                shutil.rmtree(os.path.join(d, "n"))
                wait_for("n unloaded", lambda: versions(c, "n") is None)
                st, _, data = call(c, "POST", "/v2/models/n/infer", body())
                self.assertEqual(st, 404)
                self.assertEqual(error_of(data), "unknown model 'n'")
                self.assertEqual([i["name"] for i in index(c)], ["m"])
                c.close()
            finally:
                self.assertEqual(s.stop(), 0, stderr_of(s))
            self.assertIn("model 'n' unloaded: removed from the repository", stderr_of(s))


class UnderLoad(unittest.TestCase):
    def test_reload_and_unload_under_load(self):
        """Client threads send infer requests without pause while the model
        is reloaded (its file alternating between two output widths),
        unloaded and loaded again. Every request gets an HTTP answer; none
        is refused while a reload swaps the model; once unload has
        returned, requests get a 404 naming the model."""
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m", "1", "model.onnx")
            make_model(path)
            make_model(os.path.join(d, "alt", "w2.onnx"))
            make_model(os.path.join(d, "alt", "w3.onnx"), out=3)
            s = Server("--model-repository", d, "--model-control-mode", "explicit",
                       "--load-model", "m", "--threads", "2", model=None)
            phase = ["reload"]
            results = []  # (phase sent, phase answered, status, body or exception)
            stop = threading.Event()
            lock = threading.Lock()

            def client():
                c = s.conn()
                while not stop.is_set():
                    p0 = phase[0]
                    try:
                        st, _, data = call(c, "POST", "/v2/models/m/infer", body())
                        r = (p0, phase[0], st, data)
                    except Exception as e:  # a dropped connection is a failure
                        r = (p0, phase[0], None, repr(e))
                        c.close()
                        c = s.conn()
                    with lock:
                        results.append(r)
                c.close()

            threads = [threading.Thread(target=client) for _ in range(4)]
            try:
                for t in threads:
                    t.start()
                wait_for("requests", lambda: len(results) > 20)
                ctl = s.conn()
                for k in range(6):
                    shutil.copy(os.path.join(d, "alt", "w3.onnx" if k % 2 == 0 else "w2.onnx"),
                                path + ".new")
                    os.replace(path + ".new", path)
                    st, _, data = call(ctl, "POST", "/v2/repository/models/m/load")
                    self.assertEqual(st, 200, data)
                    n = len(results)
                    wait_for("requests after a reload", lambda: len(results) > n + 5)
                phase[0] = "unloading"
                st, _, data = call(ctl, "POST", "/v2/repository/models/m/unload")
                self.assertEqual(st, 200, data)
                phase[0] = "unloaded"
                n = len(results)
                wait_for("requests while unloaded", lambda: len(results) > n + 20)
                phase[0] = "loading"
                st, _, data = call(ctl, "POST", "/v2/repository/models/m/load")
                self.assertEqual(st, 200, data)
                phase[0] = "loaded"
                n = len(results)
                wait_for("requests after the load", lambda: len(results) > n + 20)
                ctl.close()
            finally:
                stop.set()
                for t in threads:
                    t.join(60)
                rc = s.stop()
            self.assertEqual(rc, 0, stderr_of(s))
            widths = set()
            counts = {}
            for p0, p1, st, data in results:
                self.assertIsNotNone(st, "request (%s..%s) got no answer: %s" % (p0, p1, data))
                counts[(p0, st)] = counts.get((p0, st), 0) + 1
                if p0 == p1 and p0 in ("reload", "loaded"):
                    self.assertEqual(st, 200, data)
                if p0 == p1 == "unloaded":
                    self.assertEqual(st, 404, data)
                    self.assertEqual(error_of(data), "model 'm' is not loaded: unloaded")
                if st == 200:
                    widths.add(json.loads(data)["outputs"][0]["shape"][1])
                else:
                    self.assertEqual(st, 404, data)
            self.assertEqual(widths, {2, 3}, counts)
            self.assertGreater(counts.get(("unloaded", 404), 0), 0, counts)
            self.assertGreater(counts.get(("loaded", 200), 0), 0, counts)

    def test_unload_answers_queued_requests(self):
        """Requests waiting in the batcher's queue when the model is
        unloaded are answered with their results (the queue drains)."""
        with tempfile.TemporaryDirectory() as d:
            make_model(os.path.join(d, "m", "1", "model.onnx"))
            # a batch waits up to 5 s for 64 requests: the four sent stay queued
            write(os.path.join(d, "m", "config.pbtxt"),
                  "dynamic_batching { preferred_batch_size: 64 "
                  "max_queue_delay_microseconds: 5000000 }\n")
            s = Server("--model-repository", d, "--model-control-mode", "explicit",
                       "--load-model", "m", model=None)
            out = []

            def one():
                c = s.conn()
                try:
                    out.append(call(c, "POST", "/v2/models/m/infer", body()))
                except Exception as e:
                    out.append((None, None, repr(e)))
                c.close()
            try:
                threads = [threading.Thread(target=one) for _ in range(4)]
                for t in threads:
                    t.start()
                c = s.conn()
                # Nothing the server reports tells that a request sits in a
                # forming batch (the pending gauge counts the queue before
                # it); the batch waits 5 s, so a second is time enough for
                # four requests to arrive, and none can be answered yet.
                time.sleep(1)
                self.assertEqual(out, [])
                st, _, data = call(c, "POST", "/v2/repository/models/m/unload")
                self.assertEqual(st, 200, data)
                st, _, data = call(c, "POST", "/v2/models/m/infer", body())
                self.assertEqual(st, 404)
                for t in threads:
                    t.join(60)
                self.assertEqual([r[0] for r in out], [200] * 4, out)
                c.close()
            finally:
                self.assertEqual(s.stop(), 0, stderr_of(s))


if __name__ == "__main__":
    unittest.main(verbosity=2)
