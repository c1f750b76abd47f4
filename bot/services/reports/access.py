"""Who may see what: a report (or an export) is for the project's leads; choosing the project for a lead."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from bot.core.enums import Tier
from bot.services.projects import list_projects
from bot.services.reports.model import MAX_DAYS, ReportError
from storage.db import Database
from storage.models import Member, Project

# On demand (slash command and CLI)
# --------------------------------------------------------------------------------------------------


def parse_report_args(text: str) -> tuple[str | None, int | None]:
    """`[project] [days]` in either order -> (slug or None, days or None); ReportError if malformed."""
    slug: str | None = None
    days: int | None = None
    for token in (text or "").split():
        if token.lstrip("-").isdigit():
            if days is not None:
                raise ReportError("Give the number of days once, e.g. `/label-report intents 7`.")
            days = int(token)
            if not 1 <= days <= MAX_DAYS:
                raise ReportError(f"Days must be between 1 and {MAX_DAYS}; got {days}.")
        elif slug is None:
            slug = token.strip().lower()
        else:
            raise ReportError("Usage: `/label-report [project] [days]`, e.g. `/label-report intents 7`.")
    return slug, days




@dataclass(frozen=True)
class Chosen:
    slug: str
    name: str


def choose_for_lead(db: Database, team_id: str | None, user_id: str, slug: str | None) -> Chosen | str:
    """The project `user_id` may see a report of, or the (mrkdwn) sentence to answer instead.

    With no slug: the one project they lead in the workspace. Projects of other workspaces are
    treated as unknown. Only leads see reports; others are told who the leads are."""
    from bot.blocks import report as ui

    with db.read() as s:
        projects = list_projects(s, team_id)
        if slug is not None:
            project = next((p for p in projects if p.slug == slug), None)
            if project is None:
                return ui.unknown_project(slug, [p.slug for p in projects])
            leads = _leads(s, project.id)
            if user_id not in leads:
                return ui.not_a_lead(project.name, leads)
            return Chosen(project.slug, project.name)
        mine = lead_projects_in(s, user_id, team_id)
    if not mine:
        return ui.leads_nothing()
    if len(mine) > 1:
        return ui.choose_project([p.slug for p in mine])
    return Chosen(mine[0].slug, mine[0].name)


def _leads(session: Any, project_id: int) -> list[str]:
    return list(
        session.scalars(
            select(Member.user_id)
            .where(Member.project_id == project_id, Member.tier == Tier.LEAD)
            .order_by(Member.user_id)
        )
    )


def lead_projects_in(session: Any, user_id: str, team_id: str | None = None) -> list[Project]:
    q = (
        select(Project)
        .join(Member, Member.project_id == Project.id)
        .where(Member.user_id == user_id, Member.tier == Tier.LEAD, Project.archived.is_(False))
        .order_by(Project.slug)
    )
    if team_id is not None:
        q = q.where(Project.team_id == team_id)
    return list(session.scalars(q))
