"""Guideline versions: the history, the text of a version, and publishing a new one.

A project's instructions are version 1. Publishing a revision stores it as the next version (author,
time, text, what changed), makes it the project's instructions (so the drafting prompt, and with it
the prompt version, changes: drafts are made again lazily), queues one DM for every qualified
annotator (`bot.services.guidelines.notices`), and can promote the expert decisions quoted as worked
examples to gold, all in one unit of work.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.enums import MemberState
from bot.core.errors import Conflict, NotFound
from bot.core.guidelines import MAX_GUIDELINES_CHARS, PLACEHOLDER, Evidence, Published, VersionInfo
from bot.services.access import is_lead
from bot.services.guidelines import compose
from bot.services.labeling.quiz import promote_from_experts
from bot.services.projects import get_project, spec_of
from bot.spec import parse_spec
from storage.db import Database
from storage.models import GuidelineNotice, GuidelineSuggestion, GuidelineVersion, Member, Project

SOURCES = ("spec", "slack", "cli")


class RevisionProblem(Conflict):
    """A revision that cannot be published; `field` is what to fix: "text", "summary" or "base"."""

    def __init__(self, message: str, field: str = "text") -> None:
        super().__init__(message)
        self.field = field


def first_version(session: Session, project: Project, now: datetime | None = None) -> GuidelineVersion:
    """Version 1 of the project (created from its spec's instructions when missing)."""
    row = session.scalar(
        select(GuidelineVersion).where(GuidelineVersion.project_id == project.id, GuidelineVersion.version == 1)
    )
    if row is None:
        row = GuidelineVersion(
            project_id=project.id, version=1, text=spec_of(project).instructions, summary=[],
            author="project spec", source="spec", created_at=now or project.created_at,
        )
        session.add(row)
        session.flush()
    return row


def _info(row: GuidelineVersion, current: int) -> VersionInfo:
    return VersionInfo(
        version=row.version, created_at=row.created_at, author=row.author, source=row.source,
        summary=[str(x) for x in row.summary or []], chars=len(row.text), current=row.version == current,
    )


def _spec_version(project: Project) -> VersionInfo:
    """Version 1 as the spec has it, for a project whose versions were never recorded."""
    return VersionInfo(version=1, created_at=project.created_at, author="project spec", source="spec", summary=[],
                       chars=len(spec_of(project).instructions), current=project.guideline_version == 1)


def current_info(session: Session, project: Project) -> VersionInfo:
    """The version in force."""
    row = session.scalar(
        select(GuidelineVersion)
        .where(GuidelineVersion.project_id == project.id, GuidelineVersion.version == project.guideline_version)
    )
    return _info(row, project.guideline_version) if row is not None else _spec_version(project)


def history(db: Database, slug: str) -> list[VersionInfo]:
    """Every version of a project's guidelines, oldest first."""
    with db.read() as s:
        project = get_project(s, slug)
        rows = s.scalars(
            select(GuidelineVersion).where(GuidelineVersion.project_id == project.id)
            .order_by(GuidelineVersion.version)
        ).all()
        infos = [_info(r, project.guideline_version) for r in rows]
        return infos if infos else [_spec_version(project)]


def show(db: Database, slug: str, version: int | None = None) -> tuple[VersionInfo, str]:
    """A version (the current one by default) and its text."""
    with db.read() as s:
        project = get_project(s, slug)
        wanted = project.guideline_version if version is None else version
        row = s.scalar(
            select(GuidelineVersion)
            .where(GuidelineVersion.project_id == project.id, GuidelineVersion.version == wanted)
        )
        if row is None:
            if wanted == project.guideline_version == 1:
                return _spec_version(project), spec_of(project).instructions
            raise NotFound(f"{slug} has no guideline version {wanted} (versions 1 to {project.guideline_version}).")
        return _info(row, project.guideline_version), row.text


# --------------------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------------------


def check_text(text: str, current: str) -> str:
    """The cleaned text, or `RevisionProblem` saying what to fix."""
    cleaned = compose.clean(text)
    if not cleaned:
        raise RevisionProblem("Write the guidelines: the text is empty.")
    if len(cleaned) > MAX_GUIDELINES_CHARS:
        raise RevisionProblem(f"The guidelines are {len(cleaned):,} characters; at most {MAX_GUIDELINES_CHARS:,}.")
    if PLACEHOLDER in cleaned:
        line = next(n for n, part in enumerate(cleaned.split("\n"), start=1) if PLACEHOLDER in part)
        raise RevisionProblem(
            f"Replace the {PLACEHOLDER}: ...] places with your text (or delete them); the first is on line {line}."
        )
    if cleaned == compose.clean(current):
        raise RevisionProblem("This is the text of the current version; change something to publish a new one.")
    return cleaned


def publish(
    db: Database,
    slug: str,
    text: str,
    *,
    author: str,
    source: str,
    now: datetime,
    summary: str | None = None,
    based_on: int | None = None,
    suggestion_id: int | None = None,
    promote: Collection[int] = (),
    team_id: str | None = None,
    lead: str | None = None,
) -> Published:
    """Publish `text` as the next guideline version of `slug` (see the module's docstring).

    `based_on`: the version the author revised; if another was published meanwhile, nothing is
    written. `lead`: a Slack user who must be an acting lead of the project (the modal). `promote`:
    item ids of expert-settled items to add to gold (only those quoted by `suggestion_id` when given).
    `summary`: what changed, one line each (default: the suggestion's, else a summary of the diff).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}")
    with db.session() as s:
        project = s.scalar(select(Project).where(Project.slug == slug).with_for_update())
        if project is None:
            project = get_project(s, slug)  # raises NotFound naming the projects there are
        if team_id is not None and project.team_id != team_id:
            raise NotFound(f"No project {slug!r} in this workspace.")
        if lead is not None and not is_lead(s, project, lead):
            raise RevisionProblem(f"Only the leads of {project.name} can publish its guidelines.", "base")
        spec = spec_of(project)
        current = project.guideline_version
        if based_on is not None and based_on != current:
            raise RevisionProblem(
                f"Version {current} was published while you were editing (you revised version {based_on}). "
                "Copy your text, close this, and suggest a revision of the current version.", "base",
            )
        cleaned = check_text(text, spec.instructions)
        first_version(s, project, now)
        suggestion = s.get(GuidelineSuggestion, suggestion_id) if suggestion_id is not None else None
        if suggestion is not None and suggestion.project_id != project.id:
            suggestion = None
        lines = compose.summary_lines(summary) if summary and summary.strip() else []
        if not lines and suggestion is not None:
            lines = [c for c in compose.summary_lines("\n".join(suggestion.changes or [])) if "(The LLM" not in c]
        if not lines:
            lines = compose.diff_summary(spec.instructions, cleaned)
        version = current + 1
        row = GuidelineVersion(
            project_id=project.id, version=version, text=cleaned, summary=lines, author=author[:100], source=source,
            suggestion_id=suggestion.id if suggestion is not None else None, created_at=now,
        )
        s.add(row)
        project.spec = parse_spec({**project.spec, "instructions": cleaned}, f"project {slug}").model_dump(mode="json")
        project.guideline_version = version
        project.updated_at = now
        s.flush()
        promoted = 0
        if promote:
            allowed = set(promote)
            if suggestion is not None:
                allowed &= {i.item_id for i in Evidence.from_dict(suggestion.evidence).expert_items}
            promoted = promote_from_experts(s, project, now, item_ids=allowed)
        members = s.execute(
            select(Member.id, Member.team_id, Member.user_id)
            .where(Member.project_id == project.id, Member.state == MemberState.QUALIFIED.value)
            .order_by(Member.id)
        ).all()
        s.add_all([
            GuidelineNotice(version_id=row.id, member_id=mid, team_id=team, user_id=uid, status="pending",
                            attempts=0, created_at=now)
            for mid, team, uid in members
        ])
        s.flush()
        return Published(slug=project.slug, name=project.name, version=version, version_id=row.id, summary=lines,
                         notices=len(members), promoted=promoted)


def audience(db: Database, slug: str) -> int:
    """How many qualified annotators a new version would be told about."""
    from sqlalchemy import func

    with db.read() as s:
        project = get_project(s, slug)
        return int(s.scalar(
            select(func.count()).select_from(Member)
            .where(Member.project_id == project.id, Member.state == MemberState.QUALIFIED.value)
        ) or 0)
