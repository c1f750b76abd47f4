"""Recording an answer: ownership checks, the value in the task's shape, completion, escalation and
the hidden checks' verdict."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.enums import (
    Action,
    AssignmentKind,
    AssignmentStatus,
    ItemStatus,
    MemberState,
    Suspension,
    TaskType,
    Tier,
    WebhookEvent,
)

__all__ = ["check_honeypots", "has_majority", "load_assignment", "record_answer"]
from bot.blocks.text import safe_mrkdwn
from bot.core.errors import Refused
from bot.core.types import Answer, LabelChoice
from bot.core.values import ValueProblem, canonical_key, labels_version, normalize
from bot.quality.scoring import score as score_answer
from bot.services import webhooks
from bot.services.completion import counting_keys, has_majority, settle
from bot.services.labeling.leases import expire_assignment
from bot.services.labeling.progress import PROGRESS_KINDS, count_done
from bot.services.labeling.quiz import after_quiz_answer
from bot.services.labeling.tasks import is_usable, usable_draft
from bot.services.projects import refuse_if_archived, spec_of, suspend_member, suspended_by_lead
from bot.spec import ProjectSpec
from storage.models import Assignment, Draft, Gold, Item, Label, Member, Project

# Answers
# ------------------------------------------------------------------------------------------


def _check_owner(assignment: Assignment | None, team_id: str, user_id: str) -> Assignment:
    """Never trust a payload: the assignment must be the clicking user's, in the clicking workspace."""
    if assignment is None or assignment.user_id != user_id or assignment.team_id != team_id:
        raise Refused("That example is not yours, so nothing was recorded.")
    return assignment


def load_assignment(session: Session, assignment_id: int, team_id: str, user_id: str) -> Assignment:
    """The assignment a click refers to, checked against the clicking user and workspace."""
    q = select(Assignment).where(Assignment.id == assignment_id).with_for_update()
    return _check_owner(session.scalar(q), team_id, user_id)


def _value_for(
    task: TaskType, spec: ProjectSpec, action: str, raw: Any, draft: Draft | None, text: str
) -> tuple[str, Any]:
    """Work out the stored action and value from a click, trusting only the server's draft."""
    if action in (Action.SKIP, Action.AMBIGUOUS):
        return action, None
    if action == Action.ACCEPT:
        if not is_usable(draft):
            raise Refused("There is no draft to accept on this example; choose an answer instead.")
        return Action.ACCEPT, draft.value
    try:
        value = normalize(task, raw, spec, text)
    except ValueProblem as e:
        raise Refused(f"That answer is not valid: {e}.") from None
    if draft is None or not is_usable(draft):
        return Action.MANUAL, value
    if canonical_key(value) == draft.value_key:
        return Action.ACCEPT, value
    if action == "choose":  # a different label than the drafted one
        return Action.REJECT, value
    return (Action.REJECT if action == Action.REJECT else Action.EDIT), value


STALE_LABELS = ("The project's labels changed after this example was shown, so nothing was recorded. "
                "Type `/label` to see it again with the current labels.")


def _resolve_indices(spec: ProjectSpec, value: Any) -> Any:
    """Buttons carry label positions in the list their message was built from, and that list's version:
    a position is mapped to a name only against the same list (a lead may have inserted or reordered
    labels since), otherwise the click is refused."""
    if not isinstance(value, LabelChoice):
        return value  # a label name, a set of names, spans or a rewrite: validated by `normalize`
    names = spec.label_names
    if value.version != labels_version(names):
        raise Refused(STALE_LABELS)
    if any(not 0 <= i < len(names) for i in value.indices):
        raise Refused("That label is not part of this project, so nothing was recorded.")
    chosen = [names[i] for i in value.indices]
    return chosen if value.many else chosen[0]


def record_answer(
    session: Session,
    *,
    team_id: str,
    user_id: str,
    assignment_id: int,
    action: str,
    value: Any = None,
    now: datetime,
) -> Answer:
    """Store one reply. A repeated click on a closed assignment is a no-op (`duplicate=True`).

    `action` is one of: choose (a label / a submitted value), accept, edit, reject, skip, ambiguous.
    """
    # One statement for the assignment, its item, project and member; the assignment and the item are
    # locked (the item's counters change below: no lost updates between concurrent answers).
    row = session.execute(
        select(Assignment, Item, Project, Member)
        .join(Item, Item.id == Assignment.item_id)
        .join(Project, Project.id == Assignment.project_id)
        .join(Member, Member.id == Assignment.member_id)
        .where(Assignment.id == assignment_id)
        .with_for_update(of=[Assignment, Item])
    ).one_or_none()
    _check_owner(row[0] if row is not None else None, team_id, user_id)
    assignment, item, project, member = row
    if assignment.status == AssignmentStatus.OPEN:
        refuse_if_archived(project)  # an archived project takes no more answers (a repeat click stays a no-op)
    spec = spec_of(project)
    if suspended_by_lead(member) and assignment.status == AssignmentStatus.OPEN:
        raise Refused(f"A lead paused your labels on *{safe_mrkdwn(project.name, 200)}*, so nothing was recorded.")
    base = dict(
        assignment_id=assignment.id, project_slug=project.slug, task=spec.task, text=item.text,
        kind=assignment.kind, channel=assignment.channel, ts=assignment.ts,
    )
    if assignment.status != AssignmentStatus.OPEN:
        label = session.scalar(select(Label).where(Label.assignment_id == assignment.id))
        if label is not None:
            return Answer(action=label.action, value=label.value, duplicate=True, **base)
        if assignment.status == AssignmentStatus.EXPIRED:
            raise Refused("This example expired and went back to the queue, so nothing was recorded. "
                          "Type `/label` for a new one.")
        raise Refused("This example is closed, so nothing was recorded. Type `/label` for a new one.")
    if assignment.expires_at <= now:
        expire_assignment(session, assignment, now)
        raise Refused("This example expired and went back to the queue, so nothing was recorded. "
                      "Type `/label` for a new one.")

    draft = session.get(Draft, assignment.draft_id) if assignment.draft_id else None
    if draft is None:
        # A blind item's draft may have been made after it was served: link it for drift analysis.
        draft = usable_draft(session, item.id, llm=spec.llm.enabled)
        if is_usable(draft):
            assignment.draft_id = draft.id
    shown_draft = draft if assignment.draft_shown else None
    if assignment.kind == AssignmentKind.QUIZ and action == Action.SKIP:
        raise Refused("Quiz questions cannot be skipped; choose your best answer.")
    value = _resolve_indices(spec, value)
    stored_action, stored_value = _value_for(spec.task, spec, action, value, shown_draft, item.text)
    if stored_action == Action.AMBIGUOUS and assignment.kind == AssignmentKind.QUIZ:
        raise Refused("Quiz questions need an answer; choose the closest one.")

    seconds = (now - assignment.shown_at).total_seconds() if assignment.shown_at else None
    counts = (
        member.counts
        and assignment.kind in (AssignmentKind.PRODUCTION, AssignmentKind.EXPERT)
        and stored_action not in (Action.SKIP, Action.AMBIGUOUS)
    )
    label = Label(
        assignment_id=assignment.id, project_id=project.id, item_id=item.id, member_id=member.id,
        user_id=member.user_id, kind=assignment.kind, action=stored_action, value=stored_value,
        value_key=canonical_key(stored_value) if stored_value is not None else None,
        draft_id=assignment.draft_id, draft_shown=assignment.draft_shown, seconds=seconds, counts=counts,
        guideline_version=project.guideline_version, created_at=now,
    )
    answer = Answer(action=stored_action, value=stored_value, counts=counts, seconds=seconds, **base)

    if assignment.kind in (AssignmentKind.QUIZ, AssignmentKind.HONEYPOT) and stored_value is not None:
        gold = session.scalar(select(Gold).where(Gold.item_id == item.id))
        if gold is not None:
            label.correct = score_answer(
                spec.task.value, stored_value, gold.value,
                jaccard_threshold=spec.quiz.jaccard_threshold, rewrite_threshold=spec.quiz.rewrite_threshold,
            )
    session.add(label)
    if assignment.kind in PROGRESS_KINDS and stored_action != Action.SKIP:
        count_done(session, member.id, now)
    assignment.status = AssignmentStatus.SKIPPED if stored_action == Action.SKIP else AssignmentStatus.DONE
    assignment.closed_at = now
    session.flush()

    if assignment.kind == AssignmentKind.PRODUCTION:
        before = item.status
        answer.escalated = _after_production_label(session, spec, item, label, now)
        if spec.webhooks and item.status != before:
            _item_event(session, project, spec, item, now)
    elif assignment.kind == AssignmentKind.EXPERT:
        item.updated_at = now  # a skip, an Ambiguous or a non-counting answer: to the back of the queue
        if label.counts:
            item.status = ItemStatus.RESOLVED
            if spec.webhooks:
                _item_event(session, project, spec, item, now, answer=stored_value, source="expert")
        elif stored_action == Action.AMBIGUOUS:
            item.escalation_reason = f"flagged ambiguous by the expert {member.user_id}"[:200]
    elif assignment.kind == AssignmentKind.HONEYPOT:
        reason = check_honeypots(session, spec, member, now)
        if reason:
            answer.suspended, answer.suspension_reason = True, reason
    elif assignment.kind == AssignmentKind.QUIZ:
        answer.feedback = after_quiz_answer(session, project, spec, member, assignment, label, now)
    return answer


def _item_event(session: Session, project: Project, spec: ProjectSpec, item: Item, now: datetime, *,
                answer: Any = None, source: str = "crowd") -> None:
    """The webhook event of an item that just completed or went to the expert queue (same transaction)."""
    if item.status == ItemStatus.ESCALATED:
        webhooks.enqueue(session, project, spec, WebhookEvent.ITEM_ESCALATED,
                         webhooks.item_data(item, reason=item.escalation_reason), now)
        return
    if item.status not in (ItemStatus.COMPLETE, ItemStatus.RESOLVED):
        return
    if source == "crowd":
        keys = session.scalars(select(Label.value_key).where(
            Label.item_id == item.id, Label.counts.is_(True), Label.kind == AssignmentKind.PRODUCTION)).all()
        answer = webhooks.final_answer(spec.task, list(keys))
    webhooks.enqueue(session, project, spec, WebhookEvent.ITEM_COMPLETED,
                     webhooks.item_data(item, answer=answer, source=source, labels=item.labels_done), now)


def _after_production_label(session: Session, spec: ProjectSpec, item: Item, label: Label, now: datetime) -> bool:
    """Update the item's counters and status; True when the item went to the expert queue."""
    item.updated_at = now
    if not label.counts:
        item.slots += 1  # this answer does not count: the item needs another one
        if label.action == Action.AMBIGUOUS and spec.escalation.on_ambiguous and item.status == ItemStatus.OPEN:
            item.status = ItemStatus.ESCALATED
            item.escalation_reason = f"flagged ambiguous by {label.user_id}"
            return True
        return False
    item.labels_done += 1
    if item.status != ItemStatus.OPEN or item.labels_done < spec.redundancy:
        return False
    return settle(spec, item, counting_keys(session, [item.id])[item.id])


def check_honeypots(session: Session, spec: ProjectSpec, member: Member, now: datetime) -> str | None:
    """Suspend a qualified member whose recent hidden-check accuracy fell below the floor."""
    if member.state != MemberState.QUALIFIED or member.tier == Tier.EXPERT:
        return None
    recent = session.scalars(
        select(Label.correct)
        .where(Label.member_id == member.id, Label.kind == AssignmentKind.HONEYPOT, Label.correct.is_not(None))
        .order_by(Label.id.desc())
        .limit(spec.honeypot.window)
    ).all()
    if len(recent) < spec.honeypot.min_checks:
        return None
    threshold = spec.quiz.rewrite_threshold if spec.task is TaskType.REWRITE else 1.0
    if spec.task is TaskType.MULTILABEL and spec.quiz.jaccard_threshold:
        threshold = spec.quiz.jaccard_threshold
    accuracy = sum(1 for c in recent if c >= threshold - 1e-9) / len(recent)
    if accuracy >= spec.honeypot.floor:
        return None
    suspend_member(member, now, source=Suspension.CHECKS, by="hidden checks", reason=(
        f"accuracy on the last {len(recent)} check items was {accuracy:.0%}, below the "
        f"{spec.honeypot.floor:.0%} floor"
    ))
    return member.state_reason


# ------------------------------------------------------------------------------------------
