"""Set-based reads into pandas frames for the reports (no per-label ORM objects, no per-row Python).

`labels_frame` runs ONE select over labels (joined to assignments, drafts and gold; members are a
small separate lookup) for a project and a time window, fetched in chunks: each chunk's string
columns are factorised at once into integer codes against a growing dictionary, so the peak memory is
one chunk of Python objects plus compact codes, and the result has category dtypes for strings.

Columns of the labels frame (the contract in `bot.quality.common.LABEL_COLUMNS`, plus extras):

    item_id      int64
    annotator    category (the Slack user id; ordered, so `a < b` works after merges)
    value_key    category (canonical JSON of the answer; None for skip)
    value        object   (json.loads of value_key, decoded once per distinct key)
    action       category (accept | edit | reject | manual | skip | ambiguous)
    draft_shown  bool
    draft_key    category (value_key of the draft linked to the assignment, shown or not; None if none)
    seconds      float64
    counts       bool
    kind         category (production | quiz | honeypot | expert)
    gold_key     category (Gold.value_key for gold items, else None)
    tier         category (Member.tier)
    created_at   datetime64[ns, UTC]
    blind        bool     (the assignment was a blind control)
    correct      float64  (the stored score against gold, when scored)
    member_id    int64

Timestamps are read without per-row Python: SQLite returns the stored text (parsed vectorised),
PostgreSQL returns epoch seconds as float8.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Float, String, cast, extract, func, select, type_coerce
from sqlalchemy.orm import Session

from storage.models import Assignment, Draft, Gold, Label, Member

__all__ = [
    "CHUNK_ROWS",
    "LABEL_FRAME_COLUMNS",
    "daily_throughput",
    "decode_values",
    "drafts_frame",
    "empty_labels_frame",
    "labels_frame",
    "members_frame",
    "throughput_frame",
]

CHUNK_ROWS = 100_000

LABEL_FRAME_COLUMNS: tuple[str, ...] = (
    "item_id",
    "annotator",
    "value_key",
    "value",
    "action",
    "draft_shown",
    "draft_key",
    "seconds",
    "counts",
    "kind",
    "gold_key",
    "tier",
    "created_at",
    "blind",
    "correct",
    "member_id",
)


# --- column builders -----------------------------------------------------------------------------


@dataclass
class _Codes:
    """Accumulates a string column chunk by chunk as integer codes (-1 = missing)."""

    index: dict[Any, int] = field(default_factory=dict)
    parts: list[np.ndarray] = field(default_factory=list)

    def add(self, values: Sequence[Any]) -> None:
        codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
        mapping = np.empty(len(uniques) + 1, dtype=np.int32)
        for i, u in enumerate(uniques):
            mapping[i] = self.index.setdefault(u, len(self.index))
        mapping[-1] = -1
        self.parts.append(mapping[codes])

    def categorical(self, *, ordered: bool = False, rename: dict[Any, Any] | None = None) -> pd.Categorical:
        codes = np.concatenate(self.parts) if self.parts else np.empty(0, dtype=np.int32)
        cats = list(self.index)
        if rename is not None:
            cats = [rename.get(c, c) for c in cats]
        # Sorted categories make codes comparable and outputs deterministic.
        order = sorted(range(len(cats)), key=lambda i: str(cats[i]))
        remap = np.empty(len(cats) + 1, dtype=np.int32)
        remap[np.asarray(order, dtype=np.int64)] = np.arange(len(order), dtype=np.int32)
        remap[-1] = -1
        categories = pd.Index([cats[i] for i in order], dtype=object)
        return pd.Categorical.from_codes(remap[codes], categories=categories, ordered=ordered)


def decode_values(keys: pd.Series) -> pd.Series:
    """json.loads of each value key, each distinct key decoded once (missing -> None)."""
    cat = keys if isinstance(keys.dtype, pd.CategoricalDtype) else keys.astype("category")
    decoded = np.empty(len(cat.cat.categories) + 1, dtype=object)
    for i, k in enumerate(cat.cat.categories):
        decoded[i] = json.loads(k)
    decoded[-1] = None
    codes = cat.cat.codes.to_numpy()
    return pd.Series(decoded[codes], index=keys.index, name="value", dtype=object)


def _utc_times(values: Sequence[Any], dialect: str) -> np.ndarray:
    """Nanoseconds since the epoch (int64) from what the select returned for created_at."""
    if dialect == "sqlite":
        # Stored as "YYYY-MM-DD HH:MM:SS[.ffffff]" (naive UTC); parsed in one vectorised call.
        parsed = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601", utc=True)
        return parsed.dt.tz_convert(None).astype("datetime64[ns]").to_numpy().view(np.int64)
    seconds = np.asarray(values, dtype=np.float64)  # epoch seconds (float8) on PostgreSQL
    return np.round(seconds * 1e6).astype(np.int64) * 1000


def _created_at_column(column: Any, dialect: str) -> Any:
    """The created_at column without the UTCDateTime per-row processor."""
    if dialect == "sqlite":
        return type_coerce(column, String)
    return cast(extract("epoch", column), Float)


def _times_series(parts: list[np.ndarray]) -> pd.Series:
    ns = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    return pd.Series(pd.to_datetime(ns, unit="ns", utc=True)).astype("datetime64[ns, UTC]")


def _float(values: Sequence[Any]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)  # None -> nan


def _bool(values: Sequence[Any]) -> np.ndarray:
    return np.asarray(values, dtype=object).astype(bool)  # None -> False


# --- members ---------------------------------------------------------------------------------------


def members_frame(session: Session, project_id: int) -> pd.DataFrame:
    """One row per member: member_id, user_id, tier, state, state_reason, suspended_at, qualified_at."""
    rows = session.execute(
        select(
            Member.id,
            Member.user_id,
            Member.tier,
            Member.state,
            Member.state_reason,
            Member.suspended_at,
            Member.qualified_at,
        )
        .where(Member.project_id == project_id)
        .order_by(Member.id)
    ).all()
    columns = ["member_id", "user_id", "tier", "state", "state_reason", "suspended_at", "qualified_at"]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    frame["member_id"] = frame["member_id"].astype("int64")
    for col in ("suspended_at", "qualified_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


# --- labels ----------------------------------------------------------------------------------------


def empty_labels_frame() -> pd.DataFrame:
    return _assemble(
        item_id=np.empty(0, np.int64),
        member_id=np.empty(0, np.int64),
        codes={},
        members=None,
        floats={"seconds": np.empty(0), "correct": np.empty(0)},
        bools={"draft_shown": np.empty(0, bool), "counts": np.empty(0, bool), "blind": np.empty(0, bool)},
        times=[],
    )


_STRING_COLUMNS = ("value_key", "action", "draft_key", "kind", "gold_key")


def labels_frame(
    session: Session,
    project_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    kinds: Iterable[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> pd.DataFrame:
    """The labels of a project created in [since, until) as a frame (see the module docstring)."""
    dialect = session.get_bind().dialect.name
    draft_id = func.coalesce(Assignment.draft_id, Label.draft_id)
    stmt = (
        select(
            Label.item_id,
            Label.member_id,
            Label.value_key,
            Label.action,
            Label.draft_shown,
            Draft.value_key,
            Label.seconds,
            Label.counts,
            Label.kind,
            Gold.value_key,
            _created_at_column(Label.created_at, dialect),
            Assignment.blind,
            Label.correct,
        )
        .select_from(Label)
        .join(Assignment, Assignment.id == Label.assignment_id)
        .outerjoin(Draft, Draft.id == draft_id)
        .outerjoin(Gold, Gold.item_id == Label.item_id)
        .where(Label.project_id == project_id)
    )
    if since is not None:
        stmt = stmt.where(Label.created_at >= since)
    if until is not None:
        stmt = stmt.where(Label.created_at < until)
    if kinds is not None:
        stmt = stmt.where(Label.kind.in_(list(kinds)))

    item_ids: list[np.ndarray] = []
    member_ids: list[np.ndarray] = []
    codes = {name: _Codes() for name in _STRING_COLUMNS}
    floats: dict[str, list[np.ndarray]] = {"seconds": [], "correct": []}
    bools: dict[str, list[np.ndarray]] = {"draft_shown": [], "counts": [], "blind": []}
    times: list[np.ndarray] = []

    result = session.execute(stmt, execution_options={"yield_per": chunk_rows, "stream_results": True})
    for chunk in result.partitions(chunk_rows):
        if not chunk:
            continue
        (
            item,
            member,
            value_key,
            action,
            shown,
            draft_key,
            seconds,
            counts,
            kind,
            gold_key,
            created,
            blind,
            correct,
        ) = zip(*chunk, strict=True)
        item_ids.append(np.asarray(item, dtype=np.int64))
        member_ids.append(np.asarray(member, dtype=np.int64))
        for name, values in zip(_STRING_COLUMNS, (value_key, action, draft_key, kind, gold_key), strict=True):
            codes[name].add(values)
        floats["seconds"].append(_float(seconds))
        floats["correct"].append(_float(correct))
        bools["draft_shown"].append(_bool(shown))
        bools["counts"].append(_bool(counts))
        bools["blind"].append(_bool(blind))
        times.append(_utc_times(created, dialect))
        del chunk

    members = members_frame(session, project_id)
    return _assemble(
        item_id=np.concatenate(item_ids) if item_ids else np.empty(0, np.int64),
        member_id=np.concatenate(member_ids) if member_ids else np.empty(0, np.int64),
        codes=codes,
        members=members,
        floats={k: np.concatenate(v) if v else np.empty(0) for k, v in floats.items()},
        bools={k: np.concatenate(v) if v else np.empty(0, bool) for k, v in bools.items()},
        times=times,
    )


def _assemble(
    *,
    item_id: np.ndarray,
    member_id: np.ndarray,
    codes: dict[str, _Codes],
    members: pd.DataFrame | None,
    floats: dict[str, np.ndarray],
    bools: dict[str, np.ndarray],
    times: list[np.ndarray],
) -> pd.DataFrame:
    n = len(item_id)

    def cat(name: str) -> pd.Series:
        c = codes.get(name)
        if c is None:
            return pd.Series(pd.Categorical([], categories=pd.Index([], dtype=object)))
        return pd.Series(c.categorical())

    # annotator and tier from the (small) members table, by member id
    if members is not None and len(members):
        ids = members["member_id"].to_numpy(dtype=np.int64)
        pos = np.searchsorted(ids, member_id)
        pos = np.clip(pos, 0, len(ids) - 1)
        known = ids[pos] == member_id if n else np.zeros(0, bool)
        users = pd.Index(sorted(set(members["user_id"].astype(object))), dtype=object)
        user_code_of_member = users.get_indexer(members["user_id"].astype(object))
        annotator_codes = np.where(known, user_code_of_member[pos], -1).astype(np.int32)
        annotator = pd.Categorical.from_codes(annotator_codes, categories=users, ordered=True)
        tiers = pd.Index(sorted(set(members["tier"].astype(object))), dtype=object)
        tier_code_of_member = tiers.get_indexer(members["tier"].astype(object))
        tier = pd.Categorical.from_codes(
            np.where(known, tier_code_of_member[pos], -1).astype(np.int32), categories=tiers
        )
    else:
        annotator = pd.Categorical.from_codes(
            np.full(n, -1, np.int32), categories=pd.Index([], dtype=object), ordered=True
        )
        tier = pd.Categorical.from_codes(np.full(n, -1, np.int32), categories=pd.Index([], dtype=object))

    value_key = cat("value_key")
    frame = pd.DataFrame(
        {
            "item_id": pd.Series(item_id, dtype="int64"),
            "annotator": pd.Series(annotator),
            "value_key": value_key,
            "value": decode_values(value_key),
            "action": cat("action"),
            "draft_shown": pd.Series(bools["draft_shown"], dtype=bool),
            "draft_key": cat("draft_key"),
            "seconds": pd.Series(floats["seconds"], dtype="float64"),
            "counts": pd.Series(bools["counts"], dtype=bool),
            "kind": cat("kind"),
            "gold_key": cat("gold_key"),
            "tier": pd.Series(tier),
            "created_at": _times_series(times),
            "blind": pd.Series(bools["blind"], dtype=bool),
            "correct": pd.Series(floats["correct"], dtype="float64"),
            "member_id": pd.Series(member_id, dtype="int64"),
        }
    )
    return frame


# --- drafts ----------------------------------------------------------------------------------------

DRAFT_FRAME_COLUMNS = (
    "draft_id",
    "item_id",
    "model",
    "status",
    "value_key",
    "confidence",
    "error_kind",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "latency_ms",
    "attempts",
    "simulated",
    "created_at",
)


def drafts_frame(
    session: Session, project_id: int, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """Drafts of a project made in [since, until): one row each (tokens, latency, status, errors)."""
    dialect = session.get_bind().dialect.name
    stmt = select(
        Draft.id,
        Draft.item_id,
        Draft.model,
        Draft.status,
        Draft.value_key,
        Draft.confidence,
        Draft.error_kind,
        Draft.prompt_tokens,
        Draft.cached_tokens,
        Draft.completion_tokens,
        Draft.latency_ms,
        Draft.attempts,
        Draft.simulated,
        _created_at_column(Draft.created_at, dialect),
    ).where(Draft.project_id == project_id)
    if since is not None:
        stmt = stmt.where(Draft.created_at >= since)
    if until is not None:
        stmt = stmt.where(Draft.created_at < until)
    rows = session.execute(stmt).all()
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(DRAFT_FRAME_COLUMNS)
    data: dict[str, Any] = {}
    for name, values in zip(DRAFT_FRAME_COLUMNS, cols, strict=True):
        if name in ("draft_id", "item_id", "prompt_tokens", "cached_tokens", "completion_tokens", "attempts"):
            data[name] = pd.Series(np.asarray([v or 0 for v in values], dtype=np.int64))
        elif name in ("confidence", "latency_ms"):
            data[name] = pd.Series(_float(values))
        elif name == "simulated":
            data[name] = pd.Series(_bool(values), dtype=bool)
        elif name == "created_at":
            data[name] = _times_series([_utc_times(values, dialect)] if values else [])
        else:
            data[name] = pd.Series(pd.Categorical(np.asarray(values, dtype=object)))
    return pd.DataFrame(data)


# --- throughput --------------------------------------------------------------------------------------


def throughput_frame(labels: pd.DataFrame, tz: str = "UTC") -> pd.DataFrame:
    """Labels per local day and annotator: columns day (datetime.date), annotator, labels, answered."""
    if labels.empty:
        return pd.DataFrame(
            {
                "day": pd.Series([], dtype=object),
                "annotator": pd.Series([], dtype=object),
                "labels": pd.Series([], dtype="int64"),
                "answered": pd.Series([], dtype="int64"),
            }
        )
    day = labels["created_at"].dt.tz_convert(tz).dt.date
    answered = ~labels["action"].isin(("skip", "ambiguous")).to_numpy(dtype=bool)
    grouped = (
        pd.DataFrame(
            {
                "day": day.to_numpy(),
                "annotator": labels["annotator"].astype(object).to_numpy(),
                "one": 1,
                "answered": answered.astype(np.int64),
            }
        )
        .groupby(["day", "annotator"], sort=True)
        .agg(labels=("one", "sum"), answered=("answered", "sum"))
        .reset_index()
    )
    return grouped


def daily_throughput(labels: pd.DataFrame, tz: str, days: Sequence[Any]) -> pd.Series:
    """Labels per local day over exactly `days` (missing days are 0), indexed by date."""
    per = throughput_frame(labels, tz)
    totals = per.groupby("day")["labels"].sum() if len(per) else pd.Series(dtype="int64")
    return totals.reindex(list(days), fill_value=0).astype("int64")
