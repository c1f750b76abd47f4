"""When an item has its labels: the completion and majority check, and the slots an item still needs.

Shared by the labeling loop (after each counting answer) and by `project update` (a new `redundancy`
recomputes every unsettled item from what it has: counting labels and leases still out).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import Session

from bot.core.enums import AssignmentKind, AssignmentStatus, ItemStatus, TaskType
from bot.spec import ProjectSpec
from storage.models import Assignment, Item, Label, Project

SETTLE_CHUNK = 1000
NO_MAJORITY = "no majority among the crowd's labels"


def has_majority(task: TaskType, value_keys: list[str | None]) -> bool:
    """More than half of the answers agree (per label for multilabel, per span for spans)."""
    keys = [k for k in value_keys if k is not None]
    if not keys:
        return False
    n = len(keys)
    if task in (TaskType.CLASSIFICATION, TaskType.REWRITE):
        return Counter(keys).most_common(1)[0][1] * 2 > n
    # Multilabel and spans: every element chosen by anyone must be clearly in or clearly out.
    votes: Counter[str] = Counter()
    for k in keys:
        for element in json.loads(k):
            votes[json.dumps(element, sort_keys=True)] += 1
    return all(v * 2 != n for v in votes.values())


def settle(spec: ProjectSpec, item: Item, value_keys: list[str | None]) -> bool:
    """An open item with `redundancy` counting labels is complete, or escalated when its answers have
    no majority (and the project escalates those). True when it was escalated."""
    if item.status != ItemStatus.OPEN or item.labels_done < spec.redundancy:
        return False
    if spec.escalation.on_no_majority and not has_majority(spec.task, value_keys):
        item.status = ItemStatus.ESCALATED
        item.escalation_reason = NO_MAJORITY
        return True
    item.status = ItemStatus.COMPLETE
    return False


def counting_keys(session: Session, item_ids: list[int]) -> dict[int, list[str | None]]:
    """The counting crowd answers (value keys) of these items."""
    out: dict[int, list[str | None]] = {i: [] for i in item_ids}
    rows = session.execute(
        select(Label.item_id, Label.value_key).where(
            Label.item_id.in_(item_ids), Label.counts.is_(True), Label.kind == AssignmentKind.PRODUCTION
        )
    )
    for item_id, key in rows:
        out[item_id].append(key)
    return out


@dataclass
class Rebalanced:
    """What a new `redundancy` did to a project's unsettled items."""

    reopened: int = 0
    completed: int = 0
    escalated: int = 0

    def describe(self) -> str:
        parts = [f"{n} {what}" for n, what in ((self.reopened, "reopened"), (self.completed, "completed"),
                                                 (self.escalated, "escalated (no majority)")) if n]
        return ", ".join(parts) or "no item changed status"


def rebalance(session: Session, project: Project, spec: ProjectSpec, now: datetime) -> Rebalanced:
    """Apply `spec.redundancy` to every open or complete item of the project.

    Slots are recomputed from what each item has, never shifted by the difference: redundancy minus its
    counting labels minus the leases still out (a lease returns its slot when it expires, so forgetting
    it would hand the item out once too often later). An item that reaches the new redundancy gets the
    same completion and majority check as after an answer: a 1:1 tie is escalated, not complete.
    Escalated and resolved items stay settled."""
    result = Rebalanced()
    leases = (
        select(func.count())
        .select_from(Assignment)
        .where(
            Assignment.item_id == Item.id,
            Assignment.kind == AssignmentKind.PRODUCTION,
            Assignment.status == AssignmentStatus.OPEN,
        )
        .scalar_subquery()
    )
    wanted = spec.redundancy - Item.labels_done - leases
    unsettled = (Item.project_id == project.id, Item.status.in_([ItemStatus.OPEN, ItemStatus.COMPLETE]))
    session.execute(
        update(Item).where(*unsettled).values(slots=case((wanted > 0, wanted), else_=0), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    reopened = session.execute(
        update(Item)
        .where(Item.project_id == project.id, Item.status == ItemStatus.COMPLETE, Item.labels_done < spec.redundancy)
        .values(status=ItemStatus.OPEN.value)
        .execution_options(synchronize_session=False)
    )
    result.reopened = int(reopened.rowcount or 0)
    # Open items that now have their labels: complete, or escalated without a majority (in chunks).
    due = and_(Item.project_id == project.id, Item.status == ItemStatus.OPEN, Item.labels_done >= spec.redundancy)
    last = 0
    while True:
        items = list(session.scalars(
            select(Item).where(due, Item.id > last).order_by(Item.id).limit(SETTLE_CHUNK)
        ))
        if not items:
            break
        keys = counting_keys(session, [i.id for i in items])
        for item in items:
            if settle(spec, item, keys[item.id]):
                result.escalated += 1
            else:
                result.completed += 1
            item.updated_at = now
        last = items[-1].id
        session.flush()
    return result
