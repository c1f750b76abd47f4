"""Item and gold imports from .jsonl, .json (an array of objects), .csv, .tsv or .parquet: validate
everything, then write all or nothing.

Errors name the file, the line (1-based; CSV and TSV count their header as line 1, a JSON array counts
the line where each object starts, Parquet counts rows from 1) and the field. The id and text columns
are `id` and `text` unless the project spec (`import.columns`) or the command (`--id-column`,
`--text-column`) names others; a file without them gets one error naming the columns it has.
Re-importing identical rows is a no-op; the same id with different content is an error unless
`update=True`.

An item may carry an `image` (a path relative to the import file, or an https:// URL) with or without
`text` (classification and multi-label only): image files are checked by content and stored once per
content (`bot.services.images`), and queued for upload to the project's workspace.
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

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core.enums import ItemStatus, TaskType
from bot.core.errors import Conflict, LabelbotError
from bot.core.markup import EDIT_BOX_MAX, render_for_input
from bot.core.values import ValueProblem, canonical_key, csv_unsafe, normalize
from bot.services.images.files import ImageProblem
from bot.services.images.store import PRIORITY_GOLD, PRIORITY_ITEM, Catalog, queue_uploads
from bot.services.predictions import PREDICTION_FIELDS, Prediction, StoreResult, prediction_of, store_predictions
from bot.services.projects import get_project, spec_of
from bot.spec import ProjectSpec
from storage.db import Database
from storage.locks import instance_name
from storage.models import Gold, ImportRow, ImportRun, Item, Project

MAX_TEXT_CHARS = 100_000
MAX_ID_CHARS = 200
# A spans item is marked up in Slack's edit box (EDIT_BOX_MAX characters): leave room for its [span](LABEL) marks.
SPANS_TEXT_MAX = EDIT_BOX_MAX - 1000
MAX_ERRORS = 20
CHUNK = 5000
IMPORT_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")
MAX_COLUMNS_NAMED = 30

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
    predictions: StoreResult | None = None  # the `draft` predictions the rows carried

    def _predictions(self) -> str:
        p = self.predictions
        if p is None or not (p.added or p.replaced or p.unchanged):
            return ""
        parts = [f"{p.added} new"] + ([f"{p.replaced} replaced"] if p.replaced else []) + (
            [f"{p.unchanged} unchanged"] if p.unchanged else [])
        return " Predictions: " + ", ".join(parts) + "."

    def summary(self, what: str = "items") -> str:
        if self.rows and self.inserted == 0 and self.updated == 0:
            if self.predictions is not None and (self.predictions.added or self.predictions.replaced):
                return f"{self.path}: all {self.rows} {what} are already imported." + self._predictions()
            return f"{self.path}: all {self.rows} {what} are already imported; nothing changed."
        parts = [f"{self.inserted} new"]
        if self.updated:
            parts.append(f"{self.updated} updated")
        if self.unchanged:
            parts.append(f"{self.unchanged} already imported")
        return f"{self.path}: {self.rows} {what} read; " + ", ".join(parts) + "." + self._predictions()


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
    elif suffix == ".json":
        yield from _json_array_rows(path)
    elif suffix in (".csv", ".tsv"):
        data = path.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            yield line, "not UTF-8; save the file as UTF-8"
            return
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
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
                # A leading apostrophe before = + - @ is how exports keep cells from becoming formulas.
                yield lineno, dict(zip(header, map(csv_unsafe, cells), strict=True))
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
        yield 0, f"unsupported file type {suffix or '(none)'}; use .jsonl, .json, .csv, .tsv or .parquet"


def _json_array_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """A .json file holding one array of objects; each object's line is where it starts."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        yield 1, f"not UTF-8 (byte {e.start + 1}); save the file as UTF-8"
        return
    decoder = json.JSONDecoder(parse_constant=_no_constant)
    pos = _skip_space(text, 0)
    if pos >= len(text):
        return
    if text[pos] != "[":
        yield 1, "a .json file must hold one array of objects: [{\"id\": ..., \"text\": ...}, ...]"
        return
    pos = _skip_space(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        return
    while pos < len(text):
        line = text.count("\n", 0, pos) + 1
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            yield e.lineno, f"not valid JSON ({e.msg} at column {e.colno}); nothing after it was read"
            return
        except _NotJSON as e:
            yield line, f"not valid JSON ({e}: write null, a number or a string instead); nothing after it was read"
            return
        if isinstance(obj, dict):
            yield line, obj
        else:
            yield line, "each element of the array must be a JSON object like {\"id\": ..., \"text\": ...}"
        pos = _skip_space(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_space(text, pos + 1)
        elif pos < len(text) and text[pos] == "]":
            if text[_skip_space(text, pos + 1):].strip():
                yield text.count("\n", 0, pos) + 1, "text after the end of the array"
            return
        else:
            yield text.count("\n", 0, pos) + 1, "expected ',' or ']' after an element of the array"
            return
    yield text.count("\n") + 1, "the array is not closed with ']'"


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def read_column(path: Path, column: str) -> list[str]:
    """The non-empty values of one column of an import file (e.g. the ids for `labelbot items remove`);
    raises ImportError_ with the problems (a missing column once, naming the columns found)."""
    problems = _Problems("line" if path.suffix.lower() != ".parquet" else "row")
    values: list[str] = []
    columns: dict[str, None] = {}
    rows = 0
    for line, row in _read_rows(path):
        if isinstance(row, str):
            problems.add(line, row)
            continue
        rows += 1
        if len(columns) < MAX_COLUMNS_NAMED:
            columns.update(dict.fromkeys(map(str, row)))
        try:
            value = _id_of(row, column)
        except _BadValue as e:
            problems.add(line, str(e))
            continue
        if value is not None:
            values.append(value)
    if rows and not values:
        problems.add(0, _missing_column(column, "id", list(columns)))
    if problems.total:
        raise ImportError_(str(path), problems.errors, problems.total)
    return values


def _missing_column(column: str, what: str, columns: list[str], also: tuple[str, str] | None = None) -> str:
    """One sentence for a file without the id (or text) column, naming the columns it has."""
    named = ", ".join(repr(c) for c in columns[:MAX_COLUMNS_NAMED]) or "none"
    if also is not None:  # neither the id nor the text column
        return (f"the file has no {column!r} column (the item ids) and no {also[0]!r} column (the texts); its "
                f"columns are {named}. Name them with --id-column and --text-column (or import.columns in the "
                "project spec).")
    flag = "--id-column" if what == "id" else "--text-column"
    kind = "the item ids" if what == "id" else "the texts"
    return (f"the file has no {column!r} column ({kind}); its columns are {named}. Name it with {flag} "
            f"(or import.columns.{what} in the project spec).")


class _NotJSON(ValueError):
    """NaN, Infinity or -Infinity in JSON: Python reads them, JSON (and PostgreSQL) do not."""


def _no_constant(name: str) -> Any:
    raise _NotJSON(f"{name} is not JSON")


class _BadValue(ValueError):
    """A value that cannot be stored; the message names the problem."""


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


def _raises(value: Any) -> bool:
    try:
        _clean(value)
    except _BadValue:
        return True
    return False


def _id_of(row: dict[str, Any], column: str = "id") -> str | None:
    """The item id as text: text, or a whole number (also a whole float or decimal, from CSV/Parquet
    number columns). Raises `_BadValue` for anything else (true, {}, [1], 1.5, bytes, NUL)."""
    raw = row.get(column)
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
        raise _BadValue(f"field {column!r} must be text or a whole number, not {shown}")
    value = str(raw).strip()
    if "\x00" in value:
        raise _BadValue(f"field {column!r} contains a NUL character")
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
    prediction: Prediction | None = None
    image: str | None = None  # the reference as written
    image_sha: str | None = None  # its content's SHA-256 (files; None for URLs)


IMAGE_TASKS = (TaskType.CLASSIFICATION, TaskType.MULTILABEL)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


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


@dataclass(frozen=True)
class Columns:
    """Which columns hold the item's id and text."""

    id: str = "id"
    text: str = "text"


def columns_for(spec: ProjectSpec, id_column: str | None = None, text_column: str | None = None) -> Columns:
    """The command's choice, else the spec's `import.columns`, else `id` and `text`."""
    return Columns(id_column or spec.imports.columns.id, text_column or spec.imports.columns.text)


class _MissingColumns:
    """Rows without the id or text column: one error for the file when no row has it, else one per row."""

    def __init__(self, columns: Columns) -> None:
        self.columns = columns
        self.rows = 0
        self.seen: dict[str, None] = {}
        self.without: dict[str, list[int]] = {"id": [], "text": []}
        self.counts = {"id": 0, "text": 0}

    def row(self, row: dict[str, Any]) -> None:
        self.rows += 1
        if len(self.seen) < MAX_COLUMNS_NAMED:
            self.seen.update(dict.fromkeys(map(str, row)))

    def missing(self, what: str, line: int) -> None:
        self.counts[what] += 1
        if len(self.without[what]) < MAX_ERRORS:
            self.without[what].append(line)

    def report(self, problems: _Problems) -> None:
        absent = [what for what in ("id", "text") if self.rows and self.counts[what] == self.rows]
        if len(absent) == 2:
            problems.add(0, _missing_column(self.columns.id, "id", list(self.seen), also=(self.columns.text, "text")))
            return
        for what in ("id", "text"):
            column = getattr(self.columns, what)
            if what in absent:
                problems.add(0, _missing_column(column, what, list(self.seen)))
                continue
            for line in self.without[what]:
                problems.add(line, f"field {column!r} is missing")
            problems.total += self.counts[what] - len(self.without[what])


def _checked(
    path: Path, spec: ProjectSpec, *, gold: bool, problems: _Problems, progress: Progress | None = None,
    images: Catalog | None = None,
    columns: Columns | None = None,
) -> Iterator[_Row]:
    """Read the file and yield every valid row; problems go to `problems`."""
    cols = columns or columns_for(spec)
    id_col, text_col = cols.id, cols.text
    seen: dict[str, int] = {}
    answer_field = GOLD_FIELDS[spec.task]
    reserved = {id_col, text_col, "image"} | ({answer_field, "explanation"} if gold else set(PREDICTION_FIELDS))
    where = problems.where
    err = problems.add
    images = images if images is not None else Catalog(path.parent)
    missing = _MissingColumns(cols)
    count = 0
    for line, row in _read_rows(path):
        count += 1
        if progress and count % 10000 == 0:
            progress(10000)
        if isinstance(row, str):
            err(line, row)
            continue
        missing.row(row)
        has_image = not _blank(row.get("image"))  # an image item may come without text
        if id_col not in row or (text_col not in row and not has_image):
            for what, column in (("id", id_col), ("text", text_col)):
                if column not in row and not (what == "text" and has_image):
                    missing.missing(what, line)
            continue
        try:
            external_id = _id_of(row, id_col)
        except _BadValue as e:
            err(line, str(e))
            continue
        if external_id is None:
            err(line, f"field {id_col!r} is empty")
            continue
        if len(external_id) > MAX_ID_CHARS:
            err(line, f"field {id_col!r} is longer than {MAX_ID_CHARS} characters")
            continue
        image_ref: str | None = None
        image_sha: str | None = None
        raw_image = row.get("image")
        if not _blank(raw_image):
            if not isinstance(raw_image, str) or not raw_image.strip():
                err(line, "field 'image' must be a file path or an https:// URL")
                continue
            if spec.task not in IMAGE_TASKS:
                err(line, f"field 'image': a {spec.task.value} project labels text; images work in "
                          "classification and multilabel projects")
                continue
            try:
                checked = images.check(raw_image.strip())
            except ImageProblem as e:
                err(line, f"field 'image': {e}")
                continue
            image_ref, image_sha = checked.ref, checked.info.sha256 if checked.info else None
        text = row.get(text_col)
        if image_ref is not None and (_blank(text) or (isinstance(text, str) and not text.strip())):
            text = ""  # an image alone
        elif text is None or (isinstance(text, float) and math.isnan(text)):
            err(line, f"field {text_col!r} is empty")
            continue
        if not isinstance(text, str):
            err(line, f"field {text_col!r} must be a string")
            continue
        if not text.strip() and image_ref is None:
            err(line, f"field {text_col!r} is empty")
            continue
        if len(text) > MAX_TEXT_CHARS:
            err(line, f"field {text_col!r} is longer than {MAX_TEXT_CHARS} characters")
            continue
        if "\x00" in text:
            err(line, f"field {text_col!r} contains a NUL character")
            continue
        if spec.task is TaskType.SPANS and (marked := len(render_for_input(text, []))) > SPANS_TEXT_MAX:
            err(line, f"field {text_col!r} is {marked:,} characters (with escapes); spans items are at most "
                      f"{SPANS_TEXT_MAX:,}, so that the text with its [span](LABEL) marks fits Slack's "
                      f"{EDIT_BOX_MAX:,}-character edit box")
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
        item = _Row(line, external_id, text, meta or None, image=image_ref, image_sha=image_sha)
        if not gold:
            try:
                item.prediction = prediction_of(row, spec, text)
            except ValueProblem as e:
                err(line, str(e))
                continue
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
    missing.report(problems)
    if progress:
        progress(count % 10000)
    if count == 0 and not problems.total:
        err(0, "the file has no rows")


def _validate(path: Path, spec: ProjectSpec, *, gold: bool, progress: Progress | None, keep: bool = True,
              images: Catalog | None = None, columns: Columns | None = None) -> list:
    """Check the whole file. Returns the rows (`keep`) or only their external ids, in file order;
    raises ImportError_ naming every problem (nothing has been written)."""
    problems = _Problems("line" if path.suffix.lower() != ".parquet" else "row")
    out = [r if keep else r.external_id
           for r in _checked(path, spec, gold=gold, problems=problems, progress=progress, images=images,
                          columns=columns)]
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
    image: str | None = None
    image_id: int | None = None


def _existing(session: Session, project_id: int, ids: list[str]) -> dict[str, _Stored]:
    """Items already stored under these external ids."""
    cols = (Item.external_id, Item.id, Item.text, Item.meta, Item.labels_done, Item.image, Item.image_id)
    out: dict[str, _Stored] = {}

    def keep(rows: Any, wanted: set[str] | None) -> None:
        for ext, rid, text, meta, done, image, image_id in rows:
            if wanted is None or ext in wanted:
                out[ext] = _Stored(rid, _digest(text), _digest(meta or None), done, image, image_id)

    if len(ids) > 20_000:
        # One scan of the project beats thousands of IN lookups for a large file.
        keep(session.execute(select(*cols).where(Item.project_id == project_id).execution_options(yield_per=20_000)),
             set(ids))
        return out
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        keep(session.execute(select(*cols).where(Item.project_id == project_id, Item.external_id.in_(chunk))), None)
    return out


def import_items(
    session: Session,
    project: Project,
    path: str | Path,
    now: datetime,
    *,
    update_existing: bool = False,
    progress: Progress | None = None,
    columns: Columns | None = None,
) -> ImportResult:
    """Import items. Raises ImportError_ with every problem (up to 20 shown); writes nothing then."""
    path = Path(path)
    spec = spec_of(project)
    if not path.exists():
        raise ImportError_(str(path), ["no such file"])
    columns = columns or columns_for(spec)
    # Pass 1 checks the whole file and keeps only the ids; pass 2 reads it again and writes in chunks,
    # so memory stays flat however large the file. An error in pass 2 (an id already imported with
    # other content) raises inside the caller's transaction: nothing is written then either.
    images = Catalog(path.parent)
    ids = _validate(path, spec, gold=False, progress=progress, keep=False, images=images, columns=columns)
    result = ImportResult(str(path), rows=len(ids))
    has_items = session.scalar(select(Item.id).where(Item.project_id == project.id).limit(1)) is not None
    existing = _existing(session, project.id, ids) if has_items else {}
    del ids
    image_ids = _store_images(images, path, session, now)
    uploads: list[tuple[int, int]] = []
    errors: list[str] = []
    table = Item.__table__  # Core executemany: no ORM bookkeeping for a bulk load
    batch: list[dict[str, Any]] = []
    problems = _Problems("line")
    predictions: list[tuple[str, Prediction]] = []
    for r in _checked(path, spec, gold=False, problems=problems, images=images, columns=columns):
        if r.prediction is not None:
            predictions.append((r.external_id, r.prediction))
        old = existing.get(r.external_id)
        image_id = image_ids[r.image_sha] if r.image_sha else None
        if old is None:
            if errors:
                continue  # the import will be refused: stop collecting rows to write
            batch.append(
                {
                    "project_id": project.id, "external_id": r.external_id, "text": r.text, "meta": r.meta,
                    "status": ItemStatus.OPEN.value, "slots": spec.redundancy, "labels_done": 0,
                    "is_gold": False, "image": r.image, "image_id": image_id, "image_error": None,
                    "created_at": now, "updated_at": now,
                }
            )
            if image_id is not None:
                uploads.append((image_id, PRIORITY_ITEM))
            if len(batch) >= CHUNK:
                session.execute(insert(table), batch)
                result.inserted += len(batch)
                batch = []
            continue
        same_text, same_meta = old.text == _digest(r.text), old.meta == _digest(r.meta)
        same_image = old.image == r.image and old.image_id == image_id
        if same_text and same_meta and same_image:
            result.unchanged += 1
            if image_id is not None:
                uploads.append((image_id, PRIORITY_ITEM))  # queued again if it never was for this workspace
            continue
        if not update_existing:
            what = "text" if not same_text else "image" if not same_image else "metadata"
            errors.append(
                f"line {r.line}: id {r.external_id!r} is already imported with different {what}; "
                "use --update to replace it"
            )
            continue
        if (not same_text or not same_image) and old.labels_done:
            what = "text" if not same_text else "image"
            errors.append(
                f"line {r.line}: id {r.external_id!r} already has {old.labels_done} label(s); its {what} cannot change"
            )
            continue
        session.execute(update(Item).where(Item.id == old.id).values(
            text=r.text, meta=r.meta, image=r.image, image_id=image_id,
            image_error=None if not same_image else Item.image_error, updated_at=now))
        if image_id is not None:
            uploads.append((image_id, PRIORITY_ITEM))
        result.updated += 1
    if errors or problems.total:
        raise ImportError_(str(path), (errors + problems.errors)[:MAX_ERRORS], len(errors) + problems.total)
    if batch:
        session.execute(insert(table), batch)
        result.inserted += len(batch)
    _queue(session, project, uploads, images, now, result)
    if predictions:
        item_ids = _item_ids(session, project.id, [ext for ext, _p in predictions])
        result.predictions = store_predictions(session, project.id, [(item_ids[ext], p) for ext, p in predictions],
                                               now)
    return result


# ------------------------------------------------------------------------------------------
# Staged imports: what `labelbot import` does while the bot is running
# ------------------------------------------------------------------------------------------

STALE_RUN = timedelta(minutes=10)  # a run whose heartbeat is older belongs to a dead process
MAX_PAUSE = 0.05  # SQLite: the longest rest between publishing chunks (lets the bot's writers in)
SQLITE_PUBLISH_CHUNK = 1000  # SQLite: rows published per write transaction


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
            notes += _publish(db, dead_id, project, spec_of(project).redundancy, now).notes
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


def _prediction_json(p: Prediction | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {"value": p.value, "key": p.key, "confidence": p.confidence, "model": p.model}


def _prediction_back(d: dict[str, Any] | None) -> Prediction | None:
    if d is None:
        return None
    return Prediction(d["value"], d["key"], d["confidence"], d["model"])


@dataclass
class _Published:
    inserted: int = 0
    updated: int = 0
    predictions: StoreResult = field(default_factory=StoreResult)
    uploads: int = 0
    notes: list[str] = field(default_factory=list)


def _publish(db: Database, run_id: int, project: Project, redundancy: int, now: datetime, chunk: int = CHUNK,
             progress: Progress | None = None) -> _Published:
    """Move a run's staged rows into `items`, a chunk per short transaction, then mark it done. Each
    chunk also queues its images for upload and stores its predictions. Runs only after every row was
    checked and staged (state "publishing"); safe to resume after a crash (a chunk's writes and the
    deletion of its staged rows commit together). On SQLite it rests between chunks as long as the
    chunk took (at most MAX_PAUSE), so the bot's writers are never starved."""
    out = _Published()
    skipped = 0
    if db.dialect == "sqlite":
        chunk = min(chunk, SQLITE_PUBLISH_CHUNK)  # one writer at a time: keep each write short
    while True:
        started = time_.monotonic()
        with db.session() as s:
            staged = s.execute(
                select(ImportRow.id, ImportRow.item_id, ImportRow.external_id, ImportRow.text, ImportRow.meta,
                       ImportRow.image, ImportRow.image_id, ImportRow.prediction)
                .where(ImportRow.run_id == run_id).order_by(ImportRow.id).limit(chunk)
            ).all()
            if not staged:
                break
            fresh = [r for r in staged if r.item_id is None]
            taken = set(s.scalars(select(Item.external_id).where(
                Item.project_id == project.id, Item.external_id.in_([r.external_id for r in fresh]))).all()
                ) if fresh else set()
            new = [r for r in fresh if r.external_id not in taken]
            skipped += len(fresh) - len(new)
            if new:
                s.execute(insert(Item.__table__), [
                    {"project_id": project.id, "external_id": r.external_id, "text": r.text, "meta": r.meta,
                     "status": ItemStatus.OPEN.value, "slots": redundancy, "labels_done": 0, "is_gold": False,
                     "image": r.image, "image_id": r.image_id, "image_error": None,
                     "created_at": now, "updated_at": now} for r in new])
                out.inserted += len(new)
            published = {r.external_id for r in new}
            for r in staged:
                if r.item_id is None:
                    continue
                item = s.execute(select(Item.text, Item.image, Item.image_id, Item.labels_done)
                                 .where(Item.id == r.item_id)).one_or_none()
                if item is None:
                    out.notes.append(f"id {r.external_id!r} was removed during the import; it was left out")
                    continue
                same_image = item.image == r.image and item.image_id == r.image_id
                if item.labels_done and (item.text != r.text or not same_image):
                    # The text or image of an item that got labels since the check stays as it was.
                    out.notes.append(f"id {r.external_id!r} got labels during the import; it was left unchanged")
                    continue
                s.execute(update(Item).where(Item.id == r.item_id).values(
                    text=r.text, meta=r.meta, image=r.image, image_id=r.image_id,
                    image_error=Item.image_error if same_image else None, updated_at=now))
                published.add(r.external_id)
                out.updated += 1
            uploads = [(r.image_id, PRIORITY_ITEM) for r in staged
                       if r.image_id is not None and r.external_id in published]
            if uploads:
                out.uploads += queue_uploads(s, project.team_id, uploads, now)
            with_prediction = [r for r in staged if r.prediction is not None and r.external_id in published]
            if with_prediction:
                item_ids = _item_ids(s, project.id, [r.external_id for r in with_prediction])
                stored = store_predictions(s, project.id, [
                    (item_ids[r.external_id], _prediction_back(r.prediction)) for r in with_prediction], now)
                out.predictions.added += stored.added
                out.predictions.replaced += stored.replaced
                out.predictions.unchanged += stored.unchanged
            s.execute(delete(ImportRow).where(ImportRow.run_id == run_id, ImportRow.id <= staged[-1].id))
            s.execute(update(ImportRun).where(ImportRun.id == run_id).values(heartbeat_at=_wall()))
        if progress is not None:
            progress(len(staged))
        if db.dialect == "sqlite":
            time_.sleep(min(MAX_PAUSE, time_.monotonic() - started))
    if skipped:
        out.notes.append(f"{skipped} id(s) appeared in the project during the import (another import?); "
                         "they were left as they are")
    with db.session() as s:
        s.execute(update(ImportRun).where(ImportRun.id == run_id).values(
            state="done", finished_at=now, heartbeat_at=_wall(), inserted=ImportRun.inserted + out.inserted,
            updated=ImportRun.updated + out.updated))
    out.notes = out.notes[:MAX_ERRORS]
    return out


@dataclass
class _Again:
    """What rows already imported unchanged still bring: images to queue, predictions to store."""

    images: list[int] = field(default_factory=list)
    predictions: list[tuple[int, Prediction]] = field(default_factory=list)


def _plan(
    path: Path, spec: ProjectSpec, existing: dict[str, _Stored], image_ids: dict[str, int], update_existing: bool,
    result: ImportResult, errors: list[str], problems: _Problems, images: Catalog, columns: Columns,
    again: _Again,
) -> Iterator[dict[str, Any]]:
    """Pass 2: read the (already checked) file again and yield the staged rows to write, counting
    unchanged rows (their images and predictions kept in `again`). Conflicts with
    stored items go to `errors`; once there is one, nothing more is yielded."""
    for r in _checked(path, spec, gold=False, problems=problems, images=images, columns=columns):
        old = existing.get(r.external_id)
        image_id = image_ids[r.image_sha] if r.image_sha else None
        row = {"line": r.line, "item_id": None, "external_id": r.external_id, "text": r.text, "meta": r.meta,
               "image": r.image, "image_id": image_id, "prediction": _prediction_json(r.prediction)}
        if old is None:
            if not errors:
                yield row
            continue
        same_text, same_meta = old.text == _digest(r.text), old.meta == _digest(r.meta)
        same_image = old.image == r.image and old.image_id == image_id
        if same_text and same_meta and same_image:
            result.unchanged += 1
            if image_id is not None:
                again.images.append(image_id)  # queued again if it never was for this workspace
            if r.prediction is not None:
                again.predictions.append((old.id, r.prediction))
            continue
        if not update_existing:
            what = "text" if not same_text else "image" if not same_image else "metadata"
            errors.append(f"line {r.line}: id {r.external_id!r} is already imported with different {what}; "
                          "use --update to replace it")
            continue
        if (not same_text or not same_image) and old.labels_done:
            what = "text" if not same_text else "image"
            errors.append(f"line {r.line}: id {r.external_id!r} already has {old.labels_done} label(s); "
                          f"its {what} cannot change")
            continue
        if not errors:
            yield {**row, "item_id": old.id}


def import_items_staged(
    db: Database,
    slug: str,
    path: str | Path,
    now: datetime,
    *,
    update_existing: bool = False,
    progress: Progress | None = None,
    columns: Columns | None = None,
    chunk: int = CHUNK,
) -> ImportResult:
    """Import items while the bot runs (`labelbot import`): all or nothing, without blocking it.

    1. Check every row of the file (images too), and compare it with the stored items: reads only.
    2. Store the file's image files (content-addressed: one row per content, shared by imports).
    3. Stage the rows to write, a chunk per short transaction (invisible to everything else).
    4. Mark the run "publishing" (one tiny transaction): from here the import completes.
    5. Publish: move the staged rows into `items` with their images queued for upload and their
       predictions stored, a chunk per short transaction.
    Any problem in 1-3 (a bad row, an id imported before with other text) rejects the whole file and
    removes what was staged. A crash before 4 leaves nothing visible (the next import clears it); a
    crash after 4 is finished by the next import of the project. One import per project at a time.
    `progress` advances once per row in each of the three passes (check, stage, publish)."""
    path = Path(path)
    with db.read() as s:
        project = get_project(s, slug)
        spec = spec_of(project)
        if not path.exists():
            raise ImportError_(str(path), ["no such file"])
        has_items = s.scalar(select(Item.id).where(Item.project_id == project.id).limit(1)) is not None
        s.expunge(project)
    columns = columns or columns_for(spec)
    images = Catalog(path.parent)
    ids = _validate(path, spec, gold=False, progress=progress, keep=False, images=images, columns=columns)
    result = ImportResult(str(path), rows=len(ids))
    if has_items:
        with db.read() as s:
            existing = _existing(s, project.id, ids)
    else:
        existing = {}
    del ids
    with db.session() as s:
        image_ids = _store_images(images, path, s, now)
    run_id, result.warnings = _open_run(db, project, path, now)
    _sweep(db, project.id)
    errors: list[str] = []
    problems = _Problems("line" if path.suffix.lower() != ".parquet" else "row")
    again = _Again()
    stage_chunk = min(chunk, SQLITE_PUBLISH_CHUNK) if db.dialect == "sqlite" else chunk
    try:
        batch: list[dict[str, Any]] = []
        for row in _plan(path, spec, existing, image_ids, update_existing, result, errors, problems, images,
                         columns, again):
            batch.append(row)
            if len(batch) >= stage_chunk:
                _stage(db, run_id, batch)
                if progress is not None:
                    progress(len(batch))
                batch = []
        if errors or problems.total:
            raise ImportError_(str(path), (errors + problems.errors)[:MAX_ERRORS], len(errors) + problems.total)
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
    published = _publish(db, run_id, project, spec.redundancy, now, chunk, progress)
    result.inserted, result.updated = published.inserted, published.updated
    result.warnings += published.notes
    predictions = published.predictions
    uploads = published.uploads
    if again.images or again.predictions:  # rows already imported: images queued again, predictions stored
        with db.session() as s:
            if again.images:
                uploads += queue_uploads(s, project.team_id, [(i, PRIORITY_ITEM) for i in again.images], now)
            if again.predictions:
                stored = store_predictions(s, project.id, again.predictions, now)
                predictions.added += stored.added
                predictions.replaced += stored.replaced
                predictions.unchanged += stored.unchanged
    if predictions.added or predictions.replaced or predictions.unchanged:
        result.predictions = predictions
    _say_uploads(project, uploads, images, result)
    return result


def _item_ids(session: Session, project_id: int, external_ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for start in range(0, len(external_ids), 900):
        chunk = external_ids[start : start + 900]
        out.update(session.execute(
            select(Item.external_id, Item.id).where(Item.project_id == project_id, Item.external_id.in_(chunk))
        ).all())
    return out


def import_predictions(session: Session, project: Project, path: str | Path, now: datetime) -> ImportResult:
    """`labelbot draft SLUG --from FILE`: add or replace predictions of items already imported. Rows need
    `id` and `draft` (optional `draft_confidence`, `draft_model`); all or nothing, problems by line."""
    path = Path(path)
    spec = spec_of(project)
    if not path.exists():
        raise ImportError_(str(path), ["no such file"])
    problems = _Problems("line" if path.suffix.lower() != ".parquet" else "row")
    rows: list[tuple[int, str, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for line, row in _read_rows(path):
        if isinstance(row, str):
            problems.add(line, row)
            continue
        try:
            external_id = _id_of(row)
        except _BadValue as e:
            problems.add(line, str(e))
            continue
        if external_id is None:
            problems.add(line, "field 'id' is missing or empty")
            continue
        if external_id in seen:
            problems.add(line, f"duplicate id {external_id!r} (first at {problems.where} {seen[external_id]})")
            continue
        seen[external_id] = line
        rows.append((line, external_id, row))
    items: dict[str, tuple[int, str]] = {}
    ids = [ext for _l, ext, _r in rows]
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        for ext, item_id, text in session.execute(
            select(Item.external_id, Item.id, Item.text).where(Item.project_id == project.id,
                                                                Item.external_id.in_(chunk))
        ):
            items[ext] = (item_id, text)
    found: list[tuple[int, Prediction]] = []
    for line, ext, row in rows:
        if ext not in items:
            problems.add(line, f"no item {ext!r} in project {project.slug} (import it first)")
            continue
        item_id, text = items[ext]
        if "text" in row and not _blank(row["text"]) and row["text"] != text:
            problems.add(line, f"id {ext!r} has different text in the project: is this the right file?")
            continue
        try:
            prediction = prediction_of(row, spec, text)
        except ValueProblem as e:
            problems.add(line, str(e))
            continue
        if prediction is None:
            problems.add(line, "field 'draft' (the prediction) is missing")
            continue
        found.append((item_id, prediction))
    if not rows and not problems.total:
        problems.add(0, "the file has no rows")
    if problems.total:
        raise ImportError_(str(path), problems.errors, problems.total)
    result = ImportResult(str(path), rows=len(found))
    result.predictions = store_predictions(session, project.id, found, now)
    return result


def _store_images(images: Catalog, path: Path, session: Session, now: datetime) -> dict[str, int]:
    """Store the file's images (after the whole file was checked); a file changed since is an error."""
    try:
        return images.store(session, now)
    except (ImageProblem, OSError) as e:
        raise ImportError_(str(path), [str(e)]) from None


def _queue(session: Session, project: Project, uploads: list[tuple[int, int]], images: Catalog, now: datetime,
           result: ImportResult) -> None:
    """Queue the new items' images for upload to the project's workspace, and say what happens next."""
    n = queue_uploads(session, project.team_id, uploads, now) if uploads else 0
    _say_uploads(project, n, images, result)


def _say_uploads(project: Project, n: int, images: Catalog, result: ImportResult) -> None:
    if n:
        result.warnings.append(
            f"{n} image(s) will be uploaded to Slack by the running bot (`labelbot serve`, or now with "
            f"`labelbot images {project.slug} --upload`); an item is served once its image is uploaded."
        )
    if images.unshown_urls:
        result.warnings.append(
            f"{images.unshown_urls} image URL(s) do not end in .png, .jpg, .jpeg or .gif: Slack's image blocks "
            "show PNG, JPEG and GIF only, so check that those URLs serve one of them."
        )


def import_gold(
    session: Session,
    project: Project,
    path: str | Path,
    now: datetime,
    *,
    update_existing: bool = False,
    progress: Progress | None = None,
    columns: Columns | None = None,
    checked: CheckedGold | None = None,
) -> ImportResult:
    """Import gold items: each row an item plus its answer. Gold items are served only as quiz
    questions and hidden checks; an existing unlabeled item with the same id and text becomes gold.

    `checked`: what `check_gold_file` returned, so that the file is checked before the caller opens
    its write transaction (a gold file is small: one transaction writes it)."""
    path = Path(path)
    spec = spec_of(project)
    if not path.exists():
        raise ImportError_(str(path), ["no such file"])
    if checked is None:
        checked = check_gold_file(spec, path, progress, columns)
    rows, images = checked.rows, checked.images
    active = session.scalar(select(ImportRun.path).where(
        ImportRun.project_id == project.id, ImportRun.state.in_(["staging", "publishing"])).limit(1))
    if active is not None:
        raise Conflict(f"An import of {active} into {project.slug!r} is running; import the gold when it is done.")
    result = ImportResult(str(path), rows=len(rows))
    existing = _existing(session, project.id, [r.external_id for r in rows])
    image_ids = _store_images(images, path, session, now)
    uploads: list[tuple[int, int]] = []
    gold_by_item = {}
    if existing:
        ids = [v.id for v in existing.values()]
        for start in range(0, len(ids), 900):
            for g in session.scalars(select(Gold).where(Gold.item_id.in_(ids[start : start + 900]))):
                gold_by_item[g.item_id] = g
    errors: list[str] = []
    for r in rows:
        old = existing.get(r.external_id)
        image_id = image_ids[r.image_sha] if r.image_sha else None
        if old is None:
            item = Item(
                project_id=project.id, external_id=r.external_id, text=r.text, meta=r.meta,
                status=ItemStatus.GOLD, slots=0, labels_done=0, is_gold=True, image=r.image, image_id=image_id,
                created_at=now, updated_at=now,
            )
            session.add(item)
            session.flush()
            session.add(
                Gold(
                    project_id=project.id, item_id=item.id, value=r.gold, value_key=r.gold_key,
                    explanation=r.explanation, source="import", created_at=now,
                )
            )
            if image_id is not None:
                uploads.append((image_id, PRIORITY_GOLD))
            result.inserted += 1
            continue
        rid, done = old.id, old.labels_done
        if old.text != _digest(r.text):
            errors.append(f"line {r.line}: id {r.external_id!r} is already imported with different text")
            continue
        if old.image != r.image or old.image_id != image_id:
            errors.append(f"line {r.line}: id {r.external_id!r} is already imported with a different image")
            continue
        if image_id is not None:
            uploads.append((image_id, PRIORITY_GOLD))
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
    _queue(session, project, uploads, images, now, result)
    session.flush()
    n_gold = session.scalar(select(func.count()).select_from(Gold).where(Gold.project_id == project.id)) or 0
    if n_gold < spec.quiz.size:
        result.warnings.append(
            f"The gold pool has {n_gold} item(s) but quiz.size is {spec.quiz.size}: "
            + ("quizzes will be short (quiz.allow_short is on)." if spec.quiz.allow_short
               else "quizzes cannot start until there are enough, or set quiz.allow_short: true.")
        )
    return result


@dataclass
class CheckedGold:
    """A gold file checked in full: its rows and the images they name."""

    rows: list[Any]
    images: Catalog


def check_gold_file(spec: ProjectSpec, path: str | Path, progress: Progress | None = None,
                    columns: Columns | None = None) -> CheckedGold:
    """Check a gold file completely (no database needed); raises ImportError_ naming every problem."""
    path = Path(path)
    if not path.exists():
        raise ImportError_(str(path), ["no such file"])
    images = Catalog(path.parent)
    return CheckedGold(_validate(path, spec, gold=True, progress=progress, images=images, columns=columns), images)


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
