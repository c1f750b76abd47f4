"""The one DM each qualified annotator gets about a new guideline version.

Publishing writes a `pending` notice per annotator. A sender claims notices (pending, or `sending`
for longer than `STALE` minutes: its sender died) with one UPDATE ... RETURNING, so two replicas, or
the job and the handler that published, never both send one; then marks each sent or failed. A
failed send is retried on the next run, `MAX_ATTEMPTS` times in all.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from bot.core.guidelines import Notice
from storage.db import Database
from storage.models import GuidelineNotice, GuidelineVersion, Project

STALE = timedelta(minutes=10)
MAX_ATTEMPTS = 3
BATCH = 200


def claim(db: Database, now: datetime, *, version_id: int | None = None, limit: int = BATCH) -> list[Notice]:
    """Claim up to `limit` notices to send now (of one version, or of any)."""
    claimable = or_(
        and_(GuidelineNotice.status == "pending", GuidelineNotice.attempts < MAX_ATTEMPTS),
        and_(GuidelineNotice.status == "sending", GuidelineNotice.claimed_at < now - STALE),
    )
    with db.session() as s:
        q = select(GuidelineNotice.id).where(claimable)
        if version_id is not None:
            q = q.where(GuidelineNotice.version_id == version_id)
        # Concurrent senders skip each other's rows (PostgreSQL); SQLite serialises writers anyway.
        ids = list(s.scalars(q.order_by(GuidelineNotice.id).limit(limit).with_for_update(skip_locked=True)))
        if not ids:
            return []
        won = list(s.scalars(
            update(GuidelineNotice)
            .where(GuidelineNotice.id.in_(ids), claimable)
            .values(status="sending", claimed_at=now, attempts=GuidelineNotice.attempts + 1)
            .returning(GuidelineNotice.id)
            .execution_options(synchronize_session=False)
        ))
        if not won:
            return []
        rows = s.execute(
            select(GuidelineNotice.id, GuidelineNotice.team_id, GuidelineNotice.user_id, Project.slug, Project.name,
                   GuidelineVersion.version, GuidelineVersion.summary, GuidelineVersion.author)
            .join(GuidelineVersion, GuidelineVersion.id == GuidelineNotice.version_id)
            .join(Project, Project.id == GuidelineVersion.project_id)
            .where(GuidelineNotice.id.in_(won))
            .order_by(GuidelineNotice.id)
        ).all()
    return [
        Notice(id=int(r[0]), team_id=str(r[1]), user_id=str(r[2]), slug=str(r[3]), name=str(r[4]), version=int(r[5]),
               summary=[str(x) for x in r[6] or []], author=str(r[7]))
        for r in rows
    ]


def sent(db: Database, notice_id: int, now: datetime, *, channel: str | None, ts: str | None) -> None:
    with db.session() as s:
        s.execute(
            update(GuidelineNotice).where(GuidelineNotice.id == notice_id)
            .values(status="sent", sent_at=now, channel=channel, ts=ts, error=None)
            .execution_options(synchronize_session=False)
        )


def failed(db: Database, notice_id: int, error: str) -> None:
    """Back to pending (retried by the next run) until `MAX_ATTEMPTS`, then failed for good."""
    with db.session() as s:
        row = s.get(GuidelineNotice, notice_id)
        if row is None:
            return
        row.error = error[:2000]
        row.status = "failed" if row.attempts >= MAX_ATTEMPTS else "pending"


def counts(db: Database, version_id: int) -> dict[str, int]:
    """Notices of a version by status."""
    from sqlalchemy import func

    with db.read() as s:
        rows = s.execute(
            select(GuidelineNotice.status, func.count()).where(GuidelineNotice.version_id == version_id)
            .group_by(GuidelineNotice.status)
        ).all()
    return {str(k): int(v) for k, v in rows}
