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
from enum import StrEnum
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
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from bot.core.enums import (
    Action,
    AssignmentKind,
    AssignmentStatus,
    DraftStatus,
    ItemStatus,
    MemberState,
    QuizStatus,
    TaskType,
    Tier,
    UploadStatus,
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


class EnumText(TypeDecorator[Any]):
    """A `StrEnum` column stored as its plain string value (VARCHAR): rows read back as the enum."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int = 16) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: Any, dialect: Any) -> StrEnum | None:
        return None if value is None else self.enum(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, Any: JSON}


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32), index=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    task: Mapped[TaskType] = mapped_column(EnumText(TaskType))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # The guideline version in force (its text is spec["instructions"]); history in guideline_versions.
    guideline_version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
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
    tier: Mapped[Tier] = mapped_column(EnumText(Tier), default=Tier.CROWD)
    state: Mapped[MemberState] = mapped_column(EnumText(MemberState), default=MemberState.NEW)
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
    status: Mapped[ItemStatus] = mapped_column(EnumText(ItemStatus), default=ItemStatus.OPEN)
    # Assignments still to hand out before the item has `redundancy` labels (leases included).
    slots: Mapped[int] = mapped_column(Integer)
    labels_done: Mapped[int] = mapped_column(Integer, default=0)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    escalation_reason: Mapped[str | None] = mapped_column(String(200))
    # Image items: the reference as imported (a path relative to the import file, or an https:// URL);
    # `image_id` is the stored file for a path (None for a URL); `image_error` says why the image cannot
    # be shown (the item is then not served).
    image: Mapped[str | None] = mapped_column(Text)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id"))
    image_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Image(Base):
    """An image file imported with items, stored once per content (its SHA-256), whatever its name."""

    __tablename__ = "images"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    mime: Mapped[str] = mapped_column(String(32))  # image/png | image/jpeg | image/gif | image/webp
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)  # bytes
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class ImageUpload(Base):
    """An image's upload to one workspace (external upload flow, shared in no channel): a `pending` row is
    queued at import; a worker claims it (`uploading`), and stores the Slack file id (`ok`) or the error."""

    __tablename__ = "image_uploads"
    __table_args__ = (
        UniqueConstraint("image_id", "team_id"),
        Index("ix_image_uploads_queue", "status", "priority", "id"),
    )
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    team_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=UploadStatus.PENDING)
    priority: Mapped[int] = mapped_column(Integer, default=1)  # 0 first (gold: the quiz needs it)
    file_id: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime | None]
    retry_at: Mapped[datetime | None]  # an error to try again from then on (None: given up)
    uploaded_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


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
    status: Mapped[DraftStatus] = mapped_column(EnumText(DraftStatus), default=DraftStatus.OK)
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
    kind: Mapped[AssignmentKind] = mapped_column(EnumText(AssignmentKind))
    round: Mapped[int] = mapped_column(Integer, default=0)  # quiz attempt ordinal; 0 otherwise
    status: Mapped[AssignmentStatus] = mapped_column(EnumText(AssignmentStatus), default=AssignmentStatus.OPEN)
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
    kind: Mapped[AssignmentKind] = mapped_column(EnumText(AssignmentKind))
    action: Mapped[Action] = mapped_column(EnumText(Action))
    value: Mapped[Any | None] = mapped_column(JSON)
    value_key: Mapped[str | None] = mapped_column(Text)
    draft_id: Mapped[int | None] = mapped_column(ForeignKey("drafts.id", ondelete="SET NULL"))
    draft_shown: Mapped[bool] = mapped_column(Boolean)
    seconds: Mapped[float | None] = mapped_column(Float)
    counts: Mapped[bool] = mapped_column(Boolean)
    correct: Mapped[float | None] = mapped_column(Float)  # score against gold, for quiz and hidden checks
    # The project's guideline version when the answer was given (NULL: before versions existed, i.e. 1).
    guideline_version: Mapped[int | None] = mapped_column(Integer)
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
    status: Mapped[QuizStatus] = mapped_column(EnumText(QuizStatus), default=QuizStatus.RUNNING)
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


class GuidelineSuggestion(Base):
    """A proposed revision of a project's guidelines, built from where people disagree (the evidence),
    written by the LLM or as a template; `error_kind` records an LLM failure (the template was used)."""

    __tablename__ = "guideline_suggestions"
    __table_args__ = (Index("ix_guideline_suggestions_project", "project_id", "id"),)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    based_on: Mapped[int] = mapped_column(Integer)  # the guideline version it revises
    requested_by: Mapped[str] = mapped_column(String(100))
    method: Mapped[str] = mapped_column(String(16))  # llm | template | simulated
    model: Mapped[str | None] = mapped_column(String(200))
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    changes: Mapped[Any] = mapped_column(JSON)  # list of short sentences: what the proposal changes
    evidence: Mapped[Any] = mapped_column(JSON)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime]


class GuidelineVersion(Base):
    """One published version of a project's guidelines (version 1: the instructions it was created with)."""

    __tablename__ = "guideline_versions"
    __table_args__ = (UniqueConstraint("project_id", "version"),)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    summary: Mapped[Any] = mapped_column(JSON)  # list of short lines: what changed (sent to the annotators)
    author: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(16))  # spec | slack | cli
    suggestion_id: Mapped[int | None] = mapped_column(
        ForeignKey("guideline_suggestions.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime]


class GuidelineNotice(Base):
    """The one DM a qualified annotator gets about a new guideline version; claimed before sending so
    that replicas and retries send it once."""

    __tablename__ = "guideline_notices"
    __table_args__ = (
        UniqueConstraint("version_id", "member_id"),
        Index("ix_guideline_notices_status", "status", "id"),
    )
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("guideline_versions.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    team_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    channel: Mapped[str | None] = mapped_column(String(32))
    ts: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]


class ProcessedEvent(Base):
    """Events API deliveries (Slack retries them up to 3 times): "claimed" while one replica handles
    it, "done" once it succeeded. A failed handling removes its claim, so Slack's retry is handled;
    rows are pruned after a day (`bot.jobs.prune_bookkeeping`)."""

    __tablename__ = "processed_events"
    __table_args__ = (Index("ix_processed_events_created", "created_at"),)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="done", server_default=text("'done'"))
    created_at: Mapped[datetime]


class WebhookDelivery(Base):
    """The durable outbox of webhook deliveries: one row per event and receiving URL, written in the
    transaction that made the event happen. The scheduler claims due rows (a lease in `claimed_until`,
    `FOR UPDATE SKIP LOCKED` on PostgreSQL), POSTs them and records the outcome; a claim whose worker
    died is taken over when its lease runs out, so no event is lost (one may be sent twice: receivers
    de-duplicate on `event_id`)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "url"),
        # The delivery job's scan: due rows by status and time.
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_project_created", "project_id", "created_at"),
    )
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(2000))
    body: Mapped[str] = mapped_column(Text)  # the exact JSON bytes that are signed and sent (UTF-8)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed | dropped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class JobLock(Base):
    """One row per scheduled job and period: replicas race to insert it, one wins. Pruned once the
    period is long past (`bot.jobs.prune_bookkeeping`)."""

    __tablename__ = "job_locks"
    __table_args__ = (UniqueConstraint("name", "period"), Index("ix_job_locks_created", "created_at"))
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    period: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class RemovedItem(Base):
    """An item removed by a lead (`labelbot items remove --with-answers`), kept with every answer it had."""

    __tablename__ = "removed_items"
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    gold: Mapped[Any | None] = mapped_column(JSON)  # {"value", "explanation", "source"} for a gold item
    labels: Mapped[Any] = mapped_column(JSON)  # every label row it had, as plain dicts
    label_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]  # when the item was imported
    removed_at: Mapped[datetime]


class ReminderPref(Base):
    """A person's reminders in one workspace: on or off (remembered), and the day of the last one sent
    (claimed with a conditional UPDATE, so replicas send one reminder per person and day)."""

    __tablename__ = "reminder_prefs"
    __table_args__ = (UniqueConstraint("team_id", "user_id"),)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    last_sent_on: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime]


class PostedAlert(Base):
    """An alert posted to the report channel as it tripped: one row per project and alert key, so it is
    posted once (across replicas) and again only after it cleared."""

    __tablename__ = "posted_alerts"
    __table_args__ = (UniqueConstraint("project_id", "key"),)
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="claimed")  # claimed | posted | failed
    channel: Mapped[str | None] = mapped_column(String(32))
    ts: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    posted_at: Mapped[datetime]
    last_seen: Mapped[datetime]
    cleared_at: Mapped[datetime | None]
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
    image: Mapped[str | None] = mapped_column(Text)  # the image reference as written
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    prediction: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the row's `draft`: value, key, confidence, model
