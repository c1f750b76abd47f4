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

from bot.blocks.guidelines import notice_message
from bot.blocks.labeling import expired_message
from bot.core import logctx
from bot.deps import Deps
from bot.services import drafting, events, images, reminders, reports, webhooks
from bot.services.guidelines import notices
from bot.services.labeling import expire_leases
from bot.services.projects import list_projects, spec_of
from bot.services.reports.live import post_new_alerts
from storage.locks import once_per_period, prune_job_locks

KEEP_JOB_LOCKS = timedelta(days=35)  # longer than any job's period (the longest is a day today)


def prefetch_drafts(deps: Deps) -> None:
    """Draft the items that will be served next (only when drafting is on)."""
    drafting.prefetch_job(deps)


def upload_images(deps: Deps) -> None:
    """Upload the images of imported items to their workspace ahead of demand (their items are served
    once uploaded)."""
    images.upload_job(deps)


def post_daily_reports(deps: Deps) -> None:
    """Post each project's daily summary that is due (once per project and local day)."""
    reports.run_due_reports(deps)


def send_reminders(deps: Deps) -> None:
    """Nudge qualified annotators with examples waiting who have not labeled today (once per person and day)."""
    reminders.send_due_reminders(deps)


def post_alerts(deps: Deps) -> None:
    """Post each alert to its project's report channel once, as it trips (suspensions at once, the
    statistics' alerts within a quarter of an hour)."""
    post_new_alerts(deps)


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
    if not slugs:
        return
    from bot.services import adjudication  # numpy and pandas: only when some project escalates on confidence

    for slug in slugs:
        with logctx.about_project(slug):
            if once_per_period(deps.db, f"low-confidence:{slug}", now.strftime("%Y-%m-%dT%H"), now):
                adjudication.refresh_low_confidence(deps.db, slug, now)


def deliver_webhooks(deps: Deps) -> None:
    """Send due webhook deliveries from the outbox (each row claimed by one replica; retries with backoff)."""
    webhooks.deliver_due(deps.db, deps.clock.now)


def send_guideline_notices(deps: Deps, version_id: int | None = None, *, max_batches: int = 20) -> int:
    """DM every qualified annotator once about a new guideline version (of `version_id`, or any still
    pending). Each notice is claimed before it is sent, so replicas and the publishing handler never
    both send it; a failed send is retried by a later run. Returns how many were sent."""
    sent = 0
    for _ in range(max_batches):
        batch = notices.claim(deps.db, deps.clock.now(), version_id=version_id)
        for notice in batch:
            client = deps.workspace_client(notice.team_id)
            if client is None:
                notices.failed(deps.db, notice.id, f"no Slack client for workspace {notice.team_id}")
                continue
            text, blocks = notice_message(notice)
            try:
                channel = client.conversations_open(users=notice.user_id)["channel"]["id"]
                response = client.chat_postMessage(channel=channel, text=text, blocks=blocks)
            except Exception as e:  # one annotator's DM failing must not stop the others
                notices.failed(deps.db, notice.id, f"{type(e).__name__}: {e}")
                continue
            notices.sent(deps.db, notice.id, deps.clock.now(), channel=response.get("channel") or channel,
                         ts=response.get("ts"))
            sent += 1
        if len(batch) < notices.BATCH:
            break
    return sent


def guideline_notices(deps: Deps) -> None:
    """Send the DMs about new guideline versions still pending (e.g. published with the CLI)."""
    send_guideline_notices(deps)


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
    Job("images.upload", upload_images, {"seconds": images.UPLOAD_INTERVAL_SECONDS}, at_start=True,
        when=lambda deps: deps.client is not None or deps.client_for_team is not None),
    Job("reports.daily", post_daily_reports, {"minutes": 1}, at_start=True),
    Job("expire_leases", expire_old_leases, {"seconds": 30}),
    Job("low_confidence", escalate_low_confidence, {"minutes": 5}),
    Job("webhooks.deliver", deliver_webhooks, {"seconds": webhooks.DELIVER_INTERVAL_SECONDS}, at_start=True),
    Job("guidelines.notices", guideline_notices, {"seconds": 30}, at_start=True),
    Job("reminders", send_reminders, {"minutes": 1}, at_start=True),
    Job("alerts", post_alerts, {"minutes": 1}),
    Job("prune_bookkeeping", prune_bookkeeping, {"hours": 1}, at_start=True),
)
