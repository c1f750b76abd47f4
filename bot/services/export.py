"""Exports: the final training set, every raw label, and an OpenAI chat fine-tuning file.

Everything streams: items are read in id order from one cursor, `chunk_items` at a time; each
chunk's labels come from one index range query and are settled by `bot.adjudication` (majority vote
per chunk, or a Dawid-Skene model fitted once on the project's compact label columns); rows are
written as they come (a line at a time for JSONL and CSV, a row group at a time for Parquet). Memory
stays flat in the number of labels (see bench/export_scale.py).

Final dataset (default), one row per settled item -- `complete` and `resolved` items, and gold items
with their gold answer:

    id          the item's external id
    input       its text
    label       the answer, task-shaped: "billing" | ["a", "b"] | [{"start", "end", "label"}] | "text"
    confidence  vote share (majority, rewrite), posterior (Dawid-Skene), weakest element majority
                (multilabel, spans); 1.0 for expert and gold answers
    method      majority | dawid_skene | expert | gold
    n_labels    counting crowd labels of the item
    agreement   share of those crowd labels equal to the final answer (null without crowd labels)
    source      crowd | expert | gold
    meta        the item's metadata from the import (an object, or null)

Items whose labels tie are left out (and counted in the result), as are rows below
``min_confidence``. Only counting labels are used (qualified annotators, production and expert
work; never quiz or hidden-check answers, skips or "ambiguous" flags).

Raw (``raw=True``): one row per label, in item order: id, input, annotator, tier, kind, action, value,
draft_shown, draft (the value of the draft linked to the assignment, shown or not), blind, seconds,
counts, correct (score against gold for quiz and hidden checks), created_at.

Formats: ``jsonl`` (values as JSON), ``csv`` (a header row; lists and objects JSON-encoded in their
cell, booleans true/false, empty cell for null; a text cell that a spreadsheet would read as a formula
-- one starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return -- gets a leading ``'``, as
OWASP recommends against CSV injection, see `csv_cell`), ``parquet`` (the same table as the CSV: nested
values -- multilabel and spans labels, meta -- are JSON text in string columns, so every task has the
same schema; created_at is a UTC timestamp), ``openai`` (chat fine-tuning JSONL, final dataset only:
system = instructions + labels + answer format, user = the input, assistant = the answer as the model
should write it: the label name, a JSON list of labels, a JSON list of spans with their text, or
the rewrite).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core.enums import TaskType
from bot.core.errors import LabelbotError
from bot.services.adjudication import (
    CHUNK_ITEMS,
    METHODS,
    SETTLED_STATUSES,
    KeyDecoder,
    ProjectAggregator,
    iter_item_chunks,
    read_snapshot,
    refresh_low_confidence,
)
from bot.services.projects import get_project, spec_of
from bot.spec import ProjectSpec
from storage.db import Database
from storage.models import Assignment, Draft, Item, Label, Member, Project

__all__ = [
    "EXTENSIONS",
    "FINAL_COLUMNS",
    "FORMATS",
    "RAW_COLUMNS",
    "ExportOptions",
    "ExportProblem",
    "ExportResult",
    "ExportStats",
    "assistant_content",
    "count_export_rows",
    "csv_cell",
    "default_filename",
    "export_project",
    "final_rows",
    "openai_record",
    "raw_rows",
    "system_prompt",
    "write_rows",
]

FORMATS = ("jsonl", "csv", "parquet", "openai")
EXTENSIONS = {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet", "openai": "jsonl"}
FINAL_COLUMNS = ("id", "input", "label", "confidence", "method", "n_labels", "agreement", "source", "meta")
RAW_COLUMNS = (
    "id",
    "input",
    "annotator",
    "tier",
    "kind",
    "action",
    "value",
    "draft_shown",
    "draft",
    "blind",
    "seconds",
    "counts",
    "correct",
    "created_at",
)
PARQUET_BATCH_ROWS = 20_000
Progress = Callable[[int], None]


class ExportProblem(LabelbotError, ValueError):
    """An export that cannot be made as asked; the message is one sentence for a person."""


@dataclass(frozen=True)
class ExportOptions:
    fmt: str = "jsonl"
    raw: bool = False
    method: str = "majority"
    min_confidence: float | None = None

    def check(self, task: TaskType | str | None = None) -> None:
        """Raise ExportProblem when the options do not make sense (for this task)."""
        if self.fmt not in FORMATS:
            raise ExportProblem(f"Unknown format {self.fmt!r}; choose one of {', '.join(FORMATS)}.")
        if self.method not in METHODS:
            raise ExportProblem(f"Unknown method {self.method!r}; choose one of {', '.join(METHODS)}.")
        if self.raw and self.fmt == "openai":
            raise ExportProblem("The openai format holds final answers only; it cannot be combined with raw.")
        if self.raw and (self.min_confidence is not None or self.method != "majority"):
            raise ExportProblem("--min-confidence and --method shape the final dataset; raw exports every label.")
        if self.min_confidence is not None and not 0 <= self.min_confidence <= 1:
            raise ExportProblem(f"--min-confidence must be between 0 and 1, not {self.min_confidence:g}.")
        if task is not None and self.method == "dawid_skene" and str(TaskType(task).value) != "classification":
            raise ExportProblem(
                f"Dawid-Skene works on classification projects only; this one is {TaskType(task).value}."
            )

    @property
    def what(self) -> str:
        if self.raw:
            return "raw labels"
        if self.fmt == "openai":
            return "fine-tuning set"
        return "final dataset"


@dataclass
class ExportStats:
    """What the final-dataset reader saw and left out."""

    items: int = 0
    ties: int = 0
    below: int = 0
    unlabeled: int = 0


@dataclass
class ExportResult:
    rows: int
    path: Path
    options: ExportOptions
    stats: ExportStats = field(default_factory=ExportStats)
    escalated: int = 0

    def details(self) -> str:
        """What was written, without the path: `1,234 rows (final dataset, jsonl, majority vote). ...`"""
        o = self.options
        how = "" if o.raw else f", {'Dawid-Skene' if o.method == 'dawid_skene' else 'majority vote'}"
        text = f"{self.rows:,} rows ({o.what}, {o.fmt}{how})."
        left = []
        if self.stats.ties:
            left.append(f"{self.stats.ties:,} tied")
        if self.stats.below:
            left.append(f"{self.stats.below:,} below confidence {o.min_confidence:g}")
        if self.stats.unlabeled:
            left.append(f"{self.stats.unlabeled:,} without counting labels")
        if left:
            text += " Left out: " + ", ".join(left) + "."
        if self.escalated:
            text += f" {self.escalated:,} low-confidence items went to the expert queue first."
        return text

    def summary(self) -> str:
        rows, _, rest = self.details().partition(" (")
        return f"Wrote {rows} to {self.path} ({rest}"


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else round(x, 6)


def final_rows(
    session: Session,
    project: Project,
    *,
    method: str = "majority",
    min_confidence: float | None = None,
    stats: ExportStats | None = None,
    progress: Progress | None = None,
    chunk_items: int = CHUNK_ITEMS,
) -> Iterator[dict[str, Any]]:
    """One dict per settled item (`FINAL_COLUMNS`), in item id order, streamed."""
    stats = stats if stats is not None else ExportStats()
    aggregator = ProjectAggregator(session, project, method)
    columns = (Item.id, Item.external_id, Item.text, Item.meta)
    for part in iter_item_chunks(session, project.id, SETTLED_STATUSES, columns=columns, chunk_items=chunk_items):
        settled = aggregator.settle([r[0] for r in part])
        found = dict(
            zip(
                settled.index.tolist(),
                zip(
                    settled["value"].tolist(),
                    settled["confidence"].tolist(),
                    settled["method"].tolist(),
                    settled["n_labels"].tolist(),
                    settled["agreement"].tolist(),
                    settled["source"].tolist(),
                    strict=True,
                ),
                strict=True,
            )
        )
        for item_id, external_id, text, meta in part:
            stats.items += 1
            row = found.get(item_id)
            if row is None:
                stats.unlabeled += 1
                continue
            value, confidence, how, n_labels, agreement, source = row
            if value is None:
                stats.ties += 1
                continue
            confidence = _num(confidence)
            if min_confidence is not None and (confidence is None or confidence < min_confidence):
                stats.below += 1
                continue
            yield {
                "id": external_id,
                "input": text,
                "label": value,
                "confidence": confidence,
                "method": how,
                "n_labels": int(n_labels),
                "agreement": _num(agreement),
                "source": source,
                "meta": meta,
            }
        if progress is not None:
            progress(len(part))


def raw_rows(
    session: Session, project: Project, *, progress: Progress | None = None, chunk_items: int = CHUNK_ITEMS
) -> Iterator[dict[str, Any]]:
    """One dict per label of the project (`RAW_COLUMNS`), by item then label id, streamed."""
    tiers = dict(session.execute(select(Member.id, Member.tier).where(Member.project_id == project.id)).all())
    decode = KeyDecoder()
    columns = (Item.id, Item.external_id, Item.text)
    for part in iter_item_chunks(session, project.id, None, columns=columns, chunk_items=chunk_items):
        items = {r[0]: (r[1], r[2]) for r in part}
        stmt = (
            select(
                Label.item_id,
                Label.user_id,
                Label.member_id,
                Label.kind,
                Label.action,
                Label.value_key,
                Label.draft_shown,
                Draft.value_key,
                Assignment.blind,
                Label.seconds,
                Label.counts,
                Label.correct,
                Label.created_at,
            )
            .join(Assignment, Assignment.id == Label.assignment_id)
            .outerjoin(Draft, Draft.id == Label.draft_id)
            .where(Label.project_id == project.id, Label.item_id >= part[0][0], Label.item_id <= part[-1][0])
            .order_by(Label.item_id, Label.id)
        )
        n = 0
        for (item_id, user, member, kind, action, key, shown, draft_key, blind, seconds, counts, correct,
             created) in session.connection().execute(stmt):
            external_id, text = items[item_id]
            n += 1
            yield {
                "id": external_id,
                "input": text,
                "annotator": user,
                "tier": tiers.get(member),
                "kind": kind,
                "action": action,
                "value": decode(key),
                "draft_shown": bool(shown),
                "draft": decode(draft_key),
                "blind": bool(blind),
                "seconds": _num(seconds),
                "counts": bool(counts),
                "correct": _num(correct),
                "created_at": created,
            }
        if progress is not None:
            progress(n)


def count_export_rows(session: Session, project: Project, raw: bool) -> int:
    """Labels (raw) or settled items (final; an upper bound on its rows): the progress bar's total."""
    if raw:
        stmt = select(func.count()).select_from(Label).where(Label.project_id == project.id)
    else:
        stmt = select(func.count()).select_from(Item).where(
            Item.project_id == project.id, Item.status.in_([str(s) for s in SETTLED_STATUSES])
        )
    return int(session.scalar(stmt) or 0)


# --------------------------------------------------------------------------------------------
# OpenAI fine-tuning
# --------------------------------------------------------------------------------------------

_TASK_LINES = {
    TaskType.CLASSIFICATION: "Choose the one label that best fits the text.",
    TaskType.MULTILABEL: "Choose every label that applies to the text (possibly none).",
    TaskType.SPANS: "Mark every span of the text that belongs to one of the span types.",
    TaskType.REWRITE: "Rewrite the text as the instructions ask.",
}
_ANSWER_LINES = {
    TaskType.CLASSIFICATION: "Answer with the label name only.",
    TaskType.MULTILABEL: 'Answer with a JSON list of label names, like ["a", "b"], or [] when none applies.',
    TaskType.SPANS: (
        'Answer with a JSON list of spans, like [{"start": 0, "end": 5, "label": "X", "text": "Paris"}]: '
        "character offsets into the text (end exclusive), the span type, and the exact text[start:end]; "
        "[] when there is none."
    ),
    TaskType.REWRITE: "Answer with the rewritten text only.",
}


def system_prompt(spec: ProjectSpec) -> str:
    """The same system message for every example of a project: instructions, labels, answer format."""
    lines = []
    if spec.instructions.strip():
        lines += [spec.instructions.strip(), ""]
    lines.append(_TASK_LINES[spec.task])
    if spec.labels:
        lines.append("Span types:" if spec.task is TaskType.SPANS else "Labels:")
        for label in spec.labels:
            desc = " ".join(label.description.split())
            lines.append(f"- {label.name}" + (f": {desc}" if desc else ""))
    lines.append(_ANSWER_LINES[spec.task])
    return "\n".join(lines)


def assistant_content(task: TaskType, value: Any, text: str) -> str:
    """The answer as the fine-tuned model should write it."""
    if task is TaskType.MULTILABEL:
        return json.dumps(list(value), ensure_ascii=False)
    if task is TaskType.SPANS:
        spans = [
            {"start": s["start"], "end": s["end"], "label": s["label"], "text": text[s["start"] : s["end"]]}
            for s in value
        ]
        return json.dumps(spans, ensure_ascii=False)
    return str(value)


def openai_record(spec: ProjectSpec, row: dict[str, Any], system: str | None = None) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": system if system is not None else system_prompt(spec)},
            {"role": "user", "content": row["input"]},
            {"role": "assistant", "content": assistant_content(spec.task, row["label"], row["input"])},
        ]
    }


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------


def _json_default(o: Any) -> Any:
    if isinstance(o, datetime):
        return o.isoformat()
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    raise TypeError(f"cannot write {type(o).__name__} as JSON")


def _write_jsonl(rows: Iterable[dict[str, Any]], fh: IO[str]) -> int:
    dumps, n = json.JSONEncoder(ensure_ascii=False, default=_json_default).encode, 0
    for row in rows:
        fh.write(dumps(row))
        fh.write("\n")
        n += 1
    return n


def _text_cell(v: Any) -> str | None:
    """A value for a text cell: strings as they are, lists and objects as JSON, null as null."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(v, ensure_ascii=False, default=_json_default)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """One CSV cell. Text that a spreadsheet would run as a formula (``=cmd|' /C calc'!A0``,
    ``+SUM(..)``, ``@A1``...: it starts with = + - @, a tab or a carriage return) is neutralised with a
    leading ``'`` (OWASP's advice on CSV injection), so it opens as text. Numbers and booleans are
    written as they are (a number is never a formula); JSONL and Parquet keep every value exact."""
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        value = value.item()
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return _text_cell(value) or ""
    cell = _text_cell(value) or ""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def _write_csv(rows: Iterable[dict[str, Any]], fh: IO[str], columns: tuple[str, ...]) -> int:
    writer = csv.writer(fh)
    writer.writerow(columns)
    n = 0
    for row in rows:
        writer.writerow([csv_cell(row[k]) for k in columns])
        n += 1
    return n


def _parquet_schema(raw: bool) -> Any:
    import pyarrow as pa

    s, f, b = pa.string(), pa.float64(), pa.bool_()
    if raw:
        fields = [
            ("id", s), ("input", s), ("annotator", s), ("tier", s), ("kind", s), ("action", s), ("value", s),
            ("draft_shown", b), ("draft", s), ("blind", b), ("seconds", f), ("counts", b), ("correct", f),
            ("created_at", pa.timestamp("us", tz="UTC")),
        ]
    else:
        fields = [
            ("id", s), ("input", s), ("label", s), ("confidence", f), ("method", s), ("n_labels", pa.int64()),
            ("agreement", f), ("source", s), ("meta", s),
        ]
    return pa.schema(fields)


_JSON_TEXT_COLUMNS = {"label", "value", "draft", "meta"}


def _write_parquet(rows: Iterable[dict[str, Any]], path: Path, raw: bool, batch_rows: int = PARQUET_BATCH_ROWS) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema(raw)
    names = schema.names
    as_text = [name in _JSON_TEXT_COLUMNS for name in names]
    n = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        batch: dict[str, list[Any]] = {name: [] for name in names}

        def flush() -> None:
            if batch[names[0]]:
                writer.write_table(pa.Table.from_pydict(batch, schema=schema), row_group_size=batch_rows)
                for col in batch.values():
                    col.clear()

        for row in rows:
            for name, text in zip(names, as_text, strict=True):
                batch[name].append(_text_cell(row[name]) if text else row[name])
            n += 1
            if n % batch_rows == 0:
                flush()
        flush()
    return n


def write_rows(
    rows: Iterable[dict[str, Any]], path: Path, fmt: str, *, raw: bool = False, spec: ProjectSpec | None = None
) -> int:
    """Write rows (from `final_rows` or `raw_rows`) to `path` in `fmt`; returns the rows written."""
    if fmt == "parquet":
        return _write_parquet(rows, path, raw)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        if fmt == "csv":
            return _write_csv(rows, fh, RAW_COLUMNS if raw else FINAL_COLUMNS)
        if fmt == "openai":
            assert spec is not None and not raw
            system = system_prompt(spec)
            return _write_jsonl((openai_record(spec, r, system) for r in rows), fh)
        return _write_jsonl(rows, fh)


# --------------------------------------------------------------------------------------------
# The use case
# --------------------------------------------------------------------------------------------


def default_filename(slug: str, options: ExportOptions, now: datetime) -> str:
    kind = "raw" if options.raw else ("openai" if options.fmt == "openai" else "final")
    return f"{slug}-{kind}-{now:%Y%m%d}.{EXTENSIONS[options.fmt]}"


def export_project(
    db: Database,
    slug: str,
    out: str | Path,
    options: ExportOptions,
    *,
    now: datetime,
    escalate: bool = True,
    progress: Progress | None = None,
    chunk_items: int = CHUNK_ITEMS,
) -> ExportResult:
    """Export a project to `out` (written to `out.part`, renamed when complete).

    Before a final export, complete items below the project's `escalation.min_confidence` go to the
    expert queue (`escalate=False` skips that); the file is then read from one snapshot.
    Raises NotFound (unknown project) or ExportProblem (options that do not fit)."""
    options.check()
    with db.read() as s:
        options.check(get_project(s, slug).task)
    escalated = refresh_low_confidence(db, slug, now) if escalate and not options.raw else 0
    out = Path(out)
    part = out.with_name(out.name + ".part")
    stats = ExportStats()
    done = False
    try:
        with db.read() as s:
            project = get_project(read_snapshot(s), slug)
            spec = spec_of(project)
            if options.raw:
                rows = raw_rows(s, project, progress=progress, chunk_items=chunk_items)
            else:
                rows = final_rows(
                    s, project, method=options.method, min_confidence=options.min_confidence, stats=stats,
                    progress=progress, chunk_items=chunk_items,
                )
            n = write_rows(rows, part, options.fmt, raw=options.raw, spec=spec)
        os.replace(part, out)
        done = True
    finally:
        if not done:
            part.unlink(missing_ok=True)
    return ExportResult(rows=n, path=out, options=options, stats=stats, escalated=escalated)


def parse_export_args(text: str) -> tuple[str | None, ExportOptions]:
    """`[project] [format] [raw]` in any order -> (slug or None, options). Raises ExportProblem."""
    slug: str | None = None
    fmt: str | None = None
    raw = False
    for word in text.lower().split():
        if word in FORMATS:
            if fmt is not None:
                raise ExportProblem(f"Choose one format, not both {fmt} and {word}.")
            fmt = word
        elif word == "raw":
            raw = True
        elif slug is None:
            slug = word
        else:
            raise ExportProblem(f"I do not understand {word!r}.")
    options = ExportOptions(fmt=fmt or "jsonl", raw=raw)
    options.check()
    return slug, options

