"""The drafting loop: `draft_items` (the CLI, synchronous) and `prefetch_once` / `prefetch_job` (ahead of demand)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select

from bot.config import Settings
from bot.core import logctx
from bot.core.enums import ItemStatus
from bot.services.drafting.base import (
    PREFETCH_LOOP_BUDGET_SECONDS,
    DraftingUnavailable,
    DraftRunStats,
    Outcome,
    WorkItem,
)
from bot.services.drafting.clients import BaseDrafter, make_drafter, process_drafter
from bot.services.drafting.store import (
    ByIds,
    Context,
    Demand,
    claim,
    done_filter,
    lease_for,
    load_context,
    release,
    store_outcomes,
)
from storage.db import Database
from storage.models import Item

log = logging.getLogger("labelbot.drafting")


# --------------------------------------------------------------------------------------------
# The drafting loop
# --------------------------------------------------------------------------------------------


def _run(
    db: Database,
    drafter: BaseDrafter,
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
    logctx.set_project(ctx.slug)
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
                    batch = claim(db, ctx, source, n, now_fn(), drafter.simulated, retry_errors)
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
            store_outcomes(db, ctx, finished, now_fn())
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
            release(db, ctx, leftover)
            stats.released += len(leftover)
    stats.capped = cap is not None and claimed >= cap and not exhausted
    stats.seconds = time.perf_counter() - started
    return stats


def undrafted_count(db: Database, project_slug: str, drafter: BaseDrafter, *, retry_errors: bool = False,
                    now: datetime | None = None) -> int:
    """How many items of demand (open with slots left, and gold when hidden checks are on) lack a
    current draft: what `draft_items` would draft without a limit."""
    from bot.services.projects import get_project

    now = now or datetime.now(UTC)
    with db.read() as s:
        ctx = load_context(s, get_project(s, project_slug), drafter)
        done = done_filter(ctx, now - lease_for(ctx.spec), retry_errors)
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
    drafter: BaseDrafter | None = None,
    now: datetime | None = None,
    retry_errors: bool = False,
) -> DraftRunStats:
    """Draft a project's items synchronously (serving order, or exactly `item_ids`) with the spec's
    concurrency. Items with a current ok/error draft are skipped (errors too unless `retry_errors`)."""
    from bot.services.projects import get_project

    drafter = drafter if drafter is not None else (process_drafter() or make_drafter(Settings.from_env()))
    if drafter is None:
        raise DraftingUnavailable("No LLM is configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for a "
                                  "non-OpenAI server) to draft.")
    with db.read() as s:
        ctx = load_context(s, get_project(s, project_slug), drafter)
    source: Any = ByIds(item_ids) if item_ids is not None else Demand()
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
        return _run(deps.db, drafter, ctx, Demand(lookahead=ctx.spec.llm.buffer), cap=ctx.spec.llm.buffer,
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
