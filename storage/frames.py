"""Set-based reads into pandas frames for the reports (no ORM objects, no per-label Python loops).

`labels_frame` runs ONE select over labels joined to assignments, drafts and gold (members are a
small separate lookup) for a project and a time window. Building a Python tuple per row costs about
a microsecond per value, which at a million labels is most of the time, so the rows are not fetched
one by one where the backend allows better:

- SQLite ("columns"): for each chunk of the window, one aggregate row holding every column as one
  `group_concat` string (SQLite steps all aggregates of a query over the same rows in the same order,
  so the columns line up), split and parsed by numpy/pandas in C;
- PostgreSQL ("csv"): for each chunk, one `string_agg` of CSV lines (each row a complete line, so the
  order does not matter), parsed by `pandas.read_csv`;
- anything else, and the reference the tests compare against ("rows"): `Result.partitions` over the
  full join.

The fast paths join only assignments (for the draft id and the blind flag); the draft and gold keys
are looked up afterwards from two small reads (the drafts in the window's id range, the project's
gold), by id with numpy, which is cheaper than a million index probes. Flags and enumerations travel
packed in one integer (`_flags`). Chunks are contiguous ranges of created_at found with OFFSET on the
(project_id, created_at) index, so memory stays bounded.

Columns of the labels frame (the contract in `bot.quality.common.LABEL_COLUMNS`, plus extras):

    item_id      int64
    annotator    category (the Slack user id; ordered, so `a < b` works after merges)
    value_key    category (canonical JSON of the answer; missing for skip)
    value        object   (json.loads of value_key, decoded once per distinct key)
    action       category (accept | edit | reject | manual | skip | ambiguous)
    draft_shown  bool
    draft_key    category (value_key of the draft linked to the assignment, shown or not)
    seconds      float64  (rounded to the millisecond on every path)
    counts       bool
    kind         category (production | quiz | honeypot | expert)
    gold_key     category (Gold.value_key for gold items)
    tier         category (Member.tier)
    created_at   datetime64[ns, UTC]
    blind        bool     (the assignment was a blind control: a draft existed and was withheld)
    member_id    int64
    draft_model  category (Draft.model of that draft: the LLM's name, or an imported model's name)
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Integer, String, case, cast, extract, func, literal, select, type_coerce
from sqlalchemy.orm import Session

from bot.core.enums import Action, AssignmentKind
from storage.models import Assignment, Draft, Gold, Label, Member

__all__ = [
    "ACTIONS",
    "CHUNK_ROWS",
    "KINDS",
    "LABEL_FRAME_COLUMNS",
    "anchoring_counts",
    "daily_throughput",
    "decode_values",
    "draft_totals",
    "drafts_frame",
    "empty_labels_frame",
    "labels_frame",
    "local_days",
    "members_frame",
    "throughput_frame",
]

CHUNK_ROWS = 1_000_000
ACTIONS: tuple[str, ...] = tuple(Action)  # the codes of the flags column: order matters
KINDS: tuple[str, ...] = tuple(AssignmentKind)
_UNKNOWN = 7  # action/kind code of a value outside the lists above

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
    "member_id",
    "draft_model",
)


class _Fallback(Exception):
    """A fast path met data it cannot carry faithfully; the caller falls back to plain rows."""


# --- column builders -----------------------------------------------------------------------------


@dataclass
class _Codes:
    """A string column accumulated chunk by chunk as int32 codes against one dictionary (-1 missing)."""

    index: dict[Any, int] = field(default_factory=dict)
    parts: list[np.ndarray] = field(default_factory=list)

    def add(self, values: Sequence[Any], *, null: Any = None) -> None:
        codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
        mapping = np.empty(len(uniques) + 1, dtype=np.int32)
        for i, u in enumerate(uniques):
            mapping[i] = -1 if (null is not None and u == null) else self.index.setdefault(u, len(self.index))
        mapping[-1] = -1
        self.parts.append(mapping[codes])

    def categorical(self, *, ordered: bool = False) -> pd.Categorical:
        codes = np.concatenate(self.parts) if self.parts else np.empty(0, dtype=np.int32)
        cats = list(self.index)
        # Sorted categories: deterministic output, and codes comparable between frames.
        order = sorted(range(len(cats)), key=lambda i: str(cats[i]))
        remap = np.empty(len(cats) + 1, dtype=np.int32)
        remap[np.asarray(order, dtype=np.int64)] = np.arange(len(order), dtype=np.int32)
        remap[-1] = -1
        categories = pd.Index([cats[i] for i in order], dtype=object)
        return pd.Categorical.from_codes(remap[codes], categories=categories, ordered=ordered)


_KEY_COLUMNS = ("value_key", "draft_key", "gold_key", "draft_model")


@dataclass
class _Chunks:
    """The labels of a window, chunk by chunk, in a compact form (see `_assemble`)."""

    item_id: list[np.ndarray] = field(default_factory=list)
    member_id: list[np.ndarray] = field(default_factory=list)
    flags: list[np.ndarray] = field(default_factory=list)
    seconds: list[np.ndarray] = field(default_factory=list)
    created_ns: list[np.ndarray] = field(default_factory=list)
    draft_id: list[np.ndarray] = field(default_factory=list)  # fast paths: -1 = none
    keys: dict[str, _Codes] = field(default_factory=lambda: {k: _Codes() for k in _KEY_COLUMNS})
    looked_up: dict[str, pd.Categorical] = field(default_factory=dict)  # draft/gold keys found by id

    def cat(self, parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def decode_values(keys: pd.Series) -> pd.Series:
    """json.loads of each value key, each distinct key decoded once (missing -> None)."""
    cat = keys if isinstance(keys.dtype, pd.CategoricalDtype) else keys.astype("category")
    decoded = np.empty(len(cat.cat.categories) + 1, dtype=object)
    for i, k in enumerate(cat.cat.categories):
        decoded[i] = json.loads(k)
    decoded[-1] = None
    codes = cat.cat.codes.to_numpy()
    return pd.Series(decoded[codes], index=keys.index, name="value", dtype=object)


def _ns_from_text(values: Sequence[str]) -> np.ndarray:
    """Nanoseconds since the epoch from SQLite's naive-UTC text ("YYYY-MM-DD HH:MM:SS[.ffffff]")."""
    try:
        return np.array(values, dtype="datetime64[us]").astype("datetime64[ns]").view(np.int64)
    except ValueError:
        parsed = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601", utc=True)
        return parsed.dt.tz_convert(None).astype("datetime64[ns]").to_numpy().view(np.int64)


def _ns_from_epoch_us(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.int64) * 1000


def _float(values: Sequence[Any]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)  # None -> nan


def _bool(values: Sequence[Any]) -> np.ndarray:
    return np.asarray(values, dtype=object).astype(bool)  # None -> False


def _created_at_column(column: Any, dialect: str) -> Any:
    """created_at without the UTCDateTime per-row processor: SQLite text, PostgreSQL epoch µs."""
    if dialect == "sqlite":
        return type_coerce(column, String)
    return cast(func.round(extract("epoch", column) * 1_000_000), BigInteger)


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


def _code(column: Any, names: Sequence[str]) -> Any:
    return case({name: i for i, name in enumerate(names)}, value=column, else_=_UNKNOWN)


def _flags(dialect: str = "") -> Any:
    """draft_shown | counts << 1 | blind << 2 | action << 3 | kind << 6, as one integer."""
    if dialect == "sqlite":  # booleans are stored as 0/1: plain arithmetic is cheaper than CASE
        bits = (
            func.coalesce(type_coerce(Label.draft_shown, Integer), 0)
            + 2 * func.coalesce(type_coerce(Label.counts, Integer), 0)
            + 4 * func.coalesce(type_coerce(Assignment.blind, Integer), 0)
        )
    else:
        bits = (
            case((Label.draft_shown, 1), else_=0)
            + case((Label.counts, 2), else_=0)
            + case((Assignment.blind, 4), else_=0)
        )
    return bits + 8 * _code(Label.action, ACTIONS) + 64 * _code(Label.kind, KINDS)


def _window(stmt: Any, project_id: int, since: datetime | None, until: datetime | None, kinds: Any) -> Any:
    stmt = stmt.where(Label.project_id == project_id)
    if since is not None:
        stmt = stmt.where(Label.created_at >= since)
    if until is not None:
        stmt = stmt.where(Label.created_at < until)
    if kinds is not None:
        stmt = stmt.where(Label.kind.in_(list(kinds)))
    return stmt


def _joined(stmt: Any) -> Any:
    return (
        stmt.select_from(Label)
        .join(Assignment, Assignment.id == Label.assignment_id)
        .outerjoin(Draft, Draft.id == _draft_id())
        .outerjoin(Gold, Gold.item_id == Label.item_id)
    )


def _chunk_bounds(session: Session, base: Any, chunk_rows: int) -> list[tuple[str | None, str | None]]:
    """[lo, hi) ranges of created_at (as stored) holding about `chunk_rows` labels each."""
    raw = type_coerce(Label.created_at, String)
    total = session.scalar(base.with_only_columns(func.count()).select_from(Label))
    if not total:
        return []
    cuts: list[str] = []
    for offset in range(chunk_rows, int(total), chunk_rows):
        cut = session.scalar(base.with_only_columns(raw).select_from(Label).order_by(raw).offset(offset).limit(1))
        if cut is not None and (not cuts or cut > cuts[-1]):
            cuts.append(cut)
    edges: list[str | None] = [None, *cuts, None]
    return list(itertools.pairwise(edges))


def _in_chunk(stmt: Any, lo: str | None, hi: str | None) -> Any:
    raw = type_coerce(Label.created_at, String)
    if lo is not None:
        stmt = stmt.where(raw >= lo)
    if hi is not None:
        stmt = stmt.where(raw < hi)
    return stmt


def labels_frame(
    session: Session,
    project_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    kinds: Iterable[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    method: str = "auto",
) -> pd.DataFrame:
    """The labels of a project created in [since, until) as a frame (see the module docstring).

    `method`: "auto" (the fastest for the backend), "columns" (SQLite), "csv" (PostgreSQL) or "rows"."""
    dialect = session.get_bind().dialect.name
    if method == "auto":
        method = {"sqlite": "columns", "postgresql": "csv"}.get(dialect, "rows")
    base = _window(select(Label.id), project_id, since, until, kinds)
    chunks = _Chunks()
    try:
        if method == "columns":
            _fetch_columns(session, base, chunks, chunk_rows)
        elif method == "csv":
            _fetch_csv(session, base, chunks, chunk_rows)
        elif method == "rows":
            _fetch_rows(session, base, chunks, chunk_rows, dialect)
        else:
            raise ValueError(f"unknown method {method!r}")
        if method != "rows":
            _look_up_keys(session, project_id, chunks, dialect)
    except _Fallback:
        chunks = _Chunks()
        _fetch_rows(session, base, chunks, chunk_rows, dialect)
    return _assemble(chunks, members_frame(session, project_id))


def _pairs(session: Session, ids: Any, keys: Any, where: list[Any], dialect: str) -> tuple[np.ndarray, list[Any]]:
    """(ids, keys) of a small two-column read, ids sorted; one aggregate row on SQLite."""
    if dialect == "sqlite":
        n, id_text, key_text = session.execute(
            select(
                func.count(),
                func.group_concat(ids, literal(",")),
                func.group_concat(func.coalesce(keys, literal("")), literal(_RS)),
            ).where(*where)
        ).one()
        if not n:
            return np.empty(0, np.int64), []
        got_ids = np.fromstring(id_text, dtype=np.int64, sep=",")
        got_keys: list[Any] = [k or None for k in key_text.split(_RS)]
        if len(got_ids) != n or len(got_keys) != n:
            raise _Fallback("a key did not split into one value per row")
    else:
        rows = session.execute(select(ids, keys).where(*where)).all()
        got_ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        got_keys = [r[1] for r in rows]
    order = np.argsort(got_ids, kind="stable")
    return got_ids[order], [got_keys[i] for i in order]


def _lookup(ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in the sorted unique `ids`, found) for each wanted id: a dense table when the ids
    are compact (a take, no binary search), else searchsorted."""
    if len(ids) == 0:
        return np.zeros(len(wanted), np.int64), np.zeros(len(wanted), bool)
    lo, hi = int(ids[0]), int(ids[-1])
    span = hi - lo + 1
    if span <= max(4 * len(ids), 1 << 16) and span <= 50_000_000:
        table = np.full(span, -1, np.int64)
        table[ids - lo] = np.arange(len(ids))
        pos = table[np.clip(wanted - lo, 0, span - 1)]
        pos[(wanted < lo) | (wanted > hi)] = -1
        return np.maximum(pos, 0), pos >= 0
    pos = np.clip(np.searchsorted(ids, wanted), 0, len(ids) - 1)
    return pos, ids[pos] == wanted


def _by_id(wanted: np.ndarray, ids: np.ndarray, keys: list[Any]) -> pd.Categorical:
    """The key of each wanted id (missing where the id is unknown or -1), as a sorted categorical."""
    codes, uniques = pd.factorize(np.asarray(keys, dtype=object), use_na_sentinel=True)
    order = np.argsort(np.asarray([str(u) for u in uniques], dtype=object), kind="stable")
    categories = pd.Index(np.asarray(uniques, dtype=object)[order], dtype=object)
    if len(ids) == 0 or len(wanted) == 0:
        return pd.Categorical.from_codes(np.full(len(wanted), -1, np.int32), categories=categories)
    remap = np.empty(len(uniques) + 1, dtype=np.int32)
    remap[order] = np.arange(len(uniques), dtype=np.int32)
    remap[-1] = -1
    key_codes = remap[codes]
    pos, found = _lookup(ids, wanted)
    return pd.Categorical.from_codes(np.where(found, key_codes[pos], -1).astype(np.int32), categories=categories)


def _look_up_keys(session: Session, project_id: int, chunks: _Chunks, dialect: str) -> None:
    draft_ids = chunks.cat(chunks.draft_id, np.int64)
    item_ids = chunks.cat(chunks.item_id, np.int64)
    used = draft_ids[draft_ids >= 0]
    models: list[Any] = []
    if used.size:
        lo, hi = int(used.min()), int(used.max())
        where = [Draft.project_id == project_id, Draft.id.between(lo, hi)]
        ids, keys = _pairs(session, Draft.id, Draft.value_key, where, dialect)
        model_ids, models = _pairs(session, Draft.id, Draft.model, where, dialect)
    else:
        ids, keys = np.empty(0, np.int64), []
        model_ids = ids
    chunks.looked_up["draft_key"] = _by_id(draft_ids, ids, keys)
    chunks.looked_up["draft_model"] = _by_id(draft_ids, model_ids, models)
    ids, keys = _pairs(session, Gold.item_id, Gold.value_key, [Gold.project_id == project_id], dialect)
    chunks.looked_up["gold_key"] = _by_id(item_ids, ids, keys)


def _fetch_rows(session: Session, base: Any, out: _Chunks, chunk_rows: int, dialect: str) -> None:
    stmt = _joined(
        base.with_only_columns(
            Label.item_id,
            Label.member_id,
            Label.value_key,
            _flags(),
            Draft.value_key,
            Label.seconds,
            Gold.value_key,
            _created_at_column(Label.created_at, dialect),
            Draft.model,
        )
    )
    result = session.execute(stmt, execution_options={"yield_per": chunk_rows, "stream_results": True})
    for chunk in result.partitions(chunk_rows):
        if not chunk:
            continue
        item, member, value_key, flags, draft_key, seconds, gold_key, created, model = zip(*chunk, strict=True)
        out.item_id.append(np.asarray(item, dtype=np.int64))
        out.member_id.append(np.asarray(member, dtype=np.int64))
        out.flags.append(np.asarray(flags, dtype=np.int64))
        out.seconds.append(np.round(_float(seconds) * 1000) / 1000)
        out.keys["value_key"].add(value_key)
        out.keys["draft_key"].add(draft_key)
        out.keys["gold_key"].add(gold_key)
        out.keys["draft_model"].add(model)
        out.created_ns.append(_ns_from_text(created) if dialect == "sqlite" else _ns_from_epoch_us(created))


_RS = "\x1e"  # record separator: never raw inside a canonical JSON key (json.dumps escapes controls)


def _fetch_columns(session: Session, base: Any, out: _Chunks, chunk_rows: int) -> None:
    """SQLite: every column of a chunk as one group_concat string (aligned: one aggregate pass)."""

    def joined(expr: Any, sep: str = ",") -> Any:
        return func.group_concat(expr, literal(sep))

    def key(column: Any) -> Any:
        return joined(func.coalesce(column, literal("")), _RS)

    stmt = (
        base.with_only_columns(
            func.count(),
            joined(Label.item_id),
            joined(Label.member_id),
            # flags (9 bits) and the milliseconds taken + 1 (0: none) in one integer: every column
            # costs SQLite a text conversion per row, and formatting REALs is the slowest of them
            joined(_flags("sqlite") + 512 * (func.coalesce(cast(func.round(Label.seconds * 1000), Integer), -1) + 1)),
            joined(func.coalesce(_draft_id(), -1)),
            joined(type_coerce(Label.created_at, String)),
            key(Label.value_key),
        )
        .select_from(Label)
        .join(Assignment, Assignment.id == Label.assignment_id)
    )
    for lo, hi in _chunk_bounds(session, base, chunk_rows):
        row = session.execute(_in_chunk(stmt, lo, hi)).one()
        n = int(row[0])
        if n == 0:
            continue
        item, member, packed, draft = (np.fromstring(row[i], dtype=np.int64, sep=",") for i in (1, 2, 3, 4))
        flags, millis = packed & 511, (packed >> 9) - 1
        seconds = np.where(millis < 0, np.nan, millis / 1000)
        created = row[5].split(",")
        value_key = row[6].split(_RS)
        if any(len(c) != n for c in (item, member, flags, seconds, draft, created, value_key)):
            raise _Fallback("a column did not split into one value per row")
        out.item_id.append(item)
        out.member_id.append(member)
        out.flags.append(flags)
        out.seconds.append(seconds)
        out.draft_id.append(draft)
        out.created_ns.append(_ns_from_text(created))
        out.keys["value_key"].add(value_key, null="")


def _draft_id() -> Any:
    """The draft of the assignment (kept for blind items too), else the one the label names."""
    return func.coalesce(Assignment.draft_id, Label.draft_id)


def _csv_text(column: Any) -> Any:
    return func.coalesce(cast(column, String), literal(""))


def _csv_quoted(column: Any) -> Any:
    return func.coalesce(literal('"') + func.replace(column, literal('"'), literal('""')) + literal('"'), literal(""))


def _fetch_csv(session: Session, base: Any, out: _Chunks, chunk_rows: int) -> None:
    """PostgreSQL: each chunk as one string_agg of complete CSV lines, parsed by pandas.read_csv."""
    sep = literal(",")
    parts = [
        _csv_text(Label.item_id),
        _csv_text(Label.member_id),
        _csv_text(_flags()),
        _csv_text(Label.seconds),
        _csv_text(func.coalesce(_draft_id(), -1)),
        _csv_text(_created_at_column(Label.created_at, "postgresql")),
        _csv_quoted(Label.value_key),
    ]
    line = parts[0]
    for part in parts[1:]:
        line = line + sep + part
    stmt = (
        base.with_only_columns(func.count(), func.string_agg(line, literal("\n")))
        .select_from(Label)
        .join(Assignment, Assignment.id == Label.assignment_id)
    )
    names = ["item_id", "member_id", "flags", "seconds", "draft_id", "created_us", "value_key"]
    dtypes = {
        "item_id": "int64", "member_id": "int64", "flags": "int64", "seconds": "float64", "draft_id": "int64",
        "created_us": "int64", "value_key": "object",
    }  # fmt: skip
    for lo, hi in _chunk_bounds(session, base, chunk_rows):
        n, text = session.execute(_in_chunk(stmt, lo, hi)).one()
        if not n:
            continue
        frame = pd.read_csv(
            io.StringIO(text), names=names, dtype=dtypes, header=None, keep_default_na=False,
            na_values={"seconds": [""], "value_key": [""]},
        )  # fmt: skip
        if len(frame) != int(n):
            raise _Fallback("the CSV did not parse into one line per row")
        out.item_id.append(frame["item_id"].to_numpy())
        out.member_id.append(frame["member_id"].to_numpy())
        out.flags.append(frame["flags"].to_numpy())
        out.seconds.append(np.round(frame["seconds"].to_numpy(dtype=np.float64) * 1000) / 1000)
        out.draft_id.append(frame["draft_id"].to_numpy())
        out.created_ns.append(_ns_from_epoch_us(frame["created_us"].to_numpy()))
        out.keys["value_key"].add(frame["value_key"].to_numpy(dtype=object))  # NaN (empty field) -> missing


def empty_labels_frame() -> pd.DataFrame:
    return _assemble(_Chunks(), None)


def _enum(codes: np.ndarray, names: Sequence[str]) -> pd.Categorical:
    """Codes of a known enumeration; a value outside it (not written by labelbot) shows as "unknown"."""
    categories = list(names)
    codes = codes.astype(np.int32)
    if (codes == _UNKNOWN).any():
        codes = np.where(codes == _UNKNOWN, len(categories), codes).astype(np.int32)
        categories.append("unknown")
    return pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype=object))


def _assemble(chunks: _Chunks, members: pd.DataFrame | None) -> pd.DataFrame:
    item_id = chunks.cat(chunks.item_id, np.int64)
    member_id = chunks.cat(chunks.member_id, np.int64)
    flags = chunks.cat(chunks.flags, np.int64)
    n = len(item_id)

    # annotator and tier from the (small) members table, by member id
    if members is not None and len(members):
        ids = members["member_id"].to_numpy(dtype=np.int64)
        pos, known = _lookup(ids, member_id)
        users = pd.Index(sorted(set(members["user_id"].astype(object))), dtype=object)
        tiers = pd.Index(sorted(set(members["tier"].astype(object))), dtype=object)
        user_code = users.get_indexer(members["user_id"].astype(object))
        tier_code = tiers.get_indexer(members["tier"].astype(object))
        annotator = pd.Categorical.from_codes(
            np.where(known, user_code[pos], -1).astype(np.int32), categories=users, ordered=True
        )
        tier = pd.Categorical.from_codes(np.where(known, tier_code[pos], -1).astype(np.int32), categories=tiers)
    else:
        none = pd.Index([], dtype=object)
        annotator = pd.Categorical.from_codes(np.full(n, -1, np.int32), categories=none, ordered=True)
        tier = pd.Categorical.from_codes(np.full(n, -1, np.int32), categories=none)

    value_key = pd.Series(chunks.keys["value_key"].categorical())

    def key(name: str) -> pd.Series:
        found = chunks.looked_up.get(name)
        return pd.Series(found if found is not None else chunks.keys[name].categorical())

    created = pd.Series(chunks.cat(chunks.created_ns, np.int64).view("datetime64[ns]")).dt.tz_localize("UTC")
    return pd.DataFrame(
        {
            "item_id": pd.Series(item_id, dtype="int64"),
            "annotator": pd.Series(annotator),
            "value_key": value_key,
            "value": decode_values(value_key),
            "action": pd.Series(_enum((flags >> 3) & 7, ACTIONS)),
            "draft_shown": pd.Series((flags & 1).astype(bool)),
            "draft_key": key("draft_key"),
            "seconds": pd.Series(chunks.cat(chunks.seconds, np.float64), dtype="float64"),
            "counts": pd.Series((flags & 2).astype(bool)),
            "kind": pd.Series(_enum((flags >> 6) & 7, KINDS)),
            "gold_key": key("gold_key"),
            "tier": pd.Series(tier),
            "created_at": created.astype("datetime64[ns, UTC]"),
            "blind": pd.Series((flags & 4).astype(bool)),
            "member_id": pd.Series(member_id, dtype="int64"),
            "draft_model": key("draft_model"),
        }
    )


def anchoring_counts(session: Session, project_id: int, since: datetime, until: datetime) -> tuple[int, int, int, int]:
    """(k1, n1, k0, n0) for production answers in [since, until) on items with a stored draft: n1
    answers given with the draft shown, k1 of them equal to it; n0 and k0 the same without it shown.
    One GROUP BY: what the week-on-week anchoring needs, without loading last week's labels."""
    hit = case((Label.value_key == Draft.value_key, 1), else_=0)
    shown = case((Label.draft_shown, 1), else_=0)
    stmt = (
        select(shown, hit, func.count())
        .select_from(Label)
        .join(Assignment, Assignment.id == Label.assignment_id)
        .join(Draft, Draft.id == _draft_id())
        .where(
            Label.project_id == project_id,
            Label.created_at >= since,
            Label.created_at < until,
            Label.kind == "production",
            Label.action.in_(("accept", "edit", "reject", "manual")),
            Label.value_key.is_not(None),
            Draft.value_key.is_not(None),
        )
        .group_by(shown, hit)
    )
    counts = {(int(a), int(b)): int(n) for a, b, n in session.execute(stmt)}
    k1, n1 = counts.get((1, 1), 0), counts.get((1, 1), 0) + counts.get((1, 0), 0)
    k0, n0 = counts.get((0, 1), 0), counts.get((0, 1), 0) + counts.get((0, 0), 0)
    return k1, n1, k0, n0


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
            ns: Any = (_ns_from_text(values) if dialect == "sqlite" else _ns_from_epoch_us(values)) if values else []
            data[name] = pd.Series(np.asarray(ns, dtype=np.int64).view("datetime64[ns]")).dt.tz_localize("UTC")
        else:
            data[name] = pd.Series(pd.Categorical(np.asarray(values, dtype=object)))
    return pd.DataFrame(data)


def draft_totals(
    session: Session, project_id: int, since: datetime | None = None, until: datetime | None = None
) -> dict[str, int]:
    """Drafts made in [since, until), errors among them and their tokens: one aggregate query."""
    stmt = select(
        func.count(),
        func.coalesce(func.sum(case((Draft.status == "error", 1), else_=0)), 0),
        func.coalesce(func.sum(Draft.prompt_tokens), 0),
        func.coalesce(func.sum(Draft.cached_tokens), 0),
        func.coalesce(func.sum(Draft.completion_tokens), 0),
    ).where(Draft.project_id == project_id)
    if since is not None:
        stmt = stmt.where(Draft.created_at >= since)
    if until is not None:
        stmt = stmt.where(Draft.created_at < until)
    n, errors, prompt, cached, completion = session.execute(stmt).one()
    return {
        "drafts": int(n),
        "errors": int(errors),
        "prompt_tokens": int(prompt),
        "cached_tokens": int(cached),
        "completion_tokens": int(completion),
    }


# --- throughput --------------------------------------------------------------------------------------


def local_days(times: pd.Series, tz: str) -> np.ndarray:
    """The local calendar day of each UTC timestamp, as datetime64[D] (vectorised)."""
    local = times.dt.tz_convert(tz).dt.tz_localize(None)
    return local.to_numpy().astype("datetime64[D]")


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
    answered = ~labels["action"].isin(("skip", "ambiguous")).to_numpy(dtype=bool)
    grouped = (
        pd.DataFrame(
            {
                "day": local_days(labels["created_at"], tz),
                "annotator": labels["annotator"].astype(object).to_numpy(),
                "one": 1,
                "answered": answered.astype(np.int64),
            }
        )
        .groupby(["day", "annotator"], sort=True)
        .agg(labels=("one", "sum"), answered=("answered", "sum"))
        .reset_index()
    )
    grouped["day"] = [d.date() for d in pd.to_datetime(grouped["day"])]
    return grouped


def daily_throughput(labels: pd.DataFrame, tz: str, days: Sequence[Any]) -> pd.Series:
    """Labels per local day over exactly `days` (missing days are 0), indexed by date."""
    per = throughput_frame(labels, tz)
    totals = per.groupby("day")["labels"].sum() if len(per) else pd.Series(dtype="int64")
    return totals.reindex(list(days), fill_value=0).astype("int64")
