"""Serving: Socket Mode, or HTTP under gunicorn (gthread workers), with /healthz, /metrics and the scheduler.

    labelbot serve --http --port 3000 --workers 2 --threads 8     # HTTP: /slack/events, /healthz, /metrics
    labelbot serve                                                 # Socket Mode (SLACK_APP_TOKEN)
    labelbot serve --port 3000                                     # ... with /healthz and /metrics on :3000
    gunicorn -k gthread -w 2 --threads 8 -b 0.0.0.0:3000 'bot.wsgi:application'

`run()` migrates the database first (one process at a time: a PostgreSQL advisory lock), then serves.
Under gunicorn each worker builds its own `Runtime` after the fork (when gunicorn loads the app in the
worker, after its signal handlers are set): database pool, Bolt app, pacer, and the APScheduler unless
`scheduler=False`. Several workers and several replicas may run
the scheduler at once: every job is guarded by the database (report runs unique per project and day,
`storage.locks.once_per_period`, `FOR UPDATE SKIP LOCKED` lease expiry).

Logs are quiet (`bot.runtime.logs`): one start-up line, then only what needs reading. With
LABELBOT_METRICS=1, `/metrics` answers in Prometheus format (`bot.runtime.metrics`; under gunicorn the
workers share a PROMETHEUS_MULTIPROC_DIR made by the master, so any worker reports the sum).

Graceful shutdown: on SIGTERM a gthread worker stops accepting, finishes its in-flight requests within
`graceful_timeout`, then `worker_exit` stops the scheduler and drains Bolt's listener pool (listeners
run after the ack, so an acknowledged click may still be writing when the HTTP answer has gone).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from bot.app import build_app, build_deps
from bot.config import Settings
from bot.deps import Deps
from bot.runtime import logs
from bot.runtime.metrics import METRICS_PATH
from bot.runtime.scheduler import build_scheduler
from storage.db import Database, display_url
from storage.locks import startup_lock

log = logging.getLogger("labelbot.server")

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
SLACK_PATHS = frozenset({EVENTS_PATH, "/slack/install", "/slack/oauth_redirect"})
GRACEFUL_TIMEOUT = 30
DRAIN_TIMEOUT = 20.0


# ------------------------------------------------------------------------------------------------
# Start-up helpers
# ------------------------------------------------------------------------------------------------


def upgrade(db: Database) -> None:
    """Migrate to the latest schema; replicas starting together wait for each other."""
    with startup_lock(db, "migrate"):
        db.upgrade()


DB_UNAVAILABLE = {"ok": False, "db": "db unavailable"}


def health(db: Database) -> tuple[int, dict[str, Any]]:
    """200 {"ok": true, "db": "ok"} when `SELECT 1` works; 503 {"db": "db unavailable"} otherwise.

    /healthz answers anyone who can reach the port: the database's own error (host names, user names,
    driver versions) goes to the log, never into the answer."""
    try:
        ok = db.ping()
    except Exception:  # any database failure means "not ready"; the detail is for the operator's log
        log.warning("health check: the database is unavailable", exc_info=True)
        return 503, dict(DB_UNAVAILABLE)
    if not ok:
        log.warning("health check: SELECT 1 did not return 1")
        return 503, dict(DB_UNAVAILABLE)
    return 200, {"ok": True, "db": "ok"}


class WSGIApp:
    """/slack/events (+ /slack/install, /slack/oauth_redirect with OAuth) through Bolt's WSGI adapter,
    /healthz for load balancers and orchestrators, and /metrics when metrics are on."""

    def __init__(self, bolt_app: Any, db: Database, metrics: Any = None, *, slack: bool = True) -> None:
        from slack_bolt.adapter.wsgi import SlackRequestHandler

        self.slack = SlackRequestHandler(bolt_app, path=EVENTS_PATH) if slack else None
        self.db = db
        self.metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == HEALTH_PATH:
            status, body = health(self.db)
            payload = json.dumps(body).encode()
            reason = "OK" if status == 200 else "Service Unavailable"
            start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                                  ("Content-Length", str(len(payload))),
                                                  ("Cache-Control", "no-store")])
            return [payload]
        if path == METRICS_PATH and self.metrics is not None and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            payload, content_type = self.metrics.render()
            start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(payload))),
                                      ("Cache-Control", "no-store")])
            return [payload]
        if path in SLACK_PATHS and self.slack is not None:
            return self.slack(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "9")])
        return [b"Not Found"]


# ------------------------------------------------------------------------------------------------
# One process's objects
# ------------------------------------------------------------------------------------------------


@dataclass
class Runtime:
    """What one serving process owns: deps (database pool, clients), the Bolt app, the scheduler."""

    deps: Deps
    app: Any
    wsgi: WSGIApp
    scheduler: Any = None
    metrics: Any = None
    pid: int = field(default_factory=os.getpid)

    @classmethod
    def build(cls, settings: Settings, *, scheduler: bool = True, deps: Deps | None = None,
              socket_mode: bool = False) -> Runtime:
        deps = deps or build_deps(settings)
        app = build_app(deps, socket_mode=socket_mode)
        metrics = None
        if settings.metrics:
            from bot.runtime.metrics import install

            metrics = install(deps, app)
        runtime = cls(deps=deps, app=app, wsgi=WSGIApp(app, deps.db, metrics, slack=not socket_mode),
                      metrics=metrics)
        if scheduler:
            runtime.scheduler = build_scheduler(deps)
        return runtime

    def start(self) -> None:
        if self.scheduler is not None and not self.scheduler.running:
            self.scheduler.start()
            log.debug("scheduler started in process %s", os.getpid())

    def stop(self, drain_timeout: float = DRAIN_TIMEOUT) -> None:
        """Stop the scheduler, let listeners that already acked (and the work they started) finish, close
        the database pool."""
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.deps.close(drain_timeout)
        if self.metrics is not None:
            from bot.runtime.metrics import uninstall

            uninstall(self.metrics)


# ------------------------------------------------------------------------------------------------
# HTTP under gunicorn
# ------------------------------------------------------------------------------------------------


def _gunicorn_application() -> type:
    from gunicorn.app.base import BaseApplication

    class LabelbotGunicorn(BaseApplication):
        """gunicorn embedded: the options come from `run()`, the app is built in each worker."""

        def __init__(self, settings: Settings, options: dict[str, Any], scheduler: bool,
                     banner: str | None = None) -> None:
            self.settings = settings
            self.options = options
            self.with_scheduler = scheduler
            self.banner = banner
            self.runtime: Runtime | None = None
            super().__init__()

        def load_config(self) -> None:
            for key, value in self.options.items():
                self.cfg.set(key, value)
            self.cfg.set("worker_exit", self.worker_exit)
            self.cfg.set("when_ready", self.when_ready)
            self.cfg.set("child_exit", self.child_exit)

        def load(self) -> Callable[..., Any]:
            # Called in each worker after the fork, once the worker has installed its signal handlers
            # (a SIGTERM during the few seconds of building is then honoured, unlike in post_fork).
            runtime = self.runtime = Runtime.build(self.settings, scheduler=self.with_scheduler)
            runtime.start()
            log.debug("worker %s ready", os.getpid())
            return runtime.wsgi

        def when_ready(self, server: Any) -> None:
            if self.banner:  # the master has bound the port: the one start-up line
                log.info("%s", self.banner)

        def child_exit(self, server: Any, worker: Any) -> None:
            if self.settings.metrics:
                from bot.runtime.metrics import worker_exited

                worker_exited(worker.pid)

        def worker_exit(self, server: Any, worker: Any) -> None:
            if self.runtime is not None:
                self.runtime.stop()

    return LabelbotGunicorn


def gunicorn_options(*, host: str, port: int, workers: int, threads: int,
                     graceful_timeout: int = GRACEFUL_TIMEOUT) -> dict[str, Any]:
    return {
        "bind": f"{host}:{port}",
        "workers": max(1, workers),
        "threads": max(1, threads),
        "worker_class": "gthread",
        "graceful_timeout": graceful_timeout,
        "timeout": 60,
        "keepalive": 5,
        "preload_app": False,  # one database pool and scheduler per worker, made after the fork
        "proc_name": "labelbot",
        "control_socket_disable": True,  # several replicas on one host would share one socket path
        "accesslog": None,
        "errorlog": "-",
        "loglevel": os.environ.get("LABELBOT_LOG_LEVEL", "info").lower(),
        "logger_class": logs.gunicorn_logger_class(),  # gunicorn's lines in our format, quiet below WARNING
    }


def startup_line(settings: Settings, *, http: bool, host: str = "", port: int = 0, workers: int = 1,
                 threads: int = 8, scheduler: bool = True, ops_port: int | None = None) -> str:
    """What `labelbot serve` says once: the mode, where Slack should send requests, the database
    (password hidden), the workers, the scheduler and metrics."""
    parts = [f"database {display_url(settings.database_url)}", f"scheduler {'on' if scheduler else 'off'}"]
    if http:
        head = (f"labelbot serving HTTP on {host}:{port} with {max(1, workers)} worker(s) x {max(1, threads)} "
                f"thread(s); Slack request URL: https://YOUR-HOST{EVENTS_PATH}")
        parts.append(f"health {HEALTH_PATH}")
        parts.append(f"metrics {METRICS_PATH}" if settings.metrics else "metrics off")
    else:
        head = "labelbot connected to Slack in Socket Mode"
        if ops_port is not None:
            parts.append(f"health {HEALTH_PATH} on {host}:{ops_port}")
            parts.append(f"metrics {METRICS_PATH}" if settings.metrics else "metrics off")
        else:
            parts.append("no HTTP port (give --port for /healthz and /metrics)")
    if settings.oauth_enabled:
        parts.append("OAuth install at /slack/install")
    return f"{head} ({'; '.join(parts)})"


def serve_http(settings: Settings, *, host: str, port: int, workers: int, threads: int, scheduler: bool,
               graceful_timeout: int = GRACEFUL_TIMEOUT) -> None:
    options = gunicorn_options(host=host, port=port, workers=workers, threads=threads,
                               graceful_timeout=graceful_timeout)
    banner = startup_line(settings, http=True, host=host, port=port, workers=workers, threads=threads,
                          scheduler=scheduler)
    multiproc_dir = None
    if settings.metrics:
        from bot.runtime.metrics import cleanup_multiprocess, prepare_multiprocess

        multiproc_dir = prepare_multiprocess()  # before the workers fork and import prometheus_client
    try:
        _gunicorn_application()(settings, options, scheduler, banner).run()
    finally:
        if multiproc_dir is not None:
            cleanup_multiprocess(multiproc_dir)


# ------------------------------------------------------------------------------------------------
# Socket Mode
# ------------------------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # no access log: a line per probe is noise
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve_ops_http(wsgi: WSGIApp, host: str, port: int) -> Any:
    """/healthz and /metrics on host:port in a background thread (Socket Mode has no other HTTP server).
    Returns the server; `shutdown()` stops it."""
    httpd = make_server(host, port, wsgi, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.5}, name="ops-http",
                     daemon=True).start()
    return httpd


def serve_socket_mode(settings: Settings, *, scheduler: bool, host: str = "0.0.0.0",
                      ops_port: int | None = None) -> None:
    """One process; SIGTERM/SIGINT disconnect, stop the scheduler and drain the listeners. With
    `ops_port`, /healthz and /metrics are served on host:ops_port."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    runtime = Runtime.build(settings, scheduler=scheduler, socket_mode=True)
    handler = SocketModeHandler(runtime.app, settings.slack_app_token)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    ops = serve_ops_http(runtime.wsgi, host, ops_port) if ops_port is not None else None
    runtime.start()
    handler.connect()
    log.info("%s", startup_line(settings, http=False, host=host, scheduler=scheduler, ops_port=ops_port))
    try:
        stop.wait()
    finally:
        log.info("shutting down")
        handler.close()
        if ops is not None:
            ops.shutdown()
            ops.server_close()
        runtime.stop()


# ------------------------------------------------------------------------------------------------
# Entry point (labelbot serve)
# ------------------------------------------------------------------------------------------------


def run(settings: Settings, *, http: bool, host: str = "0.0.0.0", port: int = 3000, workers: int = 1,
        threads: int = 8, scheduler: bool = True, graceful_timeout: int = GRACEFUL_TIMEOUT,
        ops_port: int | None = None) -> None:
    """`labelbot serve`: migrate, then HTTP under gunicorn or Socket Mode (with `ops_port`, /healthz and
    /metrics on host:ops_port)."""
    settings.require_for_serve(http=http)  # ConfigError before anything starts: no unverified HTTP
    logs.configure()
    db = Database(settings.database_url)
    try:
        upgrade(db)
    finally:
        db.dispose()  # no pooled connection may cross the fork into the workers
    if http:
        serve_http(settings, host=host, port=port, workers=workers, threads=threads, scheduler=scheduler,
                   graceful_timeout=graceful_timeout)
    else:
        serve_socket_mode(settings, scheduler=scheduler, host=host, ops_port=ops_port)
