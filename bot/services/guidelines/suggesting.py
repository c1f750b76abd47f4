"""A proposed revision of a project's guidelines, built from the evidence of where people disagree.

The evidence is read in a short read transaction, the model is called with no transaction open, and
the suggestion is stored (with the LLM's failure, if any: the template is used then) in a short write.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core.errors import NotFound
from bot.core.guidelines import Evidence, Suggestion
from bot.services.guidelines import compose
from bot.services.guidelines.evidence import gather
from bot.services.guidelines.writer import Writer, WriterFailed, Written
from bot.services.projects import get_project, spec_of
from storage.db import Database
from storage.models import GuidelineSuggestion, Project

log = logging.getLogger("labelbot.guidelines")


def _project(s: Session, slug: str, team_id: str | None) -> Project:
    project = get_project(s, slug)
    if team_id is not None and project.team_id != team_id:
        raise NotFound(f"No project {slug!r} in this workspace.")
    return project


def suggest(db: Database, slug: str, *, requested_by: str, now: datetime, writer: Writer | None,
            team_id: str | None = None) -> Suggestion:
    """Build, store and return a suggestion for `slug`'s next guideline version.

    With a writer (and `llm.enabled` in the spec) the model writes the revised text; without one, or
    when the call fails, the suggestion is the template with the same evidence (the failure is stored
    on the suggestion, and logged)."""
    with db.read() as s:
        project = _project(s, slug, team_id)
        spec = spec_of(project)
        current = project.guideline_version
        evidence = gather(s, project, spec, current=current)
        project_id, name = project.id, project.name
    current_text = spec.instructions
    written: Written | None = None
    error_kind = error = None
    if writer is not None and spec.llm.enabled:
        try:
            written = writer.write(spec, current_text, evidence, current + 1)
        except WriterFailed as e:
            error_kind, error = e.kind, str(e)[:2000]
            log.warning("guideline suggestion for %s: the LLM failed (%s: %s); using the template", slug,
                        error_kind, error)
    if written is not None and writer is not None:
        method, model, text, changes = writer.method, written.model, written.text, written.changes
    else:
        problem = f"{error_kind}: {error}" if error else None
        text, changes = compose.template(spec, current_text, evidence, current + 1, problem)
        method, model = "template", (spec.llm.model if error else None)
    with db.session() as s:
        row = GuidelineSuggestion(
            project_id=project_id, based_on=current, requested_by=requested_by[:100], method=method, model=model,
            error_kind=error_kind, error=error, text=text, changes=changes, evidence=evidence.to_dict(),
            prompt_tokens=written.prompt_tokens if written else 0,
            completion_tokens=written.completion_tokens if written else 0,
            latency_ms=written.latency_ms if written else None, created_at=now,
        )
        s.add(row)
        s.flush()
        suggestion_id = row.id
    return Suggestion(
        id=suggestion_id, slug=slug, name=name, based_on=current, method=method, model=model, text=text,
        changes=changes, evidence=evidence, current_text=current_text, error_kind=error_kind, error=error,
    )


def _from_row(row: GuidelineSuggestion, project: Project) -> Suggestion:
    return Suggestion(
        id=row.id, slug=project.slug, name=project.name, based_on=row.based_on, method=row.method, model=row.model,
        text=row.text, changes=[str(c) for c in row.changes or []], evidence=Evidence.from_dict(row.evidence),
        current_text=spec_of(project).instructions, error_kind=row.error_kind, error=row.error,
    )


def latest_suggestion(db: Database, slug: str, *, based_on_current: bool = True) -> Suggestion | None:
    """The newest suggestion of `slug` (for the current version only, by default)."""
    with db.read() as s:
        project = get_project(s, slug)
        q = select(GuidelineSuggestion).where(GuidelineSuggestion.project_id == project.id)
        if based_on_current:
            q = q.where(GuidelineSuggestion.based_on == project.guideline_version)
        row = s.scalar(q.order_by(GuidelineSuggestion.id.desc()).limit(1))
        return _from_row(row, project) if row is not None else None


def suggestion_stats(session: Session, project_id: int) -> dict[str, Any]:
    """How suggestions were written: counts by method, LLM failures (the template was used) and the last one."""
    by_method = dict(session.execute(
        select(GuidelineSuggestion.method, func.count())
        .where(GuidelineSuggestion.project_id == project_id).group_by(GuidelineSuggestion.method)
    ).all())
    failures = session.scalar(
        select(func.count()).select_from(GuidelineSuggestion)
        .where(GuidelineSuggestion.project_id == project_id, GuidelineSuggestion.error_kind.is_not(None))
    ) or 0
    last = session.execute(
        select(GuidelineSuggestion.error_kind, GuidelineSuggestion.error, GuidelineSuggestion.created_at)
        .where(GuidelineSuggestion.project_id == project_id, GuidelineSuggestion.error_kind.is_not(None))
        .order_by(GuidelineSuggestion.id.desc()).limit(1)
    ).first()
    return {
        "made": int(sum(by_method.values())),
        "by_method": {str(k): int(v) for k, v in by_method.items()},
        "llm_failures": int(failures),
        "last_failure": {"kind": last[0], "error": last[1], "at": last[2]} if last else None,
    }
