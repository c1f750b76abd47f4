"""When an item has its labels: the completion and majority check, and the slots an item still needs.

Shared by the labeling loop (after each counting answer) and by `project update` (a new `redundancy`
recomputes every unsettled item from what it has: counting labels and leases still out).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, case, func, select, update
from sqlalchemy.orm import Session

from bot.core.enums import AssignmentKind, AssignmentStatus, ItemStatus, TaskType
from bot.spec import ProjectSpec
from storage.db import Database
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


def rebalance(session: Session, project: Project, spec: ProjectSpec, now: datetime,
              ids: tuple[int, int] | None = None) -> Rebalanced:
    """Apply `spec.redundancy` to the open and complete items of the project (those with ids in
    `ids`, inclusive, when given).

    Slots are recomputed from what each item has, never shifted by the difference: redundancy minus its
    counting labels minus the leases still out (a lease returns its slot when it expires, so forgetting
    it would hand the item out once too often later). An item that reaches the new redundancy gets the
    same completion and majority check as after an answer: a 1:1 tie is escalated, not complete.
    Escalated and resolved items stay settled. Idempotent: it reads only the current state."""
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
    mine = [Item.project_id == project.id]
    if ids is not None:
        mine += [Item.id >= ids[0], Item.id <= ids[1]]
    session.execute(
        update(Item).where(*mine, Item.status.in_([ItemStatus.OPEN, ItemStatus.COMPLETE]))
        .values(slots=case((wanted > 0, wanted), else_=0), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    reopened = session.execute(
        update(Item)
        .where(*mine, Item.status == ItemStatus.COMPLETE, Item.labels_done < spec.redundancy)
        .values(status=ItemStatus.OPEN.value)
        .execution_options(synchronize_session=False)
    )
    result.reopened = int(reopened.rowcount or 0)
    # Open items that now have their labels: complete, or escalated without a majority (in chunks,
    # written with one executemany per chunk).
    due = and_(*mine, Item.status == ItemStatus.OPEN, Item.labels_done >= spec.redundancy)
    table = Item.__table__
    settle_stmt = (
        update(table).where(table.c.id == bindparam("item"))
        .values(status=bindparam("new_status"), escalation_reason=bindparam("reason"), updated_at=now)
    )
    last = 0
    while True:
        found = list(session.scalars(select(Item.id).where(due, Item.id > last).order_by(Item.id).limit(SETTLE_CHUNK)))
        if not found:
            break
        keys = counting_keys(session, found)
        rows = []
        for item_id in found:
            tie = spec.escalation.on_no_majority and not has_majority(spec.task, keys[item_id])
            rows.append({"item": item_id, "new_status": (ItemStatus.ESCALATED if tie else ItemStatus.COMPLETE).value,
                         "reason": NO_MAJORITY if tie else None})
            if tie:
                result.escalated += 1
            else:
                result.completed += 1
        session.connection().execute(settle_stmt, rows)
        last = found[-1]
    return result


def rebalance_in_chunks(db: Database, project_id: int, spec: ProjectSpec, now: datetime,
                        chunk: int = 2000) -> Rebalanced:
    """`rebalance` over the whole project, a range of item ids per short transaction, so that a big
    project's update never holds the write lock (SQLite) or its items' rows (PostgreSQL) for long: the
    bot keeps answering in between, and every chunk reads the state as it is then. Safe to run again
    (`labelbot project rebalance`) after an interruption."""
    total = Rebalanced()
    last = 0
    while True:
        with db.session() as s:
            project = s.get(Project, project_id)
            assert project is not None
            ids = list(s.scalars(select(Item.id).where(Item.project_id == project_id, Item.id > last)
                                 .order_by(Item.id).limit(chunk)))
            if not ids:
                return total
            part = rebalance(s, project, spec, now, (ids[0], ids[-1]))
        total.reopened += part.reopened
        total.completed += part.completed
        total.escalated += part.escalated
        last = ids[-1]
