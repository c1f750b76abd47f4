"""Logging for `labelbot serve` and the WSGI entry point: quiet by default, JSON on request.

- LABELBOT_LOG_LEVEL (default INFO) sets the level of labelbot's own lines.
- LABELBOT_LOG_FORMAT=json writes one JSON object per line: time, level, logger, message, project,
  user_id, request_id (from `bot.core.logctx`), process, and the traceback under "exception".
- Libraries that talk on every tick stay at WARNING whatever the level: APScheduler (a line per job
  run), Alembic (a line per migration check), gunicorn's own start-up chatter. Set
  LABELBOT_LOG_LEVEL=DEBUG to hear them again.

gunicorn's error log goes through the same handler (`GunicornLogger`), so its warnings come out in the
same format; the access log stays off (a load balancer or proxy keeps one).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from bot.core import logctx

TEXT_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
QUIET_LOGGERS = ("apscheduler", "alembic", "gunicorn.error")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")
_HANDLER_NAME = "labelbot"


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers. Never raises on odd arguments."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "project": getattr(record, "project", None),
            "user_id": getattr(record, "user_id", None),
            "request_id": getattr(record, "request_id", None),
            "process": record.process,
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class ContextFilter(logging.Filter):
    """Copies the project, user and request of the current context onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in logctx.fields().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def settings_from_env(env: dict[str, str] | os._Environ[str] = os.environ) -> tuple[str, str]:
    """(level, format) from LABELBOT_LOG_LEVEL and LABELBOT_LOG_FORMAT; unknown values fall back to
    INFO and text (a warning says so once logging is up)."""
    level = (env.get("LABELBOT_LOG_LEVEL") or "INFO").strip().upper()
    fmt = (env.get("LABELBOT_LOG_FORMAT") or "text").strip().lower()
    return level, fmt


def configure(level: str | None = None, fmt: str | None = None, *, stream: Any = None) -> None:
    """Set up the root logger once per process (idempotent: a second call replaces our handler)."""
    env_level, env_fmt = settings_from_env()
    level = (level or env_level).upper()
    fmt = (fmt or env_fmt).lower()
    problems = []
    if level not in LEVELS:
        problems.append(f"LABELBOT_LOG_LEVEL={level!r} is not one of {', '.join(LEVELS)}; using INFO")
        level = "INFO"
    if fmt not in FORMATS:
        problems.append(f"LABELBOT_LOG_FORMAT={fmt!r} is not one of {', '.join(FORMATS)}; using text")
        fmt = "text"
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    quiet = logging.getLevelName(level) > logging.DEBUG
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.DEBUG)
    for problem in problems:
        logging.getLogger("labelbot").warning(problem)


def is_configured() -> bool:
    return any(h.get_name() == _HANDLER_NAME for h in logging.getLogger().handlers)


def gunicorn_logger_class() -> type:
    """gunicorn's logger, sending its error log through our root handler (same format, quiet below
    WARNING unless LABELBOT_LOG_LEVEL=DEBUG) and keeping no access log."""
    from gunicorn.glogging import Logger

    class GunicornLogger(Logger):  # type: ignore[misc]
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for log in (self.error_log, self.access_log):
                for handler in list(log.handlers):
                    log.removeHandler(handler)
            self.error_log.propagate = True
            debug = logging.getLogger().level <= logging.DEBUG
            self.error_log.setLevel(logging.DEBUG if debug else logging.WARNING)
            self.access_log.propagate = False
            self.access_log.disabled = True

    return GunicornLogger
