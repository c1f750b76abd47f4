"""Serving order for a member: their open assignment (continue) -> escalated items (experts) ->
a hidden gold check (at `gold_rate`) -> production work, items nearest completion first."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from bot.core.enums import (
    AssignmentKind,
    AssignmentStatus,
    ItemStatus,
    Tier,
)
from bot.core.types import Task
from bot.services.drafting.store import few_shot_gold
from bot.services.images.serving import servable
from bot.services.labeling.progress import fraction, lock_member
from bot.services.labeling.tasks import build_task, is_usable, usable_draft
from bot.services.projects import get_member, spec_of
from bot.spec import ProjectSpec
from storage.models import Assignment, Gold, Item, Member, Project

# Serving
# ------------------------------------------------------------------------------------------


def _open_assignment(session: Session, member: Member, now: datetime) -> Assignment | None:
    return session.scalar(
        select(Assignment)
        .where(
            Assignment.member_id == member.id,
            Assignment.status == AssignmentStatus.OPEN,
            Assignment.expires_at > now,
            Assignment.kind != AssignmentKind.QUIZ,
        )
        .order_by(Assignment.id)
        .limit(1)
    )


CLAIM_WINDOW = 64  # partly labeled candidates looked at before moving on to fresh items


def _claim_production(
    session: Session, project: Project, member: Member, dialect: str, redundancy: int
) -> Item | None:
    """Lease an open item this member has not had, nearest completion first.

    Three tiers keep the cost flat however many items the member has already labeled:
    1. the first CLAIM_WINDOW partly labeled items in serving order (a member far ahead of the others
       would otherwise skip their own history one row at a time);
    2. fresh items (no label yet): a member has history there only through skips and expired leases;
    3. every partly labeled item, only when the first two find nothing (the end of the queue).
    """
    seen = exists().where(Assignment.item_id == Item.id, Assignment.member_id == member.id)
    # `servable`: an image item waits until its image is uploaded to the workspace (a column test for
    # text items, one unique-index probe for image items).
    open_ = (Item.project_id == project.id, Item.status == ItemStatus.OPEN, Item.slots > 0,
             servable(project.team_id))
    window = (
        select(Item.id).where(*open_, Item.slots < redundancy).order_by(Item.slots, Item.id).limit(CLAIM_WINDOW)
    )
    tiers = [
        # The outer query repeats the open-item conditions: PostgreSQL re-checks them on the row's newest
        # version after locking it, so an item another annotator just took the last slot of is skipped.
        select(Item).where(Item.id.in_(window.scalar_subquery()), *open_, ~seen),
        select(Item).where(*open_, Item.slots >= redundancy, ~seen),
        select(Item).where(*open_, Item.slots < redundancy, ~seen),
    ]
    for q in tiers:
        q = q.order_by(Item.slots, Item.id).limit(1)
        if dialect == "postgresql":
            # SKIP LOCKED: never wait on another annotator's claim. (Waiting instead deadlocks against a
            # transaction that holds its answered item's row; a queue whose last items are locked for an
            # instant reads as busy, and the person is told to try again.)
            q = q.with_for_update(skip_locked=True, of=Item)
        item = session.scalar(q)
        if item is not None:
            item.slots -= 1
            return item
    return None


def queue_busy(session: Session, project: Project, user_id: str) -> bool:
    """True when nothing could be served to this user but open work remains that they have not seen:
    other annotators hold it (leases, or rows locked for an instant). Run only when serving came back
    empty, so it costs nothing on the hot path."""
    member = get_member(session, project, user_id)
    if member is None:
        return False
    seen = exists().where(Assignment.item_id == Item.id, Assignment.member_id == member.id)
    waiting = select(Item.id).where(Item.project_id == project.id, Item.status == ItemStatus.OPEN, ~seen,
                                    servable(project.team_id)).limit(1)
    return session.scalar(waiting) is not None


def _claim_escalated(
    session: Session, project: Project, member: Member, dialect: str, now: datetime
) -> Item | None:
    """The oldest escalated item no other expert holds, that this expert has not skipped or answered
    already (an expert's Ambiguous leaves the item for another expert). One whose lease ran out comes
    back to them (as a new round of the same assignment kind)."""
    held = exists().where(
        Assignment.item_id == Item.id,
        Assignment.kind == AssignmentKind.EXPERT,
        Assignment.status == AssignmentStatus.OPEN,
        Assignment.expires_at > now,
    )
    passed = exists().where(
        Assignment.item_id == Item.id,
        Assignment.member_id == member.id,
        Assignment.kind == AssignmentKind.EXPERT,
        Assignment.status.in_([AssignmentStatus.DONE, AssignmentStatus.SKIPPED]),
    )
    q = (
        select(Item)
        .where(Item.project_id == project.id, Item.status == ItemStatus.ESCALATED, ~held, ~passed,
               servable(project.team_id))
        .order_by(Item.updated_at, Item.id)
        .limit(1)
    )
    if dialect == "postgresql":
        q = q.with_for_update(skip_locked=True, of=Item)
    return session.scalar(q)


def _next_round(session: Session, item: Item, member: Member, kind: str) -> int:
    """An expert may be served an item again after their lease ran out: a new round keeps the
    assignment unique per item, member, kind and round."""
    if kind != AssignmentKind.EXPERT:
        return 0
    return int(session.scalar(
        select(func.count()).select_from(Assignment)
        .where(Assignment.item_id == item.id, Assignment.member_id == member.id, Assignment.kind == kind)
    ) or 0)


def _pick_honeypot(session: Session, project: Project, spec: ProjectSpec, member: Member) -> Item | None:
    seen = exists().where(
        Assignment.item_id == Item.id,
        Assignment.member_id == member.id,
        Assignment.kind == AssignmentKind.HONEYPOT,
    )
    conditions = [Gold.project_id == project.id, ~seen, servable(project.team_id)]
    examples = [ex.gold_id for ex in few_shot_gold(session, project.id, spec)]
    if examples:
        conditions.append(Gold.id.notin_(examples))
    n = session.scalar(select(func.count()).select_from(Gold).where(Gold.project_id == project.id)) or 0
    if not n:
        return None
    # Start at a pseudo-random gold id so members do not all see the same checks in order.
    pivot = int(fraction(member.id, member.served, "pivot") * n)
    base = select(Item).join(Gold, Gold.item_id == Item.id).where(*conditions).order_by(Item.id)
    return session.scalar(base.offset(pivot).limit(1)) or session.scalar(base.limit(1))


def next_task(
    session: Session, project: Project, member: Member, now: datetime, dialect: str, *, resume: bool = True
) -> Task | None:
    """Continue the member's open example or lease a new one. None when there is nothing to do.

    `resume=False` right after an answer: the member's one open example was just closed (serving is
    serialized per member), so there is nothing to continue."""
    spec = spec_of(project)
    lock_member(session, member, dialect)
    current = _open_assignment(session, member, now) if resume else None
    if current is not None:
        return build_task(session, project, spec, current, now)

    item: Item | None = None
    kind = AssignmentKind.PRODUCTION
    if member.tier == Tier.EXPERT:
        item = _claim_escalated(session, project, member, dialect, now)
        kind = AssignmentKind.EXPERT
    if item is None and spec.gold_rate > 0 and fraction(member.id, member.served, "gold") < spec.gold_rate:
        item = _pick_honeypot(session, project, spec, member)
        kind = AssignmentKind.HONEYPOT
    if item is None:
        item = _claim_production(session, project, member, dialect, spec.redundancy)
        kind = AssignmentKind.PRODUCTION
    if item is None:
        return None

    blind = False
    if kind in (AssignmentKind.PRODUCTION, AssignmentKind.HONEYPOT):
        member.served += 1
        blind = spec.blind_every > 0 and member.served % spec.blind_every == 0
    draft = usable_draft(session, item.id, llm=spec.llm.enabled)
    shown = is_usable(draft) and not blind and kind != AssignmentKind.EXPERT
    assignment = Assignment(
        project_id=project.id, item_id=item.id, member_id=member.id, team_id=member.team_id,
        user_id=member.user_id, kind=kind, round=_next_round(session, item, member, kind),
        status=AssignmentStatus.OPEN,
        draft_id=draft.id if is_usable(draft) else None, draft_shown=bool(shown), blind=blind,
        seq=member.served, leased_at=now, expires_at=now + timedelta(minutes=spec.lease_minutes), shown_at=now,
    )
    session.add(assignment)
    session.flush()
    return build_task(session, project, spec, assignment, now, item=item, draft=draft)
