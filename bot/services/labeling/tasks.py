"""A served assignment as a `Task`: everything the message builder needs, no ORM objects."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, load_only

from bot.core.enums import (
    Action,
    AssignmentKind,
    DraftStatus,
)
from bot.core.types import Task
from bot.services.images.serving import image_view
from bot.services.labeling.progress import progress_for
from bot.spec import ProjectSpec
from storage.models import Assignment, Draft, Item, Label, Member, Project


def usable_draft(session: Session, item_id: int) -> Draft | None:
    """The newest successful draft of an item, whatever model or prompt version made it: a fresher
    one replaces it as soon as the prefetch worker has drafted the item again (item_id index)."""
    return session.scalar(
        select(Draft)
        .options(load_only(Draft.id, Draft.status, Draft.value, Draft.value_key, Draft.confidence, Draft.simulated))
        .where(Draft.item_id == item_id, Draft.status == DraftStatus.OK)
        .order_by(Draft.id.desc())
        .limit(1)
    )


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
