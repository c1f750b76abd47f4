"""The data model (SQLAlchemy 2, typed). One module so that Alembic sees everything.

Guarantees carried by the schema (see DESIGN.md):
- every project and member belongs to a Slack workspace (`team_id`);
- a label is unique per assignment; an annotator holds at most one assignment per item and kind;
- a draft is unique per item + model + prompt version; a report run per project and day;
- hot lookups (work selection, lease expiry, a member's open assignment, labels by project and
  time) have indexes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from bot.core.enums import (
    AssignmentStatus,
    DraftStatus,
    ItemStatus,
    MemberState,
    QuizStatus,
    Tier,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BigInteger ids on PostgreSQL, INTEGER PRIMARY KEY (rowid alias) on SQLite.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, Any: JSON}


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32), index=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("project_id", "user_id"),
        Index("ix_members_team_user", "team_id", "user_id"),
    )
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    team_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    tier: Mapped[str] = mapped_column(String(16), default=Tier.CROWD)
    state: Mapped[str] = mapped_column(String(16), default=MemberState.NEW)
    served: Mapped[int] = mapped_column(Integer, default=0)  # production examples served (blind cadence)
    state_reason: Mapped[str | None] = mapped_column(Text)
    qualified_at: Mapped[datetime | None]
    suspended_at: Mapped[datetime | None]
    # Who paused the member: "checks" (hidden checks; a retake after the cooldown lifts it) or "lead"
    # (only a lead reinstates), and their name (the lead's CLI user or Slack id).
    suspension: Mapped[str | None] = mapped_column(String(16))
    suspended_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]

    @property
    def counts(self) -> bool:
        """Whether this member's labels count right now (experts are qualified on creation)."""
        return self.state == MemberState.QUALIFIED


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("project_id", "external_id"),
        # Work selection: open items of a project, nearest completion first.
        Index("ix_items_queue", "project_id", "status", "slots", "id"),
    )
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=ItemStatus.OPEN)
    # Assignments still to hand out before the item has `redundancy` labels (leases included).
    slots: Mapped[int] = mapped_column(Integer)
    labels_done: Mapped[int] = mapped_column(Integer, default=0)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    escalation_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Gold(Base):
    __tablename__ = "gold"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), unique=True)
    value: Mapped[Any] = mapped_column(JSON)
    value_key: Mapped[str] = mapped_column(Text)
    explanation: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), default="import")  # import | promoted
    created_at: Mapped[datetime]

    item: Mapped[Item] = relationship(lazy="raise")


class Draft(Base):
    __tablename__ = "drafts"
    __table_args__ = (
        UniqueConstraint("item_id", "model", "prompt_version"),
        Index("ix_drafts_project_created", "project_id", "created_at"),
    )
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(200))
    prompt_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=DraftStatus.OK)
    value: Mapped[Any | None] = mapped_column(JSON)
    value_key: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Float)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    batch_id: Mapped[str | None] = mapped_column(String(100))
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        # At most one assignment per item, annotator and kind (a quiz retake is a new round).
        UniqueConstraint("item_id", "member_id", "kind", "round"),
        Index("ix_assignments_member_status", "member_id", "status"),
        Index("ix_assignments_status_expires", "status", "expires_at"),
        Index("ix_assignments_item_member", "item_id", "member_id"),
        Index("ix_assignments_quiz", "quiz_attempt_id"),
    )
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    team_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    round: Mapped[int] = mapped_column(Integer, default=0)  # quiz attempt ordinal; 0 otherwise
    status: Mapped[str] = mapped_column(String(16), default=AssignmentStatus.OPEN)
    draft_id: Mapped[int | None] = mapped_column(ForeignKey("drafts.id", ondelete="SET NULL"))
    draft_shown: Mapped[bool] = mapped_column(Boolean, default=False)
    blind: Mapped[bool] = mapped_column(Boolean, default=False)
    quiz_attempt_id: Mapped[int | None] = mapped_column(ForeignKey("quiz_attempts.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer, default=0)  # n-th example served to the member (blind cadence)
    leased_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    shown_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    channel: Mapped[str | None] = mapped_column(String(32))
    ts: Mapped[str | None] = mapped_column(String(32))


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (
        Index("ix_labels_project_created", "project_id", "created_at"),
        Index("ix_labels_item", "item_id"),
        Index("ix_labels_member_kind", "member_id", "kind", "id"),
        Index("ix_labels_member_created", "member_id", "created_at"),
    )
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    value: Mapped[Any | None] = mapped_column(JSON)
    value_key: Mapped[str | None] = mapped_column(Text)
    draft_id: Mapped[int | None] = mapped_column(ForeignKey("drafts.id", ondelete="SET NULL"))
    draft_shown: Mapped[bool] = mapped_column(Boolean)
    seconds: Mapped[float | None] = mapped_column(Float)
    counts: Mapped[bool] = mapped_column(Boolean)
    correct: Mapped[float | None] = mapped_column(Float)  # score against gold, for quiz and hidden checks
    created_at: Mapped[datetime]


class QuizAttempt(Base):
    __tablename__ = "quiz_attempts"
    __table_args__ = (
        Index("ix_quiz_attempts_member", "member_id", "started_at"),
        # At most one running attempt per member (a double click on "Take quiz" must not start two).
        Index("uq_quiz_attempts_running", "member_id", unique=True,
              sqlite_where=text("status = 'running'"), postgresql_where=text("status = 'running'")),
    )
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=QuizStatus.RUNNING)
    round: Mapped[int] = mapped_column(Integer, default=1)
    size: Mapped[int] = mapped_column(Integer)
    item_ids: Mapped[list[int]] = mapped_column(JSON)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    score_sum: Mapped[float] = mapped_column(Float, default=0.0)
    score: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class ReportRun(Base):
    __tablename__ = "report_runs"
    __table_args__ = (UniqueConstraint("project_id", "day"),)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="claimed")  # claimed | posted | failed
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    channel: Mapped[str | None] = mapped_column(String(32))
    ts: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    posted_at: Mapped[datetime | None]


class BatchJob(Base):
    __tablename__ = "batch_jobs"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    batch_id: Mapped[str] = mapped_column(String(100), unique=True)
    input_file_id: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    prompt_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    requests: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    collected_at: Mapped[datetime | None]


class ProcessedEvent(Base):
    """Events API deliveries (Slack retries them up to 3 times): "claimed" while one replica handles
    it, "done" once it succeeded. A failed handling removes its claim, so Slack's retry is handled;
    rows are pruned after a day (`bot.jobs.prune_bookkeeping`)."""

    __tablename__ = "processed_events"
    __table_args__ = (Index("ix_processed_events_created", "created_at"),)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="done", server_default=text("'done'"))
    created_at: Mapped[datetime]


class JobLock(Base):
    """One row per scheduled job and period: replicas race to insert it, one wins. Pruned once the
    period is long past (`bot.jobs.prune_bookkeeping`)."""

    __tablename__ = "job_locks"
    __table_args__ = (UniqueConstraint("name", "period"), Index("ix_job_locks_created", "created_at"))
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    period: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class ImportRun(Base):
    """One `labelbot import` of a file: its rows are checked first, staged (`ImportRow`) in short
    transactions, then published into `items` in short transactions. Nothing staged is visible; a
    run is "staging" until every row is checked and staged, then "publishing" (from then on it
    completes, even after a crash: the next import of the project finishes it), then "done".
    One run at a time per project."""

    __tablename__ = "import_runs"
    __table_args__ = (
        Index("uq_import_runs_active", "project_id", unique=True,
              sqlite_where=text("state IN ('staging', 'publishing')"),
              postgresql_where=text("state IN ('staging', 'publishing')")),
    )
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1000))
    state: Mapped[str] = mapped_column(String(16))  # staging | publishing | done | abandoned
    owner: Mapped[str] = mapped_column(String(200))  # host:pid of the importing process
    rows: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]  # wall clock, renewed with every chunk: a stale run is a dead one
    finished_at: Mapped[datetime | None]


class ImportRow(Base):
    """A checked row of a run, waiting to be published: a new item (`item_id` null) or new text and
    metadata for an existing item (`--update`)."""

    __tablename__ = "import_rows"
    __table_args__ = (Index("ix_import_rows_run", "run_id", "id"),)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("import_runs.id", ondelete="CASCADE"))
    line: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
