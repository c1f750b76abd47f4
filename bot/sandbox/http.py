"""A tiny threaded HTTP server base for the sandbox stand-ins, and a WSGI serving helper.

Everything binds to 127.0.0.1 on an ephemeral port and runs in daemon threads, so a test that forgets
to stop a server cannot hang the interpreter. Only the standard library is used.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import ThreadingMixIn
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

log = logging.getLogger(__name__)

HOST = "127.0.0.1"

# Errors a client causes by hanging up early (e.g. after its own timeout); not worth a traceback.
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


@dataclass
class Request:
    """One HTTP request as the stand-ins see it. Header names are lower-cased."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def form(self) -> dict[str, str]:
        """The body as `application/x-www-form-urlencoded` (last value wins, blanks kept)."""
        parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}

    def multipart(self) -> list[Part]:
        return parse_multipart(self.headers.get("content-type", ""), self.body)


@dataclass
class Part:
    """One part of a `multipart/form-data` body."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Response:
    """What a stand-in answers. A dict/list body is sent as JSON, a str as UTF-8 text."""

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, dict | list):
            return json.dumps(self.body).encode("utf-8"), "application/json; charset=utf-8"
        if isinstance(self.body, str):
            return self.body.encode("utf-8"), "text/plain; charset=utf-8"
        return self.body, "application/octet-stream"


def parse_multipart(content_type_header: str, body: bytes) -> list[Part]:
    """Split a `multipart/form-data` body into its parts (enough for what HTTP clients send)."""
    boundary = None
    for piece in content_type_header.split(";")[1:]:
        key, _, value = piece.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        raise ValueError("multipart body without a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    parts: list[Part] = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        chunk = chunk.removeprefix(b"\r\n")
        head, _, data = chunk.partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        params = _disposition_params(headers.get("content-disposition", ""))
        parts.append(
            Part(
                name=params.get("name", ""),
                filename=params.get("filename"),
                content_type=headers.get("content-type"),
                data=data,
            )
        )
    return parts


def _disposition_params(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for piece in value.split(";")[1:]:
        key, _, raw = piece.strip().partition("=")
        params[key.strip().lower()] = raw.strip().strip('"')
    return params


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle keep-alive connection lets its thread go after this long
    server: _Server

    def _serve(self) -> None:
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=split.path,
            query={k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
        )
        try:
            response = self.server.owner.handle(request)
        except Exception:  # report a bug in a stand-in to the client instead of hanging up
            text = traceback.format_exc()
            log.error("sandbox server error on %s %s\n%s", request.method, request.path, text)
            self.server.owner.internal_errors.append(text)
            response = Response(500, {"ok": False, "error": "fake_server_error", "detail": text})
        payload, default_type = response.encode()
        try:
            self.send_response(response.status)
            headers = {k.lower(): (k, v) for k, v in response.headers.items()}
            if "content-type" not in headers:
                self.send_header("Content-Type", default_type)
            for name, value in headers.values():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except _DISCONNECTS:
            self.close_connection = True

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet; tests read state, not logs
        log.debug("%s - %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 resets connections when many listener threads call at once
    owner: FakeHTTPServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], _DISCONNECTS):
            return
        log.error("sandbox server connection error from %s\n%s", client_address, traceback.format_exc())


class FakeHTTPServer:
    """Base for a stand-in: subclasses implement `handle(request) -> Response`.

    `start()` binds 127.0.0.1 on an ephemeral port and serves in a daemon thread; `stop()` shuts down;
    both are idempotent and the object is a context manager. `stopping` is set on `stop()` so a handler
    that sleeps (simulated latency) can wake up early.
    """

    def __init__(self) -> None:
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.internal_errors: list[str] = []

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        self.stopping.clear()
        httpd = _Server((HOST, 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._httpd.server_address[1])

    @property
    def root_url(self) -> str:
        """`http://127.0.0.1:PORT` (no trailing slash)."""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """Where clients point; the root URL unless a stand-in serves under a prefix."""
        return self.root_url

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _QuietWSGIRequestHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128


@contextlib.contextmanager
def serve_wsgi(wsgi_app: Any) -> Iterator[str]:
    """Serve a WSGI app (e.g. `slack_bolt.adapter.wsgi.SlackRequestHandler(app)`) on 127.0.0.1.

    Yields the base URL `http://127.0.0.1:PORT` (append `/slack/events` for Bolt). Each request runs in
    its own thread; the server is shut down and its socket closed on exit.
    """
    httpd = make_server(HOST, 0, wsgi_app, server_class=_ThreadingWSGIServer, handler_class=_QuietWSGIRequestHandler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="serve_wsgi", daemon=True
    )
    thread.start()
    try:
        yield f"http://{HOST}:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
