"""WSGI entry point for running labelbot under an external gunicorn (or any WSGI server):

    gunicorn -k gthread --workers 2 --threads 8 --bind 0.0.0.0:3000 --graceful-timeout 30 'bot.wsgi:application'

Configuration comes from the environment (see `bot.config.Settings`: DATABASE_URL, SLACK_SIGNING_SECRET,
SLACK_BOT_TOKEN or SLACK_CLIENT_ID/SLACK_CLIENT_SECRET, SLACK_API_URL...). LABELBOT_SCHEDULER=0 keeps the
scheduler out of this deployment (e.g. when a separate `labelbot serve --http` replica runs it; running
it everywhere is safe too, every job is guarded by the database).

Each worker imports this module after the fork (gunicorn's default, no --preload) and builds its own
runtime: migrations (serialized across processes), database pool, Bolt app, scheduler. With --preload
the runtime is rebuilt in each worker on its first request, so no pool crosses a fork. The scheduler
is shut down and the listener pool drained when the worker exits (SIGTERM: gthread finishes in-flight
requests within --graceful-timeout first).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from bot.config import Settings
from bot.runtime import logs
from bot.runtime.metrics import MULTIPROC_ENV
from bot.runtime.server import Runtime, upgrade

log = logging.getLogger("labelbot.server")


def _scheduler_wanted(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return env.get("LABELBOT_SCHEDULER", "1").strip().lower() not in ("0", "false", "no", "off")


class Application:
    """A WSGI callable that owns one `Runtime` per process (rebuilt if it finds itself forked)."""

    def __init__(self, settings: Settings | None = None, *, scheduler: bool | None = None,
                 eager: bool = True) -> None:
        self.settings = settings or Settings.from_env()
        self.scheduler = _scheduler_wanted() if scheduler is None else scheduler
        self._runtime: Runtime | None = None
        self._lock = threading.Lock()
        atexit.register(self.close)
        if eager:
            self.runtime()

    def runtime(self) -> Runtime:
        runtime = self._runtime
        if runtime is not None and runtime.pid == os.getpid():
            return runtime
        with self._lock:
            runtime = self._runtime
            if runtime is None or runtime.pid != os.getpid():
                # First use, or forked from a process that had built one (gunicorn --preload): that
                # pool and scheduler thread belong to the parent; build fresh ones here.
                runtime = Runtime.build(self.settings, scheduler=self.scheduler)
                runtime.start()
                self._runtime = runtime
            return runtime

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self.runtime().wsgi(environ, start_response)

    def close(self) -> None:
        runtime = self._runtime
        if runtime is not None and runtime.pid == os.getpid():
            self._runtime = None
            runtime.stop()


def _migrate(settings: Settings) -> None:
    from storage.db import Database

    db = Database(settings.database_url)
    try:
        upgrade(db)
    finally:
        db.dispose()


def create_application(settings: Settings | None = None) -> Application:
    if not logs.is_configured():
        logs.configure()
    settings = settings or Settings.from_env()
    if settings.metrics and not os.environ.get(MULTIPROC_ENV):
        log.warning("LABELBOT_METRICS=1 under an external WSGI server: with several workers set %s to an empty "
                    "directory shared by them, or each /metrics scrape shows one worker's counts", MULTIPROC_ENV)
    _migrate(settings)
    return Application(settings)


application = create_application()
