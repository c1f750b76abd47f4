"""Item and gold imports from .jsonl, .csv or .parquet: validate everything, then write all or nothing.

Errors name the file, the line (1-based; CSV counts its header as line 1, Parquet counts rows from 1)
and the field. Re-importing identical rows is a no-op; the same id with different content is an
error unless `update=True`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import socket
import time as time_
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core.enums import ItemStatus, TaskType
from bot.core.errors import Conflict, LabelbotError
from bot.core.markup import render
from bot.core.values import ValueProblem, canonical_key, normalize
from bot.services.projects import get_project, spec_of
from bot.spec import ProjectSpec
from storage.db import Database
from storage.locks import instance_name
from storage.models import Gold, ImportRow, ImportRun, Item, Project

MAX_TEXT_CHARS = 100_000
MAX_ID_CHARS = 200
SPANS_TEXT_MAX = 2000  # Slack's edit box holds 3,000 characters: room for the [span](LABEL) marks
MAX_ERRORS = 20
CHUNK = 5000

Progress = Callable[[int], None]


class ImportError_(LabelbotError):
    """The file was rejected; nothing was written. `errors` are one line each."""

    def __init__(self, path: str, errors: list[str], total_errors: int | None = None) -> None:
        self.path = path
        self.errors = errors
        self.total_errors = total_errors if total_errors is not None else len(errors)
        more = self.total_errors - len(errors)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{path}: nothing was imported; {self.total_errors} problem(s):\n  "
            + "\n  ".join(errors)
            + tail
        )


@dataclass
class ImportResult:
    path: str
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self, what: str = "items") -> str:
        if self.rows and self.inserted == 0 and self.updated == 0:
            return f"{self.path}: all {self.rows} {what} are already imported; nothing changed."
        parts = [f"{self.inserted} new"]
        if self.updated:
            parts.append(f"{self.updated} updated")
        if self.unchanged:
            parts.append(f"{self.unchanged} already imported")
        return f"{self.path}: {self.rows} {what} read; " + ", ".join(parts) + "."


# ------------------------------------------------------------------------------------------
# Reading rows with line numbers
# ------------------------------------------------------------------------------------------


def _read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Yield (line, row) or (line, error message) pairs."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl" or suffix == ".ndjson":
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    yield lineno, f"not UTF-8 (byte {e.start + 1} of the line); save the file as UTF-8"
                    continue
                if lineno == 1 and line.startswith("\ufeff"):
                    line = line[1:]
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line, parse_constant=_no_constant)
                except json.JSONDecodeError as e:
                    yield lineno, f"not valid JSON ({e.msg} at column {e.colno})"
                    continue
                except _NotJSON as e:
                    yield lineno, f"not valid JSON ({e}: write null, a number or a string instead)"
                    continue
                if not isinstance(obj, dict):
                    yield lineno, "each line must be a JSON object like {\"id\": ..., \"text\": ...}"
                    continue
                yield lineno, obj
    elif suffix == ".csv":
        data = path.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            yield line, "not UTF-8; save the file as UTF-8"
            return
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader)
        except StopIteration:
            return
        header = [h.strip() for h in header]
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            yield 1, f"duplicate column(s) {', '.join(dupes)}"
            return
        try:
            for cells in reader:
                lineno = reader.line_num
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    yield lineno, f"has {len(cells)} fields, the header has {len(header)}"
                    continue
                yield lineno, dict(zip(header, cells, strict=True))
        except csv.Error as e:
            yield reader.line_num, f"CSV error: {e}"
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except Exception as e:  # pyarrow raises several types for a damaged file
            yield 0, f"not a readable Parquet file ({e})"
            return
        row = 0
        for batch in pf.iter_batches(batch_size=65536):
            for rec in batch.to_pylist():
                row += 1
                yield row, rec
    else:
        yield 0, f"unsupported file type {suffix or '(none)'}; use .jsonl, .csv or .parquet"


class _NotJSON(ValueError):
    """NaN, Infinity or -Infinity in a JSONL line: Python reads them, JSON (and PostgreSQL) do not."""


def _no_constant(name: str) -> Any:
    raise _NotJSON(f"{name} is not JSON")


class _BadValue(ValueError):
    """A metadata value that cannot be stored as JSON; the message names the problem."""


def _clean(value: Any) -> Any:
    """A metadata value as exact, standard JSON. Documented conversions: NaN (a missing value in CSV or
    Parquet) is null; dates, times and timestamps become ISO 8601 text; decimals become their exact
    text ("12.50"). Infinity, binary data, durations and other types raise `_BadValue`."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise _BadValue("is infinite, which JSON cannot hold")
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _BadValue(f"is {value}, which JSON cannot hold")
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raise _BadValue("is binary data; store it as text (e.g. base64) instead")
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    raise _BadValue(f"has the type {type(value).__name__}, which cannot be stored; use text or a number")


def _id_of(row: dict[str, Any]) -> str | None:
    """The item id as text: text, or a whole number (also a whole float or decimal, from CSV/Parquet
    number columns). Raises `_BadValue` for anything else (true, {}, [1], 1.5, bytes)."""
    raw = row.get("id")
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    whole_float = isinstance(raw, float) and math.isfinite(raw) and raw.is_integer()
    whole_decimal = isinstance(raw, Decimal) and raw.is_finite() and raw == raw.to_integral_value()
    if whole_float or whole_decimal:
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        try:
            shown = json.dumps(raw) if isinstance(raw, bool | list | dict | float) else type(raw).__name__
        except (TypeError, ValueError):  # a Parquet struct holding dates, bytes...
            shown = type(raw).__name__
        raise _BadValue(f"field 'id' must be text or a whole number, not {shown}")
    value = str(raw).strip()
    if "\x00" in value:
        raise _BadValue("field 'id' contains a NUL character")
    return value or None


@dataclass
class _Row:
    line: int
    external_id: str
    text: str
    meta: dict[str, Any] | None
    gold: Any = None
    gold_key: str | None = None
    explanation: str | None = None


GOLD_FIELDS = {
    TaskType.CLASSIFICATION: "label",
    TaskType.MULTILABEL: "labels",
    TaskType.SPANS: "spans",
    TaskType.REWRITE: "rewrite",
}


class _Problems:
    """Collects a file's problems (the first MAX_ERRORS shown, all counted)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.errors: list[str] = []
        self.total = 0

    def add(self, line: int, msg: str) -> None:
        self.total += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{self.where} {line}: {msg}" if line else msg)


def _checked(
    path: Path, spec: ProjectSpec, *, gold: bool, problems: _Problems, progress: Progress | None = None
) -> Iterator[_Row]:
    """Read the file and yield every valid row; problems go to `problems`."""
    seen: dict[str, int] = {}
    answer_field = GOLD_FIELDS[spec.task]
    reserved = {"id", "text"} | ({answer_field, "explanation"} if gold else set())
    where = problems.where
    err = problems.add
    count = 0
    for line, row in _read_rows(path):
        count += 1
        if progress and count % 10000 == 0:
            progress(10000)
        if isinstance(row, str):
            err(line, row)
            continue
        try:
            external_id = _id_of(row)
        except _BadValue as e:
            err(line, str(e))
            continue
        if external_id is None:
            err(line, "field 'id' is missing or empty" if "id" not in row else "field 'id' is empty")
            continue
        if len(external_id) > MAX_ID_CHARS:
            err(line, f"field 'id' is longer than {MAX_ID_CHARS} characters")
            continue
        text = row.get("text")
        if text is None or (isinstance(text, float) and math.isnan(text)):
            err(line, "field 'text' is missing" if "text" not in row else "field 'text' is empty")
            continue
        if not isinstance(text, str):
            err(line, "field 'text' must be a string")
            continue
        if not text.strip():
            err(line, "field 'text' is empty")
            continue
        if len(text) > MAX_TEXT_CHARS:
            err(line, f"field 'text' is longer than {MAX_TEXT_CHARS} characters")
            continue
        if "\x00" in text:
            err(line, "field 'text' contains a NUL character")
            continue
        if spec.task is TaskType.SPANS and (marked := len(render(text.replace("\r\n", "\n"), []))) > SPANS_TEXT_MAX:
            err(line, f"field 'text' is {marked:,} characters (with escapes); spans items are at most "
                      f"{SPANS_TEXT_MAX:,}, so that the text with its [span](LABEL) marks fits Slack's "
                      "3,000-character edit box")
            continue
        if external_id in seen:
            err(line, f"duplicate id {external_id!r} (first at {where} {seen[external_id]})")
            continue
        seen[external_id] = line
        try:
            meta = {str(k): c for k, v in row.items() if k not in reserved and (c := _clean(v)) not in (None, "")}
        except _BadValue as e:
            bad = next(k for k, v in row.items() if k not in reserved and _raises(v))
            err(line, f"field {bad!r} {e}")
            continue
        item = _Row(line, external_id, text, meta or None)
        if gold:
            raw = row.get(answer_field)
            if raw is None or (isinstance(raw, float) and math.isnan(raw)) or raw == "":
                if spec.task is TaskType.MULTILABEL and raw == "":
                    raw = []
                else:
                    err(line, f"field {answer_field!r} (the gold answer) is missing")
                    continue
            if spec.task is TaskType.MULTILABEL and isinstance(raw, str) and raw.strip().startswith("["):
                try:
                    raw = json.loads(raw)
                except json.JSONDecodeError:
                    err(line, f"field {answer_field!r} is not a JSON list")
                    continue
            try:
                value = normalize(spec.task, raw, spec, text)
            except ValueProblem as e:
                err(line, f"field {answer_field!r}: {e}")
                continue
            item.gold = value
            item.gold_key = canonical_key(value)
            explanation = row.get("explanation")
            if explanation is not None and not isinstance(explanation, str | float):
                err(line, "field 'explanation' must be text")
                continue
            item.explanation = explanation.strip() or None if isinstance(explanation, str) else None
        yield item
    if progress:
        progress(count % 10000)
    if count == 0 and not problems.total:
        err(0, "the file has no rows")


def _raises(value: Any) -> bool:
    try:
        _clean(value)
    except _BadValue:
        return True
    return False


def _validate(path: Path, spec: ProjectSpec, *, gold: bool, progress: Progress | None, keep: bool = True) -> list:
    """Check the whole file. Returns the rows (`keep`) or only their external ids, in file order;
    raises ImportError_ naming every problem (nothing has been written)."""
    problems = _Problems("line" if path.suffix.lower() != ".parquet" else "row")
    out = [r if keep else r.external_id for r in _checked(path, spec, gold=gold, problems=problems, progress=progress)]
    if problems.total:
        raise ImportError_(str(path), problems.errors, problems.total)
    return out


def _digest(value: Any) -> bytes:
    data = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(data.encode("utf-8"), digest_size=16).digest()


@dataclass(frozen=True)
class _Stored:
    """An item already in the project, kept small: digests instead of its text and metadata."""

    id: int
    text: bytes
    meta: bytes
    labels_done: int


def _existing(session: Session, project_id: int, ids: list[str]) -> dict[str, _Stored]:
    """Items already stored under these external ids."""
    cols = (Item.external_id, Item.id, Item.text, Item.meta, Item.labels_done)
    out: dict[str, _Stored] = {}

    def keep(rows: Any, wanted: set[str] | None) -> None:
        for ext, rid, text, meta, done in rows:
            if wanted is None or ext in wanted:
                out[ext] = _Stored(rid, _digest(text), _digest(meta or None), done)

    if len(ids) > 20_000:
        # One scan of the project beats thousands of IN lookups for a large file.
        keep(session.execute(select(*cols).where(Item.project_id == project_id).execution_options(yield_per=20_000)),
             set(ids))
        return out
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        keep(session.execute(select(*cols).where(Item.project_id == project_id, Item.external_id.in_(chunk))), None)
    return out


@dataclass(frozen=True)
class _Write:
    """One row to write: a new item (`item_id` None) or new text and metadata for an existing one."""

    row: _Row
    item_id: int | None = None


def _plan(
    path: Path, spec: ProjectSpec, existing: dict[str, _Stored], update_existing: bool, result: ImportResult,
    errors: list[str], problems: _Problems,
) -> Iterator[_Write]:
    """Pass 2: read the (already checked) file again and say what to write, counting unchanged rows.
    Conflicts with stored items go to `errors`; once there is one, nothing more is yielded."""
    for r in _checked(path, spec, gold=False, problems=problems):
        old = existing.get(r.external_id)
        if old is None:
            if not errors:
                yield _Write(r)
            continue
        same_text, same_meta = old.text == _digest(r.text), old.meta == _digest(r.meta)
        if same_text and same_meta:
            result.unchanged += 1
            continue
        if not update_existing:
            errors.append(
                f"line {r.line}: id {r.external_id!r} is already imported with different "
                f"{'text' if not same_text else 'metadata'}; use --update to replace it"
            )
            continue
        if not same_text and old.labels_done:
            errors.append(
                f"line {r.line}: id {r.external_id!r} already has {old.labels_done} label(s); its text cannot change"
            )
            continue
        if not errors:
            yield _Write(r, old.id)


def _refuse(path: Path, errors: list[str], problems: _Problems) -> None:
    if errors or problems.total:
        raise ImportError_(str(path), (errors + problems.errors)[:MAX_ERRORS], len(errors) + problems.total)


def _item_values(project_id: int, redundancy: int, r: _Row, now: datetime) -> dict[str, Any]:
    return {
        "project_id": project_id, "external_id": r.external_id, "text": r.text, "meta": r.meta,
        "status": ItemStatus.OPEN.value, "slots": redundancy, "labels_done": 0, "is_gold": False,
        "created_at": now, "updated_at": now,
    }


def import_items(
    session: Session,
    project: Project,
    path: str | Path,
    now: datetime,
    *,
    update_existing: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Import items in the caller's unit of work (seeding, tests, the demo: files a transaction can
    hold). Raises ImportError_ with every problem (up to 20 shown); writes nothing then.

    A running bot should get `import_items_staged` instead (what `labelbot import` uses): this one
    holds the caller's write transaction for the whole file."""
    path = Path(path)
    spec = spec_of(project)
    if not path.exists():
        raise ImportError_(str(path), ["no such file"])
    # Pass 1 checks the whole file and keeps only the ids; pass 2 reads it again and writes in chunks,
    # so memory stays flat however large the file. An error in pass 2 (an id already imported with
    # other content) raises inside the caller's transaction: nothing is written then either.
    ids = _validate(path, spec, gold=False, progress=progress, keep=False)
    result = ImportResult(str(path), rows=len(ids))
    has_items = session.scalar(select(Item.id).where(Item.project_id == project.id).limit(1)) is not None
    existing = _existing(session, project.id, ids) if has_items else {}
    del ids
    errors: list[str] = []
    problems = _Problems("line")
    table = Item.__table__  # Core executemany: no ORM bookkeeping for a bulk load
    batch: list[dict[str, Any]] = []
    for w in _plan(path, spec, existing, update_existing, result, errors, problems):
        if w.item_id is not None:
            session.execute(update(Item).where(Item.id == w.item_id)
                            .values(text=w.row.text, meta=w.row.meta, updated_at=now))
            result.updated += 1
            continue
        batch.append(_item_values(project.id, spec.redundancy, w.row, now))
        if len(batch) >= CHUNK:
            session.execute(insert(table), batch)
            result.inserted += len(batch)
            batch = []
    _refuse(path, errors, problems)
    if batch:
        session.execute(insert(table), batch)
        result.inserted += len(batch)
    return result


# ------------------------------------------------------------------------------------------
# Staged imports: what `labelbot import` does while the bot is running
# ------------------------------------------------------------------------------------------

STALE_RUN = timedelta(minutes=10)  # a run whose heartbeat is older belongs to a dead process
MAX_PAUSE = 0.05  # SQLite: the longest rest between publishing chunks (lets the bot's writers in)


def _wall() -> datetime:
    """Wall-clock time for heartbeats (process liveness, not the domain's injected clock)."""
    return datetime.now(UTC)


def _dead(run: ImportRun) -> bool:
    """The run's process is gone: it is on this host and no longer exists, or its heartbeat is stale."""
    host, _, pid = run.owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # someone else's live process
            pass
    heartbeat = run.heartbeat_at if run.heartbeat_at.tzinfo else run.heartbeat_at.replace(tzinfo=UTC)
    return _wall() - heartbeat > STALE_RUN


def _open_run(db: Database, project: Project, path: Path, now: datetime) -> tuple[int, list[str]]:
    """Take the project's import slot: a new run in state "staging". A dead run is finished first (it
    was publishing: its file had been checked in full) or cleared (it was staging: nothing of it is
    visible). Returns the run id and notes about what was recovered."""
    notes: list[str] = []
    for _ in range(3):
        with db.session() as s:
            active = s.scalar(
                select(ImportRun).where(ImportRun.project_id == project.id,
                                        ImportRun.state.in_(["staging", "publishing"])).with_for_update()
            )
            if active is None:
                run = ImportRun(project_id=project.id, path=str(path)[:1000], state="staging", owner=instance_name(),
                                rows=0, inserted=0, updated=0, unchanged=0, created_at=now, heartbeat_at=_wall())
                s.add(run)
                try:
                    s.flush()
                except IntegrityError:  # another import took the slot at the same instant
                    raise Conflict(f"Another import into {project.slug!r} has just started; try again when it "
                                   "is done.") from None
                return run.id, notes
            if not _dead(active):
                raise Conflict(
                    f"Another import into {project.slug!r} is running ({active.path}, started "
                    f"{active.created_at:%Y-%m-%d %H:%M} UTC by {active.owner}); try again when it is done."
                )
            dead_id, dead_state, dead_path = active.id, active.state, active.path
            if dead_state == "staging":
                active.state = "abandoned"
                active.finished_at = now
        if dead_state == "publishing":
            notes += _publish(db, dead_id, project.id, spec_of(project).redundancy, now).notes
            notes.append(f"finished an interrupted import of {dead_path} first")
        else:
            _discard(db, dead_id)
            notes.append(f"cleared an interrupted import of {dead_path} (nothing of it had been imported)")
    raise Conflict(f"Imports into {project.slug!r} keep colliding; try again.")


def _stage(db: Database, run_id: int, rows: list[dict[str, Any]]) -> None:
    """One short write transaction: a chunk of checked rows into the staging table."""
    with db.session() as s:
        if rows:
            s.execute(insert(ImportRow.__table__), [{"run_id": run_id, **r} for r in rows])
        s.execute(update(ImportRun).where(ImportRun.id == run_id).values(heartbeat_at=_wall()))


def _sweep(db: Database, project_id: int) -> None:
    """Remove rows that abandoned runs of the project left behind (a discard cut short by a crash)."""
    with db.read() as s:
        leftovers = s.scalars(select(ImportRun.id).where(
            ImportRun.project_id == project_id, ImportRun.state == "abandoned",
            exists().where(ImportRow.run_id == ImportRun.id))).all()
    for run_id in leftovers:
        _discard(db, run_id)


def _discard(db: Database, run_id: int, chunk: int = CHUNK) -> None:
    """Delete a run's staged rows, a chunk per short transaction."""
    while True:
        with db.session() as s:
            ids = s.scalars(select(ImportRow.id).where(ImportRow.run_id == run_id).order_by(ImportRow.id)
                            .limit(chunk)).all()
            if not ids:
                return
            s.execute(delete(ImportRow).where(ImportRow.run_id == run_id, ImportRow.id <= ids[-1]))


@dataclass
class _Published:
    inserted: int = 0
    updated: int = 0
    notes: list[str] = field(default_factory=list)


def _publish(db: Database, run_id: int, project_id: int, redundancy: int, now: datetime, chunk: int = CHUNK,
             progress: Progress | None = None) -> _Published:
    """Move a run's staged rows into `items`, a chunk per short transaction, then mark it done. Runs
    only after every row was checked and staged (state "publishing"); safe to resume after a crash
    (a chunk's insert and the deletion of its staged rows commit together). On SQLite it rests between
    chunks as long as the chunk took (at most MAX_PAUSE), so the bot's writers are never starved."""
    notes: list[str] = []
    cols = ("project_id", "external_id", "text", "meta", "status", "slots", "labels_done", "is_gold",
            "created_at", "updated_at")
    inserted = updated = skipped = 0
    while True:
        started = time_.monotonic()
        with db.session() as s:
            ids = s.scalars(select(ImportRow.id).where(ImportRow.run_id == run_id).order_by(ImportRow.id)
                            .limit(chunk)).all()
            if not ids:
                break
            in_chunk = (ImportRow.run_id == run_id, ImportRow.id <= ids[-1])
            taken = exists().where(Item.project_id == project_id, Item.external_id == ImportRow.external_id)
            new = select(
                literal(project_id, Item.project_id.type), ImportRow.external_id, ImportRow.text, ImportRow.meta,
                literal(ItemStatus.OPEN.value), literal(redundancy), literal(0), literal(False),
                literal(now, Item.created_at.type), literal(now, Item.updated_at.type),
            ).where(*in_chunk, ImportRow.item_id.is_(None), ~taken)
            fresh = s.scalar(select(func.count()).select_from(ImportRow).where(*in_chunk, ImportRow.item_id.is_(None)))
            done = len(s.execute(insert(Item).from_select(cols, new).returning(Item.id)).all())
            inserted += done
            skipped += int(fresh or 0) - done
            for item_id, ext, text, meta in s.execute(
                select(ImportRow.item_id, ImportRow.external_id, ImportRow.text, ImportRow.meta)
                .where(*in_chunk, ImportRow.item_id.is_not(None))
            ):
                # The text of an item that got labels since the check stays as it was.
                changed = s.execute(
                    update(Item).where(Item.id == item_id, or_(Item.labels_done == 0, Item.text == text))
                    .values(text=text, meta=meta, updated_at=now)
                ).rowcount
                if changed:
                    updated += 1
                else:
                    notes.append(f"id {ext!r} got labels during the import; its text was left unchanged")
            s.execute(delete(ImportRow).where(*in_chunk))
            s.execute(update(ImportRun).where(ImportRun.id == run_id).values(heartbeat_at=_wall()))
        if progress is not None:
            progress(len(ids))
        if db.dialect == "sqlite":
            time_.sleep(min(MAX_PAUSE, time_.monotonic() - started))
    if skipped:
        notes.append(f"{skipped} id(s) appeared in the project during the import (another import?); "
                     "they were left as they are")
    with db.session() as s:
        s.execute(update(ImportRun).where(ImportRun.id == run_id).values(
            state="done", finished_at=now, heartbeat_at=_wall(), inserted=ImportRun.inserted + inserted,
            updated=ImportRun.updated + updated))
    return _Published(inserted, updated, notes[:MAX_ERRORS])


def import_items_staged(
    db: Database,
    slug: str,
    path: str | Path,
    now: datetime,
    *,
    update_existing: bool = False,
    progress: Progress | None = None,
    chunk: int = CHUNK,
) -> ImportResult:
    """Import items while the bot runs (`labelbot import`): all or nothing, without blocking it.

    1. Check every row of the file, and compare it with the stored items: reads only, no write lock.
    2. Stage the rows to write, a chunk per short transaction (invisible to everything else).
    3. Mark the run "publishing" (one tiny transaction): from here the import completes.
    4. Publish: move the staged rows into `items`, a chunk per short transaction.
    Any problem in 1-2 (a bad row, an id imported before with other text) rejects the whole file and
    removes what was staged. A crash before 3 leaves nothing visible (the next import clears it); a
    crash after 3 is finished by the next import of the project. One import per project at a time.
    `progress` advances once per row in each of the three passes (check, stage, publish)."""
    path = Path(path)
    with db.read() as s:
        project = get_project(s, slug)
        spec = spec_of(project)
        if not path.exists():
            raise ImportError_(str(path), ["no such file"])
        has_items = s.scalar(select(Item.id).where(Item.project_id == project.id).limit(1)) is not None
    ids = _validate(path, spec, gold=False, progress=progress, keep=False)
    result = ImportResult(str(path), rows=len(ids))
    if has_items:
        with db.read() as s:
            existing = _existing(s, project.id, ids)
    else:
        existing = {}
    del ids
    run_id, result.warnings = _open_run(db, project, path, now)
    _sweep(db, project.id)
    errors: list[str] = []
    problems = _Problems("line")
    try:
        batch: list[dict[str, Any]] = []
        for w in _plan(path, spec, existing, update_existing, result, errors, problems):
            batch.append({"line": w.row.line, "item_id": w.item_id, "external_id": w.row.external_id,
                          "text": w.row.text, "meta": w.row.meta})
            if len(batch) >= chunk:
                _stage(db, run_id, batch)
                if progress is not None:
                    progress(len(batch))
                batch = []
        _refuse(path, errors, problems)
        _stage(db, run_id, batch)
        with db.session() as s:  # the commit point: every row is checked and staged
            s.execute(update(ImportRun).where(ImportRun.id == run_id).values(
                state="publishing", rows=result.rows, unchanged=result.unchanged, heartbeat_at=_wall()))
    except BaseException:
        # Nothing staged is visible: remove it and give the project's import slot back, then re-raise.
        with db.session() as s:
            s.execute(update(ImportRun).where(ImportRun.id == run_id).values(state="abandoned", finished_at=now))
        _discard(db, run_id)
        raise
    published = _publish(db, run_id, project.id, spec.redundancy, now, chunk, progress)
    result.inserted, result.updated = published.inserted, published.updated
    result.warnings += published.notes
    return result


def import_gold(
    session: Session,
    project: Project,
    path: str | Path,
    now: datetime,
    *,
    update_existing: bool = False,
    progress: Progress | None = None,
    checked: list[Any] | None = None,
) -> ImportResult:
    """Import gold items: each row an item plus its answer. Gold items are served only as quiz
    questions and hidden checks; an existing unlabeled item with the same id and text becomes gold.

    `checked`: the rows `check_gold_file` returned, so that the file is checked before the caller
    opens its write transaction (a gold file is small: one transaction writes it)."""
    path = Path(path)
    spec = spec_of(project)
    if not path.exists():
        raise ImportError_(str(path), ["no such file"])
    rows = checked if checked is not None else _validate(path, spec, gold=True, progress=progress)
    active = session.scalar(select(ImportRun.path).where(
        ImportRun.project_id == project.id, ImportRun.state.in_(["staging", "publishing"])).limit(1))
    if active is not None:
        raise Conflict(f"An import of {active} into {project.slug!r} is running; import the gold when it is done.")
    result = ImportResult(str(path), rows=len(rows))
    existing = _existing(session, project.id, [r.external_id for r in rows])
    gold_by_item = {}
    if existing:
        ids = [v.id for v in existing.values()]
        for start in range(0, len(ids), 900):
            for g in session.scalars(select(Gold).where(Gold.item_id.in_(ids[start : start + 900]))):
                gold_by_item[g.item_id] = g
    errors: list[str] = []
    for r in rows:
        old = existing.get(r.external_id)
        if old is None:
            item = Item(
                project_id=project.id, external_id=r.external_id, text=r.text, meta=r.meta,
                status=ItemStatus.GOLD, slots=0, labels_done=0, is_gold=True, created_at=now, updated_at=now,
            )
            session.add(item)
            session.flush()
            session.add(
                Gold(
                    project_id=project.id, item_id=item.id, value=r.gold, value_key=r.gold_key,
                    explanation=r.explanation, source="import", created_at=now,
                )
            )
            result.inserted += 1
            continue
        rid, done = old.id, old.labels_done
        if old.text != _digest(r.text):
            errors.append(f"line {r.line}: id {r.external_id!r} is already imported with different text")
            continue
        g = gold_by_item.get(rid)
        if g is not None:
            if g.value_key == r.gold_key and (g.explanation or None) == r.explanation:
                result.unchanged += 1
                continue
            if not update_existing:
                errors.append(
                    f"line {r.line}: id {r.external_id!r} already has a different gold answer; "
                    "use --update to replace it"
                )
                continue
            g.value, g.value_key, g.explanation = r.gold, r.gold_key, r.explanation
            result.updated += 1
            continue
        if done:
            errors.append(
                f"line {r.line}: id {r.external_id!r} is a production item with {done} label(s); "
                "use `labelbot gold promote` for labeled items"
            )
            continue
        session.execute(
            update(Item)
            .where(Item.id == rid)
            .values(is_gold=True, status=ItemStatus.GOLD, slots=0, updated_at=now)
        )
        session.add(
            Gold(
                project_id=project.id, item_id=rid, value=r.gold, value_key=r.gold_key,
                explanation=r.explanation, source="import", created_at=now,
            )
        )
        result.inserted += 1
    if errors:
        raise ImportError_(str(path), errors[:MAX_ERRORS], len(errors))
    session.flush()
    n_gold = session.scalar(select(func.count()).select_from(Gold).where(Gold.project_id == project.id)) or 0
    if n_gold < spec.quiz.size:
        result.warnings.append(
            f"The gold pool has {n_gold} item(s) but quiz.size is {spec.quiz.size}: "
            + ("quizzes will be short (quiz.allow_short is on)." if spec.quiz.allow_short
               else "quizzes cannot start until there are enough, or set quiz.allow_short: true.")
        )
    return result


def check_gold_file(spec: ProjectSpec, path: str | Path, progress: Progress | None = None) -> list[Any]:
    """Check a gold file completely (no database needed); raises ImportError_ naming every problem."""
    path = Path(path)
    if not path.exists():
        raise ImportError_(str(path), ["no such file"])
    return _validate(path, spec, gold=True, progress=progress)


def count_rows(path: str | Path) -> int | None:
    """A cheap row estimate for the progress bar (None when unknown)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        with path.open("rb") as fh:
            return sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return None
