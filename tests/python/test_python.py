#!/usr/bin/env python3
"""The `ferry` Python package (python/ferry): every class, its errors, 32
threads through the DynamicBatcher checked against `ferry run`, and engines
collected while requests are in flight.

Run by CTest as a script (pytest inside), or `pytest tests/python` with
FERRY_BUILD_DIR set. Environment (set by CTest): FERRY_BUILD_DIR (the
package is FERRY_BUILD_DIR/python/ferry, the model models/mlp-s.onnx),
FERRY_CLI. Skips (passes) in builds without the package (sanitizer builds).
"""
import concurrent.futures
import gc
import os
import subprocess
import sys
import tempfile
import threading
import weakref

import numpy as np
import pytest

BUILD = os.environ.get("FERRY_BUILD_DIR", "")
CLI = os.environ.get("FERRY_CLI", os.path.join(BUILD, "ferry"))
MODEL = os.path.join(BUILD, "models", "mlp-s.onnx")
PKG = os.path.join(BUILD, "python")
if os.path.exists(os.path.join(PKG, "ferry", "__init__.py")):
    sys.path.insert(0, PKG)
    import ferry
else:  # pragma: no cover - sanitizer builds
    ferry = None

pytestmark = pytest.mark.skipif(ferry is None, reason="this build has no Python package")


def ferry_run(x):
    """What the CLI computes for x: the reference every path must match."""
    with tempfile.TemporaryDirectory() as d:
        i, o = os.path.join(d, "in.npy"), os.path.join(d, "out.npy")
        np.save(i, x)
        subprocess.run([CLI, "run", MODEL, "-i", i, "-o", o], check=True, capture_output=True)
        return np.load(o)


@pytest.fixture(scope="module")
def engine():
    e = ferry.Engine(MODEL, ferry.EngineConfig(num_threads=2, batch_size=32, pipeline_depth=2))
    yield e


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (640, 256)).astype(np.float32)
    return x, ferry_run(x)


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------- engine

def test_engine_describes_the_model(engine):
    assert engine.inputs == [("input", "f32", ("N", 256))]
    assert engine.outputs == [("output", "f32", ("N", 256))]
    assert engine.ops() == {"Gemm": 3}
    plan = engine.plan()
    assert [s["epilogue"] for s in plan] == ["+bias+relu", "+bias+relu", "+bias"]
    assert plan[0]["shape"] == ("N", 512)
    assert engine.info()["parameters"] == 256 * 512 + 512 + 512 * 512 + 512 + 512 * 256 + 256
    assert engine.device.startswith("cpu")
    assert ferry.version() == ferry.__version__ == "0.1.0"
    assert "cpu" in ferry.backends()


def test_summarize_a_file_even_one_that_cannot_run(tmp_path):
    s = ferry.summarize(MODEL)
    assert s["inputs"] == [("input", "f32", ("batch", 256))]  # the file's axis name
    assert s["ops"] == {"Gemm": (3, True), "Relu": (2, True)}  # before fusion
    assert s["producer"] == "ferry" and s["nodes"] == 5
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Det", ["r"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])])
    path = str(tmp_path / "det.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    s = ferry.summarize(path)
    assert s["inputs"] == [("x", "f32", ("batch", 3, 3))]
    assert s["outputs"] == [("y", "f32", ("batch",))]
    assert s["ops"] == {"Relu": (1, True), "Det": (1, False)}
    assert s["nodes"] == 2 and s["opset"] == 17
    with pytest.raises(ferry.UnsupportedError, match="Det"):
        ferry.Engine(path)
    with pytest.raises(ferry.FileError):
        ferry.summarize(str(tmp_path / "missing.onnx"))


def test_call_run_submit_match_the_cli(engine, data):
    x, ref = data
    close(engine(x[:7]), ref[:7])
    close(engine(x[3]), ref[3])  # one sample without its batch dim
    assert engine(x[3]).shape == (256,)
    close(engine(x), ref)  # larger than batch_size: split across workers
    outs = engine.run([x[:1], x[1:33], x[33:40]])
    assert isinstance(outs, list) and [o.shape[0] for o in outs] == [1, 32, 7]
    close(np.concatenate(outs), ref[:40])
    futs = [engine.submit(x[k:k + 8]) for k in range(0, 64, 8)]
    assert all(isinstance(f, concurrent.futures.Future) for f in futs)
    close(np.concatenate([f.result(timeout=60) for f in futs]), ref[:64])
    assert engine.warmup(x[:2]).shape == (2, 256)


def test_inputs_are_converted_only_when_needed(engine, data):
    x, ref = data
    close(engine(x[:5].astype(np.float64)), ref[:5])  # converted once
    close(engine(np.asfortranarray(x[:5])), ref[:5])  # made contiguous
    close(engine(x[:5].tolist()), ref[:5])  # a nested list
    close(engine(x[:10:2]), ref[:10:2])  # a strided view


def test_engine_from_bytes_and_torch_tensors(data):
    x, ref = data
    with open(MODEL, "rb") as f:
        e = ferry.Engine(f.read(), num_threads=1)
    close(e(x[:4]), ref[:4])
    torch = pytest.importorskip("torch")
    close(e(torch.from_numpy(x[:4])), ref[:4])


def test_engine_errors(engine, data):
    x, _ = data
    with pytest.raises(ferry.FileError) as ei:
        ferry.Engine("/nonexistent/model.onnx")
    assert isinstance(ei.value, OSError) and "/nonexistent/model.onnx" in str(ei.value)
    with pytest.raises(ferry.ParseError):
        ferry.Engine(b"this is not an onnx model")
    with pytest.raises(ferry.ShapeError) as ei:
        engine(np.zeros((2, 255), np.float32))
    assert isinstance(ei.value, ValueError)
    assert "input 'input' has shape [2,255], expected [N,256]" in str(ei.value)
    assert ei.value.status == "FERRY_ESHAPE"
    with pytest.raises(ferry.ShapeError):
        engine(np.zeros((2, 2, 256), np.float32))
    with pytest.raises(ferry.InvalidArgumentError):
        ferry.Engine(MODEL, precision="fp8")
    with pytest.raises(ferry.InvalidArgumentError, match="pipeline_depth"):
        ferry.Engine(MODEL, pipeline_depth=0)
    with pytest.raises((ferry.UnsupportedError, ferry.DeviceError, ferry.NotFoundError)):
        ferry.Engine(MODEL, device="cuda:0" if "cuda" not in ferry.backends() else "cuda:999")
    with pytest.raises(ferry.InvalidArgumentError, match="max_batch"):
        engine.submit(x[:33])  # a submitted batch must fit one worker
    with pytest.raises(ferry.ShapeError, match="batch 1: input 'input'"):
        engine.run([x[:4], np.zeros((4, 255), np.float32)])  # nothing runs
    with pytest.raises(ValueError):
        engine(np.array([["a"] * 256]))
    assert issubclass(ferry.TimeoutError, TimeoutError)
    assert issubclass(ferry.DTypeError, TypeError)


def test_engine_collected_with_requests_in_flight(data):
    x, ref = data
    e = ferry.Engine(MODEL, num_threads=2, batch_size=32, pipeline_depth=4)
    futs = [e.submit(x[k:k + 32]) for k in range(0, 640, 32)]
    alive = weakref.ref(e)
    del e
    gc.collect()
    assert alive() is None  # destroyed: it waited for every batch in flight
    close(np.concatenate([f.result(timeout=60) for f in futs]), ref)


def test_engine_dropped_from_a_done_callback(data):
    """The last reference going on an engine thread (a future's callback)
    must not join that thread from itself."""
    x, ref = data
    holder = [ferry.Engine(MODEL, num_threads=1, batch_size=8)]
    fut = holder[0].submit(x[:8])
    done = threading.Event()
    fut.add_done_callback(lambda f: (holder.clear(), done.set()))
    assert done.wait(60)
    close(fut.result(), ref[:8])


# ---------------------------------------------------------------- batcher

def test_batcher_32_threads_match_the_cli(engine, data):
    x, ref = data
    b = ferry.DynamicBatcher(engine, max_batch=32, max_delay_us=300, max_queue=1024)
    errors, outs = [], [None] * len(x)

    def client(t):
        try:
            for k in range(t, len(x), 32):
                outs[k] = b.infer(x[k])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    close(np.stack(outs), ref)
    st = b.stats()
    assert st["succeeded"] == len(x) and st["failed"] == 0
    assert st["batches"] < len(x)  # requests did share batches
    close(b(x[:3]), ref[:3])  # a request of several samples
    b.close()
    with pytest.raises(ferry.ShutdownError):
        b.infer(x[0])


def test_batcher_closed_under_load(engine, data):
    """close() while 16 threads call infer: every call returns a correct
    result or raises ShutdownError; nothing hangs or crashes."""
    x, ref = data
    b = ferry.DynamicBatcher(engine, max_batch=32, max_delay_us=100)
    results, bad = [], []

    def client(t):
        k = t
        while True:
            try:
                y = b.infer(x[k % len(x)])
            except ferry.ShutdownError:
                return
            except Exception as e:  # noqa: BLE001 - reported below
                bad.append(e)
                return
            results.append((k % len(x), y))
            k += 16

    ts = [threading.Thread(target=client, args=(t,)) for t in range(16)]
    for t in ts:
        t.start()
    while len(results) < 200 and not bad:
        threading.Event().wait(0.01)
    b.close()
    for t in ts:
        t.join(60)
    assert not bad, bad
    assert not any(t.is_alive() for t in ts)
    for k, y in results:
        close(y, ref[k])


def test_batcher_errors(engine, data):
    x, _ = data
    with pytest.raises(ferry.InvalidArgumentError, match="max_batch"):
        ferry.DynamicBatcher(engine, max_batch=64)  # the engine's is 32
    with pytest.raises(TypeError):
        ferry.DynamicBatcher(object())
    with ferry.DynamicBatcher(engine, max_batch=8) as b:
        with pytest.raises(ferry.ShapeError):
            b.infer(np.zeros(255, np.float32))
    with pytest.raises(ferry.InvalidArgumentError, match="preferred_batch_sizes"):
        ferry.DynamicBatcher(engine, max_batch=8, preferred_batch_sizes=[16])
    with ferry.DynamicBatcher(engine, max_batch=8, max_delay_us=200,
                              preferred_batch_sizes=[4]) as b:
        close(b.infer(x[9]), ferry_run(x[9:10])[0])


def test_batcher_outlives_its_engine_reference(data):
    x, ref = data
    e = ferry.Engine(MODEL, num_threads=1, batch_size=16)
    b = ferry.DynamicBatcher(e, max_batch=16)
    del e
    gc.collect()
    close(b.infer(x[5]), ref[5])  # the batcher keeps its engine


# ------------------------------------------------------------------- pool

def test_pool():
    p = ferry.TensorPool((4, 256), "cpu", 2)
    with p.context() as t:
        assert t.shape == (4, 256) and t.dtype == np.float32 and t.flags.writeable
        t[:] = 3
        assert p.stats()["in_use"] == 1
    assert p.stats()["in_use"] == 0
    a, b = p.acquire(), p.acquire()
    assert a.__array_interface__["data"][0] != b.__array_interface__["data"][0]
    with pytest.raises(ferry.TimeoutError):
        p.acquire(timeout=0.01)
    p.release(a)
    with pytest.raises(ferry.InvalidArgumentError):
        p.release(a)  # twice
    p.release(b)
    st = p.stats()
    assert st["acquisitions"] == 3 and st["timeouts"] == 1 and st["high_water"] == 2
    h = ferry.TensorPool((2, 3), device="pinned", pool_size=1, dtype=np.int64)
    with h.context() as t:
        assert t.dtype == np.int64 and t.shape == (2, 3)


def test_pool_errors():
    with pytest.raises(ferry.InvalidArgumentError):
        ferry.TensorPool((4, 256), "cpu", 0)
    with pytest.raises(ferry.DTypeError):
        ferry.TensorPool((4,), "cpu", 1, dtype=np.complex64)
    with pytest.raises(ferry.Error):
        ferry.TensorPool((4,), "tpu", 1)


def test_pool_feeds_the_engine(engine, data):
    x, ref = data
    p = ferry.TensorPool((8, 256), "cpu", 2)
    with p.context() as t:
        t[:] = x[:8]
        close(engine(t), ref[:8])


# ----------------------------------------------------------------- export

def test_export_from_torch(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4))
    path = ferry.export(m, torch.randn(2, 16), str(tmp_path / "m.onnx"))
    e = ferry.Engine(path, num_threads=1)
    assert e.inputs == [("input", "f32", ("N", 16))]
    x = torch.randn(37, 16)
    with torch.no_grad():
        want = m(x).numpy()
    close(e(x.numpy()), want)
    assert m.training  # left as it was


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
