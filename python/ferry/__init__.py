"""Ferry from Python: the engine, tensor pool and dynamic batcher of the C
library (libferry), with numpy arrays in and out.

    import ferry
    engine = ferry.Engine("mlp-s.onnx", ferry.EngineConfig(num_threads=2, batch_size=32))
    engine.warmup(x)
    y = engine(x)                        # one array (a batch, or one sample)
    ys = engine.run([x1, x2, x3])        # a list in, a list out, pipelined
    fut = engine.submit(x)               # a concurrent.futures.Future
    batcher = ferry.DynamicBatcher(engine, max_batch=64, max_delay_us=500)
    y1 = batcher.infer(sample)           # from any number of threads

The names mirror the seed's Python examples (OptimizedMPSInference +
MPSConfig, TensorPool, DynamicBatchingServer). Every call runs in C with
the GIL released; Ferry's errors raise ferry.Error subclasses
(ShapeError, DTypeError, ... each also a ValueError, TypeError, ...).
"""
import concurrent.futures as _futures
import contextlib as _contextlib
import dataclasses as _dataclasses

import numpy as _np

from . import _ferry
from ._ferry import (  # noqa: F401  (re-exported)
    BusyError,
    DeviceError,
    DTypeError,
    Error,
    FileError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OutOfMemoryError,
    ParseError,
    ShapeError,
    ShutdownError,
    TimeoutError,
    UnsupportedError,
)
from .export import export  # noqa: F401

__version__ = _ferry.version()

__all__ = [
    "Engine", "EngineConfig", "TensorPool", "DynamicBatcher", "export", "version", "backends",
    "summarize",
    "Error", "ShapeError", "DTypeError", "InvalidArgumentError", "UnsupportedError",
    "ParseError", "FileError", "TimeoutError", "BusyError", "ShutdownError", "DeviceError",
    "NotFoundError", "OutOfMemoryError", "InternalError",
]


def version():
    """The version of the libferry this package loaded ("0.1.0")."""
    return _ferry.version()


def summarize(path):
    """What an ONNX file declares, read without loading it (so also for a
    model Ferry cannot run): {"producer", "opset", "nodes", "inputs" and
    "outputs" as [(name, dtype, shape)] with symbolic axes by name
    ("batch"), "ops": {name: (count, supported)}}."""
    return _ferry.summarize(path)


def backends():
    """Backends built into libferry and the devices they see, as text."""
    return _ferry.backends()


@_dataclasses.dataclass
class EngineConfig:
    """How an Engine runs; the seed's MPSConfig, with Ferry's names alongside.

    num_threads: CPU worker threads or CUDA streams (0: one per core on the
    CPU, 2 on CUDA). batch_size: the largest batch one worker runs at once
    (larger batches are split). pipeline_depth: batches in flight per
    worker. precision: "fp32", "tf32", "fp16" or "bf16" (use_float16=True
    means "fp16"). graphs: capture CUDA graphs per batch size. device:
    "cpu", "cuda" or "cuda:N".
    """

    num_threads: int = 0
    batch_size: int = 256
    pipeline_depth: int = 2
    precision: str = "fp32"
    graphs: bool = False
    device: str = "cpu"
    use_float16: bool = False

    def _precision(self):
        return "fp16" if self.use_float16 and self.precision == "fp32" else self.precision


class Engine(_ferry.Engine):
    """A model compiled for one device.

    Engine(model, config=None, **overrides): model is a path to an ONNX
    file or its bytes; overrides are EngineConfig fields. Thread-safe: any
    number of threads may call it at once.
    """

    def __init__(self, model, config=None, **overrides):
        cfg = config or EngineConfig()
        if overrides:
            cfg = _dataclasses.replace(cfg, **overrides)
        self.config = cfg
        if isinstance(model, (bytearray, memoryview)):
            model = bytes(model)
        super().__init__(model, device=cfg.device, workers=cfg.num_threads,
                         max_batch=cfg.batch_size, pipeline_depth=cfg.pipeline_depth,
                         precision=cfg._precision(), graphs=bool(cfg.graphs))

    def warmup(self, sample=None):
        """Runs every worker once at the sizes that matter (and captures
        graphs); with a sample, also runs it once and returns its output."""
        super().warmup()
        return None if sample is None else self(sample)

    def submit(self, x):
        """Queues one batch (at most batch_size samples); returns a
        concurrent.futures.Future of its output. Blocks only while every
        worker has pipeline_depth batches in flight."""
        fut = _futures.Future()
        fut.set_running_or_notify_cancel()
        super().submit(x, fut)
        return fut

    def __repr__(self):
        return "ferry.Engine(device=%r, inputs=%r, outputs=%r)" % (
            self.device, self.inputs, self.outputs)


class DynamicBatcher:
    """In-process dynamic batching: infer(x) from any number of threads;
    single requests leave as one batch when max_batch samples are waiting
    or the first has waited max_delay_us. The seed's DynamicBatchingServer.

    DynamicBatcher(engine, max_batch=0 (the engine's), max_delay_us=500,
    max_queue=65536, preferred_batch_sizes=None); infer raises BusyError
    when max_queue requests wait. preferred_batch_sizes (up to 8 sizes) makes
    a forming batch wait (up to max_delay_us) for one of those sizes even
    while a worker is idle.
    close() (or leaving a with block) finishes every accepted request.
    """

    def __init__(self, engine, max_batch=0, max_delay_us=500, max_queue=65536,
                 preferred_batch_sizes=None):
        if not isinstance(engine, _ferry.Engine):
            raise TypeError("ferry.DynamicBatcher: engine must be a ferry.Engine")
        self.engine = engine
        self._b = _ferry.Batcher(engine, max_batch=max_batch, max_delay_us=max_delay_us,
                                 max_queue=max_queue,
                                 preferred_batch_sizes=preferred_batch_sizes)
        self.infer = self._b.infer

    def __call__(self, x):
        return self._b.infer(x)

    def stats(self):
        return self._b.stats()

    def close(self):
        self._b.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class TensorPool:
    """Pre-allocated, reusable tensors of one shape: the seed's TensorPool.

    TensorPool(shape, device="cpu", pool_size=8, dtype=numpy.float32);
    device "cpu" (aligned host memory) or "pinned" (page-locked, for GPU
    copies). acquire() returns a numpy array over pool memory (waiting for
    one to be free), release(a) gives it back; `with pool.context() as t:`
    does both. Thread-safe.
    """

    def __init__(self, shape, device="cpu", pool_size=8, dtype=_np.float32):
        self.shape = tuple(int(d) for d in shape)
        self.dtype = _np.dtype(dtype)
        self.device = device
        self.pool_size = pool_size
        self._p = _ferry.Pool(self.shape, dtype=self.dtype.name, device=device,
                              pool_size=pool_size)

    def acquire(self, timeout=None):
        """A free tensor as a numpy array; waits up to timeout seconds (None:
        forever) and raises ferry.TimeoutError after."""
        us = -1 if timeout is None else int(timeout * 1e6)
        addr, nbytes = self._p.acquire(us)
        arr = _np.frombuffer(self._p.view(addr, nbytes), dtype=self.dtype).reshape(self.shape)
        return arr

    def release(self, arr):
        """Gives back an array from acquire()."""
        self._p.release(arr.__array_interface__["data"][0])

    @_contextlib.contextmanager
    def context(self, timeout=None):
        t = self.acquire(timeout)
        try:
            yield t
        finally:
            self.release(t)

    def stats(self):
        return self._p.stats()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass
