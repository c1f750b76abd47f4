"""Drafts in the database: a project's prompt context, what needs drafting, claims (a pending row per item,
model and prompt version wins for one worker) and storing results."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from bot.core.enums import DraftStatus, ItemStatus
from bot.services.drafting.base import CHUNK, MAX_ATTEMPTS, MAX_RETRY_AFTER_SECONDS, ImagePart, Outcome, WorkItem
from bot.services.drafting.prompt import (
    MAX_EXAMPLE_CHARS,
    Example,
    Prompt,
    build_prompt,
    choose_examples,
)
from bot.services.predictions import IMPORTED_PREFIX
from bot.spec import ProjectSpec
from storage.db import Database
from storage.models import Draft, Gold, Image, Item, Project

if TYPE_CHECKING:
    from bot.services.drafting.clients import BaseDrafter

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


def few_shot_gold(session: Session, project_id: int, spec: ProjectSpec) -> list[Example]:
    """The gold items the prompt shows the LLM as worked examples (ids and answers; no texts), a
    deterministic choice among short text items (image items are not: the prompt is text). The
    labeling loop never uses them as hidden checks: the LLM has seen them."""
    if spec.llm.few_shot <= 0:
        return []
    rows = session.execute(
        select(Gold.id, Gold.value)
        .join(Item, Item.id == Gold.item_id)
        .where(Gold.project_id == project_id, func.length(Item.text) <= MAX_EXAMPLE_CHARS,
               Item.image.is_(None))
        .order_by(Gold.id)
    ).all()
    return choose_examples(spec, [Example(gid, "", value) for gid, value in rows])


def load_context(session: Session, project: Project, drafter: BaseDrafter, spec: ProjectSpec | None = None) -> Context:
    """Build the project's prompt: few-shot gold chosen from (id, answer) rows, texts read for the chosen."""
    from bot.services.projects import spec_of

    spec = spec or spec_of(project)
    examples: list[Example] = []
    chosen = few_shot_gold(session, project.id, spec)
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


def lease_for(spec: ProjectSpec) -> timedelta:
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


def done_filter(ctx: Context, cutoff: datetime, retry_errors: bool = False):
    """EXISTS a draft that means "nothing to do" for the item: ok, error (unless retrying), a batch
    submission, or a live claim; or an imported prediction of your own model (it wins over the LLM, so
    drafting the item would be money spent on a draft nobody sees)."""
    settled = [DraftStatus.OK.value] if retry_errors else [DraftStatus.OK.value, DraftStatus.ERROR.value]
    ours = and_(
        Draft.model == ctx.model,
        Draft.prompt_version == ctx.version,
        or_(
            Draft.status.in_(settled),
            and_(Draft.status == DraftStatus.PENDING.value,
                 or_(Draft.batch_id.is_not(None), Draft.created_at >= cutoff)),
        ),
    )
    imported = and_(Draft.status == DraftStatus.OK.value, Draft.prompt_version.like(IMPORTED_PREFIX + "%"))
    return exists().where(Draft.item_id == Item.id, or_(ours, imported))


def _work_select():
    return select(Item.id, Item.text, Item.is_gold, Gold.value, Item.slots, Item.image, Item.image_id).outerjoin(
        Gold, Gold.item_id == Item.id
    )


def _to_work(rows: Iterable[Any]) -> list[WorkItem]:
    """Work items; a URL image rides along as is, a stored image file is loaded once claimed (`_with_images`)."""
    return [
        WorkItem(r[0], r[1], bool(r[2]), r[3],
                 image=ImagePart(r[5]) if r[5] is not None and r[6] is None else None)
        for r in rows
    ]


def _image_ids(session: Session, item_ids: list[int]) -> dict[int, int]:
    found: dict[int, int] = {}
    for chunk in chunks(item_ids):
        found.update(dict(session.execute(
            select(Item.id, Item.image_id).where(Item.id.in_(chunk), Item.image_id.is_not(None))).all()))
    return found


def _with_images(session: Session, items: list[WorkItem]) -> list[WorkItem]:
    """The claimed items with their stored image files as data: URLs (as a vision model takes them)."""
    from bot.services.images.files import data_url, for_model

    by_item = _image_ids(session, [w.item_id for w in items if w.image is None])
    if not by_item:
        return items
    parts: dict[int, ImagePart] = {}
    for chunk in chunks(sorted(set(by_item.values()))):
        for image_id, sha, mime, data in session.execute(
            select(Image.id, Image.sha256, Image.mime, Image.data).where(Image.id.in_(chunk))
        ):
            parts[image_id] = ImagePart(data_url(*for_model(mime, bytes(data))), sha)
    return [replace(w, image=parts.get(by_item[w.item_id])) if w.item_id in by_item else w for w in items]


class Demand:
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
        done = done_filter(ctx, cutoff, retry_errors)
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


class ByIds:
    """Exactly the given items of the project (in id order), those lacking a current draft."""

    def __init__(self, item_ids: Iterable[int]) -> None:
        self.ids = sorted(set(item_ids))
        self.pos = 0
        self.ready: list[Any] = []

    def candidates(self, s: Session, ctx: Context, n: int, cutoff: datetime, retry_errors: bool) -> list[WorkItem]:
        done = done_filter(ctx, cutoff, retry_errors)
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


def chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _claim_row(ctx: Context, item_id: int, now: datetime, simulated: bool, batch_id: str | None = None) -> dict:
    return {
        "project_id": ctx.project_id, "item_id": item_id, "model": ctx.model, "prompt_version": ctx.version,
        "status": DraftStatus.PENDING.value, "value": None, "value_key": None, "confidence": None,
        "error_kind": None, "error": None, "raw": None, "prompt_tokens": 0, "cached_tokens": 0,
        "completion_tokens": 0, "latency_ms": None, "attempts": 0, "batch_id": batch_id,
        "simulated": simulated, "created_at": now,
    }


def claim(db: Database, ctx: Context, source: Any, n: int, now: datetime, simulated: bool,
           retry_errors: bool = False) -> list[WorkItem]:
    """Claim up to n items for drafting (pending rows); safe across threads and replicas."""
    cutoff = now - lease_for(ctx.spec)
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
        for chunk in chunks(rest):  # take over expired claims (and error rows when retrying errors)
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
        return _with_images(s, [c for c in cands if c.item_id in got])


def mine(ctx: Context, item_ids: list[int], batch_id: str | None = None):
    return and_(
        Draft.item_id.in_(item_ids), Draft.model == ctx.model, Draft.prompt_version == ctx.version,
        Draft.status == DraftStatus.PENDING.value,
        Draft.batch_id.is_(None) if batch_id is None else Draft.batch_id == batch_id,
    )


def store_outcomes(db: Database, ctx: Context, finished: list[tuple[WorkItem, Outcome]], now: datetime) -> None:
    with db.session() as s:
        for item, o in finished:
            values = {**o.columns(), "created_at": now}
            res = s.execute(
                update(Draft).where(mine(ctx, [item.item_id])).values(**values)
                .execution_options(synchronize_session=False)
            )
            if res.rowcount == 0:  # our claim was released or taken over: keep a result if none is stored
                _insert_ignore(s, [{**_claim_row(ctx, item.item_id, now, o.simulated), **values}])


def release(db: Database, ctx: Context, item_ids: list[int]) -> None:
    if item_ids:
        with db.session() as s:
            for chunk in chunks(item_ids):
                s.execute(delete(Draft).where(mine(ctx, chunk)).execution_options(synchronize_session=False))
