#!/usr/bin/python3
"""bench/torch_server.py - the PyTorch baseline for `ferry serve`.

A KServe v2 (Open Inference Protocol) infer endpoint written the way a Python
user serves a PyTorch model today: an asyncio HTTP server (uvicorn, the server
under KServe's own Python model server; Python's http.server when uvicorn is
missing), the MLP of an ONNX file rebuilt as a torch nn.Sequential
(bench/torch_reference.py), and a dynamic batcher in front of it (requests
queue; a batch leaves at --max-batch samples or --max-delay-us after its first
request; the forward pass runs off the event loop). It speaks what
bench/wrk/infer.lua and infer_binary.lua send: JSON tensors and Triton's
binary tensor extension. It exists to be measured beside `ferry serve` in the
same run (bench/wrk/run.sh with TORCH=1); it is not part of Ferry.

usage: /usr/bin/python3 bench/torch_server.py MODEL.onnx [--name NAME]
           [--port 8000] [--device cpu|cuda] [--max-batch 256]
           [--max-delay-us 500] [--batchers 1] [--processes 1]
           [--http auto|uvicorn|stdlib]
Prints "listening on port N" on stderr once it serves.
"""
import argparse
import asyncio
import json
import os
import signal
import sys
import threading

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if os.environ.get("TORCH_PYPATH"):  # carried packages, behind the installed ones
    sys.path.append(os.environ["TORCH_PYPATH"])
from torch_reference import load_mlp  # noqa: E402

DTYPES = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16,
          "INT32": np.int32, "INT64": np.int64}


class BadRequest(Exception):
    pass


class Model:
    def __init__(self, args):
        self.name = args.name
        self.device = torch.device(args.device)
        module, self.in_f, self.out_f, self.desc = load_mlp(args.model)
        self.module = module.to(self.device)
        self.max_batch = args.max_batch
        self.max_delay = args.max_delay_us * 1e-6
        self.batchers = args.batchers
        self.queue = None

    def forward(self, x):
        with torch.inference_mode():
            y = self.module(torch.from_numpy(x).to(self.device))
            return y.cpu().numpy()

    async def batcher(self):
        loop = asyncio.get_running_loop()
        q = self.queue
        while True:
            first = await q.get()
            batch = [first]
            n = first[0].shape[0]
            deadline = loop.time() + self.max_delay
            while n < self.max_batch:
                if q.empty():
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(q.get(), left)
                    except asyncio.TimeoutError:
                        break
                else:
                    item = q.get_nowait()
                batch.append(item)
                n += item[0].shape[0]
            x = np.concatenate([r[0] for r in batch]) if len(batch) > 1 else batch[0][0]
            try:
                y = await loop.run_in_executor(None, self.forward, x)
            except Exception as e:  # answer every request of the batch
                for r in batch:
                    if not r[1].done():
                        r[1].set_exception(e)
                continue
            i = 0
            for r in batch:
                k = r[0].shape[0]
                if not r[1].done():
                    r[1].set_result(y[i:i + k])
                i += k

    def start(self):
        self.queue = asyncio.Queue()
        return [asyncio.ensure_future(self.batcher()) for _ in range(self.batchers)]

    async def infer(self, x):
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((x, fut))
        return await fut


def parse_infer(model, headers, body):
    """Returns (id, input array, binary output wanted)."""
    hlen = headers.get("inference-header-content-length")
    try:
        if hlen is not None:
            hlen = int(hlen)
            req = json.loads(body[:hlen])
            raw = body[hlen:]
        else:
            req = json.loads(body)
            raw = b""
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"malformed JSON: {e}")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise BadRequest("expected exactly one input")
    t = inputs[0]
    dt = DTYPES.get(t.get("datatype"))
    if dt is None:
        raise BadRequest(f"unsupported datatype {t.get('datatype')!r}")
    shape = t.get("shape")
    if (not isinstance(shape, list) or len(shape) != 2 or shape[1] != model.in_f
            or shape[0] < 1):
        raise BadRequest(f"shape {shape} is not [N,{model.in_f}]")
    size = (t.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        a = np.frombuffer(raw[:size], dtype=dt)
    else:
        a = np.asarray(t.get("data"), dtype=dt).reshape(-1)
    if a.size != shape[0] * shape[1]:
        raise BadRequest(f"{a.size} elements for shape {shape}")
    binary = any((o.get("parameters") or {}).get("binary_data")
                 for o in req.get("outputs") or [])
    return req.get("id"), a.astype(np.float32, copy=False).reshape(shape), binary


async def handle(model, method, path, headers, body):
    """Returns (status, extra headers, body bytes)."""
    js = [("content-type", "application/json")]
    if method == "GET" and path in ("/v2/health/ready", "/v2/health/live"):
        return 200, [], b""
    if method != "POST" or path != f"/v2/models/{model.name}/infer":
        return 404, js, b'{"error":"not found"}'
    try:
        rid, x, binary = parse_infer(model, headers, body)
    except BadRequest as e:
        return 400, js, json.dumps({"error": str(e)}).encode()
    y = await model.infer(x)
    out = {"name": "output", "datatype": "FP32", "shape": list(y.shape)}
    reply = {"model_name": model.name, "outputs": [out]}
    if rid is not None:
        reply["id"] = rid
    if binary:
        raw = np.ascontiguousarray(y, dtype=np.float32).tobytes()
        out["parameters"] = {"binary_data_size": len(raw)}
        head = json.dumps(reply, separators=(",", ":")).encode()
        return 200, [("content-type", "application/octet-stream"),
                     ("inference-header-content-length", str(len(head)))], head + raw
    out["data"] = y.reshape(-1).tolist()
    return 200, js, json.dumps(reply, separators=(",", ":")).encode()


def asgi_app(model):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                if m["type"] == "lifespan.startup":
                    model.start()
                    await send({"type": "lifespan.startup.complete"})
                elif m["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            m = await receive()
            chunks.append(m.get("body", b""))
            if not m.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        status, hdrs, body = await handle(model, scope["method"], scope["path"], headers,
                                          b"".join(chunks))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in hdrs]
                    + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    return app


def serve_uvicorn(model, args, sock=None):
    """Serves until SIGINT/SIGTERM; on sock when given (a worker process)."""
    import uvicorn

    config = uvicorn.Config(asgi_app(model), host=args.host, port=args.port,
                            log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)

    async def main():
        config.load()
        server.lifespan = config.lifespan_class(config)
        server.install_signal_handlers()
        await server.startup(sockets=[sock] if sock is not None else None)
        if sock is None:
            port = server.servers[0].sockets[0].getsockname()[1]
            print(f"listening on port {port}", file=sys.stderr, flush=True)
        await server.main_loop()
        await server.shutdown()

    config.setup_event_loop()  # uvloop when installed, as uvicorn.run does
    asyncio.run(main())


def serve_processes(args):
    """uvicorn --workers N: N processes, each with its own model and batcher,
    accepting on one listening socket (how a Python server uses many cores)."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(4096)
    sock.set_inheritable(True)
    children = []
    for _ in range(args.processes):
        pid = os.fork()
        if pid == 0:
            try:
                serve_uvicorn(Model(args), args, sock)
            finally:
                os._exit(0)
        children.append(pid)
    print(f"listening on port {sock.getsockname()[1]}", file=sys.stderr, flush=True)

    def stop(*_):
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for pid in children:
        while True:
            try:
                os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break


def serve_stdlib(model, args):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run_loop():
        asyncio.set_event_loop(loop)
        model.start()
        ready.set()
        loop.run_forever()

    threading.Thread(target=run_loop, daemon=True).start()
    ready.wait()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs
        wbufsize = 1 << 16  # one send per response (flushed after each request)

        def log_message(self, *a):
            pass

        def answer(self, method):
            n = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(n) if n else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            fut = asyncio.run_coroutine_threadsafe(
                handle(model, method, self.path, headers, body), loop)
            status, hdrs, out = fut.result()
            self.send_response(status)
            for k, v in hdrs:
                self.send_header(k, v)
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def do_GET(self):
            self.answer("GET")

        def do_POST(self):
            self.answer("POST")

    ThreadingHTTPServer.daemon_threads = True
    httpd = ThreadingHTTPServer((args.host, args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=httpd.shutdown).start())
    print(f"listening on port {httpd.server_address[1]}", file=sys.stderr, flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("--name", default="mlp-s")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--max-delay-us", type=int, default=500)
    p.add_argument("--batchers", type=int, default=1,
                   help="batches formed and run at once (default 1)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op threads (default: torch's)")
    p.add_argument("--http", choices=("auto", "uvicorn", "stdlib"), default="auto")
    p.add_argument("--processes", type=int, default=1,
                   help="server processes on one port, each with its model and batcher "
                        "(uvicorn --workers; default 1)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    http = args.http
    if http == "auto":
        try:
            import uvicorn  # noqa: F401
            http = "uvicorn"
        except ImportError:
            http = "stdlib"
    if args.processes > 1 and http != "uvicorn":
        p.error("--processes needs uvicorn (apt-get install python3-uvicorn)")
    print(f"torch_server: {args.model} on {args.device}, torch {torch.__version__}, "
          f"{http} HTTP, {args.processes} process(es), max batch {args.max_batch}, "
          f"max delay {args.max_delay_us} us", file=sys.stderr, flush=True)
    if args.processes > 1:
        serve_processes(args)  # each process loads its own model (after the fork)
    elif http == "uvicorn":
        serve_uvicorn(Model(args), args)
    else:
        serve_stdlib(Model(args), args)


if __name__ == "__main__":
    main()
