"""LLM drafts through the official `openai` client, made ahead of demand by a prefetch worker.

Public API (used by the labeling loop, reports, the CLI and the scheduler):
- `make_drafter(settings)`: a `Drafter` for any OpenAI-compatible server, None without OPENAI_API_KEY
  (items are then served without drafts); `SimulatedDrafter` for the offline demo.
- `current_draft(session, item_id, model)`: the newest draft row of an item for a model (one indexed query).
- `draft_model(drafter, spec)`: the model name drafts of a project are stored under.
- `draft_items(db, slug, ...)`: draft synchronously (CLI); `prefetch_once(deps)`: one prefetch pass;
  `prefetch_job(deps)`: what the scheduler runs (`bot.jobs`).
- `submit_batch` / `collect_batches`: the Batch API path (`labelbot draft SLUG --batch / --collect`).
- `draft_stats(...)`, `drafter_health(...)`: set-based figures for the daily report.

How work is shared safely: before calling the model, a worker *claims* an item by inserting a
`pending` draft row (batch_id NULL) for (item, model, prompt_version); the unique index makes the
claim win for exactly one worker or replica. The row is filled in with the result (status ok or
error). A claim whose worker died is taken over after a lease. Batch submissions use the same rows
with `batch_id` set, so prefetch skips them until they are collected.

The package: `base` (limits, outcomes, run statistics), `breaker`, `clients` (the drafters),
`store` (context, queries, claims, storing), `prefetch` (the loop), `batch`, `stats`, `prompt`.
"""

from __future__ import annotations

from bot.services.drafting.base import PREFETCH_INTERVAL_SECONDS, DraftingUnavailable, DraftRunStats
from bot.services.drafting.batch import collect_batches, submit_batch
from bot.services.drafting.clients import BaseDrafter, Drafter, SimulatedDrafter, draft_model, make_drafter
from bot.services.drafting.prefetch import draft_items, prefetch_job, prefetch_once, undrafted_count
from bot.services.drafting.prompt import ERROR_KINDS
from bot.services.drafting.stats import draft_stats, drafter_health
from bot.services.drafting.store import current_draft

__all__ = [
    "ERROR_KINDS",
    "PREFETCH_INTERVAL_SECONDS",
    "BaseDrafter",
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
    "prefetch_job",
    "prefetch_once",
    "submit_batch",
    "undrafted_count",
]
