"""A member's progress (answers today, examples left) with short-lived caches, and the per-member lock."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core.enums import (
    Action,
    AssignmentKind,
    ItemStatus,
)
from bot.core.types import Progress
from storage.models import Item, Label, Member, Project


def fraction(*parts: object) -> float:
    """A deterministic pseudo-random number in [0, 1) (unpredictable to annotators)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64




def start_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


_DONE_TTL = 120.0
_done_cache: dict[tuple[str, int, str], tuple[float, int]] = {}
PROGRESS_KINDS = (AssignmentKind.PRODUCTION, AssignmentKind.HONEYPOT, AssignmentKind.EXPERT)


def _done_key(session: Session, member_id: int, now: datetime) -> tuple[str, int, str]:
    return (str(session.get_bind().engine.url), member_id, start_of_day(now).date().isoformat())


def count_done(session: Session, member_id: int, now: datetime) -> None:
    """Keep the cached "done today" in step with an answer just stored (this process's view)."""
    key = _done_key(session, member_id, now)
    cached = _done_cache.get(key)
    if cached is not None:
        _done_cache[key] = (cached[0], cached[1] + 1)


def progress_for(session: Session, project: Project, member: Member, now: datetime) -> Progress:
    """Done today and left in the queue, for the progress line (both cached briefly: a guide, not a
    ledger, and a click should not pay for two aggregate queries)."""
    key = _done_key(session, member.id, now)
    cached = _done_cache.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return Progress(cached[1], _queue_left(session, project.id))
    done_today = session.scalar(
        select(func.count())
        .select_from(Label)
        .where(
            Label.member_id == member.id,
            Label.kind.in_(PROGRESS_KINDS),
            Label.created_at >= start_of_day(now),
            Label.action.notin_([Action.SKIP]),
        )
    )
    if len(_done_cache) > 10_000:
        _done_cache.clear()
    _done_cache[key] = (time.monotonic() + _DONE_TTL, int(done_today or 0))
    return Progress(int(done_today or 0), _queue_left(session, project.id))


_LEFT_TTL = 30.0
_left_cache: dict[tuple[str, int], tuple[float, int]] = {}


def _queue_left(session: Session, project_id: int) -> int:
    """Labels still to collect in a project. Summing is O(open items), so it is cached for 30 s:
    the progress line is a guide, and a click must not cost more as the project grows."""
    key = (str(session.get_bind().engine.url), project_id)
    cached = _left_cache.get(key)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    left = session.scalar(
        select(func.coalesce(func.sum(Item.slots), 0)).where(
            Item.project_id == project_id, Item.status == ItemStatus.OPEN
        )
    )
    _left_cache[key] = (now + _LEFT_TTL, int(left or 0))
    return int(left or 0)


def lock_member(session: Session, member: Member, dialect: str) -> None:
    """Serialize serving for one member (PostgreSQL row lock; SQLite writers are already serialized)."""
    if dialect != "sqlite":
        session.execute(select(Member.id).where(Member.id == member.id).with_for_update())


# ------------------------------------------------------------------------------------------
