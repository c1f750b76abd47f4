"""Every enumeration of the domain, in one place (stdlib only): storage columns, services and builders share them."""

from __future__ import annotations

from enum import StrEnum


class TaskType(StrEnum):
    CLASSIFICATION = "classification"
    MULTILABEL = "multilabel"
    SPANS = "spans"
    REWRITE = "rewrite"


class Tier(StrEnum):
    CROWD = "crowd"
    EXPERT = "expert"
    LEAD = "lead"


class MemberState(StrEnum):
    NEW = "new"
    QUALIFIED = "qualified"
    SUSPENDED = "suspended"


class Suspension(StrEnum):
    """Who paused a member: their hidden checks (a quiz retake after the cooldown lifts it) or a lead
    (only a lead's `labelbot member --reinstate` does)."""

    CHECKS = "checks"
    LEAD = "lead"


class ItemStatus(StrEnum):
    OPEN = "open"  # needs more crowd labels
    COMPLETE = "complete"  # has its labels; aggregation settles it
    ESCALATED = "escalated"  # waiting for an expert
    RESOLVED = "resolved"  # an expert answered (final)
    GOLD = "gold"  # calibration item: served only as quiz and hidden check


class AssignmentKind(StrEnum):
    PRODUCTION = "production"
    QUIZ = "quiz"
    HONEYPOT = "honeypot"
    EXPERT = "expert"


class AssignmentStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    EXPIRED = "expired"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class Action(StrEnum):
    ACCEPT = "accept"
    EDIT = "edit"
    REJECT = "reject"
    MANUAL = "manual"  # answered with no draft shown (blind or none)
    SKIP = "skip"
    AMBIGUOUS = "ambiguous"


class DraftStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    PENDING = "pending"  # submitted in a batch, not collected yet


class UploadStatus(StrEnum):
    PENDING = "pending"  # waiting for the upload worker
    UPLOADING = "uploading"  # claimed by a worker
    OK = "ok"  # uploaded: `file_id` is set
    ERROR = "error"  # failed (tried again at `retry_at`, or given up)


class QuizStatus(StrEnum):
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    ABANDONED = "abandoned"


class WebhookEvent(StrEnum):
    ITEM_COMPLETED = "item.completed"  # an item got its final answer (crowd majority or an expert)
    ITEM_ESCALATED = "item.escalated"  # an item went to the expert queue
    REPORT_DAILY = "report.daily"  # the daily report was made
    TEST = "webhook.test"  # `labelbot webhooks SLUG test` (sent to every webhook)


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # gave up after the last retry (`labelbot webhooks SLUG replay` sends it again)
    DROPPED = "dropped"  # the webhook was removed from the spec before it could be sent
