"""The scheduled jobs: plain functions of the app's dependencies, each one call into a service.

`bot.runtime.scheduler` adds every job of `JOBS` to APScheduler. Jobs are safe to run in every
replica at once: each is guarded by the database (`storage.locks.once_per_period`, unique report runs,
`FOR UPDATE SKIP LOCKED` lease expiry).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.blocks.labeling import expired_message
from bot.deps import Deps
from bot.services import adjudication, drafting, events, reports
from bot.services.labeling import expire_leases
from bot.services.projects import list_projects, spec_of
from storage.locks import once_per_period, prune_job_locks

KEEP_JOB_LOCKS = timedelta(days=35)  # longer than any job's period (the longest is a day today)


def prefetch_drafts(deps: Deps) -> None:
    """Draft the items that will be served next (only when drafting is on)."""
    drafting.prefetch_job(deps)


def post_daily_reports(deps: Deps) -> None:
    """Post each project's daily summary that is due (once per project and local day)."""
    reports.run_due_reports(deps)


def expire_old_leases(deps: Deps) -> None:
    """Return examples whose lease ran out to the queue and mark their messages as expired."""
    with deps.db.session() as s:
        expired = expire_leases(s, deps.clock.now())
    client = deps.client
    if client is None:
        return
    text, blocks = expired_message()
    for channel, ts in expired:
        if channel and ts:
            # The lease is already returned; updating the message is cosmetic.
            with contextlib.suppress(Exception):
                client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)


def escalate_low_confidence(deps: Deps) -> None:
    """Hourly, send settled items below `escalation.min_confidence` to the experts (once per hour
    across replicas)."""
    now = deps.clock.now()
    with deps.db.read() as s:
        slugs = [p.slug for p in list_projects(s) if spec_of(p).escalation.min_confidence is not None]
    for slug in slugs:
        if once_per_period(deps.db, f"low-confidence:{slug}", now.strftime("%Y-%m-%dT%H"), now):
            adjudication.refresh_low_confidence(deps.db, slug, now)


def prune_bookkeeping(deps: Deps) -> None:
    """Daily, forget Events API deliveries older than a day (Slack stops retrying after minutes) and job
    locks of periods long over, so that neither table grows forever (once a day across replicas)."""
    now = deps.clock.now()
    if once_per_period(deps.db, "prune-bookkeeping", now.strftime("%Y-%m-%d"), now):
        events.prune_events(deps.db, now)
        prune_job_locks(deps.db, now - KEEP_JOB_LOCKS)


@dataclass(frozen=True)
class Job:
    id: str
    run: Callable[[Deps], None]
    trigger: dict[str, Any]
    at_start: bool = False  # also run right away (catch-up after a restart)
    when: Callable[[Deps], bool] = field(default=lambda deps: True)


JOBS: tuple[Job, ...] = (
    Job("drafting.prefetch", prefetch_drafts, {"seconds": drafting.PREFETCH_INTERVAL_SECONDS}, at_start=True,
        when=lambda deps: deps.drafter is not None),
    Job("reports.daily", post_daily_reports, {"minutes": 1}, at_start=True),
    Job("expire_leases", expire_old_leases, {"seconds": 30}),
    Job("low_confidence", escalate_low_confidence, {"minutes": 5}),
    Job("prune_bookkeeping", prune_bookkeeping, {"hours": 1}, at_start=True),
)
