"""A served assignment as a `Task`: everything the message builder needs, no ORM objects."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, select
from sqlalchemy.orm import Session, load_only

from bot.core.enums import (
    Action,
    AssignmentKind,
    DraftStatus,
)
from bot.core.types import Task
from bot.services.images.serving import image_view
from bot.services.labeling.progress import progress_for
from bot.services.predictions import IMPORTED_PREFIX, is_imported
from bot.spec import ProjectSpec
from storage.models import Assignment, Draft, Item, Label, Member, Project


def usable_draft(session: Session, item_id: int, *, llm: bool = True) -> Draft | None:
    """The draft to serve with an item: the newest imported prediction of your own model if there is
    one (they win), else the newest successful LLM draft whatever model or prompt version made it (a
    fresher one replaces it as soon as the prefetch worker has drafted the item again); `llm=False`
    (llm.enabled off) serves imported predictions only. Served by the item_id index."""
    imported = Draft.prompt_version.like(IMPORTED_PREFIX + "%")
    stmt = (
        select(Draft)
        .options(load_only(Draft.id, Draft.status, Draft.value, Draft.value_key, Draft.confidence, Draft.simulated,
                           Draft.model, Draft.prompt_version))
        .where(Draft.item_id == item_id, Draft.status == DraftStatus.OK)
        .limit(1)
    )
    if not llm:
        return session.scalar(stmt.where(imported).order_by(Draft.id.desc()))
    return session.scalar(stmt.order_by(case((imported, 0), else_=1), Draft.id.desc()))


def is_usable(draft: Draft | None) -> bool:
    return draft is not None and draft.status == DraftStatus.OK and draft.value is not None




def build_task(
    session: Session,
    project: Project,
    spec: ProjectSpec,
    assignment: Assignment,
    now: datetime,
    *,
    item: Item | None = None,
    draft: Draft | None = None,
) -> Task:
    item = item or session.get(Item, assignment.item_id)
    assert item is not None
    if draft is None and assignment.draft_id is not None:
        draft = session.get(Draft, assignment.draft_id)
    member = session.get(Member, assignment.member_id)
    assert member is not None
    task = Task(
        assignment_id=assignment.id,
        project_slug=project.slug,
        project_name=project.name,
        task=spec.task,
        labels=[(label.name, label.description) for label in spec.labels],
        item_external_id=item.external_id,
        text=item.text,
        kind=assignment.kind,
        blind=assignment.blind,
        image=image_view(session, item, project.team_id),
    )
    if assignment.draft_shown and is_usable(draft):
        task.draft_value = draft.value
        task.draft_confidence = draft.confidence
        task.draft_simulated = draft.simulated
        task.draft_model = draft.model if is_imported(draft.prompt_version) else None
    elif not assignment.blind and assignment.kind != AssignmentKind.QUIZ:
        task.no_draft = assignment.kind != AssignmentKind.EXPERT
    if assignment.kind == AssignmentKind.EXPERT:
        rows = session.execute(
            select(Label.user_id, Label.value, Label.action)
            .where(Label.item_id == item.id, Label.kind == AssignmentKind.PRODUCTION)
            .order_by(Label.id)
        ).all()
        task.crowd_answers = [
            (uid, value if action != Action.AMBIGUOUS else "(flagged ambiguous)")
            for uid, value, action in rows
            if action != Action.SKIP
        ]
    if assignment.kind != AssignmentKind.QUIZ:
        task.progress = progress_for(session, project, member, now)
    return task


# ------------------------------------------------------------------------------------------
