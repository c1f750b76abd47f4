"""LLM drafts through the official `openai` client, made ahead of demand by a prefetch worker.

Public API (used by the labeling loop, reports, the CLI and the scheduler):
- `make_drafter(settings)`: a `Drafter` for any OpenAI-compatible server, None without OPENAI_API_KEY
  (items are then served without drafts); `SimulatedDrafter` for the offline demo.
- `current_draft(session, item_id, model)`: the newest draft row of an item for a model (one indexed query).
- `draft_model(drafter, spec)`: the model name drafts of a project are stored under.
- `draft_items(db, slug, ...)`: draft synchronously (CLI); `prefetch_once(deps)`: one prefetch pass;
  `schedule(scheduler, deps)`: the prefetch job.
- `submit_batch` / `collect_batches`: the Batch API path (`labelbot draft SLUG --batch / --collect`).
- `draft_stats(...)`, `drafter_health(...)`: set-based figures for the daily report.

How work is shared safely: before calling the model, a worker *claims* an item by inserting a
`pending` draft row (batch_id NULL) for (item, model, prompt_version); the unique index makes the
claim win for exactly one worker or replica. The row is filled in with the result (status ok or
error). A claim whose worker died is taken over after a lease. Batch submissions use the same rows
with `batch_id` set, so prefetch skips them until they are collected.
"""

from __future__ import annotations

import email.utils
import inspect
import json
import logging
import math
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
from sqlalchemy import and_, case, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.core.enums import DraftStatus, ItemStatus, TaskType
from bot.core.errors import LabelbotError
from bot.core.values import MAX_REWRITE_CHARS, canonical_key, normalize
from bot.services.drafting.prompt import (
    ERROR_KINDS,
    MAX_EXAMPLE_CHARS,
    DraftProblem,
    Example,
    Prompt,
    build_prompt,
    choose_examples,
    messages,
    parse_output,
    response_format,
)
from bot.spec import ProjectSpec
from storage.db import Database
from storage.models import BatchJob, Draft, Gold, Item, Project

log = logging.getLogger("labelbot.drafting")

__all__ = [
    "ERROR_KINDS",
    "DraftRunStats",
    "Drafter",
    "DraftingUnavailable",
    "SimulatedDrafter",
    "collect_batches",
    "current_draft",
    "draft_items",
    "draft_model",
    "draft_stats",
    "drafter_health",
    "make_drafter",
    "prefetch_once",
    "schedule",
    "submit_batch",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
PREFETCH_INTERVAL_SECONDS = 5
PREFETCH_LOOP_BUDGET_SECONDS = 60  # the job keeps drafting while a pass hit its cap, up to this long
MAX_ATTEMPTS = 4
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 20.0
MAX_RETRY_AFTER_SECONDS = 60.0  # a server asking for a longer wait gets the item stored as failed
FAILURE_THRESHOLD = 5  # consecutive failed calls before a project's drafting pauses
PAUSE_BASE_SECONDS = 60.0
PAUSE_MAX_SECONDS = 30 * 60.0
BATCH_MAX_REQUESTS = 50_000
BATCH_DISCOUNT = 0.5  # OpenAI bills Batch API tokens at half price
TERMINAL_BATCH_STATUSES = {"completed", "failed", "expired", "cancelled"}
_TEXT_LIMIT = 4000  # characters of raw output / error text kept per draft
_CHUNK = 500  # rows or ids per statement
BATCH_MAX_BYTES = 190 * 1024 * 1024  # the Batch API takes input files up to 200 MB

_CREATE_HAS_CACHE_KEY = "prompt_cache_key" in inspect.signature(
    openai.resources.chat.completions.Completions.create
).parameters


class DraftingUnavailable(LabelbotError, RuntimeError):
    """Drafting cannot run (no API key, simulated drafter for a batch...); the message says why."""


# --------------------------------------------------------------------------------------------
# Outcomes and run statistics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkItem:
    item_id: int
    text: str
    is_gold: bool = False
    gold: Any = None  # the gold answer (only the simulated drafter looks at it)


@dataclass
class Outcome:
    """The result of drafting one item: the columns of its Draft row."""

    status: str
    value: Any = None
    value_key: str | None = None
    confidence: float | None = None
    error_kind: str | None = None
    error: str | None = None
    raw: str | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float | None = None
    attempts: int = 1
    simulated: bool = False
    call_failed: bool = False  # the API call itself failed (counts towards pausing the project)

    def columns(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "value": self.value,
            "value_key": self.value_key,
            "confidence": self.confidence,
            "error_kind": self.error_kind,
            "error": _cut(self.error),
            "raw": _cut(self.raw),
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_ms": self.latency_ms,
            "attempts": self.attempts,
            "simulated": self.simulated,
        }


def _cut(s: str | None) -> str | None:
    return s if s is None or len(s) <= _TEXT_LIMIT else s[: _TEXT_LIMIT - 1] + "…"


@dataclass
class DraftRunStats:
    project: str
    model: str = ""
    prompt_version: str = ""
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    released: int = 0  # claimed, then given back undrafted (e.g. drafting paused)
    attempts: int = 0
    repaired_spans: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    latency_ms_total: float = 0.0
    seconds: float = 0.0
    paused: bool = False
    capped: bool = False  # stopped at its cap: more items may be waiting
    simulated: bool = False

    @property
    def drafted(self) -> int:
        return self.ok + sum(self.errors.values())

    def add(self, o: Outcome) -> None:
        if o.status == DraftStatus.OK:
            self.ok += 1
        else:
            self.errors[o.error_kind or "other"] = self.errors.get(o.error_kind or "other", 0) + 1
        self.attempts += o.attempts
        self.prompt_tokens += o.prompt_tokens
        self.cached_tokens += o.cached_tokens
        self.completion_tokens += o.completion_tokens
        self.latency_ms_total += o.latency_ms or 0.0

    def cost(self, spec: ProjectSpec) -> float:
        return token_cost(spec, self.prompt_tokens, self.cached_tokens, self.completion_tokens)

    def summary(self) -> str:
        errs = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items()))
        parts = [
            f"{self.project}: {self.drafted} drafted ({self.ok} ok"
            + (f"; errors: {errs}" if errs else "") + ")",
            f"model {self.model}" + (" (simulated)" if self.simulated else ""),
            f"prompt {self.prompt_version}",
            f"tokens {self.prompt_tokens} in ({self.cached_tokens} cached) / {self.completion_tokens} out",
            f"{self.seconds:.1f}s",
        ]
        if self.paused:
            parts.append("PAUSED after repeated failures")
        if self.released:
            parts.append(f"{self.released} left for later")
        return "; ".join(parts) + "."


# --------------------------------------------------------------------------------------------
# Circuit breaker (per project, per process)
# --------------------------------------------------------------------------------------------


class Breaker:
    """Opens after `threshold` consecutive failed calls, for 1, 2, 4... minutes up to 30."""

    def __init__(self, threshold: int = FAILURE_THRESHOLD, base: float = PAUSE_BASE_SECONDS,
                 cap: float = PAUSE_MAX_SECONDS) -> None:
        self.threshold, self.base, self.cap = threshold, base, cap
        self.consecutive = 0  # failures since the last success
        self.opens = 0
        self.open_until: datetime | None = None
        self.last_error: str | None = None
        self._armed = threshold  # failures that open the circuit next
        self._lock = threading.Lock()

    def allow(self, now: datetime) -> bool:
        with self._lock:
            return self.open_until is None or now >= self.open_until

    def paused(self, now: datetime) -> bool:
        return not self.allow(now)

    def success(self) -> None:
        with self._lock:
            self.consecutive, self.opens, self.open_until, self._armed = 0, 0, None, self.threshold

    def failure(self, now: datetime, error: str | None) -> float | None:
        """Record a failed call; returns the pause in seconds when this failure opened the circuit."""
        with self._lock:
            self.consecutive += 1
            self.last_error = error
            if self.open_until is not None and now < self.open_until:
                return None  # a call that was in flight when the circuit opened
            self._armed -= 1
            if self._armed > 0:
                return None
            period = min(self.cap, self.base * 2**self.opens)
            self.opens += 1
            self.open_until = now + timedelta(seconds=period)
            self._armed = 1  # after the pause, one more failure re-opens (half-open)
            return period


# --------------------------------------------------------------------------------------------
# Drafters
# --------------------------------------------------------------------------------------------


class _BaseDrafter:
    simulated = False

    def __init__(self) -> None:
        self._breakers: dict[int, Breaker] = {}
        self._breakers_lock = threading.Lock()

    def model_for(self, spec: ProjectSpec) -> str:
        raise NotImplementedError

    def breaker(self, project_id: int) -> Breaker:
        with self._breakers_lock:
            b = self._breakers.get(project_id)
            if b is None:
                b = self._breakers[project_id] = Breaker()
            return b

    def existing_breaker(self, project_id: int) -> Breaker | None:
        with self._breakers_lock:
            return self._breakers.get(project_id)

    def draft(self, prompt: Prompt, spec: ProjectSpec, item: WorkItem) -> Outcome:
        raise NotImplementedError


class Drafter(_BaseDrafter):
    """Drafts through any OpenAI-compatible chat-completions server with structured outputs.

    Retries 429/5xx/connection errors with exponential backoff and jitter (Retry-After honoured), at
    most `max_attempts` calls; a timeout is stored as an error at once. A server that rejects
    `json_schema` is asked again in JSON mode, and that is remembered per base URL and model.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        super().__init__()
        if not settings.openai_api_key:
            raise DraftingUnavailable("Set OPENAI_API_KEY to draft with an LLM.")
        self.settings = settings
        self.base_url = (settings.openai_base_url or DEFAULT_BASE_URL).rstrip("/")
        self.max_attempts = max_attempts
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clients: dict[float, openai.OpenAI] = {}
        self._json_mode: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def model_for(self, spec: ProjectSpec) -> str:
        return spec.llm.model

    def client(self, timeout: float) -> openai.OpenAI:
        with self._lock:
            c = self._clients.get(timeout)
            if c is None:
                c = self._clients[timeout] = openai.OpenAI(
                    api_key=self.settings.openai_api_key, base_url=self.settings.openai_base_url,
                    max_retries=0, timeout=timeout,
                )
            return c

    def json_mode(self, model: str) -> bool:
        with self._lock:
            return (self.base_url, model) in self._json_mode

    def _remember_json_mode(self, model: str) -> None:
        with self._lock:
            if (self.base_url, model) not in self._json_mode:
                log.info("%s rejects json_schema for %s; drafting in JSON mode", self.base_url, model)
            self._json_mode.add((self.base_url, model))

    def request_json(self, prompt: Prompt, spec: ProjectSpec, text: str, *, json_mode: bool | None = None) -> dict:
        """The chat-completions request body as sent on the wire (also a Batch API line's body)."""
        if json_mode is None:
            json_mode = self.json_mode(prompt.model)
        return {
            "model": prompt.model,
            "messages": messages(prompt, text),
            "temperature": spec.llm.temperature,
            "response_format": response_format(prompt, json_mode=json_mode),
            "prompt_cache_key": f"labelbot:{spec.slug}:{prompt.version}",
        }

    def _create_kwargs(self, body: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(body)
        if not _CREATE_HAS_CACHE_KEY:  # older clients: send it as an extra body field
            kwargs["extra_body"] = {"prompt_cache_key": kwargs.pop("prompt_cache_key")}
        return kwargs

    def _delay(self, retry: int, retry_after: float | None) -> float | None:
        if retry_after is not None:
            if retry_after > MAX_RETRY_AFTER_SECONDS:
                return None
            return retry_after + self._rng.uniform(0, min(1.0, 0.1 * retry_after + 0.05))
        backoff = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (retry - 1))
        return backoff + self._rng.uniform(0, backoff)

    def draft(self, prompt: Prompt, spec: ProjectSpec, item: WorkItem) -> Outcome:
        client = self.client(spec.llm.timeout_seconds)
        json_mode = self.json_mode(prompt.model)
        attempts = retries = 0
        while True:
            attempts += 1
            kwargs = self._create_kwargs(self.request_json(prompt, spec, item.text, json_mode=json_mode))
            started = time.perf_counter()
            retry_after: float | None = None
            try:
                resp = client.chat.completions.create(**kwargs)
            except openai.APITimeoutError:
                return _failed("timeout", f"no answer within {spec.llm.timeout_seconds:g}s", attempts)
            except openai.APIConnectionError as e:
                kind, message, retryable = "other", f"connection error: {e}", True
            except openai.APIStatusError as e:
                code = e.status_code
                message = f"HTTP {code}: {_api_message(e)}"
                if code in (400, 422) and not json_mode and _about_response_format(e):
                    json_mode = True
                    self._remember_json_mode(prompt.model)
                    continue
                kind = _status_kind(code)
                retryable = code in (408, 409, 429) or code >= 500
                retry_after = _retry_after(e.response)
            else:
                latency_ms = (time.perf_counter() - started) * 1000
                return outcome_from_completion(spec, resp.model_dump(), item.text, attempts=attempts,
                                               latency_ms=latency_ms)
            if not retryable or retries + 1 >= self.max_attempts:
                return _failed(kind, message, attempts)
            retries += 1
            delay = self._delay(retries, retry_after)
            if delay is None:
                return _failed(kind, f"{message} (asked to retry after {retry_after:g}s; gave up)", attempts)
            self._sleep(delay)


def _status_kind(code: int) -> str:
    if code == 429:
        return "http_429"
    if code >= 500:
        return "http_5xx"
    return "timeout" if code == 408 else "other"


def _failed(kind: str, message: str, attempts: int) -> Outcome:
    return Outcome(status=DraftStatus.ERROR, error_kind=kind, error=message, attempts=attempts, call_failed=True)


def _api_message(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(e.message)


def _about_response_format(e: openai.APIStatusError) -> bool:
    text = f"{e.message} {json.dumps(e.body) if e.body is not None else ''}".lower()
    return "response_format" in text or "json_schema" in text


def _retry_after(response: Any) -> float | None:
    headers = getattr(response, "headers", None) or {}
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def outcome_from_completion(
    spec: ProjectSpec, body: dict[str, Any], text: str, *, attempts: int = 1, latency_ms: float | None = None
) -> Outcome:
    """Validate a chat completion (as a JSON dict) into an Outcome; shared by sync calls and batches."""
    usage = body.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    base = dict(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        latency_ms=latency_ms,
        attempts=attempts,
    )
    choices = body.get("choices") or []
    if not choices:
        return Outcome(status=DraftStatus.ERROR, error_kind="other", error="the answer had no choices", **base)
    choice = choices[0]
    message = choice.get("message") or {}
    content = message.get("content")
    if message.get("refusal") or choice.get("finish_reason") == "content_filter":
        return Outcome(status=DraftStatus.ERROR, error_kind="refused",
                       error=f"the model refused: {message.get('refusal') or 'content filter'}", raw=content, **base)
    try:
        parsed = parse_output(spec, content, text)
    except DraftProblem as e:
        error = str(e)
        if choice.get("finish_reason") == "length":
            error += " (the answer was cut off at the token limit)"
        return Outcome(status=DraftStatus.ERROR, error_kind=e.kind, error=error, raw=content, **base)
    return Outcome(status=DraftStatus.OK, value=parsed.value, value_key=parsed.value_key,
                   confidence=parsed.confidence, raw=content, **base)


class SimulatedDrafter(_BaseDrafter):
    """Offline drafts for the demo, clearly labelled: model "simulated", `simulated=True`.

    On a gold item it answers the gold value with probability `accuracy` (else a different plausible
    value); on other items a deterministic pseudo-random plausible value. No network.
    """

    simulated = True
    MODEL = "simulated"

    def __init__(self, accuracy: float = 0.85, seed: int = 0, latency: float = 0.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__()
        self.accuracy, self.seed, self.latency, self._sleep = accuracy, seed, latency, sleep

    def model_for(self, spec: ProjectSpec) -> str:
        return self.MODEL

    def draft(self, prompt: Prompt, spec: ProjectSpec, item: WorkItem) -> Outcome:
        rng = random.Random(f"{self.seed}:{prompt.version}:{item.item_id}")
        if self.latency:
            self._sleep(self.latency)
        gold = item.gold if item.is_gold else None
        if gold is not None and rng.random() < self.accuracy:
            value, confidence = gold, rng.uniform(0.75, 0.99)
        else:
            value = _plausible(spec, item.text, rng)
            for _ in range(5):
                if gold is None or canonical_key(value) != canonical_key(gold):
                    break
                value = _plausible(spec, item.text, rng)
            confidence = rng.uniform(0.4, 0.9)
        value = normalize(spec.task, value, spec, item.text)
        return Outcome(
            status=DraftStatus.OK, value=value, value_key=canonical_key(value), confidence=round(confidence, 3),
            raw=json.dumps({"simulated": True, "value": value}), latency_ms=self.latency * 1000, attempts=1,
            simulated=True,
        )


def _plausible(spec: ProjectSpec, text: str, rng: random.Random) -> Any:
    labels = spec.label_names
    if spec.task is TaskType.CLASSIFICATION:
        return rng.choice(labels)
    if spec.task is TaskType.MULTILABEL:
        return [label for label in labels if rng.random() < 0.3]
    if spec.task is TaskType.SPANS:
        words = [m for m in re.finditer(r"\w{3,}", text) if m.group()[0].isupper()] or list(
            re.finditer(r"\w{3,}", text)
        )
        picked = sorted(rng.sample(words, min(len(words), rng.randint(0, 2))), key=lambda m: m.start())
        return [{"start": m.start(), "end": m.end(), "label": rng.choice(labels)} for m in picked]
    rewrite = " ".join(text.split())[:MAX_REWRITE_CHARS] or "(empty)"
    return rewrite[:1].upper() + rewrite[1:]


_CURRENT: _BaseDrafter | None = None


def make_drafter(settings: Settings, *, simulated: bool = False) -> Drafter | SimulatedDrafter | None:
    """The process's drafter: simulated for the offline demo, None without OPENAI_API_KEY."""
    global _CURRENT
    drafter: Drafter | SimulatedDrafter | None
    if simulated:
        drafter = SimulatedDrafter()
    elif not settings.openai_api_key:
        drafter = None
    else:
        drafter = Drafter(settings)
    _CURRENT = drafter
    return drafter


def draft_model(drafter: _BaseDrafter | None, spec: ProjectSpec) -> str:
    """The `model` drafts of this project are stored under (what `current_draft` needs)."""
    return drafter.model_for(spec) if drafter is not None else spec.llm.model


# --------------------------------------------------------------------------------------------
# Prompt context per project
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    project_id: int
    slug: str
    spec: ProjectSpec
    prompt: Prompt

    @property
    def model(self) -> str:
        return self.prompt.model

    @property
    def version(self) -> str:
        return self.prompt.version


def load_context(session: Session, project: Project, drafter: _BaseDrafter, spec: ProjectSpec | None = None) -> Context:
    """Build the project's prompt: few-shot gold chosen from (id, answer) rows, texts read for the chosen."""
    from bot.services.projects import spec_of

    spec = spec or spec_of(project)
    examples: list[Example] = []
    if spec.llm.few_shot > 0:
        rows = session.execute(
            select(Gold.id, Gold.value)
            .join(Item, Item.id == Gold.item_id)
            .where(Gold.project_id == project.id, func.length(Item.text) <= MAX_EXAMPLE_CHARS)
            .order_by(Gold.id)
        ).all()
        chosen = choose_examples(spec, [Example(gid, "", value) for gid, value in rows])
        if chosen:
            texts = dict(
                session.execute(
                    select(Gold.id, Item.text).join(Item, Item.id == Gold.item_id)
                    .where(Gold.id.in_([e.gold_id for e in chosen]))
                ).all()
            )
            examples = [Example(e.gold_id, texts[e.gold_id], e.value) for e in chosen]
    prompt = build_prompt(spec, drafter.model_for(spec), examples)
    return Context(project_id=project.id, slug=project.slug, spec=spec, prompt=prompt)


def _lease(spec: ProjectSpec) -> timedelta:
    """How long a claim is honoured before another worker may take the item over."""
    worst = spec.llm.timeout_seconds * (MAX_ATTEMPTS + 1) + MAX_RETRY_AFTER_SECONDS * (MAX_ATTEMPTS - 1)
    return timedelta(seconds=worst + 60)


# --------------------------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------------------------


def current_draft(session: Session, item_id: int, model: str) -> Draft | None:
    """The newest draft row of the item for `model` (any status and prompt version; check `status`).
    Served by the unique (item_id, model, prompt_version) index."""
    return session.scalar(
        select(Draft).where(Draft.item_id == item_id, Draft.model == model).order_by(Draft.id.desc()).limit(1)
    )


def _done(ctx: Context, cutoff: datetime, retry_errors: bool = False):  # type: ignore[no-untyped-def]
    """EXISTS a draft that means "nothing to do" for the item: ok, error (unless retrying), a batch
    submission, or a live claim."""
    settled = [DraftStatus.OK.value] if retry_errors else [DraftStatus.OK.value, DraftStatus.ERROR.value]
    return exists().where(
        Draft.item_id == Item.id,
        Draft.model == ctx.model,
        Draft.prompt_version == ctx.version,
        or_(
            Draft.status.in_(settled),
            and_(Draft.status == DraftStatus.PENDING.value,
                 or_(Draft.batch_id.is_not(None), Draft.created_at >= cutoff)),
        ),
    )


def _work_select():  # type: ignore[no-untyped-def]
    return select(Item.id, Item.text, Item.is_gold, Gold.value, Item.slots).outerjoin(Gold, Gold.item_id == Item.id)


def _to_work(rows: Iterable[Any]) -> list[WorkItem]:
    return [WorkItem(r[0], r[1], bool(r[2]), r[3]) for r in rows]


class _Demand:
    """Items to draft, in the order the labeling loop serves them: open items (status 'open',
    slots > 0, ORDER BY slots, id) with gold items (hidden checks) mixed in at the gold rate.

    `lookahead` (prefetch) bounds how far ahead of demand drafting goes: items already handed out
    (slots below the redundancy) plus the next `lookahead` fresh items. Without it (CLI) the whole
    queue is walked once with a keyset cursor.
    """

    def __init__(self, lookahead: int | None = None) -> None:
        self.lookahead = lookahead
        self._after: tuple[int, int] | None = None  # keyset cursor over (slots, id) of open items
        self._gold_after = 0

    def _open(self, s: Session, ctx: Context, n: int, done: Any) -> list[Any]:
        if n <= 0:
            return []
        q = _work_select().where(
            Item.project_id == ctx.project_id, Item.status == ItemStatus.OPEN.value, Item.slots > 0, ~done
        )
        if self.lookahead is None:
            if self._after is not None:
                sl, iid = self._after
                q = q.where(or_(Item.slots > sl, and_(Item.slots == sl, Item.id > iid)))
            return list(s.execute(q.order_by(Item.slots, Item.id).limit(n)))
        redundancy = ctx.spec.redundancy
        rows = list(s.execute(q.where(Item.slots < redundancy).order_by(Item.slots, Item.id).limit(n)))
        if len(rows) < n and self.lookahead > 0:
            window = (
                select(Item.id)
                .where(Item.project_id == ctx.project_id, Item.status == ItemStatus.OPEN.value,
                       Item.slots >= redundancy)
                .order_by(Item.slots, Item.id)
                .limit(self.lookahead)
            )
            rows += list(s.execute(q.where(Item.id.in_(window)).order_by(Item.slots, Item.id).limit(n - len(rows))))
        return rows

    def _gold(self, s: Session, ctx: Context, n: int, done: Any) -> list[Any]:
        if n <= 0 or ctx.spec.gold_rate <= 0:
            return []
        q = _work_select().where(
            Item.project_id == ctx.project_id, Item.status == ItemStatus.GOLD.value, Item.id > self._gold_after, ~done
        )
        return list(s.execute(q.order_by(Item.id).limit(n)))

    def candidates(self, s: Session, ctx: Context, n: int, cutoff: datetime, retry_errors: bool) -> list[WorkItem]:
        done = _done(ctx, cutoff, retry_errors)
        gold = self._gold(s, ctx, n, done)
        reserve = min(len(gold), math.ceil(n * ctx.spec.gold_rate)) if gold else 0
        open_rows = self._open(s, ctx, n - reserve, done)
        gold = gold[: n - len(open_rows)]
        if self.lookahead is None:
            if open_rows:
                self._after = (open_rows[-1][4], open_rows[-1][0])
            if gold:
                self._gold_after = gold[-1][0]
        return _to_work(open_rows + gold)


class _ByIds:
    """Exactly the given items of the project (in id order), those lacking a current draft."""

    def __init__(self, item_ids: Iterable[int]) -> None:
        self.ids = sorted(set(item_ids))
        self.pos = 0
        self.ready: list[Any] = []

    def candidates(self, s: Session, ctx: Context, n: int, cutoff: datetime, retry_errors: bool) -> list[WorkItem]:
        done = _done(ctx, cutoff, retry_errors)
        while len(self.ready) < n and self.pos < len(self.ids):
            chunk = self.ids[self.pos : self.pos + 500]
            self.pos += len(chunk)
            q = _work_select().where(Item.project_id == ctx.project_id, Item.id.in_(chunk), ~done)
            self.ready += list(s.execute(q.order_by(Item.id)))
        out, self.ready = self.ready[:n], self.ready[n:]
        return _to_work(out)


# --------------------------------------------------------------------------------------------
# Claims and storage
# --------------------------------------------------------------------------------------------


def _insert_ignore(session: Session, rows: list[dict[str, Any]]) -> set[int]:
    """INSERT drafts, skipping (item, model, version) rows that exist; returns the inserted item ids."""
    if not rows:
        return set()
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the design supports SQLite and PostgreSQL
        raise RuntimeError(f"unsupported database {dialect}")
    stmt = (
        insert(Draft)
        .on_conflict_do_nothing(index_elements=["item_id", "model", "prompt_version"])
        .returning(Draft.item_id)
    )
    # executemany: SQLAlchemy batches it into multi-row INSERT ... RETURNING ("insertmanyvalues"),
    # within the database's bound-parameter limit, with one cached compilation.
    return set(session.execute(stmt, rows).scalars())


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _claim_row(ctx: Context, item_id: int, now: datetime, simulated: bool, batch_id: str | None = None) -> dict:
    return {
        "project_id": ctx.project_id, "item_id": item_id, "model": ctx.model, "prompt_version": ctx.version,
        "status": DraftStatus.PENDING.value, "value": None, "value_key": None, "confidence": None,
        "error_kind": None, "error": None, "raw": None, "prompt_tokens": 0, "cached_tokens": 0,
        "completion_tokens": 0, "latency_ms": None, "attempts": 0, "batch_id": batch_id,
        "simulated": simulated, "created_at": now,
    }


def _claim(db: Database, ctx: Context, source: Any, n: int, now: datetime, simulated: bool,
           retry_errors: bool = False) -> list[WorkItem]:
    """Claim up to n items for drafting (pending rows); safe across threads and replicas."""
    cutoff = now - _lease(ctx.spec)
    with db.session() as s:
        cands = source.candidates(s, ctx, n, cutoff, retry_errors)
        if not cands:
            return []
        ids = [c.item_id for c in cands]
        got = _insert_ignore(s, [_claim_row(ctx, i, now, simulated) for i in ids])
        rest = [i for i in ids if i not in got]
        stale = and_(Draft.status == DraftStatus.PENDING.value, Draft.batch_id.is_(None), Draft.created_at < cutoff)
        if retry_errors:
            stale = or_(stale, Draft.status == DraftStatus.ERROR.value)
        for chunk in _chunks(rest):  # take over expired claims (and error rows when retrying errors)
            got |= set(
                s.scalars(
                    update(Draft)
                    .where(Draft.item_id.in_(chunk), Draft.model == ctx.model, Draft.prompt_version == ctx.version,
                           stale)
                    .values(status=DraftStatus.PENDING.value, created_at=now, batch_id=None)
                    .returning(Draft.item_id)
                    .execution_options(synchronize_session=False)
                )
            )
    return [c for c in cands if c.item_id in got]


def _mine(ctx: Context, item_ids: list[int], batch_id: str | None = None):  # type: ignore[no-untyped-def]
    return and_(
        Draft.item_id.in_(item_ids), Draft.model == ctx.model, Draft.prompt_version == ctx.version,
        Draft.status == DraftStatus.PENDING.value,
        Draft.batch_id.is_(None) if batch_id is None else Draft.batch_id == batch_id,
    )


def _store(db: Database, ctx: Context, finished: list[tuple[WorkItem, Outcome]], now: datetime) -> None:
    with db.session() as s:
        for item, o in finished:
            values = {**o.columns(), "created_at": now}
            res = s.execute(
                update(Draft).where(_mine(ctx, [item.item_id])).values(**values)
                .execution_options(synchronize_session=False)
            )
            if res.rowcount == 0:  # our claim was released or taken over: keep a result if none is stored
                _insert_ignore(s, [{**_claim_row(ctx, item.item_id, now, o.simulated), **values}])


def _release(db: Database, ctx: Context, item_ids: list[int]) -> None:
    if item_ids:
        with db.session() as s:
            for chunk in _chunks(item_ids):
                s.execute(delete(Draft).where(_mine(ctx, chunk)).execution_options(synchronize_session=False))


# --------------------------------------------------------------------------------------------
# The drafting loop
# --------------------------------------------------------------------------------------------


def _run(
    db: Database,
    drafter: _BaseDrafter,
    ctx: Context,
    source: Any,
    *,
    cap: int | None,
    concurrency: int,
    now_fn: Callable[[], datetime],
    progress: Callable[[int], None] | None = None,
    retry_errors: bool = False,
) -> DraftRunStats:
    """Keep `concurrency` calls in flight: claim as workers free up, store each result as it lands."""
    stats = DraftRunStats(project=ctx.slug, model=ctx.model, prompt_version=ctx.version, simulated=drafter.simulated)
    breaker = drafter.breaker(ctx.project_id)
    started = time.perf_counter()
    in_flight: dict[Future[Outcome], WorkItem] = {}
    claimed = 0
    exhausted = False
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"draft-{ctx.slug}")
    try:
        while True:
            free = concurrency - len(in_flight)
            if free > 0 and not exhausted and (cap is None or claimed < cap):
                if not breaker.allow(now_fn()):
                    stats.paused = exhausted = True
                else:
                    n = free if cap is None else min(free, cap - claimed)
                    batch = _claim(db, ctx, source, n, now_fn(), drafter.simulated, retry_errors)
                    exhausted = len(batch) < n
                    claimed += len(batch)
                    for item in batch:
                        in_flight[pool.submit(drafter.draft, ctx.prompt, ctx.spec, item)] = item
            if not in_flight:
                break
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            finished = [(in_flight[f], f.result()) for f in done]
            for f in done:
                del in_flight[f]
            _store(db, ctx, finished, now_fn())
            for _item, outcome in finished:
                stats.add(outcome)
                if progress is not None:
                    progress(1)
                if outcome.call_failed:
                    pause = breaker.failure(now_fn(), outcome.error)
                    if pause is not None:
                        stats.paused = True
                        log.warning("drafting for %s paused after %d failures: %s", ctx.slug,
                                    breaker.consecutive, outcome.error)
                else:
                    breaker.success()
    finally:
        pool.shutdown(wait=True)
        leftover = [item.item_id for item in in_flight.values()]
        if leftover:  # only after an unexpected error: give the claims back
            _release(db, ctx, leftover)
            stats.released += len(leftover)
    stats.capped = cap is not None and claimed >= cap and not exhausted
    stats.seconds = time.perf_counter() - started
    return stats


def undrafted_count(db: Database, project_slug: str, drafter: _BaseDrafter, *, retry_errors: bool = False,
                    now: datetime | None = None) -> int:
    """How many items of demand (open with slots left, and gold when hidden checks are on) lack a
    current draft: what `draft_items` would draft without a limit."""
    from bot.services.projects import get_project

    now = now or datetime.now(UTC)
    with db.read() as s:
        ctx = load_context(s, get_project(s, project_slug), drafter)
        done = _done(ctx, now - _lease(ctx.spec), retry_errors)
        demand = and_(Item.status == ItemStatus.OPEN.value, Item.slots > 0)
        if ctx.spec.gold_rate > 0:
            demand = or_(demand, Item.status == ItemStatus.GOLD.value)
        return int(s.scalar(select(func.count()).select_from(Item).where(Item.project_id == ctx.project_id,
                                                                         demand, ~done)) or 0)


def draft_items(
    db: Database,
    project_slug: str,
    *,
    limit: int | None = None,
    item_ids: Iterable[int] | None = None,
    progress: Callable[[int], None] | None = None,
    drafter: _BaseDrafter | None = None,
    now: datetime | None = None,
    retry_errors: bool = False,
) -> DraftRunStats:
    """Draft a project's items synchronously (serving order, or exactly `item_ids`) with the spec's
    concurrency. Items with a current ok/error draft are skipped (errors too unless `retry_errors`)."""
    from bot.services.projects import get_project

    drafter = drafter if drafter is not None else (_CURRENT or make_drafter(Settings.from_env()))
    if drafter is None:
        raise DraftingUnavailable("No LLM is configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for a "
                                  "non-OpenAI server) to draft.")
    with db.read() as s:
        ctx = load_context(s, get_project(s, project_slug), drafter)
    source: Any = _ByIds(item_ids) if item_ids is not None else _Demand()
    now_fn = (lambda: now) if now is not None else (lambda: datetime.now(UTC))
    return _run(db, drafter, ctx, source, cap=limit, concurrency=ctx.spec.llm.concurrency, now_fn=now_fn,
                progress=progress, retry_errors=retry_errors)


def prefetch_once(deps: Any, *, now: datetime | None = None) -> dict[str, DraftRunStats]:
    """One prefetch pass: for each project with llm.enabled, draft the next `llm.buffer` items of demand
    that lack a draft for the current (model, prompt_version), `llm.concurrency` calls at a time."""
    from bot.services.projects import list_projects, spec_of

    drafter = deps.drafter
    if drafter is None:
        return {}
    now_fn = (lambda: now) if now is not None else deps.clock.now
    with deps.db.read() as s:
        contexts = []
        for project in list_projects(s):
            spec = spec_of(project)
            if spec.llm.enabled and spec.llm.buffer > 0:
                contexts.append(load_context(s, project, drafter, spec))

    def one(ctx: Context) -> DraftRunStats:
        if drafter.breaker(ctx.project_id).paused(now_fn()):
            return DraftRunStats(project=ctx.slug, model=ctx.model, prompt_version=ctx.version, paused=True,
                                 simulated=drafter.simulated)
        return _run(deps.db, drafter, ctx, _Demand(lookahead=ctx.spec.llm.buffer), cap=ctx.spec.llm.buffer,
                    concurrency=ctx.spec.llm.concurrency, now_fn=now_fn)

    if len(contexts) <= 1:
        return {ctx.slug: one(ctx) for ctx in contexts}
    with ThreadPoolExecutor(max_workers=min(8, len(contexts)), thread_name_prefix="prefetch") as pool:
        return dict(zip([c.slug for c in contexts], pool.map(one, contexts), strict=True))


def prefetch_job(deps: Any, *, budget_seconds: float = PREFETCH_LOOP_BUDGET_SECONDS) -> None:
    """The scheduled job: prefetch passes back to back while some project hit its cap (so the
    workers stay busy), up to `budget_seconds`; then wait for the next tick."""
    deadline = time.monotonic() + budget_seconds
    while True:
        results = prefetch_once(deps)
        if not any(r.capped for r in results.values()) or time.monotonic() >= deadline:
            return


# --------------------------------------------------------------------------------------------
# Batch API
# --------------------------------------------------------------------------------------------


@dataclass
class BatchSubmitResult:
    project: str
    batch_id: str | None
    requests: int
    prompt_version: str
    status: str | None = None

    def summary(self) -> str:
        if not self.batch_id:
            return f"{self.project}: nothing to draft (every item has a draft for prompt {self.prompt_version})."
        return (f"{self.project}: submitted batch {self.batch_id} with {self.requests} requests "
                f"(prompt {self.prompt_version}, status {self.status}). Collect it with "
                f"`labelbot draft {self.project} --collect`.")


@dataclass
class BatchCollectResult:
    project: str
    collected: list[str] = field(default_factory=list)
    waiting: list[tuple[str, str]] = field(default_factory=list)  # (batch id, status)
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    released: int = 0  # submitted requests with no result: left for prefetch

    def summary(self) -> str:
        if not self.collected and not self.waiting:
            return f"{self.project}: no batch to collect."
        lines = []
        if self.collected:
            errs = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"
            lines.append(f"{self.project}: collected {len(self.collected)} batch(es): {self.ok} ok drafts, "
                         f"errors: {errs}" + (f"; {self.released} without a result, left for prefetch"
                                              if self.released else "") + ".")
        for bid, status in self.waiting:
            lines.append(f"{self.project}: batch {bid} is still {status}.")
        return "\n".join(lines)


def _real(drafter: _BaseDrafter | None) -> Drafter:
    if drafter is None:
        raise DraftingUnavailable("No LLM is configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for a "
                                  "non-OpenAI server) to use the Batch API.")
    if not isinstance(drafter, Drafter):
        raise DraftingUnavailable("The simulated drafter has no Batch API; run `labelbot draft` without --batch.")
    return drafter


def custom_id(item_id: int, version: str) -> str:
    return f"item-{item_id}-{version}"


_CUSTOM_ID = re.compile(r"^item-(\d+)-([0-9a-f]+)$")


def submit_batch(db: Database, project_slug: str, *, drafter: _BaseDrafter | None = None, limit: int | None = None,
                 now: datetime | None = None) -> BatchSubmitResult:
    """Upload a JSONL of chat-completions requests for the items lacking a current draft, create a
    batch, store a BatchJob and mark those drafts `pending` (prefetch skips them)."""
    from bot.services.projects import get_project

    real = _real(drafter if drafter is not None else _CURRENT)
    now = now or datetime.now(UTC)
    with db.read() as s:
        ctx = load_context(s, get_project(s, project_slug), real)
    n = min(limit or BATCH_MAX_REQUESTS, BATCH_MAX_REQUESTS)
    items = _claim(db, ctx, _Demand(), n, now, simulated=False)
    result = BatchSubmitResult(project=ctx.slug, batch_id=None, requests=len(items), prompt_version=ctx.version)
    if not items:
        return result
    submitted = False
    kept: list[int] = []
    with tempfile.TemporaryFile() as fh:
        try:
            size = 0
            for i in items:
                line = json.dumps({"custom_id": custom_id(i.item_id, ctx.version), "method": "POST",
                                   "url": "/v1/chat/completions",
                                   "body": real.request_json(ctx.prompt, ctx.spec, i.text)},
                                  ensure_ascii=False).encode("utf-8") + b"\n"
                if size + len(line) > BATCH_MAX_BYTES:
                    break
                fh.write(line)
                size += len(line)
                kept.append(i.item_id)
            _release(db, ctx, [i.item_id for i in items[len(kept) :]])  # over the file size limit
            fh.seek(0)
            client = real.client(max(120.0, ctx.spec.llm.timeout_seconds))
            upload = client.files.create(file=(f"labelbot-{ctx.slug}-{ctx.version}.jsonl", fh), purpose="batch")
            batch = client.batches.create(
                input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h",
                metadata={"labelbot_project": ctx.slug, "prompt_version": ctx.version},
            )
            with db.session() as s:
                for chunk in _chunks(kept):
                    s.execute(update(Draft).where(_mine(ctx, chunk)).values(batch_id=batch.id)
                              .execution_options(synchronize_session=False))
                s.add(BatchJob(project_id=ctx.project_id, batch_id=batch.id, input_file_id=upload.id,
                               model=ctx.model, prompt_version=ctx.version, status=batch.status,
                               requests=len(kept), created_at=now))
            submitted = True
        finally:
            if not submitted:
                _release(db, ctx, kept)
    result.batch_id, result.status, result.requests = batch.id, batch.status, len(kept)
    return result


def _batch_line_outcome(spec: ProjectSpec, line: dict[str, Any], text: str) -> Outcome:
    resp = line.get("response") or {}
    code = resp.get("status_code")
    body = resp.get("body")
    if code == 200 and isinstance(body, dict):
        return outcome_from_completion(spec, body, text, attempts=1)
    err = (body or {}).get("error") if isinstance(body, dict) else None
    err = err or line.get("error") or {}
    message = err.get("message") if isinstance(err, dict) else str(err)
    kind = "other" if code is None else _status_kind(code)
    return Outcome(status=DraftStatus.ERROR, error_kind=kind,
                   error=f"batch request failed (HTTP {code}): {message or 'no detail'}", attempts=1, call_failed=True)


def _jsonl(text: str) -> list[dict[str, Any]]:
    out = []
    for raw in text.splitlines():
        raw = raw.strip()
        if raw:
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError:
                log.warning("skipping a batch output line that is not JSON: %.200s", raw)
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out


def collect_batches(db: Database, project_slug: str, *, drafter: _BaseDrafter | None = None,
                    now: datetime | None = None) -> BatchCollectResult:
    """Retrieve the project's uncollected batches; for finished ones download the output and error
    files and store every draft exactly as the synchronous path does. Collecting twice changes nothing."""
    from bot.services.projects import get_project, spec_of

    real = _real(drafter if drafter is not None else _CURRENT)
    now = now or datetime.now(UTC)
    with db.read() as s:
        project = get_project(s, project_slug)
        spec = spec_of(project)
        jobs = list(s.scalars(select(BatchJob).where(BatchJob.project_id == project.id,
                                                     BatchJob.collected_at.is_(None)).order_by(BatchJob.id)))
    result = BatchCollectResult(project=project.slug)
    client = real.client(max(120.0, spec.llm.timeout_seconds))
    for job in jobs:
        batch = client.batches.retrieve(job.batch_id)
        if batch.status not in TERMINAL_BATCH_STATUSES:
            with db.session() as s:
                s.execute(update(BatchJob).where(BatchJob.id == job.id).values(status=batch.status))
            result.waiting.append((job.batch_id, batch.status))
            continue
        lines: list[dict[str, Any]] = []
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                lines += _jsonl(client.files.content(file_id).text)
        with db.session() as s:
            # The submitted rows still waiting for this batch (locked on PostgreSQL): collecting twice,
            # or two collectors at once, store each result once.
            waiting_rows = {
                item_id: (draft_id, text)
                for item_id, draft_id, text in s.execute(
                    select(Draft.item_id, Draft.id, Item.text).join(Item, Item.id == Draft.item_id)
                    .where(Draft.batch_id == job.batch_id, Draft.status == DraftStatus.PENDING.value,
                           Draft.model == job.model, Draft.prompt_version == job.prompt_version)
                    .with_for_update(of=Draft)
                )
            }
            updates = []
            for line in lines:
                m = _CUSTOM_ID.match(str(line.get("custom_id", "")))
                if not m or m.group(2) != job.prompt_version or int(m.group(1)) not in waiting_rows:
                    continue  # not ours, or already stored
                draft_id, text = waiting_rows.pop(int(m.group(1)))
                o = _batch_line_outcome(spec, line, text)
                updates.append({"id": draft_id, **o.columns(), "created_at": now})
                if o.status == DraftStatus.OK:
                    result.ok += 1
                else:
                    result.errors[o.error_kind or "other"] = result.errors.get(o.error_kind or "other", 0) + 1
            if updates:
                s.execute(update(Draft), updates)  # ORM bulk UPDATE by primary key (executemany)
            unanswered = [draft_id for draft_id, _text in waiting_rows.values()]
            for chunk in _chunks(unanswered):  # requests without a result (expired, cancelled): back to prefetch
                s.execute(delete(Draft).where(Draft.id.in_(chunk)).execution_options(synchronize_session=False))
            result.released += len(unanswered)
            s.execute(update(BatchJob).where(BatchJob.id == job.id, BatchJob.collected_at.is_(None))
                      .values(status=batch.status, collected_at=now))
        result.collected.append(job.batch_id)
    return result


# --------------------------------------------------------------------------------------------
# Figures for reports
# --------------------------------------------------------------------------------------------


def token_cost(spec: ProjectSpec, prompt: int, cached: int, completion: int) -> float:
    """Dollars for the tokens at the spec's prices (cached input at its own price, else the input price)."""
    price_in = spec.llm.price_per_1m_input
    price_cached = spec.llm.price_per_1m_cached_input
    price_cached = price_in if price_cached is None else price_cached
    return ((prompt - cached) * price_in + cached * price_cached + completion * spec.llm.price_per_1m_output) / 1e6


def draft_stats(session: Session, project_id: int, since: datetime, until: datetime, spec: ProjectSpec) -> dict:
    """Drafts finished in [since, until): counts, failures by kind, tokens, cost, latency. Set-based."""
    window = and_(
        Draft.project_id == project_id, Draft.created_at >= since, Draft.created_at < until,
        Draft.status.in_([DraftStatus.OK.value, DraftStatus.ERROR.value]),
    )
    in_batch = Draft.batch_id.is_not(None)

    def tokens(col: Any, batch: bool) -> Any:
        return func.coalesce(func.sum(case((in_batch if batch else ~in_batch, col), else_=0)), 0)

    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((Draft.status == DraftStatus.OK.value, 1), else_=0)), 0),
            *(tokens(col, False) for col in (Draft.prompt_tokens, Draft.cached_tokens, Draft.completion_tokens)),
            *(tokens(col, True) for col in (Draft.prompt_tokens, Draft.cached_tokens, Draft.completion_tokens)),
            func.avg(Draft.latency_ms),
            func.coalesce(func.max(case((Draft.simulated, 1), else_=0)), 0),
            func.coalesce(func.sum(Draft.attempts), 0),
        ).where(window)
    ).one()
    n, n_ok, pt, ct_, out, bpt, bct, bout, mean_latency, simulated, attempts = row
    errors = dict(
        session.execute(
            select(Draft.error_kind, func.count())
            .where(window, Draft.status == DraftStatus.ERROR.value)
            .group_by(Draft.error_kind)
        ).all()
    )
    ranked = (
        select(
            Draft.latency_ms.label("lat"),
            func.row_number().over(order_by=Draft.latency_ms).label("rn"),
            func.count().over().label("n"),
        )
        .where(window, Draft.latency_ms.is_not(None))
        .subquery()
    )
    p50, p95 = session.execute(
        select(
            func.min(case((ranked.c.rn * 2 >= ranked.c.n, ranked.c.lat))),
            func.min(case((ranked.c.rn * 100 >= ranked.c.n * 95, ranked.c.lat))),
        )
    ).one()
    def cost(prompt: int, cached: int, completion: int) -> float:
        return token_cost(spec, prompt, cached, completion)

    return {
        "drafts": int(n),
        "ok": int(n_ok),
        "errors": {str(k or "other"): int(v) for k, v in errors.items()},
        "error_total": int(n) - int(n_ok),
        "prompt_tokens": int(pt) + int(bpt),
        "cached_tokens": int(ct_) + int(bct),
        "completion_tokens": int(out) + int(bout),
        "attempts": int(attempts),
        "cost": round(cost(int(pt), int(ct_), int(out)) + BATCH_DISCOUNT * cost(int(bpt), int(bct), int(bout)), 6),
        "batch_tokens": int(bpt) + int(bout),
        "latency_ms": {
            "mean": float(mean_latency) if mean_latency is not None else None,
            "p50": float(p50) if p50 is not None else None,
            "p95": float(p95) if p95 is not None else None,
        },
        "simulated": bool(simulated),
    }


def drafter_health(session: Session, project_id: int, since: datetime, *, drafter: _BaseDrafter | None = None,
                   now: datetime | None = None) -> dict:
    """Failures by error kind since `since`, the last error, and whether drafting is paused in this
    process (the circuit breaker lives in the drafter of the process that runs the scheduler)."""
    counts = dict(
        session.execute(
            select(Draft.status, func.count())
            .where(Draft.project_id == project_id, Draft.created_at >= since,
                   Draft.status.in_([DraftStatus.OK.value, DraftStatus.ERROR.value]))
            .group_by(Draft.status)
        ).all()
    )
    errors = dict(
        session.execute(
            select(Draft.error_kind, func.count())
            .where(Draft.project_id == project_id, Draft.created_at >= since,
                   Draft.status == DraftStatus.ERROR.value)
            .group_by(Draft.error_kind)
        ).all()
    )
    last = session.execute(
        select(Draft.error_kind, Draft.error, Draft.created_at)
        .where(Draft.project_id == project_id, Draft.status == DraftStatus.ERROR.value)
        .order_by(Draft.id.desc()).limit(1)
    ).first()
    drafter = drafter if drafter is not None else _CURRENT
    now = now or datetime.now(UTC)
    breaker = drafter.existing_breaker(project_id) if drafter is not None else None
    paused = breaker is not None and breaker.paused(now)
    return {
        "ok": int(counts.get(DraftStatus.OK.value, 0)),
        "errors": {str(k or "other"): int(v) for k, v in errors.items()},
        "error_total": int(counts.get(DraftStatus.ERROR.value, 0)),
        "paused": paused,
        "paused_until": breaker.open_until if paused and breaker else None,
        "consecutive_failures": breaker.consecutive if breaker else 0,
        "last_error": (breaker.last_error if paused and breaker else None) or (last[1] if last else None),
        "last_error_kind": last[0] if last else None,
        "last_error_at": last[2] if last else None,
        "enabled": drafter is not None,
    }
