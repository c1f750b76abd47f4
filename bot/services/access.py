"""Who may do what: reports and exports are for a project's leads. One check, used by every surface
(slash commands, CLI). A lead whose membership is suspended has no lead rights."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from bot.core.enums import MemberState, TaskType, Tier
from bot.core.types import ChooseOne, Denied, LeadOf, LeadsNothing, NotALead, UnknownProject
from bot.services.projects import list_projects
from storage.db import Database
from storage.models import Member, Project


def _acting_lead() -> ColumnElement[bool]:
    return and_(Member.tier == Tier.LEAD, Member.state != MemberState.SUSPENDED)


def is_lead(session: Session, project: Project, user_id: str) -> bool:
    return session.scalar(
        select(Member.id).where(Member.project_id == project.id, Member.user_id == user_id, _acting_lead())
    ) is not None


def leads_of(session: Session, project_id: int) -> list[str]:
    return list(session.scalars(
        select(Member.user_id).where(Member.project_id == project_id, _acting_lead()).order_by(Member.user_id)
    ))


def lead_projects_in(session: Session, user_id: str, team_id: str | None = None) -> list[Project]:
    q = (
        select(Project)
        .join(Member, Member.project_id == Project.id)
        .where(Member.user_id == user_id, _acting_lead(), Project.archived.is_(False))
        .order_by(Project.slug)
    )
    if team_id is not None:
        q = q.where(Project.team_id == team_id)
    return list(session.scalars(q))


def project_for_lead(db: Database, team_id: str | None, user_id: str, slug: str | None) -> LeadOf | Denied:
    """The project `user_id` may act on as a lead, or why not.

    With no slug: the one project they lead in the workspace. Projects of other workspaces are
    treated as unknown. Others are told who the leads are."""
    with db.read() as s:
        if slug is not None:
            projects = list_projects(s, team_id)
            project = next((p for p in projects if p.slug == slug), None)
            if project is None:
                return UnknownProject(slug, [p.slug for p in projects])
            leads = leads_of(s, project.id)
            if user_id not in leads:
                return NotALead(project.name, leads)
            return LeadOf(project.slug, project.name, TaskType(project.task))
        mine = lead_projects_in(s, user_id, team_id)
        if not mine:
            return LeadsNothing()
        if len(mine) > 1:
            return ChooseOne([p.slug for p in mine])
        return LeadOf(mine[0].slug, mine[0].name, TaskType(mine[0].task))
