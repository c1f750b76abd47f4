"""WSGI entry point for running labelbot under an external gunicorn (or any WSGI server):

    gunicorn -k gthread --workers 2 --threads 8 --bind 0.0.0.0:3000 --graceful-timeout 30 'bot.wsgi:application'

Configuration comes from the environment (see `bot.config.Settings`: DATABASE_URL, SLACK_SIGNING_SECRET,
SLACK_BOT_TOKEN or SLACK_CLIENT_ID/SLACK_CLIENT_SECRET, SLACK_API_URL...). LABELBOT_SCHEDULER=0 keeps the
scheduler out of this deployment (e.g. when a separate `labelbot serve --http` replica runs it; running
it everywhere is safe too, every job is guarded by the database).

Without SLACK_SIGNING_SECRET (or without a bot token / OAuth credentials) there is no application: the
import fails with one line naming what is missing, and gunicorn stops ("App failed to load", exit 4)
instead of serving requests it cannot verify.

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
from bot.core.errors import ConfigError
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


def refuse_to_start(reason: str) -> BaseException:
    """The exception that stops a WSGI server with `reason` as its one line (no traceback).

    gunicorn prints an `AppImportError`'s message as is and halts ("App failed to load", exit 4) rather
    than respawning workers; other servers get a `SystemExit` carrying the same line."""
    line = "labelbot: " + " ".join(reason.split())
    try:
        from gunicorn.errors import AppImportError
    except ImportError:  # another WSGI server
        return SystemExit(line)
    return AppImportError(line)


def create_application(settings: Settings | None = None) -> Application:
    try:
        settings = settings or Settings.from_env()
        settings.require_for_serve(http=True)  # fail closed: never serve with a stand-in secret
    except ConfigError as e:
        raise refuse_to_start(str(e)) from None
    if not logs.is_configured():
        logs.configure()
    if settings.metrics and not os.environ.get(MULTIPROC_ENV):
        log.warning("LABELBOT_METRICS=1 under an external WSGI server: with several workers set %s to an empty "
                    "directory shared by them, or each /metrics scrape shows one worker's counts", MULTIPROC_ENV)
    _migrate(settings)
    return Application(settings)


application = create_application()
