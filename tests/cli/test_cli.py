#!/usr/bin/env python3
"""The ferry command line as a user meets it: help texts whose examples run
as pasted, numeric options that refuse what is not a number, and `ferry
bench`'s output files and repeated runs.

Environment (set by CTest): FERRY_CLI, FERRY_BUILD_DIR (models/mlp-s.onnx).
"""
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

CLI = os.environ.get("FERRY_CLI", "")
BUILD = os.environ.get("FERRY_BUILD_DIR", "")
MODEL = os.path.join(BUILD, "models", "mlp-s.onnx")
# short, quiet bench runs: these tests check behaviour, never speed
FAST = ["--duration", "0.02", "--quiet"]


def ferry(*args, timeout=300, cwd=None):
    return subprocess.run([CLI] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def measured(stderr):
    """Whether bench got as far as measuring: its banner and progress lines."""
    return re.search(r"runs? of .* per point|sweep: batch", stderr) is not None


def examples(help_text):
    """The example commands of a help text: lines starting with ./build/ferry,
    continuation lines (ending in a backslash) joined."""
    out, cur = [], None
    for line in help_text.splitlines():
        s = line.strip()
        if cur is not None:
            cur += " " + s.rstrip("\\").strip()
            if not s.endswith("\\"):
                out.append(cur)
                cur = None
        elif s.startswith("./build/ferry"):
            if s.endswith("\\"):
                cur = s.rstrip("\\").strip()
            else:
                out.append(s)
    return out


class Help(unittest.TestCase):
    def setUp(self):
        # a fresh checkout after `make`: ./build is the build tree
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        os.symlink(BUILD, os.path.join(self.root, "build"))

    def tearDown(self):
        self.tmp.cleanup()

    def test_top_level_lists_version_and_help(self):
        p = ferry("--help")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("--version", p.stdout)
        self.assertIn("--help", p.stdout)
        v = ferry("--version")
        self.assertEqual(v.returncode, 0)
        self.assertRegex(v.stdout, r"^ferry \d+\.\d+\.\d+\n$")
        self.assertIn(v.stdout.strip(), p.stdout)

    def test_every_command_has_examples_that_run_as_pasted(self):
        # serve's example starts a server: Help.test_serve_example runs it
        for cmd in ([], ["info"], ["run"], ["make-model"], ["bench"]):
            p = ferry(*cmd, "--help")
            self.assertEqual(p.returncode, 0, (cmd, p.stderr))
            ex = examples(p.stdout)
            self.assertTrue(ex, f"ferry {' '.join(cmd)} --help has no ./build/ferry example")
            for line in ex:
                argv = shlex.split(line)
                if argv[1] == "bench":  # as pasted, only shorter
                    argv += FAST + ["--repeat", "2"]
                r = subprocess.run(argv, capture_output=True, text=True, cwd=self.root,
                                   timeout=600)
                self.assertEqual(r.returncode, 0, (line, r.stderr[-2000:]))

    def test_serve_example(self):
        text = ferry("serve", "--help").stdout
        block = text[text.index("example"):].split("\n\n")[0].splitlines()[1:]
        lines = [l[2:] for l in block]
        self.assertTrue(lines[0].startswith("./build/ferry serve") and lines[0].endswith(" &"),
                        lines[0])
        self.assertEqual(lines[-1], "kill %1")
        with socket.socket() as s:  # a free port for the example's 8000
            s.bind(("127.0.0.1", 0))
            port = str(s.getsockname()[1])
        argv = shlex.split(lines[0][:-2].replace("8000", port))
        srv = subprocess.Popen(argv, cwd=self.root, stderr=subprocess.PIPE, text=True)
        try:
            for line in srv.stderr:
                if line.startswith("listening on port"):
                    break
            threading.Thread(target=srv.stderr.read, daemon=True).start()
            script = "\n".join(lines[1:-1]).replace("8000", port)
            r = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                               cwd=self.root, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = r.stdout.splitlines()
            self.assertEqual(out[0], "200", r.stdout)
            answer = json.loads(out[1])
            self.assertEqual(answer["outputs"][0]["shape"], [1, 256], out[1][:200])
        finally:
            srv.send_signal(signal.SIGTERM)
            rc = srv.wait(60)
            srv.stderr.close()
            self.assertEqual(rc, 0)

    def test_workers_defaults_said_as_the_code_uses_them(self):
        # the engine's default is one worker per usable core on the CPU;
        # ferry serve's and the bench batcher's is one
        r = " ".join(ferry("run", "--help").stdout.split())
        self.assertIn("default: one per core this process may use on the CPU, 2 streams on CUDA", r)
        b = ferry("bench", "--help").stdout
        self.assertIn("one per core this process may use", " ".join(b.split()))
        self.assertIn("1 on the CPU, 4 streams on CUDA, as ferry serve", " ".join(b.split()))
        s = " ".join(ferry("serve", "--help").stdout.split())
        self.assertIn("default 1 on the CPU", s)


# (command, option, a value it must take); every numeric option of src/cli
NUMERIC = [
    ("run", "--random", "2"), ("run", "--seed", "7"), ("run", "--max-batch", "8"),
    ("run", "--workers", "1"),
    ("bench", "--duration", "0.5"), ("bench", "--repeat", "2"),
    ("bench", "--stability-percentage", "5"), ("bench", "--workers", "1"),
    ("bench", "--inflight", "2"), ("bench", "--max-batch", "8"),
    ("bench", "--batch-sizes", "1,8"), ("bench", "--threads", "1,2"),
    ("bench", "--concurrency", "1,4"),
    ("serve", "--port", "0"), ("serve", "--threads", "1"), ("serve", "--max-body", "100"),
    ("serve", "--connection-timeout", "5"), ("serve", "--workers", "1"),
    ("serve", "--max-batch", "8"), ("serve", "--max-delay-us", "10"),
    ("serve", "--preferred-batch", "4,8"), ("serve", "--max-queue", "10"),
    ("serve", "--timeout-us", "1000"), ("serve", "--priority-levels", "2"),
    ("serve", "--default-priority-level", "1"),
    ("make-model", "--seed", "3"), ("make-model", "--opset", "17"),
    ("make-model", "--dims", "4,3"),
]


class Numeric(unittest.TestCase):
    def test_numeric_options_refuse_non_numbers(self):
        for cmd, opt, good in NUMERIC:
            for bad in ("abc", "8x", "", "1.5e", "0x", " "):
                argv = [cmd, MODEL if cmd != "make-model" else "mlp", opt, bad]
                if cmd == "make-model":
                    argv += ["-o", os.devnull]
                p = ferry(*argv, timeout=60)
                self.assertEqual(p.returncode, 2, (cmd, opt, bad, p.stderr))
                self.assertIn(opt, p.stderr, (cmd, opt, bad))
                if bad.strip():
                    self.assertIn(bad, p.stderr, (cmd, opt, bad))
                self.assertNotIn("listening", p.stderr)
                self.assertFalse(measured(p.stderr), (cmd, opt, bad))

    def test_integer_options_refuse_fractions_and_ranges(self):
        for argv, msg in [
            (["run", MODEL, "--workers", "1.5"], "--workers wants an integer in 1..256, got '1.5'"),
            (["run", MODEL, "--seed", "-1"], "--seed wants an integer >= 0, got '-1'"),
            (["bench", "--repeat", "0"], "--repeat wants an integer in 1..20, got '0'"),
            (["bench", "--duration", "nan"], "--duration wants a number in"),
            (["bench", "--duration", "0"], "--duration wants a number in"),
            (["serve", MODEL, "--port", "65536"], "--port wants an integer in 0..65535"),
            (["serve", MODEL, "--max-delay-us", "5ms"], "--max-delay-us wants an integer"),
            (["bench", "--batch-sizes", "1,,8"], "--batch-sizes '1,,8': expected"),
            (["bench", "--batch-sizes", "8,"], "--batch-sizes '8,': expected"),
        ]:
            p = ferry(*argv, timeout=60)
            self.assertEqual(p.returncode, 2, argv)
            self.assertIn(msg, p.stderr, argv)


class BenchOutputs(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name

    def tearDown(self):
        for root, dirs, _ in os.walk(self.d):
            for x in dirs:
                os.chmod(os.path.join(root, x), 0o700)
        self.tmp.cleanup()

    def bench(self, *args):
        # not --quiet: progress lines on stderr tell whether it measured
        return ferry("bench", MODEL, "--sweep", "--batch-sizes", "1", "--duration", "0.02",
                     "--repeat", "1", *args)

    def test_unwritable_outputs_refused_before_measuring(self):
        not_dir = os.path.join(self.d, "file")
        open(not_dir, "w").close()
        cases = [
            (os.path.join(self.d, "missing", "out"), "No such file or directory"),
            (self.d, "Is a directory"),
            (os.path.join(not_dir, "out"), "Not a directory"),
        ]
        if os.geteuid() != 0:  # root writes anywhere
            ro = os.path.join(self.d, "ro")
            os.mkdir(ro, 0o500)
            cases.append((os.path.join(ro, "out"), "Permission denied"))
        for base, reason in cases:
            for opt, ext in (("--json", ".json"), ("--plot", ".svg")):
                path = base if base == self.d else base + ext
                if base == self.d and opt == "--plot":
                    path = os.path.join(self.d, "dir.svg")
                    os.mkdir(path)
                p = self.bench(opt, path)
                self.assertEqual(p.returncode, 1, (opt, path, p.stderr))
                self.assertIn(f"ferry bench: {opt} {path}: cannot write: {reason}", p.stderr)
                self.assertFalse(measured(p.stderr), p.stderr)
                self.assertEqual(p.stdout, "")

    def test_second_output_unwritable_leaves_no_first(self):
        js = os.path.join(self.d, "r.json")
        p = self.bench("--json", js, "--plot", os.path.join(self.d, "no", "p.svg"))
        self.assertEqual(p.returncode, 1)
        self.assertFalse(measured(p.stderr))
        self.assertFalse(os.path.exists(js), "the --json file made for the run was left")

    def test_plot_other_than_svg_refused(self):
        for name in ("plot.png", "plot", "plot.svg.pdf"):
            path = os.path.join(self.d, name)
            p = self.bench("--plot", path)
            self.assertEqual(p.returncode, 2, name)
            self.assertIn(f"--plot {path}: ferry bench writes SVG only", p.stderr)
            self.assertFalse(measured(p.stderr))
            self.assertFalse(os.path.exists(path))

    def test_write_failure_at_the_end_exits_nonzero(self):
        if not os.path.exists("/dev/full"):
            self.skipTest("no /dev/full")
        p = self.bench("--json", "/dev/full")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertTrue(measured(p.stderr))
        self.assertIn("ferry bench: --json /dev/full: cannot write: No space left on device",
                      p.stderr)

    def test_failed_run_keeps_an_old_file_and_removes_a_new_one(self):
        old = os.path.join(self.d, "old.json")
        with open(old, "w") as f:
            f.write("earlier results")
        new = os.path.join(self.d, "new.svg")
        p = self.bench("--json", old, "--plot", new, "--device", "nosuchdevice")
        self.assertEqual(p.returncode, 1, p.stderr)
        with open(old) as f:
            self.assertEqual(f.read(), "earlier results")
        self.assertFalse(os.path.exists(new))

    def test_outputs_written(self):
        js, svg = os.path.join(self.d, "r.json"), os.path.join(self.d, "p.SVG")
        with open(js, "w") as f:
            f.write("x" * 100000)  # longer than the results: must not survive at the end
        p = self.bench("--json", js, "--plot", svg, "--compare-threading")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(js) as f:
            self.assertEqual(json.load(f)["sweep"][0]["batch"], 1)
        with open(svg) as f:
            text = f.read()
        self.assertTrue(text.startswith("<svg") and text.endswith("</svg>\n"))


class BenchRepeat(unittest.TestCase):
    def test_duplicates_refused(self):
        for opt, v, dup in (("--batch-sizes", "1,8,8", 8), ("--concurrency", "4,1,4", 4),
                            ("--threads", "2,2", 2)):
            p = ferry("bench", MODEL, opt, v)
            self.assertEqual(p.returncode, 2, opt)
            self.assertIn(f"ferry bench: {opt} '{v}': {dup} is given twice", p.stderr)
            self.assertFalse(measured(p.stderr))

    def check_measure(self, entry, key, repeat, margin):
        s = entry["spread"]
        self.assertEqual(len(s["runs"]), repeat, entry)
        runs = sorted(s["runs"])
        median = (runs[(repeat - 1) // 2] + runs[repeat // 2]) / 2
        self.assertAlmostEqual(entry[key], median, delta=1e-6 * median)
        self.assertEqual(s["median"], entry[key])
        self.assertEqual((s["min"], s["max"]), (runs[0], runs[-1]))
        if repeat > 1 and runs[0] == 0:  # a run measured nothing: no finite spread
            self.assertIsNone(s["pct"])
            self.assertEqual(entry["stable"], runs[-1] == 0, entry)
        elif repeat > 1:
            pct = (runs[-1] - runs[0]) / runs[0] * 100
            self.assertAlmostEqual(s["pct"], pct, delta=1e-6 * max(pct, 1))
            self.assertEqual(entry["stable"], s["pct"] <= margin, entry)
        else:
            self.assertIsNone(s["pct"])
            self.assertTrue(entry["stable"])

    def test_repeat_json_and_table(self):
        with tempfile.TemporaryDirectory() as d:
            js = os.path.join(d, "r.json")
            for repeat in (3, 2, 1):
                p = ferry("bench", MODEL, "--batch-sizes", "1,4", "--compare-threading",
                          "--threads", "1,3", "--stack", "--batcher", "--concurrency", "1,4",
                          "--repeat", repeat, "--stability-percentage", "7.5", "--json", js,
                          *FAST)
                self.assertEqual(p.returncode, 0, p.stderr)
                with open(js) as f:
                    r = json.load(f)
                self.assertEqual((r["repeat"], r["stability_pct"]), (repeat, 7.5))
                self.assertEqual([e["batch"] for e in r["sweep"]], [1, 4])
                self.assertEqual([e["threads"] for e in r["threading"]], [1, 3])
                self.assertEqual([e["concurrency"] for e in r["batcher"]], [1, 4])
                entries = ([(e, "samples_per_s") for e in r["sweep"] + r["threading"]] +
                           [(e, "samples_per_s") for e in r["stack"] if not e["skipped"]] +
                           [(e, "requests_per_s") for e in r["batcher"]])
                for e, key in entries:
                    self.check_measure(e, key, repeat, 7.5)
                self.assertEqual(r["stack"][0]["config"], "3 threads x batch 1, fp32, device sync")
                # the table: a spread column; a flagged point and the note go together
                self.assertRegex(p.stdout, r"batch +samples/s +spread")
                flagged = any(not e["stable"] for e, _ in entries)
                self.assertEqual("*" in p.stdout, flagged, p.stdout)
                self.assertEqual("--stability-percentage" in p.stdout, flagged)
                if repeat > 1:
                    self.assertIn(f"the median of {repeat} runs", p.stdout)
                # 3 callers is no batch size of the sweep: its own table
                self.assertIn("Threading: N callers x batch 1", p.stdout)


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
