"""The project spec: the validated shape of a project's YAML (pure: pydantic and YAML, no I/O but reading the file).

Validation errors name the key path and the problem.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.core.enums import TaskType
from bot.core.errors import ConfigError
from bot.core.values import MEMBER_ID_RE

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/ -]{0,47}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)


class LabelDef(_Strict):
    name: str
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = v.strip()
        if not LABEL_RE.match(v):
            raise ValueError(
                "must be 1-48 characters: letters, digits, space, '_', '-', '.', ':' or '/', "
                "starting with a letter or digit"
            )
        return v


class QuizSpec(_Strict):
    size: int = Field(20, ge=1, le=500)
    pass_mark: float = Field(0.95, gt=0, le=1)
    cooldown_hours: float = Field(24, ge=0)
    allow_short: bool = False
    jaccard_threshold: float | None = Field(None, gt=0, le=1)
    rewrite_threshold: float = Field(0.9, gt=0, le=1)


class HoneypotSpec(_Strict):
    window: int = Field(20, ge=1, le=1000)
    floor: float = Field(0.8, ge=0, le=1)
    min_checks: int = Field(5, ge=1)


class EscalationSpec(_Strict):
    on_ambiguous: bool = True
    on_no_majority: bool = True
    min_confidence: float | None = Field(None, ge=0, le=1)


class LLMSpec(_Strict):
    model: str = "gpt-4o-mini"
    few_shot: int = Field(5, ge=0, le=50)
    temperature: float = Field(0, ge=0, le=2)
    price_per_1m_input: float = Field(0.0, ge=0)
    price_per_1m_cached_input: float | None = Field(None, ge=0)
    price_per_1m_output: float = Field(0.0, ge=0)
    buffer: int = Field(200, ge=0, le=10000)  # drafted items kept ahead of demand
    concurrency: int = Field(16, ge=1, le=64)  # parallel LLM calls (50 annotators, 2 s latency: 16)
    timeout_seconds: float = Field(30, gt=0)
    enabled: bool = True
    image_detail: Literal["auto", "low", "high"] = "auto"  # how closely a vision model looks at images


class MembersSpec(_Strict):
    leads: list[str] = Field(default_factory=list)
    experts: list[str] = Field(default_factory=list)
    open_enrollment: bool = True

    @field_validator("leads", "experts")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        for uid in v:
            if not MEMBER_ID_RE.match(uid):
                raise ValueError(f"{uid!r} is not a Slack user id (like U012AB3CD)")
        return v


def _clock_time(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 24 * 60:
        v = "{}:{:02d}".format(*divmod(v, 60))  # YAML 1.1 reads an unquoted 9:30 as the number 570
    m = re.match(r"^([01]?\d|2[0-3]):([0-5]\d)$", str(v).strip())
    if not m:
        raise ValueError("must be a 24-hour time like '09:00'")
    return f"{int(m.group(1)):02d}:{m.group(2)}"


def _time_zone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {v!r} (use an IANA name like 'Europe/Paris')") from None
    return v


class ReportSpec(_Strict):
    channel: str | None = None
    time: str = "09:00"
    timezone: str = "UTC"
    anchoring_alert: float = Field(0.15, ge=0, le=1)
    js_alert: float = Field(0.1, ge=0, le=1)

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, v: Any) -> str:
        return _clock_time(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _time_zone(v)


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class RemindersSpec(_Strict):
    """A daily nudge in the DM of qualified annotators who have examples waiting and have not labeled today."""

    time: str = "09:00"
    timezone: str = "UTC"
    days: list[str] = Field(default_factory=lambda: list(WEEKDAYS))

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, v: Any) -> str:
        return _clock_time(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _time_zone(v)

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, v: Any) -> list[str]:
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not v:
            raise ValueError("must be a list of weekdays like [mon, tue, wed, thu, fri]")
        names = {d: d for d in WEEKDAYS} | dict(zip(FULL_WEEKDAYS, WEEKDAYS, strict=True))
        out = []
        for day in v:
            key = names.get(str(day).strip().lower())
            if key is None:
                raise ValueError(f"{day!r} is not a weekday (use mon, tue, wed, thu, fri, sat, sun)")
            if key not in out:
                out.append(key)
        return sorted(out, key=WEEKDAYS.index)


class ColumnsSpec(_Strict):
    """Which columns of an import file hold the id and the text (default: `id` and `text`)."""

    id: str = Field("id", min_length=1, max_length=200)
    text: str = Field("text", min_length=1, max_length=200)


class ImportSpec(_Strict):
    columns: ColumnsSpec = Field(default_factory=ColumnsSpec)


WEBHOOK_EVENTS = ("item.completed", "item.escalated", "report.daily")


class WebhookSpec(_Strict):
    url: str
    secret: str  # shared with the receiver; "env:NAME" reads it from the environment variable NAME
    events: list[str] = Field(default_factory=lambda: list(WEBHOOK_EVENTS))

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip()
        if not re.match(r"^https?://[^\s/?#]+[^\s]*$", v) or len(v) > 2000:
            raise ValueError("must be an http:// or https:// URL (at most 2000 characters)")
        return v

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: str) -> str:
        if v.startswith("env:"):
            if not re.match(r"^env:[A-Za-z_][A-Za-z0-9_]*$", v):
                raise ValueError("env:NAME needs an environment variable name, like env:LABELBOT_WEBHOOK_SECRET")
            return v
        if len(v) < 16:
            raise ValueError("must be at least 16 characters (or env:NAME to read it from the environment)")
        return v

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError(f"list at least one of {', '.join(WEBHOOK_EVENTS)}")
        unknown = [e for e in v if e not in WEBHOOK_EVENTS]
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r}; choose from {', '.join(WEBHOOK_EVENTS)}")
        return list(dict.fromkeys(v))


class ProjectSpec(_Strict):
    slug: str
    name: str = Field(min_length=1, max_length=200)
    task: TaskType
    labels: list[LabelDef] = Field(default_factory=list)
    instructions: str = ""
    redundancy: int = Field(3, ge=1, le=15)
    blind_every: int = Field(10, ge=0)
    gold_rate: float = Field(0.05, ge=0, le=0.5)
    lease_minutes: float = Field(30, gt=0, le=24 * 60)
    quiz: QuizSpec = Field(default_factory=QuizSpec)
    honeypot: HoneypotSpec = Field(default_factory=HoneypotSpec)
    escalation: EscalationSpec = Field(default_factory=EscalationSpec)
    llm: LLMSpec = Field(default_factory=LLMSpec)
    members: MembersSpec = Field(default_factory=MembersSpec)
    report: ReportSpec = Field(default_factory=ReportSpec)
    webhooks: list[WebhookSpec] = Field(default_factory=list, max_length=10)
    reminders: RemindersSpec | None = None
    imports: ImportSpec = Field(default_factory=ImportSpec, alias="import")
    team_id: str | None = None

    @field_validator("slug")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not SLUG_RE.match(v):
            raise ValueError("must be 1-40 lowercase letters, digits or '-', starting with a letter or digit")
        return v

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_shorthand(cls, v: Any) -> Any:
        # Accept plain strings as shorthand for {name: ...}.
        if isinstance(v, list):
            return [{"name": x} if isinstance(x, str) else x for x in v]
        return v

    @model_validator(mode="after")
    def _labels_for_task(self) -> ProjectSpec:
        names = [label.name for label in self.labels]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"labels: duplicate label name(s): {', '.join(dup)}")
        if self.task in (TaskType.CLASSIFICATION, TaskType.MULTILABEL) and len(names) < 2:
            raise ValueError(f"labels: a {self.task.value} project needs at least 2 labels")
        if self.task is TaskType.SPANS and not names:
            raise ValueError("labels: a spans project needs at least 1 span type")
        if self.task is TaskType.MULTILABEL and len(names) > 10:
            raise ValueError("labels: a multilabel project supports at most 10 labels (Slack checkboxes)")
        if len(names) > 100:
            raise ValueError("labels: at most 100 labels (Slack select menus)")
        urls = [w.url for w in self.webhooks]
        if len(set(urls)) != len(urls):
            raise ValueError("webhooks: each url may appear once (list all its events under one entry)")
        return self

    def hooks_for(self, event: str) -> list[WebhookSpec]:
        return [w for w in self.webhooks if event in w.events]

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: the project spec is not valid:"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see the README for every key)"
        elif e["type"] == "missing":
            msg = "is required"
        lines.append(f"  - {path}: {msg}")
    return "\n".join(lines)


def parse_spec(data: Any, source: str = "spec") -> ProjectSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the project spec must be a YAML mapping of keys to values")
    try:
        return ProjectSpec.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def load_spec(path: str | Path) -> ProjectSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    return parse_spec(data, str(path))
