"""The report's shape: `Report` (text, JSON, blocks come from it), `Alert`, and the JSON helpers."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.core.errors import LabelbotError

if TYPE_CHECKING:  # bot.quality (pandas) is imported when a report is built, not with this module
    from bot.quality.common import Measure

STALE_CLAIM = timedelta(minutes=30)  # a claim this old without a post: its replica died
DAILY_WINDOW_DAYS = 7
#: Anchoring is compared with the previous window of this many days.
CHANGE_DAYS = 7
#: Cohen's kappa is computed for at most this many annotator pairs (those sharing the most items).
MAX_KAPPA_PAIRS = 100
#: Days shown in the trend panels at most.
MAX_TREND_DAYS = 92
MAX_DAYS = 365


class ReportError(LabelbotError, ValueError):
    """A report request that cannot be served; the message is shown to a person."""


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """Something a lead should look at. `kind`: drafting_paused | suspension | low_gold_accuracy |
    rubber_stamp | anchoring | drift; `subject`: the annotator concerned, if any."""

    kind: str
    text: str
    subject: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "subject": self.subject}


@dataclass
class Report:
    """One project's quality report for [since, until). Sections are JSON-ready dicts: each statistic
    is a number or null, and every null has its reason under the section's "reasons"."""

    project: str
    name: str
    task: str
    timezone: str
    since: datetime
    until: datetime
    generated_at: datetime
    labels: int
    answered: int
    items: int
    annotators: int
    alerts: list[Alert] = field(default_factory=list)
    throughput: dict[str, Any] = field(default_factory=dict)
    agreement: dict[str, Any] = field(default_factory=dict)
    accuracy_cap: dict[str, Any] = field(default_factory=dict)
    gold: dict[str, Any] = field(default_factory=dict)
    drafts: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, Any] = field(default_factory=dict)
    llm: dict[str, Any] = field(default_factory=dict)
    suspensions: list[dict[str, Any]] = field(default_factory=list)
    drafting_health: dict[str, Any] = field(default_factory=dict)
    per_annotator: list[dict[str, Any]] = field(default_factory=list)
    daily: list[dict[str, Any]] = field(default_factory=list)
    distribution: dict[str, Any] = field(default_factory=dict)
    agreement_by_guidelines: list[dict[str, Any]] = field(default_factory=list)  # services.reports.guidelines
    guideline_suggestions: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: Items, answers today and this week, pace and finish date (`bot.services.reports.progress`).
    progress: dict[str, Any] = field(default_factory=dict)
    #: The window's label rows in the one vocabulary (`bot.core.activity`), in all and per local day.
    activity: dict[str, Any] = field(default_factory=dict)
    #: Member id -> display name (`users.info`), for rendering; the JSON keys people by member id.
    names: dict[str, str] = field(default_factory=dict)

    @property
    def days(self) -> float:
        return (self.until - self.since).total_seconds() / 86400

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only (no NaN); alerts come first after the identity of the report."""
        data = {
            "project": self.project,
            "name": self.name,
            "task": self.task,
            "since": iso_time(self.since),
            "until": iso_time(self.until),
            "generated_at": iso_time(self.generated_at),
            "timezone": self.timezone,
            "alerts": [a.to_dict() for a in self.alerts],
            "progress": self.progress,
            "activity": self.activity,
            "names": self.names,
            "labels": self.labels,
            "answered": self.answered,
            "items": self.items,
            "annotators": self.annotators,
            "throughput": self.throughput,
            "agreement": self.agreement,
            "accuracy_cap": self.accuracy_cap,
            "gold_accuracy": self.gold.get("all", {}),
            "gold": self.gold,
            "drafts": self.drafts,
            "drift": self.drift,
            "llm": self.llm,
            "suspensions": self.suspensions,
            "drafting_health": self.drafting_health,
            "per_annotator": self.per_annotator,
            "daily": self.daily,
            "distribution": self.distribution,
            "agreement_by_guidelines": self.agreement_by_guidelines,
            "guideline_suggestions": self.guideline_suggestions,
        }
        return jsonable(data)

    def to_text(self) -> str:
        from bot.blocks.report import report_text

        return report_text(self.to_json())


def report_window(now: datetime, days: float) -> tuple[datetime, datetime]:
    return now - timedelta(days=days), now


def iso_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def jsonable(obj: Any) -> Any:
    """Numpy scalars to Python, NaN/inf to None, dates to ISO strings, recursively."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    np = sys.modules.get("numpy")  # numpy scalars exist only once numpy is loaded
    if np is not None and isinstance(obj, np.bool_ | np.integer | np.floating):
        obj = obj.item()
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, datetime):
        return iso_time(obj)
    if isinstance(obj, date):
        return obj.isoformat()
    return obj


class Section:
    """Builds one JSON section: name -> value; reasons for nulls; the full Measure under "detail"."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.reasons: dict[str, str] = {}
        self.detail: dict[str, Any] = {}

    def measure(self, name: str, m: Measure) -> None:
        self.values[name] = m.value
        if m.value is None:
            self.reasons[name] = m.reason or "n/a"
        self.detail[name] = m.to_dict()

    def na(self, name: str, reason: str) -> None:
        from bot.quality.common import Measure

        self.measure(name, Measure.na(reason))

    def set(self, name: str, value: Any) -> None:
        self.values[name] = value

    def out(self) -> dict[str, Any]:
        return {**self.values, "reasons": self.reasons, "detail": self.detail}


def measures_json(ms: dict[str, Measure]) -> dict[str, Any]:
    return {k: m.to_dict() for k, m in ms.items()}


# --------------------------------------------------------------------------------------------------


def to_json_text(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2, allow_nan=False, ensure_ascii=False)


def parse_report_args(text: str) -> tuple[str | None, int | None]:
    """`[project] [days]` in either order -> (slug or None, days or None); ReportError if malformed."""
    slug: str | None = None
    days: int | None = None
    for token in (text or "").split():
        if token.lstrip("-").isdigit():
            if days is not None:
                raise ReportError("Give the number of days once, e.g. `/label-report intents 7`.")
            days = int(token)
            if not 1 <= days <= MAX_DAYS:
                raise ReportError(f"Days must be between 1 and {MAX_DAYS}; got {days}.")
        elif slug is None:
            slug = token.strip().lower()
        else:
            raise ReportError("Usage: `/label-report [project] [days]`, e.g. `/label-report intents 7`.")
    return slug, days
