"""Locks shared by every process on one database: start-up steps one process at a time, and
scheduled work once per period across replicas."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import JobLock


def instance_name() -> str:
    """This process, as recorded on the rows it claims (host:pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def once_per_period(db: Database, name: str, period: str, now: datetime) -> bool:
    """True for exactly one caller per (name, period) across every process sharing the database."""
    try:
        with db.session() as s:
            s.add(JobLock(name=name, period=period, created_at=now))
    except IntegrityError:
        return False
    return True


def prune_job_locks(db: Database, before: datetime, batch: int = 5000) -> int:
    """Delete job locks created before `before` (their periods are over), in batches; returns how many."""
    removed = 0
    while True:
        with db.session() as s:
            ids = s.scalars(select(JobLock.id).where(JobLock.created_at < before).limit(batch)).all()
            if not ids:
                return removed
            s.execute(delete(JobLock).where(JobLock.id.in_(ids)))
            removed += len(ids)


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"labelbot:{name}".encode(), digest_size=8).digest(), "big", signed=True)


@contextlib.contextmanager
def startup_lock(db: Database, name: str) -> Iterator[None]:
    """Run a start-up step (migrations, creating tables) in one process at a time.

    PostgreSQL: a session advisory lock; SQLite: nothing (its writers are serialized already)."""
    if not db.is_postgres:
        yield
        return
    key = _lock_key(name)
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
