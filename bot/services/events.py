"""Events API bookkeeping: Slack redelivers an event up to 3 times; each event_id is handled once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import ProcessedEvent


def first_delivery(db: Database, event_id: str, now: datetime) -> bool:
    """True for the first delivery of `event_id` across every replica sharing the database."""
    try:
        with db.session() as s:
            s.add(ProcessedEvent(event_id=event_id[:64], created_at=now))
    except IntegrityError:
        return False
    return True
