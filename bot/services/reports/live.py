"""Alerts as they happen: each alert is posted to the project's report channel once, when it trips,
not only in the next daily summary.

Generic over the report's `Alert`s (whatever kinds `build_report` derives) plus suspensions:

- suspensions are read from the members table every minute (cheap), one post per suspension;
- the report's other alerts need the statistics, so the report of the daily window is built at most
  once per `STATS_EVERY` per project (`storage.locks.once_per_period`: one replica does it).

Once: `posted_alerts` holds one row per project and alert key, inserted before posting (a unique
constraint lets one replica win). An alert that stops appearing is marked cleared; it is posted again
only if it comes back after `REPOST_AFTER` (an alert hovering at its threshold does not post every
quarter of an hour). A claim whose post never finished (its replica died) is taken over after
`STALE_CLAIM` (so is a post that failed, e.g. the bot not yet invited to the channel).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from bot.core.enums import MemberState
from bot.services.projects import list_projects, spec_of
from bot.services.reports.model import DAILY_WINDOW_DAYS, Alert
from storage.db import Database
from storage.locks import once_per_period
from storage.models import Member, PostedAlert

log = logging.getLogger("labelbot.alerts")

STATS_EVERY = timedelta(minutes=15)
REPOST_AFTER = timedelta(days=1)
STALE_CLAIM = timedelta(minutes=10)
SUSPENSIONS_SINCE = timedelta(days=1)  # a suspension older than this when first seen is old news
MEMBER_ID_IN_TEXT = re.compile(r"(?<![A-Za-z0-9])[UW][A-Z0-9]{2,}(?![A-Za-z0-9])")


def alert_key(alert: Alert, at: datetime | None = None) -> str:
    """What makes two alerts the same: kind, subject and the wording with its numbers taken out (so an
    anchoring figure moving from +0.21 to +0.23 is the same alert); a suspension also by when it happened."""
    shape = re.sub(r"[-+]?\d[\d.,:%]*", "#", alert.text)
    digest = hashlib.blake2b(shape.encode(), digest_size=6).hexdigest()
    key = f"{alert.kind}:{alert.subject or ''}:{digest}"
    return f"{key}:{at.isoformat()}" if at is not None else key


@dataclass
class Posted:
    project: str
    key: str
    alert: Alert
    ok: bool
    error: str | None = None


def suspension_alerts(db: Database, project_id: int, now: datetime) -> list[tuple[str, Alert]]:
    """(key, alert) for each member suspended in the last day (one key per suspension)."""
    with db.read() as s:
        rows = s.execute(
            select(Member.user_id, Member.state_reason, Member.suspended_at)
            .where(Member.project_id == project_id, Member.state == MemberState.SUSPENDED,
                   Member.suspended_at >= now - SUSPENSIONS_SINCE)
            .order_by(Member.suspended_at)
        ).all()
    out = []
    for user, reason, at in rows:
        alert = Alert("suspension", f"{user} was suspended: {str(reason or 'no reason recorded').rstrip('.')}.", user)
        out.append((alert_key(alert, at), alert))
    return out


def report_alerts(db: Database, slug: str, now: datetime) -> list[tuple[str, Alert]]:
    """(key, alert) for the daily window's report alerts other than suspensions (read from the members)."""
    from bot.services.reports.build import build_report  # pandas and statsmodels: only when alerts are due

    report = build_report(db, slug, since=now - timedelta(days=DAILY_WINDOW_DAYS), until=now, now=now)
    return [(alert_key(a), a) for a in report.alerts if a.kind != "suspension"]


def _claim(db: Database, project_id: int, key: str, alert: Alert, channel: str, now: datetime) -> int | None:
    """The row id when this process should post the alert now; None when it was posted (or is being)."""
    try:
        with db.session() as s:
            new = PostedAlert(project_id=project_id, key=key, kind=alert.kind, subject=alert.subject,
                              text=alert.text[:4000], status="claimed", channel=channel, posted_at=now, last_seen=now)
            s.add(new)
            s.flush()
            return new.id
    except IntegrityError:
        pass
    with db.session() as s:
        row = s.scalar(select(PostedAlert).where(PostedAlert.project_id == project_id, PostedAlert.key == key))
        if row is None:
            return None
        back = row.cleared_at is not None and row.posted_at < now - REPOST_AFTER
        stale = row.status in ("claimed", "failed") and row.posted_at < now - STALE_CLAIM
        if not (back or stale):
            row.last_seen, row.cleared_at = now, None  # still there (or back too soon to say again)
            return None
        taken = s.execute(
            update(PostedAlert)
            .where(PostedAlert.id == row.id, PostedAlert.posted_at == row.posted_at, PostedAlert.status == row.status)
            .values(status="claimed", posted_at=now, last_seen=now, cleared_at=None, text=alert.text[:4000],
                    channel=channel, error=None)
        ).rowcount
        return row.id if taken == 1 else None


def _finish(db: Database, row_id: int, *, ts: str | None, error: str | None) -> None:
    with db.session() as s:
        s.execute(update(PostedAlert).where(PostedAlert.id == row_id)
                  .values(status="posted" if error is None else "failed", ts=ts, error=error))


def _clear_missing(db: Database, project_id: int, keys: set[str], now: datetime) -> None:
    """Alerts of the statistics no longer in the report are cleared (suspensions never are)."""
    with db.session() as s:
        rows = s.scalars(select(PostedAlert).where(PostedAlert.project_id == project_id,
                                                   PostedAlert.cleared_at.is_(None),
                                                   PostedAlert.kind != "suspension")).all()
        for row in rows:
            if row.key not in keys:
                row.cleared_at = now


def post_new_alerts(deps: Any) -> list[Posted]:
    """Post every alert that tripped since the last look, once, to each project's report channel."""
    from bot.blocks.report import alert_message

    now = deps.clock.now()
    with deps.db.read() as s:
        projects = [(p.id, p.slug, p.name, p.team_id, spec_of(p).report.channel) for p in list_projects(s)]
    out: list[Posted] = []
    bucket = now.replace(minute=now.minute - now.minute % int(STATS_EVERY.total_seconds() // 60), second=0,
                         microsecond=0)
    for project_id, slug, name, team_id, channel in projects:
        if not channel:
            continue
        client = deps.workspace_client(team_id)
        if client is None:
            continue
        found = suspension_alerts(deps.db, project_id, now)
        if once_per_period(deps.db, f"alerts:{slug}", bucket.isoformat(), now):
            stats = report_alerts(deps.db, slug, now)
            _clear_missing(deps.db, project_id, {key for key, _ in stats}, now)
            found += stats
        for key, alert in found:
            row_id = _claim(deps.db, project_id, key, alert, channel, now)
            if row_id is None:
                continue
            people = ([alert.subject] if alert.subject else []) + MEMBER_ID_IN_TEXT.findall(alert.text)
            names = deps.names.names(client, team_id, people)
            text, blocks = alert_message(name, slug, alert.text, names)
            try:
                response = client.chat_postMessage(channel=channel, text=text, blocks=blocks)
                _finish(deps.db, row_id, ts=response.get("ts"), error=None)
                out.append(Posted(slug, key, alert, True))
            except Exception as e:  # one failed post is recorded and does not stop the others
                log.warning("alert for %s not posted to %s: %s", slug, channel, e)
                _finish(deps.db, row_id, ts=None, error=str(e)[:2000])
                out.append(Posted(slug, key, alert, False, str(e)))
    return out
