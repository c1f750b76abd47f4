"""Counts in the one vocabulary of `bot.core.activity`, straight from the database (GROUP BY, no rows
loaded): a project's label rows over any period, and its items by status with gold items apart. The
report, `labelbot project list` and `labelbot project show` all count through here or through the
same vocabulary on the report's frame, so they agree."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core.activity import Activity
from bot.core.enums import ItemStatus
from storage.models import Item, Label

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_END = datetime(9999, 1, 1, tzinfo=UTC)


def _activity(session: Session, project_id: int, since: datetime, until: datetime) -> Activity:
    rows = session.execute(
        select(Label.kind, Label.action, Label.counts, func.count())
        .where(Label.project_id == project_id, Label.created_at >= since, Label.created_at < until)
        .group_by(Label.kind, Label.action, Label.counts)
    ).all()
    return Activity.from_rows(rows)


def activity_between(session: Session, project_id: int, since: datetime | None = None,
                     until: datetime | None = None) -> Activity:
    """Label rows of a project in [since, until) (all time by default), in the one vocabulary."""
    return _activity(session, project_id, since or _EPOCH, until or _END)


def item_counts(session: Session, project_id: int) -> dict[str, int]:
    """Items by status (gold items apart): open, complete, in_expert_queue, resolved, escalated, gold, total."""
    by_status = dict(
        session.execute(select(Item.status, func.count()).where(Item.project_id == project_id)
                        .group_by(Item.status)).all()
    )
    n = {status: int(by_status.get(status, 0)) for status in ItemStatus}
    return {
        "total": n[ItemStatus.OPEN] + n[ItemStatus.COMPLETE] + n[ItemStatus.ESCALATED] + n[ItemStatus.RESOLVED],
        "open": n[ItemStatus.OPEN],
        "complete": n[ItemStatus.COMPLETE],
        "escalated": n[ItemStatus.ESCALATED] + n[ItemStatus.RESOLVED],
        "in_expert_queue": n[ItemStatus.ESCALATED],
        "resolved": n[ItemStatus.RESOLVED],
        "gold": n[ItemStatus.GOLD],
    }


