"""A member's numbers for `/label stats` and the Home tab: today, this week next to the team's, their
streak of days in a row with at least one example labeled, total, and gold accuracy.

Days and weeks (from Monday) are local to the project's reminder time zone, else its report time zone.
Labeling here means what the person sees as labeling: examples answered or flagged (hidden gold checks
look like any example to them); skips and quiz answers are not labeling."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from bot.core.enums import (
    Action,
    AssignmentKind,
)
from bot.services.projects import get_member, list_projects, spec_of
from storage.models import Label

MAX_STREAK = 366

# Stats for /label stats and the Home tab
# ------------------------------------------------------------------------------------------


@dataclass
class MemberStats:
    project_slug: str
    project_name: str
    state: str
    tier: str
    today: int
    total: int
    gold_accuracy: float | None
    gold_checks: int
    reason: str | None
    week: int = 0  # examples they labeled this week (since Monday)
    team_week: int = 0  # examples the project's people labeled this week
    team_people: int = 0  # how many people labeled this week
    streak: int = 0  # days in a row with at least one example labeled (today may still come)


def _labeling():  # type: ignore[no-untyped-def]
    return and_(Label.kind.in_(["production", "expert", "honeypot"]), Label.action != Action.SKIP)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def streak(session: Session, member_id: int, today: date, zone: ZoneInfo) -> int:
    """Days in a row, up to today, with at least one example labeled; a streak is still alive until the
    end of today (one indexed probe per day of the streak)."""

    def labeled_on(day: date) -> bool:
        return session.scalar(
            select(Label.id).where(Label.member_id == member_id, _labeling(),
                                   Label.created_at >= _midnight(day, zone),
                                   Label.created_at < _midnight(day + timedelta(days=1), zone)).limit(1)
        ) is not None

    day = today if labeled_on(today) else today - timedelta(days=1)
    n = 0
    while n < MAX_STREAK and labeled_on(day):
        n += 1
        day -= timedelta(days=1)
    return n


def member_stats(session: Session, team_id: str, user_id: str, now: datetime) -> list[MemberStats]:
    out = []
    for project in list_projects(session, team_id):
        member = get_member(session, project, user_id)
        if member is None:
            out.append(MemberStats(project.slug, project.name, "not joined", "-", 0, 0, None, 0, None))
            continue
        spec = spec_of(project)
        zone = ZoneInfo(spec.reminders.timezone if spec.reminders else spec.report.timezone)
        local_today = now.astimezone(zone).date()
        monday = _midnight(local_today - timedelta(days=local_today.weekday()), zone)
        real = and_(Label.member_id == member.id, _labeling())
        total = session.scalar(select(func.count()).select_from(Label).where(real)) or 0
        today = session.scalar(
            select(func.count()).select_from(Label).where(real, Label.created_at >= _midnight(local_today, zone))
        ) or 0
        checks = session.execute(
            select(func.count(Label.correct), func.avg(Label.correct)).where(
                Label.member_id == member.id, Label.kind == AssignmentKind.HONEYPOT, Label.correct.is_not(None)
            )
        ).one()
        week = session.scalar(select(func.count()).select_from(Label).where(real, Label.created_at >= monday)) or 0
        team_week, team_people = session.execute(
            select(func.count(), func.count(func.distinct(Label.member_id)))
            .where(Label.project_id == project.id, _labeling(), Label.created_at >= monday)
        ).one()
        out.append(
            MemberStats(
                project.slug, project.name, member.state, member.tier, int(today), int(total),
                float(checks[1]) if checks[0] else None, int(checks[0] or 0), member.state_reason,
                week=int(week), team_week=int(team_week or 0), team_people=int(team_people or 0),
                streak=streak(session, member.id, local_today, zone) if total else 0,
            )
        )
    return out
