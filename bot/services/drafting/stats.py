"""Set-based figures for the daily report: tokens, cost, latency, errors, and the drafter's health."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from bot.core.enums import DraftStatus
from bot.services.drafting.base import BATCH_DISCOUNT, token_cost
from bot.services.drafting.clients import BaseDrafter, process_drafter
from bot.spec import ProjectSpec
from storage.models import Draft

# --------------------------------------------------------------------------------------------
# Figures for reports
# --------------------------------------------------------------------------------------------




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


def drafter_health(session: Session, project_id: int, since: datetime, *, drafter: BaseDrafter | None = None,
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
    drafter = drafter if drafter is not None else process_drafter()
    now = now or datetime.now(UTC)
    breaker = drafter.existing_breaker(project_id) if drafter is not None else None
    paused = breaker is not None and breaker.paused(now)
    return {
        "ok": int(counts.get(DraftStatus.OK, 0)),
        "errors": {str(k or "other"): int(v) for k, v in errors.items()},
        "error_total": int(counts.get(DraftStatus.ERROR, 0)),
        "paused": paused,
        "paused_until": breaker.open_until if paused and breaker else None,
        "consecutive_failures": breaker.consecutive if breaker else 0,
        "last_error": (breaker.last_error if paused and breaker else None) or (last[1] if last else None),
        "last_error_kind": last[0] if last else None,
        "last_error_at": last[2] if last else None,
        "enabled": drafter is not None,
    }
