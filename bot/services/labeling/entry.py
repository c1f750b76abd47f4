"""Which project a `/label` is about, and where the member stands in it (quiz first, paused, choose...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.blocks.text import mention, safe_mrkdwn
from bot.core import logctx
from bot.core.enums import (
    MemberState,
)
from bot.core.errors import NotFound
from bot.services.access import leads_of
from bot.services.projects import get_member, list_projects, spec_of
from storage.models import Member, Project

# Project resolution and membership
# ------------------------------------------------------------------------------------------


@dataclass
class Entry:
    """Outcome of `/label [project]` before any example is chosen."""

    kind: Literal["task", "choose", "not_member", "quiz_offer", "suspended"]
    project: Project | None = None
    member: Member | None = None
    choices: list[Project] = field(default_factory=list)
    message: str = ""


def resolve_project(session: Session, team_id: str, slug: str | None, user_id: str) -> Project | list[Project]:
    projects = list_projects(session, team_id)
    if slug:
        for p in projects:
            if p.slug == slug:
                logctx.set_project(p.slug)
                return p
        archived = session.scalar(select(Project).where(Project.slug == slug, Project.team_id == team_id,
                                                        Project.archived.is_(True)))
        if archived is not None:
            raise NotFound(f"*{safe_mrkdwn(archived.name, 200)}* is archived: it takes no more labels. "
                           "Thank you for your work on it!")
        known = ", ".join(safe_mrkdwn(p.slug, 40) for p in projects) or "none yet"
        raise NotFound(f"No project `{safe_mrkdwn(slug, 40)}` in this workspace. Projects: {known}.")
    if len(projects) == 1:
        logctx.set_project(projects[0].slug)
        return projects[0]
    if not projects:
        raise NotFound("There are no labeling projects in this workspace yet. A lead creates one with the CLI.")
    mine = [
        p for p in projects
        if (m := get_member(session, p, user_id)) is not None and m.state == MemberState.QUALIFIED
    ]
    return mine[0] if len(mine) == 1 else projects


def entry(session: Session, team_id: str, user_id: str, slug: str | None) -> Entry:
    found = resolve_project(session, team_id, slug, user_id)
    if isinstance(found, list):
        return Entry("choose", choices=found)
    project = found
    spec = spec_of(project)
    member = get_member(session, project, user_id)
    if member is None or member.state == MemberState.NEW:
        if member is None and not spec.members.open_enrollment:
            leads = ", ".join(mention(u) for u in leads_of(session, project.id)) or "a project lead"
            return Entry("not_member", project, None,
                         message=f"Ask {leads} to invite you to *{safe_mrkdwn(project.name, 200)}*.")
        return Entry("quiz_offer", project, member)
    if member.state == MemberState.SUSPENDED:
        return Entry("suspended", project, member, message=member.state_reason or "")
    return Entry("task", project, member)


# ------------------------------------------------------------------------------------------
