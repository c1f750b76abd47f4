"""Settling items from their stored labels, and the expert queue.

- `ProjectAggregator` applies `bot.quality.aggregation.aggregate` to a project chunk by chunk of
  items (each chunk's counting answers are read with one index range query on `labels.item_id`), so
  the memory it needs does not grow with the project. Dawid-Skene needs every annotator's confusion
  matrix, so with ``method="dawid_skene"`` it first fits the model ONCE on the whole project's
  compact (item, annotator, value_key) columns, keeps only each item's posterior winner, and then
  streams like majority vote, swapping in the fitted answer for crowd-settled items.
- `escalate_low_confidence` sends complete items whose aggregated confidence is below the project's
  ``escalation.min_confidence`` to the expert queue (Dawid-Skene posterior for classification, the
  task's own confidence otherwise); `refresh_low_confidence` does the same in two short transactions
  so that the long read never holds SQLite's write lock.
- `queue_summary` and `escalated_items` list the queue for `labelbot queue`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.core.clock import as_utc
from bot.core.enums import Action, AssignmentKind, AssignmentStatus, ItemStatus, TaskType, Tier
from bot.core.values import display
from bot.quality.aggregation import AGGREGATE_COLUMNS, aggregate, canonical_value, dawid_skene, majority_vote
from bot.quality.aggregation import value_key as agg_value_key
from bot.services.projects import get_project, spec_of
from storage.db import Database
from storage.models import Assignment, Gold, Item, Label, Member, Project

__all__ = [
    "CHUNK_ITEMS",
    "METHODS",
    "SETTLED_STATUSES",
    "EscalatedItem",
    "ProjectAggregator",
    "QueueListing",
    "escalate_low_confidence",
    "escalated_items",
    "iter_item_chunks",
    "low_confidence_items",
    "low_confidence_reason",
    "queue_summary",
    "read_snapshot",
    "refresh_low_confidence",
]

CHUNK_ITEMS = 20_000
FIT_CHUNK_ROWS = 100_000
METHODS = ("majority", "dawid_skene")
SETTLED_STATUSES = (ItemStatus.COMPLETE, ItemStatus.RESOLVED, ItemStatus.GOLD)
_NO_ANSWER = (Action.SKIP.value, Action.AMBIGUOUS.value)
_UPDATE_BATCH = 500


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_snapshot(session: Session) -> Session:
    """Make every later query of this (not yet begun) read session see one snapshot.

    SQLite's deferred read transaction already does (WAL); PostgreSQL needs REPEATABLE READ, or an
    item settled between two chunks could be counted in one total and not in another."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    return session


def iter_item_chunks(
    session: Session,
    project_id: int,
    statuses: Sequence[str] | None = None,
    *,
    columns: Sequence[Any] = (Item.id,),
    chunk_items: int = CHUNK_ITEMS,
) -> Iterator[Sequence[Any]]:
    """Rows of `columns` (the first must be Item.id) of a project's items in id order, `chunk_items`
    at a time, from one streamed query (a server-side cursor on PostgreSQL)."""
    stmt = select(*columns).where(Item.project_id == project_id)
    if statuses is not None:
        stmt = stmt.where(Item.status.in_([str(s) for s in statuses]))
    stmt = stmt.order_by(Item.id)
    # Core execution on the session's connection: no ORM row wrapping per item.
    result = session.connection().execute(stmt, execution_options={"yield_per": chunk_items})
    for part in result.partitions(chunk_items):
        if part:
            yield part


class KeyDecoder:
    """json.loads of value keys, each distinct key decoded once (bounded cache)."""

    def __init__(self, limit: int = 50_000) -> None:
        self._cache: dict[str, Any] = {}
        self._limit = limit

    def __call__(self, key: str | None) -> Any:
        if key is None:
            return None
        try:
            return self._cache[key]
        except KeyError:
            value = json.loads(key)
            if len(self._cache) < self._limit:
                self._cache[key] = value
            return value


def _objects(values: Sequence[Any]) -> np.ndarray:
    """An object array of exactly len(values) items (np.array would nest lists into 2-D)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


# --------------------------------------------------------------------------------------------
# Aggregation over the database
# --------------------------------------------------------------------------------------------


@dataclass
class _Fit:
    """The Dawid-Skene answer per item: value_key (None on a tie), confidence, tie; index item_id."""

    items: pd.DataFrame
    iterations: int
    converged: bool


class ProjectAggregator:
    """`settle(item_ids)` -> the aggregate rows of those items (any chunk of a project's items).

    Rows follow `AGGREGATE_COLUMNS` (index item_id). Items with a gold answer but no counting labels
    (imported gold) get a row of their own: their gold answer, confidence 1, source "gold",
    n_labels 0. Items with neither get no row.
    """

    def __init__(self, session: Session, project: Project, method: str = "majority") -> None:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r} (expected one of {', '.join(METHODS)})")
        self.session = session
        self.project_id = project.id
        self.spec = spec_of(project)
        self.task = self.spec.task.value
        if method == "dawid_skene" and self.spec.task is not TaskType.CLASSIFICATION:
            raise ValueError("Dawid-Skene aggregates classification projects only; use majority.")
        self.method = method
        tiers = dict(session.execute(select(Member.id, Member.tier).where(Member.project_id == project.id)).all())
        self._expert_members = np.asarray(
            sorted(m for m, t in tiers.items() if t == Tier.EXPERT), dtype=np.int64
        )
        self._decode = KeyDecoder()
        self.fit: _Fit | None = self._fit_dawid_skene() if method == "dawid_skene" else None

    # ---- reading -----------------------------------------------------------------------------
    def _answers_stmt(self) -> Any:
        return select(Label.item_id, Label.member_id, Label.value_key, Label.kind).where(
            Label.project_id == self.project_id,
            Label.counts.is_(True),
            Label.value_key.is_not(None),
            Label.action.notin_(_NO_ANSWER),
        )

    def _is_expert(self, members: np.ndarray, kinds: np.ndarray) -> np.ndarray:
        return (kinds == AssignmentKind.EXPERT.value) | np.isin(members, self._expert_members)

    def _gold_keys(self, lo: int | None = None, hi: int | None = None) -> dict[int, Any]:
        stmt = select(Gold.item_id, Gold.value).where(Gold.project_id == self.project_id)
        if lo is not None and hi is not None:
            stmt = stmt.where(Gold.item_id >= lo, Gold.item_id <= hi)
        return {int(i): v for i, v in self.session.execute(stmt).all()}

    # ---- Dawid-Skene, fitted once ------------------------------------------------------------
    def _fit_dawid_skene(self) -> _Fit:
        items: list[np.ndarray] = []
        members: list[np.ndarray] = []
        codes: list[np.ndarray] = []
        experts: list[np.ndarray] = []
        index: dict[str, int] = {}
        result = self.session.connection().execute(
            self._answers_stmt().order_by(Label.id), execution_options={"yield_per": FIT_CHUNK_ROWS}
        )
        for part in result.partitions(FIT_CHUNK_ROWS):
            if not part:
                continue
            item, member, key, kind = zip(*part, strict=True)
            member_arr = np.asarray(member, dtype=np.int64)
            local, uniques = pd.factorize(np.asarray(key, dtype=object))
            mapping = np.asarray([index.setdefault(u, len(index)) for u in uniques], dtype=np.int32)
            items.append(np.asarray(item, dtype=np.int64))
            members.append(member_arr)
            codes.append(mapping[local])
            experts.append(self._is_expert(member_arr, np.asarray(kind, dtype=object)))
            del part, item, member, key, kind
        if not items:
            empty = pd.DataFrame({"value_key": pd.Series(dtype=object), "confidence": pd.Series(dtype=float),
                                  "tie": pd.Series(dtype=bool)})
            return _Fit(empty, 0, True)
        keys = pd.Index(list(index), dtype=object)
        decoded = _objects([self._decode(k) for k in keys])
        item_all, member_all = np.concatenate(items), np.concatenate(members)
        code_all, expert_all = np.concatenate(codes), np.concatenate(experts)
        del items, members, codes, experts

        def frame(mask: np.ndarray) -> pd.DataFrame:
            picked = code_all[mask]
            return pd.DataFrame(
                {
                    "item_id": item_all[mask],
                    "annotator": member_all[mask],
                    "value_key": pd.Series(pd.Categorical.from_codes(picked, categories=keys)),
                    "value": pd.Series(decoded[picked], dtype=object),
                }
            ).drop_duplicates(["item_id", "annotator"], keep="last")

        clamps: dict[Any, str] = {}
        if expert_all.any():
            vote = majority_vote(frame(expert_all).astype({"value_key": object}))
            clamps.update({int(i): k for i, k in zip(vote["item_id"], vote["value_key"], strict=True) if k})
        clamps.update(
            {i: agg_value_key(canonical_value(self.task, v)) for i, v in self._gold_keys().items()}
        )
        crowd = frame(~expert_all)
        fitted = dawid_skene(crowd, gold=clamps)
        del crowd
        out = pd.DataFrame(
            {
                "value_key": fitted.items["value_key"].to_numpy(dtype=object),
                "confidence": fitted.items["confidence"].to_numpy(dtype=float),
                "tie": fitted.items["tie"].to_numpy(dtype=bool),
            },
            index=pd.Index(fitted.items["item_id"].to_numpy(dtype=np.int64), name="item_id"),
        )
        return _Fit(out, fitted.iterations, fitted.converged)

    # ---- one chunk ---------------------------------------------------------------------------
    def labels(self, item_ids: Sequence[int]) -> pd.DataFrame:
        """The counting answers of these items as a labels frame (`aggregate`'s input)."""
        ids = np.asarray(item_ids, dtype=np.int64)
        rows: Sequence[Any] = []
        if len(ids):
            stmt = self._answers_stmt().where(Label.item_id >= int(ids.min()), Label.item_id <= int(ids.max()))
            rows = self.session.connection().execute(stmt.order_by(Label.item_id, Label.id)).fetchall()
        if rows:
            item, member, key, kind = zip(*rows, strict=True)
            items, members = np.asarray(item, dtype=np.int64), np.asarray(member, dtype=np.int64)
            keys, kinds = _objects(key), _objects(kind)
            keep = np.isin(items, ids)
            items, members, keys, kinds = items[keep], members[keep], keys[keep], kinds[keep]
        else:
            items = members = np.empty(0, dtype=np.int64)
            keys = kinds = np.empty(0, dtype=object)
        codes, uniques = pd.factorize(keys)
        decoded = _objects([self._decode(k) for k in uniques])
        return pd.DataFrame(
            {
                "item_id": items,
                "annotator": members,
                "value": pd.Series(decoded[codes], dtype=object),
                "value_key": pd.Series(keys, dtype=object),
                "counts": np.ones(len(items), dtype=bool),
                "kind": pd.Series(kinds, dtype=object),
                "tier": pd.Series(np.where(np.isin(members, self._expert_members), "expert", "crowd"), dtype=object),
            }
        )

    def settle(self, item_ids: Sequence[int]) -> pd.DataFrame:
        ids = np.asarray(item_ids, dtype=np.int64)
        frame = self.labels(ids)
        wanted = set(ids.tolist())
        gold = self._gold_keys(int(ids.min()), int(ids.max())) if len(ids) else {}
        gold = {i: v for i, v in gold.items() if i in wanted}
        out = aggregate(self.task, frame, gold=gold, method="majority").set_index("item_id")
        out.index = out.index.astype(np.int64)
        if self.fit is not None and len(out):
            out = self._use_fit(out, frame)
        missing = [i for i in gold if i not in out.index]
        if missing:
            extra = pd.DataFrame(
                {
                    "value": _objects([canonical_value(self.task, gold[i]) for i in missing]),
                    "value_key": [agg_value_key(canonical_value(self.task, gold[i])) for i in missing],
                    "confidence": 1.0,
                    "method": "gold",
                    "n_labels": np.zeros(len(missing), dtype=np.int64),
                    "agreement": np.nan,
                    "source": "gold",
                    "needs_expert": False,
                    "reason": None,
                },
                index=pd.Index(missing, dtype=np.int64, name="item_id"),
            )
            out = pd.concat([out, extra]).sort_index()
        return out[[c for c in AGGREGATE_COLUMNS if c != "item_id"]]

    def _use_fit(self, out: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
        assert self.fit is not None
        fitted = self.fit.items.reindex(out.index)
        use = (out["source"] == "crowd").to_numpy(dtype=bool) & fitted["confidence"].notna().to_numpy(dtype=bool)
        if not use.any():
            return out
        out = out.copy()
        tie = fitted["tie"].to_numpy(dtype=object)[use].astype(bool)
        keys = fitted["value_key"].to_numpy(dtype=object)[use]
        keys[tie] = None
        value_key = out["value_key"].to_numpy(dtype=object).copy()
        value = out["value"].to_numpy(dtype=object).copy()
        value_key[use] = keys
        value[use] = _objects([self._decode(k) for k in keys])
        out["value_key"] = value_key
        out["value"] = value
        out.loc[use, "confidence"] = fitted["confidence"].to_numpy(dtype=float)[use]
        out.loc[use, "method"] = "dawid_skene"
        needs = out["needs_expert"].to_numpy(dtype=bool).copy()
        needs[use] = tie
        out["needs_expert"] = needs
        reason = out["reason"].to_numpy(dtype=object).copy()
        reason[use] = np.where(tie, "tie", None)
        out["reason"] = reason
        # agreement: share of the item's crowd labels equal to the fitted answer
        expert = self._is_expert(frame["annotator"].to_numpy(np.int64), frame["kind"].to_numpy(dtype=object))
        crowd = frame.loc[~expert].drop_duplicates(["item_id", "annotator"], keep="last")
        final = crowd["item_id"].map(out["value_key"]).to_numpy(dtype=object)
        match = pd.Series(crowd["value_key"].to_numpy(dtype=object) == final, index=crowd.index)
        agreement = match.groupby(crowd["item_id"]).mean().reindex(out.index)
        out.loc[use, "agreement"] = agreement.to_numpy(dtype=float)[use]
        return out


# --------------------------------------------------------------------------------------------
# Low confidence -> expert queue
# --------------------------------------------------------------------------------------------


def low_confidence_reason(confidence: float, threshold: float) -> str:
    """`low confidence 0.52 < 0.7` (the confidence rounded DOWN, so it never prints as >= threshold)."""
    shown = math.floor(confidence * 100 + 1e-9) / 100
    return f"low confidence {shown:.2f} < {threshold:g}"


def low_confidence_items(session: Session, project: Project, *, chunk_items: int = CHUNK_ITEMS) -> list[
    tuple[int, float]
]:
    """(item id, confidence) of complete items whose crowd answer is below escalation.min_confidence."""
    spec = spec_of(project)
    threshold = spec.escalation.min_confidence
    if threshold is None:
        return []
    method = "dawid_skene" if spec.task is TaskType.CLASSIFICATION else "majority"
    aggregator = ProjectAggregator(session, project, method)
    found: list[tuple[int, float]] = []
    for part in iter_item_chunks(session, project.id, [ItemStatus.COMPLETE], chunk_items=chunk_items):
        rows = aggregator.settle([r[0] for r in part])
        conf = rows["confidence"].to_numpy(dtype=float)
        low = (rows["source"] == "crowd").to_numpy(dtype=bool) & ~np.isnan(conf) & (conf < threshold)
        found.extend(zip(rows.index[low].tolist(), conf[low].tolist(), strict=True))
    return found


def _apply_escalations(
    session: Session, project: Project, found: list[tuple[int, float]], threshold: float, now: datetime
) -> int:
    spec = spec_of(project)
    by_reason: dict[str, list[int]] = {}
    for item_id, confidence in found:
        by_reason.setdefault(low_confidence_reason(confidence, threshold), []).append(item_id)
    moved = 0
    for reason, ids in sorted(by_reason.items()):
        for start in range(0, len(ids), _UPDATE_BATCH):
            batch = ids[start : start + _UPDATE_BATCH]
            changed = session.execute(
                update(Item)
                .where(Item.project_id == project.id, Item.id.in_(batch), Item.status == ItemStatus.COMPLETE)
                .values(status=ItemStatus.ESCALATED.value, escalation_reason=reason, updated_at=now)
                .returning(Item.id)
                .execution_options(synchronize_session=False)
            ).scalars().all()
            moved += len(changed)
            if changed and spec.webhooks:
                _escalation_events(session, project, spec, list(changed), now)
    return moved


def _escalation_events(session: Session, project: Project, spec: Any, item_ids: list[int], now: datetime) -> None:
    """`item.escalated` webhook events for items that just went to the expert queue (same transaction)."""
    from bot.core.enums import WebhookEvent
    from bot.services import webhooks

    for item in session.scalars(select(Item).where(Item.id.in_(item_ids)).order_by(Item.id)):
        webhooks.enqueue(session, project, spec, WebhookEvent.ITEM_ESCALATED,
                         webhooks.item_data(item, reason=item.escalation_reason), now)


def escalate_low_confidence(session: Session, project: Project, now: datetime) -> int:
    """Send complete items below `escalation.min_confidence` to the expert queue, with a reason like
    ``low confidence 0.52 < 0.7``. Returns how many moved (0 when no threshold is set). Idempotent:
    only items still `complete` change."""
    threshold = spec_of(project).escalation.min_confidence
    if threshold is None:
        return 0
    return _apply_escalations(session, project, low_confidence_items(session, project), threshold, now)


def refresh_low_confidence(db: Database, slug: str, now: datetime) -> int:
    """`escalate_low_confidence` as a read transaction (the scan) then a short write transaction."""
    with db.read() as s:
        project = get_project(read_snapshot(s), slug)
        threshold = spec_of(project).escalation.min_confidence
        if threshold is None:
            return 0
        found = low_confidence_items(s, project)
    if not found:
        return 0
    with db.session() as s:
        return _apply_escalations(s, get_project(s, slug), found, threshold, now)


# --------------------------------------------------------------------------------------------
# The queue, for people
# --------------------------------------------------------------------------------------------


def queue_summary(session: Session, project: Project) -> dict[str, int]:
    """Items per status, every status present (0 when none), in the lifecycle's order."""
    counts = dict(
        session.execute(
            select(Item.status, func.count()).where(Item.project_id == project.id).group_by(Item.status)
        ).all()
    )
    out = {s.value: int(counts.pop(s.value, 0)) for s in ItemStatus}
    out.update({str(k): int(v) for k, v in counts.items()})
    return out


@dataclass(frozen=True)
class EscalatedItem:
    external_id: str
    text: str
    reason: str | None
    waiting: timedelta
    crowd: list[tuple[str, str]] = field(default_factory=list)  # (user id, answer as text)
    claimed_by: str | None = None  # an expert holding it right now


@dataclass(frozen=True)
class QueueListing:
    items: list[EscalatedItem]
    total: int


def escalated_items(session: Session, project: Project, now: datetime, limit: int = 50) -> QueueListing:
    """Items waiting for an expert, oldest first (the order experts are served in)."""
    spec = spec_of(project)
    where = (Item.project_id == project.id, Item.status == ItemStatus.ESCALATED)
    total = session.scalar(select(func.count()).select_from(Item).where(*where)) or 0
    rows = session.execute(
        select(Item.id, Item.external_id, Item.text, Item.escalation_reason, Item.updated_at)
        .where(*where)
        .order_by(Item.updated_at, Item.id)
        .limit(limit)
    ).all()
    ids = [r[0] for r in rows]
    answers: dict[int, list[tuple[str, str]]] = {i: [] for i in ids}
    claimed: dict[int, str] = {}
    text_of = {r[0]: r[2] for r in rows}
    if ids:
        for item_id, user, action, value in session.execute(
            select(Label.item_id, Label.user_id, Label.action, Label.value)
            .where(Label.item_id.in_(ids), Label.kind == AssignmentKind.PRODUCTION, Label.action != Action.SKIP)
            .order_by(Label.item_id, Label.id)
        ).all():
            shown = "(flagged ambiguous)" if action == Action.AMBIGUOUS else display(spec.task, value, text_of[item_id])
            answers[item_id].append((user, shown))
        claimed = dict(
            session.execute(
                select(Assignment.item_id, Assignment.user_id).where(
                    Assignment.item_id.in_(ids),
                    Assignment.kind == AssignmentKind.EXPERT,
                    Assignment.status == AssignmentStatus.OPEN,
                    Assignment.expires_at > now,
                )
            ).all()
        )
    items = [
        EscalatedItem(
            external_id=ext, text=text, reason=reason, waiting=max(timedelta(0), now - as_utc(updated)),
            crowd=answers[item_id], claimed_by=claimed.get(item_id),
        )
        for item_id, ext, text, reason, updated in rows
    ]
    return QueueListing(items, int(total))


# --------------------------------------------------------------------------------------------
# Scheduled job
# --------------------------------------------------------------------------------------------


