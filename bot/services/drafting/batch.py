"""The Batch API path (`labelbot draft SLUG --batch / --collect`): half price, within 24 hours."""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update

from bot.core.enums import DraftStatus
from bot.services.drafting.base import (
    BATCH_MAX_BYTES,
    BATCH_MAX_REQUESTS,
    TERMINAL_BATCH_STATUSES,
    DraftingUnavailable,
    Outcome,
)
from bot.services.drafting.clients import BaseDrafter, Drafter, outcome_from_completion, process_drafter, status_kind
from bot.services.drafting.store import Demand, chunks, claim, load_context, mine, release
from bot.spec import ProjectSpec
from storage.db import Database
from storage.models import BatchJob, Draft, Item

log = logging.getLogger("labelbot.drafting")


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


def _real(drafter: BaseDrafter | None) -> Drafter:
    if drafter is None:
        raise DraftingUnavailable("No LLM is configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for a "
                                  "non-OpenAI server) to use the Batch API.")
    if not isinstance(drafter, Drafter):
        raise DraftingUnavailable("The simulated drafter has no Batch API; run `labelbot draft` without --batch.")
    return drafter


def custom_id(item_id: int, version: str) -> str:
    return f"item-{item_id}-{version}"


_CUSTOM_ID = re.compile(r"^item-(\d+)-([0-9a-f]+)$")


def submit_batch(db: Database, project_slug: str, *, drafter: BaseDrafter | None = None, limit: int | None = None,
                 now: datetime | None = None) -> BatchSubmitResult:
    """Upload a JSONL of chat-completions requests for the items lacking a current draft, create a
    batch, store a BatchJob and mark those drafts `pending` (prefetch skips them)."""
    from bot.services.projects import get_project

    real = _real(drafter if drafter is not None else process_drafter())
    now = now or datetime.now(UTC)
    with db.read() as s:
        ctx = load_context(s, get_project(s, project_slug), real)
    n = min(limit or BATCH_MAX_REQUESTS, BATCH_MAX_REQUESTS)
    items = claim(db, ctx, Demand(), n, now, simulated=False)
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
                                   "body": real.request_json(ctx.prompt, ctx.spec, i.text,
                                                            image=i.image.url if i.image else None)},
                                  ensure_ascii=False).encode("utf-8") + b"\n"
                if size + len(line) > BATCH_MAX_BYTES:
                    break
                fh.write(line)
                size += len(line)
                kept.append(i.item_id)
            release(db, ctx, [i.item_id for i in items[len(kept) :]])  # over the file size limit
            fh.seek(0)
            client = real.client(max(120.0, ctx.spec.llm.timeout_seconds))
            upload = client.files.create(file=(f"labelbot-{ctx.slug}-{ctx.version}.jsonl", fh), purpose="batch")
            batch = client.batches.create(
                input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h",
                metadata={"labelbot_project": ctx.slug, "prompt_version": ctx.version},
            )
            with db.session() as s:
                for chunk in chunks(kept):
                    s.execute(update(Draft).where(mine(ctx, chunk)).values(batch_id=batch.id)
                              .execution_options(synchronize_session=False))
                s.add(BatchJob(project_id=ctx.project_id, batch_id=batch.id, input_file_id=upload.id,
                               model=ctx.model, prompt_version=ctx.version, status=batch.status,
                               requests=len(kept), created_at=now))
            submitted = True
        finally:
            if not submitted:
                release(db, ctx, kept)
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
    kind = "other" if code is None else status_kind(code)
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


def collect_batches(db: Database, project_slug: str, *, drafter: BaseDrafter | None = None,
                    now: datetime | None = None) -> BatchCollectResult:
    """Retrieve the project's uncollected batches; for finished ones download the output and error
    files and store every draft exactly as the synchronous path does. Collecting twice changes nothing."""
    from bot.services.projects import get_project, spec_of

    real = _real(drafter if drafter is not None else process_drafter())
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
            for chunk in chunks(unanswered):  # requests without a result (expired, cancelled): back to prefetch
                s.execute(delete(Draft).where(Draft.id.in_(chunk)).execution_options(synchronize_session=False))
            result.released += len(unanswered)
            s.execute(update(BatchJob).where(BatchJob.id == job.id, BatchJob.collected_at.is_(None))
                      .values(status=batch.status, collected_at=now))
        result.collected.append(job.batch_id)
    return result
