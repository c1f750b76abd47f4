"""APScheduler wiring. Each job is one call into a service; `once_per_period` guards jobs so that
several replicas sharing one database run each job once per period (a unique row wins the race).
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import JobLock

log = logging.getLogger("labelbot.scheduler")

# Modules that contribute jobs with a `schedule(scheduler, deps)` function.
JOB_MODULES = ("bot.drafting", "bot.reports", "bot.labeling", "bot.adjudication")


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def once_per_period(db: Database, name: str, period: str, now: Any) -> bool:
    """True for exactly one caller per (name, period) across every process sharing the database."""
    try:
        with db.session() as s:
            s.add(JobLock(name=name, period=period, created_at=now))
    except IntegrityError:
        return False
    return True


class _SkipOverlapNoise(logging.Filter):
    """A job still running at its next tick is skipped by design (max_instances=1): not a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


def build_scheduler(deps: Any) -> BackgroundScheduler:
    logging.getLogger("apscheduler.scheduler").addFilter(_SkipOverlapNoise())
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    for name in JOB_MODULES:
        module = importlib.import_module(name)
        hook = getattr(module, "schedule", None)
        if hook is not None:
            hook(scheduler, deps)
    return scheduler
