"""The daily summary: posted at each project's local report time, once per project and day across replicas."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from bot.core import logctx
from bot.core.enums import WebhookEvent
from bot.services import webhooks
from bot.services.projects import get_project, list_projects, spec_of
from bot.services.reports.model import DAILY_WINDOW_DAYS, STALE_CLAIM, report_window
from bot.spec import ProjectSpec
from storage.db import Database
from storage.locks import instance_name
from storage.models import ReportRun

log = logging.getLogger("labelbot.reports")

# Who may see what
# --------------------------------------------------------------------------------------------------



# --------------------------------------------------------------------------------------------------
# The daily summary
# --------------------------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    project: str
    day: date
    status: str  # posted | failed | skipped
    ts: str | None = None
    error: str | None = None


def _due_day(spec: ProjectSpec, now: datetime) -> date | None:
    """Today's local date if the report time has passed in the report's time zone, else None."""
    zone = ZoneInfo(spec.report.timezone)
    local = now.astimezone(zone)
    hour, minute = (int(x) for x in spec.report.time.split(":"))
    return local.date() if local.time() >= time(hour, minute) else None


def run_due_reports(deps: Any) -> list[RunOutcome]:
    """Post each project's daily summary once per local day, at or after its report time.

    A replica claims (project, local day) by inserting the ReportRun row; the unique constraint lets
    exactly one win, so several replicas (and a restart after the time passed: the catch-up) post once.
    A failed post marks the run failed with the error; it is not retried that day."""
    now = deps.clock.now()
    with deps.db.read() as s:
        candidates = [(p.id, p.slug, p.team_id, spec_of(p)) for p in list_projects(s)]
    outcomes: list[RunOutcome] = []
    for project_id, slug, team_id, spec in candidates:
        channel = spec.report.channel
        hooked = bool(spec.hooks_for(WebhookEvent.REPORT_DAILY))  # a report.daily webhook needs no channel
        day = _due_day(spec, now) if channel or hooked else None
        if day is None:
            continue
        with deps.db.read() as s:
            existing = s.execute(
                select(ReportRun.id, ReportRun.status, ReportRun.created_at)
                .where(ReportRun.project_id == project_id, ReportRun.day == day)
            ).one_or_none()
        stale = existing is not None and existing[1] == "claimed" and existing[2] < now - STALE_CLAIM
        if existing is not None and not stale:
            continue
        client = deps.workspace_client(team_id) if channel else None
        if channel and client is None:
            log.warning("no Slack client for workspace %s: daily report of %s not posted", team_id, slug)
            if not hooked:
                continue
            channel = None
        if stale:
            # The replica that claimed it died before posting: take the claim over, exactly once.
            with deps.db.session() as s:
                taken = s.execute(
                    update(ReportRun)
                    .where(ReportRun.id == existing[0], ReportRun.status == "claimed",
                           ReportRun.created_at == existing[2])
                    .values(claimed_by=instance_name(), created_at=now)
                ).rowcount
            if taken != 1:
                continue
            log.warning("daily report %s for %s: taking over a claim left unfinished since %s", slug, day,
                        existing[2])
            outcomes.append(_post_daily(deps, client, existing[0], slug, channel, day, now, team_id))
            continue
        try:
            with deps.db.session() as s:
                run = ReportRun(
                    project_id=project_id, day=day, status="claimed", claimed_by=instance_name(),
                    channel=channel, created_at=now,
                )  # fmt: skip
                s.add(run)
                s.flush()
                run_id = run.id
        except IntegrityError:
            continue  # another replica claimed it
        outcomes.append(_post_daily(deps, client, run_id, slug, channel, day, now, team_id))
    return outcomes


def _post_daily(deps: Any, client: Any, run_id: int, slug: str, channel: str | None, day: date,
                now: datetime, team_id: str = "") -> RunOutcome:
    """Post the day's summary to `channel` (when there is one) and write the `report.daily` webhook event
    (when a webhook wants it) with the run's outcome."""
    from bot.blocks.guidelines import with_suggest_button
    from bot.blocks.report import summary_blocks, summary_text
    from bot.services.reports.build import build_report  # pandas and statsmodels: only when a report is due
    from bot.services.reports.chart import report_chart
    from bot.services.reports.names import name_people

    ts: str | None = None
    logctx.set_project(slug)
    try:
        since, until = report_window(now, DAILY_WINDOW_DAYS)
        report = build_report(deps.db, slug, since=since, until=until, now=now)
        if getattr(deps, "names", None) is not None:
            name_people(report, deps.names, client, team_id)
        data = report.to_json()
        if not channel:
            _finish_run(deps.db, run_id, "posted", ts=None, error=None, now=deps.clock.now(),
                        event=(slug, day, data))
            return RunOutcome(slug, day, "posted")
        title = f"Daily summary: {report.name}"
        response = client.chat_postMessage(
            channel=channel, blocks=with_suggest_button(summary_blocks(data, title=title), slug),
            text=summary_text(data, title=title),
        )
        ts = response.get("ts")
        channel_id = response.get("channel") or channel
        error = None
        try:
            client.files_upload_v2(
                channel=channel_id,
                file=report_chart(data),
                filename=f"{slug}-{day.isoformat()}.png",
                title=f"{report.name}: last {DAILY_WINDOW_DAYS} days",
                thread_ts=ts,
            )
        except Exception as e:  # the summary is out; a missing chart is worth a note, not a failure
            log.warning("daily report %s: chart upload failed: %s", slug, e)
            error = f"chart upload failed: {e}"
        _finish_run(deps.db, run_id, "posted", ts=ts, error=error, now=deps.clock.now(), event=(slug, day, data))
        return RunOutcome(slug, day, "posted", ts=ts, error=error)
    except Exception as e:  # a failed post marks the run failed; the scheduler keeps going
        log.exception("daily report %s for %s failed", slug, day)
        message = f"{type(e).__name__}: {e}"
        _finish_run(deps.db, run_id, "failed", ts=ts, error=message[:2000], now=deps.clock.now())
        return RunOutcome(slug, day, "failed", ts=ts, error=message)


def _finish_run(db: Database, run_id: int, status: str, *, ts: str | None, error: str | None, now: datetime,
                event: tuple[str, date, dict[str, Any]] | None = None) -> None:
    """Record the run's outcome; with `event`, the `report.daily` webhook event in the same transaction
    (exactly one per project and day, like the run)."""
    with db.session() as s:
        run = s.get(ReportRun, run_id)
        if run is None:
            return
        run.status = status
        run.ts = ts
        run.error = error
        if status == "posted":
            run.posted_at = now
        if event is not None:
            slug, day, data = event
            project = get_project(s, slug)
            webhooks.enqueue(s, project, spec_of(project), WebhookEvent.REPORT_DAILY,
                             {"day": day.isoformat(), "slack": {"channel": run.channel, "ts": ts} if ts else None,
                              "report": data}, now)


# --------------------------------------------------------------------------------------------------
