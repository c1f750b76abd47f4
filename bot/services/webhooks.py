"""Webhooks for pipelines: events written to a durable outbox, delivered signed, retried, once per replica set.

An event (`item.completed`, `item.escalated`, `report.daily`) is written by `enqueue` as one
`WebhookDelivery` row per subscribed webhook, inside the transaction that made it happen: if that
transaction rolls back there is no event, and once it commits the event survives a crash or a restart.

`deliver_due` (the scheduler's `webhooks.deliver` job, every few seconds in every replica) claims due
rows (`claimed_until` set to a lease; `FOR UPDATE SKIP LOCKED` on PostgreSQL, serialized writers on
SQLite), so each row is sent by one replica; it POSTs the JSON body with an HMAC-SHA256 signature of
timestamp + body (`bot.core.signing`) and records the outcome: 2xx delivers it, anything else (an
error status, a refused connection, a timeout, a redirect) schedules a retry with exponential backoff
until `MAX_ATTEMPTS`, after which the row is `failed` (`labelbot webhooks SLUG replay` sends it again).
A worker killed mid-delivery leaves its claim to run out; the row is then sent again, so a receiver
may see an event twice: every delivery carries the event's id (body `id`, header
`X-Labelbot-Event-Id`) to de-duplicate on.

Body: {"id": "evt_...", "type": "item.completed", "created_at": ISO-8601, "project": SLUG, "data": {...}}.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from bot.core.enums import DeliveryStatus, TaskType, WebhookEvent
from bot.core.errors import ConfigError
from bot.core.signing import HEADER_ATTEMPT, HEADER_EVENT, HEADER_EVENT_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, sign
from bot.core.values import decode_key
from bot.spec import ProjectSpec, WebhookSpec
from storage.db import Database
from storage.locks import instance_name
from storage.models import Project, WebhookDelivery

log = logging.getLogger("labelbot.webhooks")

DELIVER_INTERVAL_SECONDS = 10
TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 12  # 10 s, 30 s, 1.5 min ... capped at 6 h: about 1.5 days of retries in all
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_FACTOR = 3.0
BACKOFF_CAP_SECONDS = 6 * 3600.0
CLAIM_BATCH = 50
_ERROR_CHARS = 500


def backoff(attempts: int) -> timedelta:
    """The wait before attempt `attempts + 1` after `attempts` failed ones (deterministic)."""
    return timedelta(seconds=min(BACKOFF_BASE_SECONDS * BACKOFF_FACTOR ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS))


def claim_lease(timeout: float = TIMEOUT_SECONDS) -> timedelta:
    """How long a claim is honoured before another worker may send the row (its worker died)."""
    return timedelta(seconds=2 * timeout + 60)


# --------------------------------------------------------------------------------------------
# Writing events
# --------------------------------------------------------------------------------------------


def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def event_body(event_id: str, event: str, project_slug: str, data: dict[str, Any], now: datetime) -> str:
    return json.dumps(
        {"id": event_id, "type": event, "created_at": now.isoformat(), "project": project_slug, "data": data},
        ensure_ascii=False, separators=(",", ":"), default=_json_default,
    )


def _json_default(o: Any) -> Any:
    if isinstance(o, datetime):
        return o.isoformat()
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"cannot write {type(o).__name__} as JSON")


def enqueue(session: Session, project: Project, spec: ProjectSpec, event: str, data: dict[str, Any], now: datetime,
            *, hooks: Iterable[WebhookSpec] | None = None, event_id: str | None = None) -> str | None:
    """Write the event for every webhook subscribed to it (or `hooks`), in the caller's transaction.
    Returns the event id, or None when no webhook wants it."""
    targets = list(hooks) if hooks is not None else spec.hooks_for(event)
    if not targets:
        return None
    event_id = event_id or new_event_id()
    body = event_body(event_id, event, project.slug, data, now)
    session.add_all(
        WebhookDelivery(
            project_id=project.id, event_id=event_id, event=event, url=hook.url, body=body,
            status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=now, created_at=now,
        )
        for hook in targets
    )
    return event_id


def final_answer(task: TaskType, value_keys: list[str | None]) -> Any:
    """The crowd's majority answer (the item is complete, so it has one): the most frequent value for
    classification and rewrites, the elements more than half chose for multilabel and spans."""
    keys = [k for k in value_keys if k is not None]
    if not keys:
        return None
    if task in (TaskType.CLASSIFICATION, TaskType.REWRITE):
        return decode_key(Counter(keys).most_common(1)[0][0])
    votes: Counter[str] = Counter()
    for k in keys:
        for element in decode_key(k):
            votes[json.dumps(element, sort_keys=True)] += 1
    chosen = [json.loads(e) for e, n in votes.items() if n * 2 > len(keys)]
    if task is TaskType.SPANS:
        return sorted(chosen, key=lambda s: (s["start"], s["end"], s["label"]))
    return sorted(chosen)


def item_data(item: Any, **extra: Any) -> dict[str, Any]:
    """The item part of an event: its id, text, metadata and status (plus `extra`)."""
    return {"item": {"id": item.external_id, "text": item.text, "metadata": item.meta, "status": str(item.status),
                     **extra}}


# --------------------------------------------------------------------------------------------
# Delivering
# --------------------------------------------------------------------------------------------


@dataclass
class Attempt:
    delivery_id: int
    event_id: str
    url: str
    ok: bool
    status: int | None = None
    error: str | None = None


@dataclass
class DeliveryRun:
    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    dropped: int = 0
    attempts: list[Attempt] = field(default_factory=list)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:  # a redirect is an answer we do not follow
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int | None, str | None]:
    """POST and return (status, error): status None when no HTTP answer came (refused, timed out)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(65536)
            return int(response.status), None
    except urllib.error.HTTPError as e:
        with e:
            return int(e.code), f"HTTP {e.code} {e.reason}"
    except (urllib.error.URLError, OSError, ValueError) as e:  # refused, DNS, timeout, bad URL
        reason = getattr(e, "reason", e)
        return None, f"{type(reason).__name__}: {reason}"


def resolve_secret(hook: WebhookSpec) -> str:
    if hook.secret.startswith("env:"):
        name = hook.secret[4:]
        value = os.environ.get(name, "")
        if not value:
            raise ConfigError(f"the webhook secret comes from the environment variable {name}, which is not set")
        return value
    return hook.secret


Sender = Callable[[str, bytes, dict[str, str], float], tuple[int | None, str | None]]


def _claim(db: Database, now: datetime, worker: str, limit: int, lease: timedelta,
           project_id: int | None = None, ids: list[int] | None = None) -> list[WebhookDelivery]:
    with db.session() as s:
        due = [
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
        ]
        if project_id is not None:
            due.append(WebhookDelivery.project_id == project_id)
        if ids is not None:
            due.append(WebhookDelivery.id.in_(ids))
        q = select(WebhookDelivery.id).where(*due).order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        q = q.limit(limit)
        if db.is_postgres:
            q = q.with_for_update(skip_locked=True)
        chosen = list(s.scalars(q))
        if not chosen:
            return []
        # The same conditions again: a row another worker claimed in between is not taken twice.
        s.execute(
            update(WebhookDelivery).where(WebhookDelivery.id.in_(chosen), *due)
            .values(claimed_until=now + lease, claimed_by=worker)
            .execution_options(synchronize_session=False)
        )
        rows = list(s.scalars(select(WebhookDelivery).where(WebhookDelivery.id.in_(chosen),
                                                             WebhookDelivery.claimed_by == worker)))
        s.expunge_all()
        return rows


def _hooks_by_project(db: Database, project_ids: set[int]) -> dict[int, dict[str, WebhookSpec]]:
    from bot.services.projects import spec_of

    with db.read() as s:
        projects = s.scalars(select(Project).where(Project.id.in_(project_ids))).all()
        return {p.id: {h.url: h for h in spec_of(p).webhooks} for p in projects}


def _record(db: Database, row: WebhookDelivery, worker: str, now: datetime, values: dict[str, Any]) -> None:
    with db.session() as s:
        s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == row.id, WebhookDelivery.claimed_by == worker,
                   WebhookDelivery.status == DeliveryStatus.PENDING.value)
            .values(claimed_until=None, **values)
            .execution_options(synchronize_session=False)
        )


def deliver_due(
    db: Database,
    now_fn: Callable[[], datetime],
    *,
    limit: int = 500,
    timeout: float = TIMEOUT_SECONDS,
    send: Sender | None = None,
    worker: str | None = None,
    project_id: int | None = None,
    ids: list[int] | None = None,
) -> DeliveryRun:
    """Claim and send due deliveries, `CLAIM_BATCH` at a time, up to `limit` in this run."""
    send = send or http_post
    worker = worker or f"{instance_name()}:{uuid.uuid4().hex[:8]}"
    run = DeliveryRun()
    lease = claim_lease(timeout)
    while run.claimed < limit:
        rows = _claim(db, now_fn(), worker, min(CLAIM_BATCH, limit - run.claimed), lease, project_id, ids)
        if not rows:
            break
        run.claimed += len(rows)
        hooks = _hooks_by_project(db, {r.project_id for r in rows})
        for row in rows:
            _deliver_one(db, row, hooks.get(row.project_id, {}).get(row.url), worker, now_fn, send, timeout, run)
    return run


def _deliver_one(db: Database, row: WebhookDelivery, hook: WebhookSpec | None, worker: str,
                 now_fn: Callable[[], datetime], send: Sender, timeout: float, run: DeliveryRun) -> None:
    if hook is None:
        run.dropped += 1
        _record(db, row, worker, now_fn(), {"status": DeliveryStatus.DROPPED.value,
                                             "last_error": "the webhook was removed from the project spec"})
        run.attempts.append(Attempt(row.id, row.event_id, row.url, False, None, "dropped"))
        return
    attempt = row.attempts + 1
    status: int | None
    error: str | None
    try:
        secret = resolve_secret(hook)
    except ConfigError as e:
        status, error = None, str(e)
    else:
        body = row.body.encode("utf-8")
        ts = int(now_fn().timestamp())
        headers = {
            "Content-Type": "application/json", "User-Agent": "labelbot-webhooks/1",
            HEADER_TIMESTAMP: str(ts), HEADER_SIGNATURE: sign(secret, ts, body),
            HEADER_EVENT: row.event, HEADER_EVENT_ID: row.event_id, HEADER_ATTEMPT: str(attempt),
        }
        status, error = send(row.url, body, headers, timeout)
    now = now_fn()
    if status is not None and 200 <= status < 300:
        run.delivered += 1
        _record(db, row, worker, now, {"status": DeliveryStatus.DELIVERED.value, "attempts": attempt,
                                       "last_status": status, "last_error": None, "delivered_at": now})
        run.attempts.append(Attempt(row.id, row.event_id, row.url, True, status))
        return
    error = (error or f"HTTP {status}")[:_ERROR_CHARS]
    values: dict[str, Any]
    if attempt >= MAX_ATTEMPTS:
        run.failed += 1
        values = {"status": DeliveryStatus.FAILED.value}
        log.warning("webhook %s to %s failed for good after %d attempts: %s", row.event_id, row.url, attempt, error)
    else:
        run.retrying += 1
        values = {"next_attempt_at": now + backoff(attempt)}
        log.info("webhook %s to %s: attempt %d failed (%s); retrying", row.event_id, row.url, attempt, error)
    _record(db, row, worker, now, {**values, "attempts": attempt, "last_status": status, "last_error": error})
    run.attempts.append(Attempt(row.id, row.event_id, row.url, False, status, error))


# --------------------------------------------------------------------------------------------
# For the CLI
# --------------------------------------------------------------------------------------------


@dataclass
class HookSummary:
    url: str
    events: list[str]
    secret: str  # masked
    counts: dict[str, int]
    last_error: str | None
    next_attempt_at: datetime | None


def mask(secret: str) -> str:
    return secret if secret.startswith("env:") else f"{secret[:2]}…{len(secret)} chars"


def summarize(session: Session, project: Project, spec: ProjectSpec) -> list[HookSummary]:
    """Each configured webhook with its outbox counts by status, its last error and next retry; rows for
    URLs no longer in the spec come last."""
    counts: dict[str, dict[str, int]] = {}
    for url, status, n in session.execute(
        select(WebhookDelivery.url, WebhookDelivery.status, func.count())
        .where(WebhookDelivery.project_id == project.id)
        .group_by(WebhookDelivery.url, WebhookDelivery.status)
    ):
        counts.setdefault(url, {})[status] = int(n)
    out = []
    urls = [h.url for h in spec.webhooks] + sorted(set(counts) - {h.url for h in spec.webhooks})
    hooks = {h.url: h for h in spec.webhooks}
    for url in urls:
        last = session.execute(
            select(WebhookDelivery.last_error).where(WebhookDelivery.project_id == project.id,
                                                     WebhookDelivery.url == url,
                                                     WebhookDelivery.last_error.is_not(None))
            .order_by(WebhookDelivery.id.desc()).limit(1)
        ).scalar()
        nxt = session.scalar(
            select(func.min(WebhookDelivery.next_attempt_at)).where(
                WebhookDelivery.project_id == project.id, WebhookDelivery.url == url,
                WebhookDelivery.status == DeliveryStatus.PENDING.value)
        )
        hook = hooks.get(url)
        out.append(HookSummary(url, hook.events if hook else [], mask(hook.secret) if hook else "(removed)",
                               counts.get(url, {}), last, nxt))
    return out


def replay(session: Session, project: Project, since: datetime, now: datetime) -> list[int]:
    """Send again every delivery (delivered, failed or dropped) of events created since `since`, with
    the same event ids (receivers that have them drop the copies). Returns the rows made due."""
    ids = list(session.scalars(
        select(WebhookDelivery.id).where(WebhookDelivery.project_id == project.id,
                                         WebhookDelivery.created_at >= since)
    ))
    for start in range(0, len(ids), 500):
        session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id.in_(ids[start : start + 500]))
            .values(status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=now, claimed_until=None,
                    claimed_by=None, delivered_at=None)
            .execution_options(synchronize_session=False)
        )
    return ids


def enqueue_test(session: Session, project: Project, spec: ProjectSpec, now: datetime) -> tuple[str, list[int]]:
    """A `webhook.test` event to every configured webhook; returns its id and the rows."""
    event_id = enqueue(session, project, spec, WebhookEvent.TEST.value,
                       {"message": "A test event from `labelbot webhooks test`."}, now, hooks=spec.webhooks)
    if event_id is None:
        raise ConfigError(f"Project {project.slug} has no webhooks: add `webhooks:` to its spec "
                          "(labelbot project update SPEC.yml).")
    session.flush()
    rows = list(session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.event_id == event_id)))
    return event_id, rows

