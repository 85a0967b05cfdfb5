"""`python -m mnist_lit serve`: a trained model behind HTTP, with a page to draw on, on LitServe.

    python -m mnist_lit serve                                  # best checkpoint of the latest run
    curl --data-binary @seven.png http://127.0.0.1:8000/predict
    # then open http://127.0.0.1:8000/ in a browser and draw a digit

Three kinds of process, as LitServe arranges them: this one reads the checkpoint once to check it
and to learn its data set; HTTP processes take uploads; inference workers (``--workers``, started
fresh, not forked) each load the network and answer batches of requests.

An upload is read, checked and preprocessed in the HTTP process, before it is queued for a worker
(``PictureUploads``). Two reasons: LitServe's endpoint parses only JSON and form bodies, while a
picture is most often sent as the raw body; and a worker answers a batch as a whole, so one
unreadable picture would fail every request batched with it. Only 784 pixels reach a worker.
"""

import argparse
import datetime
import functools
import hmac
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import anyio
import litserve as ls
import torch
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from mnist_lit import __version__
from mnist_lit.checkpoints.finding import add_checkpoint_arguments, resolve_checkpoint
from mnist_lit.core.errors import UserError
from mnist_lit.core.hardware import usable_cores
from mnist_lit.data.pictures import (
    BlankPicture,
    ImageTooLarge,
    NotAnImage,
    load_like,
)
from mnist_lit.data.sets import DatasetInfo
from mnist_lit.models.confidence import add_accept_all_argument
from mnist_lit.models.predictor import load_predictor

PREDICT = "/predict"
METRICS = "/metrics"
PAGE = "/ui/"
PAGE_FILES = Path(__file__).parent / "page"
# LitServe's own check: it binds only these (0.0.0.0 and :: listen on every network interface).
HOSTS = ["127.0.0.1", "0.0.0.0", "::"]


class PictureAPI(ls.LitAPI):
    """Batches of pixels -> logits, in an inference worker; each answer is put in words (confidence.py)."""

    def __init__(self, checkpoint: Path, threads: int, max_batch_size: int, batch_timeout: float, accept_all: bool = False):
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.checkpoint, self.threads, self.accept_all = checkpoint, threads, accept_all

    def setup(self, device: str) -> None:
        # Workers share the machine's cores: without this each would start a thread per core.
        torch.set_num_threads(self.threads)
        self.predictor = load_predictor(self.checkpoint)
        self.device = device
        self.predictor.net.to(device)

    def decode_request(self, request: dict, context: dict) -> torch.Tensor:
        context["input"] = request["pixels"]
        return torch.tensor(request["pixels"], dtype=torch.uint8)

    def batch(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(inputs)

    def predict(self, pixels: torch.Tensor) -> torch.Tensor:
        """One picture's uint8 pixels ((size, size) for one channel, else (channels, size, size)) or a batch of
        them -> (num_classes) or (N, num_classes) logits."""
        shape = self.predictor.input_shape
        batched = pixels.dim() == (3 if shape[0] == 1 else 4)
        images = self.predictor.normalize(pixels.to(self.device).reshape(-1, *shape))
        logits = self.predictor.logits(images).cpu()
        return logits if batched else logits[0]

    def encode_response(self, logits: torch.Tensor, context: dict) -> dict[str, Any]:
        probabilities = self.predictor.probabilities(logits[None])[0]
        said = self.predictor.answer(probabilities, logits, self.accept_all)
        best = int(probabilities.argmax())
        top = {"class": best, "label": self.predictor.classes[best], "probability": float(probabilities[best])}
        # A refusal names no class: its closest one has a key of its own (docs/serving.md).
        answered = {"class": None, "label": None, "probability": None, "closest": top} if said.kind == "unknown" else top
        return {
            "answer": said.text,
            "kind": said.kind,
            **answered,
            "probabilities": probabilities.tolist(),
            "energy": said.energy,
            "input": context["input"],
        }


class RequestError(Exception):
    """An upload the server refuses: an HTTP status, a one-line reason and its name for /metrics."""

    def __init__(self, status: int, detail: str, reason: str):
        super().__init__(detail)
        self.status, self.reason = status, reason


# How much of a refused upload is read and thrown away before the answer. A server that answers
# and closes while the body still arrives resets the connection, and clients that write the whole
# body before reading (Python's urllib) see "connection reset" instead of the 413; nginx lingers
# for the same reason. Beyond this, the connection is closed.
DRAIN_BYTES = 256 * 2**20


async def drain(receive: Receive, limit: int) -> None:
    """Read and discard the rest of a request's body, up to ``limit`` bytes."""
    if limit > DRAIN_BYTES:
        return
    read = 0
    while read <= limit:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        read += len(message.get("body", b""))


async def refuse(reason: str, status: int, detail: str, scope: Scope, receive: Receive, send: Send, **response: Any) -> None:
    """Answer a refused upload with its status and ``{"detail": ...}``, and count it by reason."""
    served_metrics().refused.labels(reason).inc()
    await JSONResponse({"detail": detail}, status, **response)(scope, receive, send)


class PictureUploads:
    """ASGI middleware: a picture POSTed to /predict, as the body or as a multipart file, becomes its pixels.

    Refused uploads are answered here with ``{"detail": "..."}`` and a 4xx status; accepted ones go on
    to LitServe's endpoint as JSON ``{"pixels": ...}``: 28 rows of 28 values for MNIST, a list per
    channel for colour sets. Also sends ``/`` to the page.
    """

    def __init__(self, app: ASGIApp, dataset: dict, max_upload_mb: float, max_megapixels: float):
        self.app, self.dataset = app, DatasetInfo.from_record(dataset)
        self.max_upload_mb = max_upload_mb
        self.max_bytes = int(max_upload_mb * 2**20)
        self.max_pixels = int(max_megapixels * 1e6)
        self.preprocessing = None  # an anyio.CapacityLimiter, made in the event loop that uses it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            return await RedirectResponse(PAGE)(scope, receive, send)
        if scope["type"] != "http" or scope["path"] != PREDICT or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        # A large picture takes memory and a core while it is preprocessed (about 220 MB and 0.6 s at
        # 16 megapixels): at most one per core at a time, however many arrive.
        self.preprocessing = self.preprocessing or anyio.CapacityLimiter(usable_cores())
        try:
            data = await self.picture_bytes(scope, receive)
            pixels = await anyio.to_thread.run_sync(
                load_like, data, self.dataset, "upload", self.max_pixels, limiter=self.preprocessing,
            )
            if pixels.ndim == 3 and len(pixels) == 1:  # one channel travels as rows, as MNIST's always has
                pixels = pixels[0]
        except RequestError as error:
            return await refuse(error.reason, error.status, str(error), scope, receive, send)
        except ImageTooLarge as error:
            detail = f"{error} Send a smaller picture (the server's --max_megapixels)."
            return await refuse("too_many_pixels", 413, detail, scope, receive, send)
        except UserError as error:
            status, reason = {NotAnImage: (415, "not_a_picture"), BlankPicture: (422, "blank")}.get(type(error), (400, "unreadable"))
            return await refuse(reason, status, str(error), scope, receive, send)

        body = json.dumps({"pixels": pixels.tolist()}).encode()
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        delivered = False

        async def receive_pixels() -> dict:
            nonlocal delivered
            if delivered:
                return await receive()  # a disconnect, if the client goes away
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "headers": headers}, receive_pixels, send)

    async def picture_bytes(self, scope: Scope, receive: Receive) -> bytes:
        """The uploaded file: the whole body, or the first file of a multipart form."""
        too_large = RequestError(413, f"upload over {self.max_upload_mb:g} MB (the server's --max_upload_mb).", "too_large")
        headers = Request(scope).headers
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await drain(receive, int(declared))
            raise too_large
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError(400, "the client went away before sending the picture.", "client_gone")
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await drain(receive, DRAIN_BYTES)
                raise too_large
            if not message.get("more_body", False):
                break
        if headers.get("content-type", "").startswith("multipart/form-data"):
            body = await self.form_file(scope, bytes(body))
        if not body:
            raise RequestError(400, "empty upload: send a picture (PNG, JPEG...) as the body or as a multipart file.", "empty")
        return bytes(body)

    @staticmethod
    async def form_file(scope: Scope, body: bytes) -> bytes:
        async def receive_body() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            async with Request(scope, receive_body).form(max_files=1, max_fields=10) as form:
                files = [value for value in form.values() if isinstance(value, UploadFile)]
                if not files:
                    raise RequestError(400, "the multipart form has no file: send the picture as a file field.", "no_file")
                return await files[0].read()
        except HTTPException as error:  # how Starlette reports a malformed form
            raise RequestError(400, f"unreadable multipart form ({error.detail}).", "bad_form") from None


class RequireKey:
    """ASGI middleware: /predict answers only requests that carry the server's key (``--api_key_env``),
    as an ``X-API-Key`` header or as ``Authorization: Bearer KEY``. The page, /health (for load
    balancers) and /info stay open. Without the key: 401 and one line, the body read and discarded as
    for a refused upload.
    """

    def __init__(self, app: ASGIApp, key: str):
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PREDICT:
            return await self.app(scope, receive, send)
        headers = Request(scope).headers
        scheme, _, token = headers.get("authorization", "").partition(" ")
        given = headers.get("x-api-key") or (token.strip() if scheme.lower() == "bearer" else "")
        if hmac.compare_digest(given.encode(), self.key):  # the same time for every wrong key
            return await self.app(scope, receive, send)
        declared = headers.get("content-length", "")
        await drain(receive, int(declared) if declared.isdigit() else DRAIN_BYTES)
        detail = "this server needs its key: send it as an X-API-Key header or as Authorization: Bearer KEY."
        await refuse("no_key", 401, detail, scope, receive, send, headers={"WWW-Authenticate": "Bearer"})


class ServedMetrics:
    """What /metrics shows, in Prometheus' text format (prometheus-client).

    LitServe answers HTTP in one process per worker, each with its own counts: they are kept in files
    in ``PROMETHEUS_MULTIPROC_DIR`` (set by ``main`` before prometheus-client is first imported) and
    summed when /metrics is read, so whichever process answers speaks for all.
    """

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.requests = Counter("mnist_lit_http_requests", "HTTP requests answered, by route and status", ["route", "status"])
        self.seconds = Histogram("mnist_lit_http_request_duration_seconds", "Seconds to answer a request, by route", ["route"])
        self.refused = Counter("mnist_lit_uploads_refused", "Pictures sent to /predict and refused, by reason", ["reason"])
        self.predicted = Counter("mnist_lit_pictures_predicted", "Pictures answered by /predict")

    @staticmethod
    def text() -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)


@functools.cache
def served_metrics() -> ServedMetrics:
    """This process's metrics, made on first use (in an HTTP process, after ``main`` has set the folder)."""
    return ServedMetrics()


def route_of(path: str) -> str:
    """The route a path is counted under: one of the server's, else "other" (so no client can add a label per path)."""
    if path.startswith(PAGE):
        return PAGE
    return path if path in (PREDICT, METRICS, "/health", "/info", "/") else "other"


class RequestRecords:
    """ASGI middleware: every HTTP request, once answered, counted and timed for /metrics
    (``ServedMetrics``) and, with ``access_log``, printed as one line: time (UTC), method, path, status
    and milliseconds, never the query string or the body, which may hold a picture. Also answers
    ``GET /metrics``.
    """

    def __init__(self, app: ASGIApp, access_log: bool):
        self.app, self.access_log = app, access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        metrics = served_metrics()
        started, status = time.monotonic(), 500  # 500 if the app fails before it answers

        async def send_and_note(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if scope["path"] == METRICS and scope["method"] in ("GET", "HEAD"):
                from prometheus_client import CONTENT_TYPE_LATEST

                text = await anyio.to_thread.run_sync(metrics.text)  # reads every process's file
                await Response(text, media_type=CONTENT_TYPE_LATEST)(scope, receive, send_and_note)
            else:
                await self.app(scope, receive, send_and_note)
        finally:
            seconds, route = time.monotonic() - started, route_of(scope["path"])
            metrics.requests.labels(route, str(status)).inc()
            metrics.seconds.labels(route).observe(seconds)
            if route == PREDICT and status == 200:
                metrics.predicted.inc()
            if self.access_log:
                now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                print(f"{now} {scope['method']} {scope['path']} {status} {1000 * seconds:.1f} ms", flush=True)


def build_server(args: argparse.Namespace, checkpoint: Path, key: Optional[str] = None) -> ls.LitServer:
    """The LitServer of ``checkpoint``, checked here, before any worker starts; /predict needs ``key`` when given."""
    predictor = load_predictor(checkpoint)
    threads = max(1, usable_cores() // args.workers)
    api = PictureAPI(checkpoint, threads, args.max_batch_size, args.batch_timeout, args.accept_all)
    metadata = {
        "dataset": predictor.dataset_info.name,
        "pictures": predictor.dataset_info.pictures,
        "input_shape": list(predictor.input_shape),
        "classes": predictor.classes,
        "network": predictor.network,
        "calibrated": predictor.confidence is not None,
        "rejects": predictor.confidence is not None and not args.accept_all,
        # The file's name and its weights' digest say which model answers; its path is the server's business.
        "checkpoint": checkpoint.name,
        "weights_sha256": predictor.weights_digest,
        "mnist_lit_version": __version__,
        "needs_key": key is not None,  # the page asks for it before the first picture
    }
    server = ls.LitServer(
        api,
        accelerator=args.accelerator,
        workers_per_device=args.workers,
        model_metadata=metadata,
        disable_openapi_url=True,  # /predict takes raw bodies, which its generated schema cannot describe
        middlewares=[(PictureUploads, {
            "dataset": predictor.dataset_info.record(),
            "max_upload_mb": args.max_upload_mb,
            "max_megapixels": args.max_megapixels,
        }),
            # Outside the uploads: a request without the key is refused before its picture is read.
            *([(RequireKey, {"key": key})] if key is not None else []),
            (RequestRecords, {"access_log": args.access_log}),  # listed last: outside, so it sees every answer
        ],
    )
    server.app.mount(PAGE, StaticFiles(directory=PAGE_FILES, html=True), name="page")
    return server


def sigterm_as_ctrl_c() -> None:
    """Make SIGTERM to this process (`kill`, systemd, docker stop) stop the whole server, as Ctrl+C does.

    SIGTERM reaches only this process, whose default is to die at once and leave the HTTP and worker
    processes running and holding the port. Raised as KeyboardInterrupt, it runs the shutdown that
    LitServe runs on Ctrl+C, which stops them.
    """
    main_process = os.getpid()

    def interrupt(signum: int, frame: object) -> None:
        if os.getpid() != main_process:  # an HTTP process forked from this one: SIGTERM's default
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def check_port_free(host: str, port: int) -> None:
    """One line now, rather than uvicorn's log line after the workers have loaded, when the port is taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as error:
            raise UserError(f"cannot listen on {host} port {port} ({error.strerror}): pass another --port.") from None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_lit serve",
        description="Serve a trained model: POST /predict takes a picture, GET / is a page to draw on.",
    )
    add_checkpoint_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", choices=HOSTS, help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port, 1024 to 65535 (default: 8000)")
    parser.add_argument("--workers", type=int, default=1, help="inference worker processes per device (default: 1)")
    parser.add_argument("--max_batch_size", type=int, default=1, help="up to this many waiting requests go through the network together (default: 1, no batching)")
    parser.add_argument("--batch_timeout", type=float, default=0.002, help="seconds a worker waits to fill a batch when batching (default: 0.002)")
    parser.add_argument("--max_upload_mb", type=float, default=5.0, help="largest upload accepted, in MB (default: 5)")
    parser.add_argument("--max_megapixels", type=float, default=16.0, help="largest picture accepted, in millions of pixels (default: 16)")
    add_accept_all_argument(parser)
    parser.add_argument("--access_log", action=argparse.BooleanOptionalAction, default=True,
                        help="print a line per request: time, method, path, status, milliseconds (default: on)")
    parser.add_argument("--api_key_env", metavar="NAME",
                        help="require the key held in the environment variable NAME with every POST /predict, as an "
                        "X-API-Key header or Authorization: Bearer KEY (the page asks for it once); /health and /info stay open")
    parser.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "cuda"], help="where the workers run the network (default: auto)")
    args = parser.parse_args(argv)
    if not 1024 <= args.port <= 65535:
        raise UserError(f"--port must be from 1024 to 65535, got {args.port}.")
    for option in ("workers", "max_batch_size"):
        if getattr(args, option) < 1:
            raise UserError(f"--{option} must be at least 1, got {getattr(args, option)}.")
    if args.batch_timeout < 0:
        raise UserError(f"--batch_timeout must be 0 or more, got {args.batch_timeout}.")
    for option in ("max_upload_mb", "max_megapixels"):
        if getattr(args, option) <= 0:
            raise UserError(f"--{option} must be more than 0, got {getattr(args, option)}.")

    key = None
    if args.api_key_env is not None:
        key = os.environ.get(args.api_key_env, "")
        if not key.strip():
            raise UserError(f"--api_key_env {args.api_key_env}: that environment variable is not set or is empty; "
                            f"export {args.api_key_env}=KEY before starting the server.")
    elif args.host != "127.0.0.1":
        print(f"warning: listening on every network interface ({args.host}) with no key: any machine that can reach this "
              "one can use /predict; pass --api_key_env NAME to require a key.", file=sys.stderr, flush=True)

    check_port_free(args.host, args.port)
    checkpoint = resolve_checkpoint(args.ckpt_path, args.checkpoint_dir)
    server = build_server(args, checkpoint, key)
    # Each server counts from zero, in files of its own that its HTTP processes share (ServedMetrics).
    metrics_folder = tempfile.mkdtemp(prefix="mnist-lit-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_folder
    sigterm_as_ctrl_c()
    address = f"http://{'localhost' if args.host != '127.0.0.1' else args.host}:{args.port}"
    print(f"Serving {checkpoint} ({server.model_metadata['dataset']}) at {address}/ once its "
          f"{args.workers} worker(s) have loaded it; POST a picture to {address}{PREDICT}. Ctrl+C stops.", flush=True)
    try:
        server.run(host=args.host, port=args.port, generate_client_file=False, log_level="warning")
    finally:
        shutil.rmtree(metrics_folder, ignore_errors=True)
    return 0
