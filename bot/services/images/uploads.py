"""Uploading images to Slack ahead of demand, so that serving an example never waits on an upload.

Each image is uploaded once per workspace through the external upload flow, shared in no channel:
`files.getUploadURLExternal` (a file id and an upload URL), a POST of the bytes to that URL, and
`files.completeUploadExternal` without a channel. The bot can then show the file in any message with
an image block (`slack_file: {"id": ...}`).

The work queue is `image_uploads`: import queues a `pending` row per image and workspace (gold first,
the quiz needs it); a worker claims rows (`uploading`, `FOR UPDATE SKIP LOCKED` on PostgreSQL, so
replicas share the queue), uploads, and stores the file id (`ok`) or the error. Rate limits (HTTP 429)
and server errors are retried on the spot (the Web API client's retry handlers, and here for the
upload POST, honouring Retry-After); a failure that may pass is tried again later with a growing
delay, up to MAX_ATTEMPTS; one that will not (a revoked token, a missing scope, uploads disabled) is
given up at once. Until an image is uploaded its items are not served (`serving.servable`), and every
failure is logged with the image, the workspace and the reason.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, update

from bot.core.enums import UploadStatus
from bot.services.images.files import MIME_EXTENSIONS, for_slack
from storage.db import Database
from storage.models import Image, ImageUpload, Item

log = logging.getLogger("labelbot.images")

UPLOAD_INTERVAL_SECONDS = 5
UPLOAD_LOOP_BUDGET_SECONDS = 60  # the job keeps uploading while a pass hit its cap, up to this long
PER_PASS = 16  # claims per pass
CONCURRENCY = 4  # uploads at once (files.* methods are Tier 4: 100+ per minute per workspace)
CLAIM_LEASE = timedelta(minutes=10)  # a claim older than this (its worker died) is taken over
MAX_ATTEMPTS = 5
RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(hours=1)
POST_RETRIES = 3  # the upload POST: retries on 429 / 5xx / connection errors
POST_TIMEOUT_SECONDS = 60
MAX_RETRY_AFTER_SECONDS = 30.0
FILE_TITLE = "labelbot image"
# Slack errors that will not pass by trying again: give up at once (and say so).
PERMANENT_ERRORS = frozenset({
    "not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired", "no_permission",
    "missing_scope", "not_allowed_token_type", "ekm_access_denied", "file_uploads_disabled",
    "file_uploads_except_images_disabled", "file_upload_size_restricted", "invalid_arguments",
    "team_access_not_granted", "restricted_action",
})

ClientFor = Callable[[str], Any]  # team id -> a WebClient for that workspace (None: not installed)


class UploadFailed(Exception):
    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Claim:
    upload_id: int
    image_id: int
    team_id: str
    attempt: int


@dataclass
class UploadStats:
    uploaded: int = 0
    failed: int = 0  # will be tried again
    given_up: int = 0
    skipped: int = 0  # no Slack client for the workspace: left queued
    capped: bool = False  # a pass claimed its cap: more may be waiting
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.uploaded} image(s) uploaded"]
        if self.failed:
            parts.append(f"{self.failed} failed (tried again later)")
        if self.given_up:
            parts.append(f"{self.given_up} given up")
        if self.skipped:
            parts.append(f"{self.skipped} waiting for a workspace token")
        return ", ".join(parts) + "."

    def add(self, other: UploadStats) -> None:
        self.uploaded += other.uploaded
        self.failed += other.failed
        self.given_up += other.given_up
        self.skipped += other.skipped
        self.errors += other.errors


# ------------------------------------------------------------------------------------------------
# Claims
# ------------------------------------------------------------------------------------------------


def claim(db: Database, now: datetime, n: int, *, teams: set[str] | None = None) -> list[Claim]:
    """Claim up to `n` uploads that are due: pending ones (priority, then import order), claims whose
    worker died, and errors whose retry time has come."""
    due = (
        ImageUpload.status == UploadStatus.PENDING.value,
        and_(ImageUpload.status == UploadStatus.UPLOADING.value, ImageUpload.claimed_at < now - CLAIM_LEASE),
        and_(ImageUpload.status == UploadStatus.ERROR.value, ImageUpload.retry_at.is_not(None),
             ImageUpload.retry_at <= now),
    )
    claimed: list[Claim] = []
    with db.session() as s:
        postgres = s.get_bind().dialect.name == "postgresql"
        for condition in due:  # one index range each: (status, priority, id)
            want = n - len(claimed)
            if want <= 0:
                break
            q = select(ImageUpload.id).where(condition)
            if teams is not None:
                q = q.where(ImageUpload.team_id.in_(sorted(teams)))
            q = q.order_by(ImageUpload.priority, ImageUpload.id).limit(want)
            if postgres:
                q = q.with_for_update(skip_locked=True)
            ids = list(s.scalars(q))
            if not ids:
                continue
            rows = s.execute(
                update(ImageUpload)
                .where(ImageUpload.id.in_(ids))
                .values(status=UploadStatus.UPLOADING.value, claimed_at=now, attempts=ImageUpload.attempts + 1)
                .returning(ImageUpload.id, ImageUpload.image_id, ImageUpload.team_id, ImageUpload.attempts)
                .execution_options(synchronize_session=False)
            ).all()
            claimed += [Claim(r[0], r[1], r[2], r[3]) for r in sorted(rows)]
    return claimed


def _finish(db: Database, c: Claim, now: datetime, *, file_id: str | None = None,
            failure: UploadFailed | None = None) -> str:
    """Store the outcome of a claim (only while the claim is still ours); returns ok | retry | given_up."""
    mine = and_(ImageUpload.id == c.upload_id, ImageUpload.status == UploadStatus.UPLOADING.value,
                ImageUpload.attempts == c.attempt)
    if failure is None:
        values: dict[str, Any] = dict(status=UploadStatus.OK.value, file_id=file_id, error=None, retry_at=None,
                                      uploaded_at=now)
        outcome = "ok"
    else:
        give_up = failure.permanent or c.attempt >= MAX_ATTEMPTS
        delay = min(RETRY_CAP, RETRY_BASE * 2 ** (c.attempt - 1))
        values = dict(status=UploadStatus.ERROR.value, error=failure.reason[:2000],
                      retry_at=None if give_up else now + delay)
        outcome = "given_up" if give_up else "retry"
    with db.session() as s:
        s.execute(update(ImageUpload).where(mine).values(**values).execution_options(synchronize_session=False))
    return outcome


# ------------------------------------------------------------------------------------------------
# One upload
# ------------------------------------------------------------------------------------------------


def _slack_error(e: Exception) -> tuple[str, bool]:
    """(reason, permanent) for an exception raised by a Web API call."""
    response = getattr(e, "response", None)
    if response is not None:
        data = getattr(response, "data", None)
        code = data.get("error") if isinstance(data, dict) else None
        status = getattr(response, "status_code", None)
        if code:
            needed = data.get("needed") if isinstance(data, dict) else None
            extra = f" (needs the {needed} scope)" if needed else ""
            return f"Slack answered {code}{extra}", code in PERMANENT_ERRORS
        return f"Slack answered HTTP {status}", False
    return f"{type(e).__name__}: {e}", False


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def post_bytes(url: str, data: bytes, mime: str, *, sleep: Callable[[float], None] = time.sleep,
               proxy: str | None = None, ssl: Any = None) -> None:
    """POST the file's bytes to the upload URL; retries 429 (honouring Retry-After), 5xx and connection
    errors up to POST_RETRIES times. Raises UploadFailed."""
    handlers: list[Any] = [urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {})]
    if ssl is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ssl))
    opener = urllib.request.build_opener(*handlers)
    for attempt in range(POST_RETRIES + 1):
        request = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": mime, "Content-Length": str(len(data))})
        wait: float | None = None
        try:
            with opener.open(request, timeout=POST_TIMEOUT_SECONDS) as response:
                response.read()
                return
        except urllib.error.HTTPError as e:
            reason, retryable = f"the upload answered HTTP {e.code}", e.code == 429 or e.code >= 500
            wait = _retry_after(e.headers)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            reason, retryable = f"the upload failed: {getattr(e, 'reason', e)}", True
        if not retryable or attempt == POST_RETRIES:
            raise UploadFailed(reason + (f" (after {attempt + 1} tries)" if attempt else ""), permanent=False)
        if wait is not None and wait > MAX_RETRY_AFTER_SECONDS:
            raise UploadFailed(f"{reason}, asked to wait {wait:g}s", permanent=False)
        sleep(wait if wait is not None else 0.5 * 2**attempt)


def upload_file(client: Any, mime: str, data: bytes, filename: str, *,
                sleep: Callable[[float], None] = time.sleep) -> str:
    """Upload one file through the external upload flow, shared in no channel; returns its file id.
    Raises UploadFailed."""
    try:
        got = client.files_getUploadURLExternal(filename=filename, length=len(data))
        file_id, url = got["file_id"], got["upload_url"]
    except Exception as e:  # SlackApiError, or the network: classified below
        reason, permanent = _slack_error(e)
        raise UploadFailed(f"files.getUploadURLExternal: {reason}", permanent=permanent) from None
    post_bytes(url, data, mime, sleep=sleep, proxy=getattr(client, "proxy", None), ssl=getattr(client, "ssl", None))
    try:
        client.files_completeUploadExternal(files=[{"id": file_id, "title": FILE_TITLE}])
    except Exception as e:
        reason, permanent = _slack_error(e)
        raise UploadFailed(f"files.completeUploadExternal: {reason}", permanent=permanent) from None
    return str(file_id)


def _load(db: Database, image_id: int) -> tuple[str, str, bytes] | None:
    with db.read() as s:
        row = s.execute(select(Image.sha256, Image.mime, Image.data).where(Image.id == image_id)).first()
    return (row[0], row[1], bytes(row[2])) if row is not None else None


def _upload_claim(db: Database, client: Any, c: Claim, now_fn: Callable[[], datetime],
                  sleep: Callable[[float], None]) -> tuple[str, str | None]:
    """Upload a claimed image; returns (ok | retry | given_up, the failure's reason)."""
    loaded = _load(db, c.image_id)
    if loaded is None:
        gone = UploadFailed("the image is no longer stored", permanent=True)
        return _finish(db, c, now_fn(), failure=gone), gone.reason
    sha, mime, data = loaded
    failure: UploadFailed | None = None
    file_id = None
    try:
        mime, data = for_slack(mime, data)
        file_id = upload_file(client, mime, data, f"image-{sha[:12]}.{MIME_EXTENSIONS[mime]}", sleep=sleep)
    except UploadFailed as e:
        failure = e
    except (OSError, ValueError) as e:  # Pillow could not convert it (it was checked at import)
        failure = UploadFailed(f"could not convert the image for Slack: {e}", permanent=True)
    outcome = _finish(db, c, now_fn(), file_id=file_id, failure=failure)
    if failure is not None:
        if outcome == "given_up":
            log.error("image upload given up: image %s (sha256 %s) to workspace %s, attempt %d: %s. Its items are "
                      "not served; fix the cause, then `labelbot images SLUG --retry-failed`.",
                      c.image_id, sha[:12], c.team_id, c.attempt, failure.reason)
        else:
            log.warning("image upload failed: image %s (sha256 %s) to workspace %s, attempt %d of %d: %s; "
                        "trying again later", c.image_id, sha[:12], c.team_id, c.attempt, MAX_ATTEMPTS, failure.reason)
    return outcome, failure.reason if failure is not None else None


# ------------------------------------------------------------------------------------------------
# Passes and the job
# ------------------------------------------------------------------------------------------------


def upload_pending(
    db: Database,
    client_for: ClientFor,
    now_fn: Callable[[], datetime],
    *,
    limit: int = PER_PASS,
    concurrency: int = CONCURRENCY,
    teams: set[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> UploadStats:
    """One pass: claim up to `limit` due uploads and do them, `concurrency` at a time."""
    stats = UploadStats()
    claims = claim(db, now_fn(), limit, teams=teams)
    stats.capped = len(claims) >= limit
    if not claims:
        return stats
    clients: dict[str, Any] = {}
    lock = threading.Lock()

    def one(c: Claim) -> None:
        client = clients[c.team_id]
        if client is None:
            with db.session() as s:  # give the claim back: nobody can upload there yet
                s.execute(update(ImageUpload).where(ImageUpload.id == c.upload_id).values(
                    status=UploadStatus.PENDING.value, claimed_at=None, attempts=ImageUpload.attempts - 1))
            with lock:
                stats.skipped += 1
            return
        outcome, reason = _upload_claim(db, client, c, now_fn, sleep)
        with lock:
            if reason:
                stats.errors.append(f"image {c.image_id}: {reason}")
            if outcome == "ok":
                stats.uploaded += 1
            elif outcome == "retry":
                stats.failed += 1
            else:
                stats.given_up += 1

    for c in claims:  # one client lookup per workspace, before the threads start
        if c.team_id not in clients:
            clients[c.team_id] = client_for(c.team_id)
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(claims))), thread_name_prefix="image-upload") as p:
        list(p.map(one, claims))
    if stats.skipped:
        log.warning("%d image upload(s) wait for a Slack token of their workspace", stats.skipped)
        stats.capped = False  # do not spin on them
    return stats


def upload_job(deps: Any, *, budget_seconds: float = UPLOAD_LOOP_BUDGET_SECONDS) -> UploadStats:
    """The scheduled job: upload passes back to back while one hit its cap, up to `budget_seconds`."""
    deadline = time.monotonic() + budget_seconds
    total = UploadStats()
    while True:
        stats = upload_pending(deps.db, deps.workspace_client, deps.clock.now)
        total.add(stats)
        if not stats.capped or time.monotonic() >= deadline:
            return total


def retry_failed(db: Database, project_id: int, team_id: str) -> tuple[int, int]:
    """Try a project's failed images again: its failed or given-up uploads are queued again (their attempts
    start over) and its URL images set aside are served again. Returns (uploads queued, items back)."""
    with db.session() as s:
        images = select(Item.image_id).where(Item.project_id == project_id, Item.image_id.is_not(None))
        queued = s.execute(
            update(ImageUpload)
            .where(ImageUpload.status == UploadStatus.ERROR.value, ImageUpload.team_id == team_id,
                   ImageUpload.image_id.in_(images.scalar_subquery()))
            .values(status=UploadStatus.PENDING.value, attempts=0, retry_at=None)
            .execution_options(synchronize_session=False)
        )
        back = s.execute(
            update(Item).where(Item.project_id == project_id, Item.image_error.is_not(None))
            .values(image_error=None).execution_options(synchronize_session=False)
        )
    return int(getattr(queued, "rowcount", 0) or 0), int(getattr(back, "rowcount", 0) or 0)
