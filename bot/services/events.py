"""Events API bookkeeping: Slack redelivers an event up to 3 times (immediately, after 1 and 5 minutes);
each event_id is handled once, and a delivery whose handling failed is handled again on Slack's retry.

A delivery is claimed (a `processed_events` row, state "claimed") in its own short transaction, the
listener runs, then the claim becomes "done". If the listener raises, the claim is removed with the
failure, so the retry is handled. If the process died mid-way, its claim is taken over by a delivery
that comes more than `CLAIM_TTL` later (Slack's retries come after 1 and 5 minutes). The claim is not
held open across the listener's Slack calls: on SQLite that would be the write lock, during an HTTP call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import ProcessedEvent

CLAIM_TTL = timedelta(seconds=50)  # Slack retries after 1 and 5 minutes; handlers take a second or two
KEEP_EVENTS = timedelta(days=1)  # Slack stops retrying after about 5 minutes


def claim(db: Database, event_id: str, now: datetime) -> bool:
    """True when this delivery of `event_id` is to be handled here (across every replica)."""
    key = event_id[:64]
    try:
        with db.session() as s:
            s.add(ProcessedEvent(event_id=key, state="claimed", created_at=now))
        return True
    except IntegrityError:
        pass
    with db.session() as s:  # a claim whose handler died long ago: take it over
        taken = s.execute(
            update(ProcessedEvent)
            .where(ProcessedEvent.event_id == key, ProcessedEvent.state == "claimed",
                   ProcessedEvent.created_at < now - CLAIM_TTL)
            .values(created_at=now)
            .returning(ProcessedEvent.event_id)
        ).first()
    return taken is not None


def finish(db: Database, event_id: str) -> None:
    with db.session() as s:
        s.execute(update(ProcessedEvent).where(ProcessedEvent.event_id == event_id[:64]).values(state="done"))


def release(db: Database, event_id: str) -> None:
    """The handling failed: forget the claim so that Slack's retry is handled."""
    with db.session() as s:
        s.execute(delete(ProcessedEvent).where(ProcessedEvent.event_id == event_id[:64],
                                               ProcessedEvent.state == "claimed"))


@contextlib.contextmanager
def handling(db: Database, event_id: str | None, now: datetime) -> Iterator[bool]:
    """`with handling(db, event_id, now) as mine:` -- handle the event only when `mine`. The claim is
    finished when the block succeeds and released when it raises (the exception goes on)."""
    if not event_id:
        yield True
        return
    if not claim(db, event_id, now):
        yield False
        return
    try:
        yield True
    except BaseException:
        release(db, event_id)
        raise
    finish(db, event_id)


def prune_events(db: Database, now: datetime, batch: int = 5000) -> int:
    """Forget deliveries older than `KEEP_EVENTS` (in batches); returns how many rows went."""
    removed = 0
    while True:
        with db.session() as s:
            keys = s.scalars(select(ProcessedEvent.event_id).where(ProcessedEvent.created_at < now - KEEP_EVENTS)
                             .limit(batch)).all()
            if not keys:
                return removed
            s.execute(delete(ProcessedEvent).where(ProcessedEvent.event_id.in_(keys)))
            removed += len(keys)
