"""Figures read from the database for monitoring (`/metrics`): how much work is waiting per project.

Each figure is one index-backed query per project, so a scrape every few seconds stays cheap:
- queue depth: open items with assignments still to hand out (`ix_items_queue`), and items waiting
  for an expert;
- drafts ready: of the next `READY_WINDOW` items in serving order, those with a current draft (the
  project's model and prompt version, status ok). Bounded by the window, not by the queue's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from bot.core.enums import DraftStatus, ItemStatus
from bot.services.projects import list_projects, spec_of
from storage.models import Draft, Item

if TYPE_CHECKING:
    from bot.services.drafting.clients import BaseDrafter

READY_WINDOW = 10_000


@dataclass(frozen=True)
class ProjectGauges:
    slug: str
    queue_depth: int  # open items with assignments still to hand out
    escalated: int  # items waiting for an expert
    drafts_ready: int | None  # None: this project is not drafted (no LLM, or llm.enabled false)


def project_gauges(session: Session, drafter: BaseDrafter | None) -> list[ProjectGauges]:
    out: list[ProjectGauges] = []
    for project in list_projects(session):
        spec = spec_of(project)
        open_items = and_(Item.project_id == project.id, Item.status == ItemStatus.OPEN.value, Item.slots > 0)
        depth = session.scalar(select(func.count()).select_from(Item).where(open_items)) or 0
        escalated = session.scalar(
            select(func.count()).select_from(Item)
            .where(Item.project_id == project.id, Item.status == ItemStatus.ESCALATED.value)
        ) or 0
        ready: int | None = None
        if drafter is not None and spec.llm.enabled:
            from bot.services.drafting.store import load_context

            ctx = load_context(session, project, drafter, spec)
            window = (select(Item.id.label("id")).where(open_items).order_by(Item.slots, Item.id)
                      .limit(READY_WINDOW).subquery())
            ready = session.scalar(
                select(func.count()).select_from(window).join(
                    Draft, and_(Draft.item_id == window.c.id, Draft.model == ctx.model,
                                Draft.prompt_version == ctx.version, Draft.status == DraftStatus.OK.value))
            ) or 0
        out.append(ProjectGauges(project.slug, int(depth), int(escalated), None if ready is None else int(ready)))
    return out
