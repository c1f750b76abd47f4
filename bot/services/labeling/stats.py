"""A member's numbers for `/label stats` and the Home tab."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from bot.core.enums import (
    Action,
    AssignmentKind,
)
from bot.services.labeling.progress import start_of_day
from bot.services.projects import get_member, list_projects
from storage.models import Label

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


def member_stats(session: Session, team_id: str, user_id: str, now: datetime) -> list[MemberStats]:
    out = []
    for project in list_projects(session, team_id):
        member = get_member(session, project, user_id)
        if member is None:
            out.append(MemberStats(project.slug, project.name, "not joined", "-", 0, 0, None, 0, None))
            continue
        real = and_(Label.member_id == member.id, Label.kind.in_(["production", "expert", "honeypot"]),
                    Label.action != Action.SKIP)
        total = session.scalar(select(func.count()).select_from(Label).where(real)) or 0
        today = session.scalar(
            select(func.count()).select_from(Label).where(real, Label.created_at >= start_of_day(now))
        ) or 0
        checks = session.execute(
            select(func.count(Label.correct), func.avg(Label.correct)).where(
                Label.member_id == member.id, Label.kind == AssignmentKind.HONEYPOT, Label.correct.is_not(None)
            )
        ).one()
        out.append(
            MemberStats(
                project.slug, project.name, member.state, member.tier, int(today), int(total),
                float(checks[1]) if checks[0] else None, int(checks[0] or 0), member.state_reason,
            )
        )
    return out
