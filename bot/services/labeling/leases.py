"""Leases: an example served and not answered goes back to the queue when its lease runs out."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.core.enums import (
    AssignmentKind,
    AssignmentStatus,
)
from storage.models import Assignment, Item

# Leases
# ------------------------------------------------------------------------------------------


def expire_assignment(session: Session, assignment: Assignment, now: datetime) -> None:
    assignment.status = AssignmentStatus.EXPIRED
    assignment.closed_at = now
    if assignment.kind == AssignmentKind.PRODUCTION:
        session.execute(
            update(Item).where(Item.id == assignment.item_id).values(slots=Item.slots + 1, updated_at=now)
        )


def cancel_assignment(session: Session, assignment: Assignment, now: datetime) -> None:
    """Close an open assignment that cannot be shown (its production slot goes back to the queue)."""
    assignment.status = AssignmentStatus.CANCELLED
    assignment.closed_at = now
    if assignment.kind == AssignmentKind.PRODUCTION:
        session.execute(
            update(Item).where(Item.id == assignment.item_id).values(slots=Item.slots + 1, updated_at=now)
        )


def expire_leases(session: Session, now: datetime, limit: int = 500) -> list[tuple[str | None, str | None]]:
    """Return expired production leases to the queue. Returns (channel, ts) of their messages."""
    rows = session.scalars(
        select(Assignment)
        .where(
            Assignment.status == AssignmentStatus.OPEN,
            Assignment.expires_at <= now,
            Assignment.kind != AssignmentKind.QUIZ,
        )
        .order_by(Assignment.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for a in rows:
        expire_assignment(session, a, now)
    return [(a.channel, a.ts) for a in rows]


def set_message(session: Session, assignment_id: int, channel: str, ts: str) -> None:
    session.execute(update(Assignment).where(Assignment.id == assignment_id).values(channel=channel, ts=ts))


# ------------------------------------------------------------------------------------------
