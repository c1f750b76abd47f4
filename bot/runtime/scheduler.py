"""APScheduler wiring: every job of `bot.jobs.JOBS`, one instance at a time, coalesced.

Several replicas may run the scheduler at once: every job is guarded by the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from bot.core import observe
from bot.deps import Deps
from bot.jobs import JOBS

log = logging.getLogger("labelbot.scheduler")


class _SkipOverlapNoise(logging.Filter):
    """A job still running at its next tick is skipped by design (max_instances=1): not a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


def timed(job_id: str, run: Callable[[Deps], None]) -> Callable[[Deps], None]:
    """The job, reporting each run, its time and whether it raised (`bot.core.observe`); it re-raises,
    so APScheduler still logs the failure."""

    def timed_run(deps: Deps) -> None:
        started = time.perf_counter()
        failed = True
        try:
            run(deps)
            failed = False
        finally:
            observe.job_run(job_id, time.perf_counter() - started, failed)

    timed_run.__name__ = getattr(run, "__name__", job_id)
    timed_run.__doc__ = run.__doc__
    return timed_run


def build_scheduler(deps: Deps) -> BackgroundScheduler:
    logging.getLogger("apscheduler.scheduler").addFilter(_SkipOverlapNoise())
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    for job in JOBS:
        if not job.when(deps):
            continue
        extra = {"next_run_time": datetime.now(UTC)} if job.at_start else {}
        scheduler.add_job(timed(job.id, job.run), "interval", args=[deps], id=job.id, name=job.id,
                          replace_existing=True, misfire_grace_time=60, **job.trigger, **extra)
    return scheduler
