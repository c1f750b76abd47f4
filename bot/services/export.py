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
counts, correct (score against gold for quiz and hidden checks), guideline_version (the version of the
guidelines the answer was given under), created_at.

Formats: ``jsonl`` (values as JSON), ``csv`` (a header row; lists and objects JSON-encoded in their
cell, booleans true/false, empty cell for null; a text cell that a spreadsheet would read as a formula
-- one starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return -- gets a leading ``'``, as
OWASP recommends against CSV injection, see `csv_cell`), ``parquet`` (the same table as the CSV: nested
values -- multilabel and spans labels, meta -- are JSON text in string columns, so every task has the
same schema; created_at is a UTC timestamp), ``openai`` (chat fine-tuning JSONL, final dataset only:
system = instructions + labels + answer format, user = the input, assistant = the answer as the model
should write it: the label name, a JSON list of labels, a JSON list of spans with their text, or
the rewrite).

Projects with image items: every row carries `image` after the text (the reference as imported: the
path, relative to the import file, or the https:// URL; null for a text item); a fine-tuning line's
user message holds the item's text and the image (a data: URL of the stored file, or its URL); the hf
format has an `Image` feature with the stored file's bytes and the reference in `image_ref`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core.enums import ItemStatus, TaskType
from bot.core.errors import LabelbotError
from bot.core.values import csv_safe
from bot.services.projects import get_project, spec_of
from bot.spec import ProjectSpec
from storage.db import Database
from storage.models import Assignment, Draft, Image, Item, Label, Member, Project

__all__ = [
    "ALL_FORMATS",
    "EXTENSIONS",
    "FILE_FORMATS",
    "FINAL_COLUMNS",
    "FORMATS",
    "RAW_COLUMNS",
    "TABLE_COLUMNS",
    "ExportOptions",
    "ExportProblem",
    "ExportResult",
    "ExportStats",
    "MetaColumn",
    "assistant_content",
    "bio_tags",
    "check_out",
    "count_export_rows",
    "csv_cell",
    "default_filename",
    "export_project",
    "final_rows",
    "format_for_path",
    "has_images",
    "hf_features",
    "meta_columns",
    "openai_record",
    "raw_rows",
    "split_rows",
    "stored_image",
    "system_prompt",
    "tokenize",
    "write_rows",
]

FILE_FORMATS = ("jsonl", "csv", "parquet", "openai", "conll")  # one file each: also `/label-export`
FORMATS = FILE_FORMATS
ALL_FORMATS = (*FILE_FORMATS, "hf")  # hf: a directory (`datasets.DatasetDict.save_to_disk`), CLI only
EXTENSIONS = {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet", "openai": "jsonl", "conll": "conll", "hf": ""}
# The format an --out suffix means when --format is not given (.jsonl is the final dataset, not openai).
SUFFIX_FORMATS = {"jsonl": "jsonl", "ndjson": "jsonl", "csv": "csv", "parquet": "parquet", "conll": "conll"}
FINAL_COLUMNS = ("id", "input", "label", "confidence", "method", "n_labels", "agreement", "source", "meta")
# CSV and Parquet final exports: the import's names (id, text), then the answer, then one column per
# metadata key, so that the file imports again as it is.
TABLE_COLUMNS = ("id", "text", "label", "confidence", "method", "n_labels", "agreement", "source")
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
    "guideline_version",
    "created_at",
)
PARQUET_BATCH_ROWS = 20_000
OPENAI_MIN_ROWS = 10  # OpenAI's fine-tuning jobs refuse a training file with fewer examples
Progress = Callable[[int], None]


def _adj() -> Any:
    """bot.services.adjudication (numpy, pandas): imported when an export runs, not when the app starts."""
    from bot.services import adjudication

    return adjudication


class ExportProblem(LabelbotError, ValueError):
    """An export that cannot be made as asked; the message is one sentence for a person."""


def format_for_path(path: str | Path) -> str | None:
    """The format an output path's extension stands for (None: no extension labelbot knows)."""
    return SUFFIX_FORMATS.get(Path(path).suffix.lower().lstrip("."))


def check_out(path: str | Path, fmt: str) -> None:
    """Refuse an output path whose extension does not match the format (a.csv for jsonl, say)."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if fmt == "hf":
        if path.exists() and not path.is_dir():
            raise ExportProblem(f"{path} is a file; the hf format writes a directory: give --out a new directory.")
        if suffix in SUFFIX_FORMATS or suffix == "json":
            raise ExportProblem(f"{path} ends in .{suffix}, but the hf format writes a directory: name it without "
                                f"an extension, or use --format {SUFFIX_FORMATS.get(suffix, 'jsonl')}.")
        return
    want = EXTENSIONS[fmt]
    if suffix != want:
        got = f"ends in .{suffix}" if suffix else "has no extension"
        hint = f" or use --format {SUFFIX_FORMATS[suffix]}" if suffix in SUFFIX_FORMATS else ""
        raise ExportProblem(f"{path.name} {got}, but the {fmt} format writes .{want} files: name it "
                            f"{path.stem or path.name}.{want}{hint}.")


@dataclass(frozen=True)
class ExportOptions:
    fmt: str = "jsonl"
    raw: bool = False
    method: str = "majority"
    min_confidence: float | None = None
    include_gold: bool = False  # the gold set is left out of final exports unless asked for (marked source=gold)
    validation: float | None = None  # share of rows held out in a validation split (stratified by label)
    seed: int = 0  # of the validation split

    def check(self, task: TaskType | str | None = None) -> None:
        """Raise ExportProblem when the options do not make sense (for this task)."""
        if self.fmt not in ALL_FORMATS:
            raise ExportProblem(f"Unknown format {self.fmt!r}; choose one of {', '.join(ALL_FORMATS)}.")
        if self.method not in _adj().METHODS:
            raise ExportProblem(f"Unknown method {self.method!r}; choose one of {', '.join(_adj().METHODS)}.")
        if self.raw and self.fmt in ("openai", "hf", "conll"):
            raise ExportProblem(f"The {self.fmt} format holds final answers only; it cannot be combined with raw.")
        if self.raw and (self.min_confidence is not None or self.method != "majority"):
            raise ExportProblem("--min-confidence and --method shape the final dataset; raw exports every label.")
        if self.raw and (self.include_gold or self.validation is not None):
            raise ExportProblem("--include-gold and --validation shape the final dataset; raw exports every label.")
        if self.min_confidence is not None and not 0 <= self.min_confidence <= 1:
            raise ExportProblem(f"--min-confidence must be between 0 and 1, not {self.min_confidence:g}.")
        if self.validation is not None and not 0 < self.validation < 1:
            raise ExportProblem(f"--validation is the share of rows held out, between 0 and 1 (like 0.1), "
                                f"not {self.validation:g}.")
        if task is not None and self.method == "dawid_skene" and str(TaskType(task).value) != "classification":
            raise ExportProblem(
                f"Dawid-Skene works on classification projects only; this one is {TaskType(task).value}."
            )
        if task is not None and self.fmt == "conll" and TaskType(task) is not TaskType.SPANS:
            raise ExportProblem(f"The conll format writes span tags; this is a {TaskType(task).value} project.")

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
    gold: int = 0  # gold items left out (no --include-gold)
    open: int = 0  # items still being labeled
    escalated: int = 0  # items waiting for an expert


@dataclass
class ExportResult:
    rows: int
    path: Path
    options: ExportOptions
    stats: ExportStats = field(default_factory=ExportStats)
    escalated: int = 0
    files: list[tuple[Path, int]] = field(default_factory=list)  # (path, rows) of each file or split
    warnings: list[str] = field(default_factory=list)

    def left_out(self) -> str:
        """`Left out: 3 open, 1 escalated, ...` or `Nothing was left out.` (final exports)."""
        o, st = self.options, self.stats
        left = []
        if st.open:
            left.append(f"{st.open:,} open (still being labeled)")
        if st.escalated:
            left.append(f"{st.escalated:,} escalated (waiting for an expert)")
        if st.ties:
            left.append(f"{st.ties:,} tied")
        if st.below:
            left.append(f"{st.below:,} below confidence {o.min_confidence:g}")
        if st.unlabeled:
            left.append(f"{st.unlabeled:,} without counting labels")
        if st.gold:
            left.append(f"{st.gold:,} gold (add them with --include-gold)")
        return ("Left out: " + ", ".join(left) + ".") if left else "Nothing was left out."

    def details(self) -> str:
        """What was written, without the path: `1,234 rows (final dataset, jsonl, majority vote). ...`"""
        o = self.options
        how = "" if o.raw else f", {'Dawid-Skene' if o.method == 'dawid_skene' else 'majority vote'}"
        text = f"{self.rows:,} row{'' if self.rows == 1 else 's'} ({o.what}, {o.fmt}{how})."
        if not o.raw:
            text += " " + self.left_out()
        if self.escalated:
            text += f" {self.escalated:,} low-confidence items went to the expert queue first."
        return text

    def summary(self) -> str:
        """The one closing line: what was written where, and what was left out."""
        rows, _, rest = self.details().partition(" (")
        if len(self.files) > 1:
            where = " and ".join(f"{n:,} to {p}" for p, n in self.files)
            return f"Wrote {rows}: {where} ({rest}"
        return f"Wrote {rows} to {self.path} ({rest}"


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else round(x, 6)


def has_images(session: Session, project: Project) -> bool:
    """Whether any item of the project has an image (its exports then carry the `image` column)."""
    found = select(Item.id).where(Item.project_id == project.id, Item.image.is_not(None)).limit(1)
    return session.scalar(found) is not None


def stored_image(session: Session, project_id: int, external_id: str) -> tuple[str, bytes] | None:
    """(mime, bytes) of an item's stored image file (None for a text item or an image URL): what a
    Hugging Face `Image` feature or a vision fine-tuning line needs besides the reference."""
    row = session.execute(
        select(Image.mime, Image.data).join(Item, Item.image_id == Image.id)
        .where(Item.project_id == project_id, Item.external_id == external_id)
    ).first()
    return (row[0], bytes(row[1])) if row is not None else None


def _with_image(columns: tuple[str, ...], images: bool) -> tuple[str, ...]:
    """The columns with `image` after the text (`input` / `text`) when the project has image items."""
    return (*columns[:2], "image", *columns[2:]) if images else columns


def final_rows(
    session: Session,
    project: Project,
    *,
    method: str = "majority",
    min_confidence: float | None = None,
    stats: ExportStats | None = None,
    progress: Progress | None = None,
    chunk_items: int | None = None,
    include_gold: bool = False,
    images: bool = False,
) -> Iterator[dict[str, Any]]:
    """One dict per settled item (`FINAL_COLUMNS`, and `image` when `images`), in item id order,
    streamed. Gold items (imported or promoted) are counted in `stats.gold` and left out unless
    `include_gold` (then source "gold")."""
    stats = stats if stats is not None else ExportStats()
    aggregator = _adj().ProjectAggregator(session, project, method)
    columns = (Item.id, Item.external_id, Item.text, Item.meta, Item.is_gold, Item.image)
    adj = _adj()
    for part in adj.iter_item_chunks(session, project.id, adj.SETTLED_STATUSES, columns=columns,
                                     chunk_items=chunk_items or adj.CHUNK_ITEMS):
        if not include_gold:
            kept = [r for r in part if not r[4]]
            stats.gold += len(part) - len(kept)
            stats.items += len(part) - len(kept)
            if progress is not None and len(kept) < len(part):
                progress(len(part) - len(kept))
            part = kept
            if not part:
                continue
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
        for item_id, external_id, text, meta, is_gold, image in part:
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
            out = {
                "id": external_id,
                "input": text,
                "label": value,
                "confidence": confidence,
                "method": how,
                "n_labels": int(n_labels),
                "agreement": _num(agreement),
                "source": "gold" if is_gold else source,
                "meta": meta,
            }
            if images:
                out["image"] = image
            yield out
        if progress is not None:
            progress(len(part))


def raw_rows(
    session: Session, project: Project, *, progress: Progress | None = None, chunk_items: int | None = None,
    images: bool = False,
) -> Iterator[dict[str, Any]]:
    """One dict per label of the project (`RAW_COLUMNS`, and `image` when `images`), by item then label
    id, streamed."""
    tiers = dict(session.execute(select(Member.id, Member.tier).where(Member.project_id == project.id)).all())
    decode = _adj().KeyDecoder()
    columns = (Item.id, Item.external_id, Item.text, Item.image)
    adj = _adj()
    for part in adj.iter_item_chunks(session, project.id, None, columns=columns,
                                     chunk_items=chunk_items or adj.CHUNK_ITEMS):
        items = {r[0]: (r[1], r[2], r[3]) for r in part}
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
                func.coalesce(Label.guideline_version, 1),
                Label.created_at,
            )
            .join(Assignment, Assignment.id == Label.assignment_id)
            .outerjoin(Draft, Draft.id == Label.draft_id)
            .where(Label.project_id == project.id, Label.item_id >= part[0][0], Label.item_id <= part[-1][0])
            .order_by(Label.item_id, Label.id)
        )
        n = 0
        for (item_id, user, member, kind, action, key, shown, draft_key, blind, seconds, counts, correct,
             version, created) in session.connection().execute(stmt):
            external_id, text, image = items[item_id]
            n += 1
            row = {
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
                "guideline_version": int(version),
                "created_at": created,
            }
            if images:
                row["image"] = image
            yield row
        if progress is not None:
            progress(n)


def count_export_rows(session: Session, project: Project, raw: bool) -> int:
    """Labels (raw) or settled items (final; an upper bound on its rows): the progress bar's total."""
    if raw:
        stmt = select(func.count()).select_from(Label).where(Label.project_id == project.id)
    else:
        stmt = select(func.count()).select_from(Item).where(
            Item.project_id == project.id, Item.status.in_([str(s) for s in _adj().SETTLED_STATUSES])
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


def openai_record(spec: ProjectSpec, row: dict[str, Any], system: str | None = None,
                  image_url: str | None = None) -> dict[str, Any]:
    """A fine-tuning line; an image item's user message holds its text (if any) and the image
    (`image_url`: a data: URL of the stored file, or the item's https:// URL)."""
    user: Any = row["input"]
    if image_url is not None:
        user = ([{"type": "text", "text": row["input"]}] if row["input"].strip() else []) + [
            {"type": "image_url", "image_url": {"url": image_url}}
        ]
    return {
        "messages": [
            {"role": "system", "content": system if system is not None else system_prompt(spec)},
            {"role": "user", "content": user},
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


def csv_cell(value: Any) -> str:
    """One CSV cell. Text that a spreadsheet would run as a formula (``=cmd|' /C calc'!A0``,
    ``+SUM(..)``, ``@A1``...: it starts with = + - @, a tab or a carriage return) is neutralised with a
    leading ``'`` (OWASP's advice on CSV injection; `bot.core.values.csv_safe`, which the importer
    undoes, so an export imports again exactly). Numbers and booleans are written as they are (a number
    is never a formula); JSONL and Parquet keep every value exact."""
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        value = value.item()
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return _text_cell(value) or ""
    return csv_safe(_text_cell(value) or "")


def _write_csv(rows: Iterable[dict[str, Any]], fh: IO[str], columns: tuple[str, ...],
               header: tuple[str, ...] | None = None) -> int:
    writer = csv.writer(fh)
    writer.writerow(header or columns)
    n = 0
    for row in rows:
        writer.writerow([csv_cell(row.get(k)) for k in columns])
        n += 1
    return n


# --- metadata spread into columns (final CSV and Parquet) -------------------------------------


@dataclass
class MetaColumn:
    key: str  # the metadata key
    name: str  # its column: the key, or "meta.KEY" when the key is taken by an export column
    kind: str = "null"  # bool | int | float | str | json | null (the Parquet type; CSV writes text)

    def see(self, value: Any) -> None:
        if value is None:
            return
        k = ("bool" if isinstance(value, bool) else "int" if isinstance(value, int)
             else "float" if isinstance(value, float) else "str" if isinstance(value, str) else "json")
        if self.kind in ("null", k):
            self.kind = k
        elif {self.kind, k} == {"int", "float"}:
            self.kind = "float"
        else:
            self.kind = "json"


def meta_columns(session: Session, project: Project, include_gold: bool,
                 chunk_items: int | None = None) -> list[MetaColumn]:
    """The metadata keys of the items a final export may write, in order of first appearance, each with
    the narrowest column type that holds every value (one streamed pass over the metadata)."""
    found: dict[str, MetaColumn] = {}
    columns = (Item.id, Item.meta, Item.is_gold)
    adj = _adj()
    for part in adj.iter_item_chunks(session, project.id, adj.SETTLED_STATUSES, columns=columns,
                                     chunk_items=chunk_items or adj.CHUNK_ITEMS):
        for _id, meta, is_gold in part:
            if not meta or (is_gold and not include_gold):
                continue
            for key, value in meta.items():
                col = found.get(key)
                if col is None:
                    name = f"meta.{key}" if key in TABLE_COLUMNS else key
                    col = found[key] = MetaColumn(key, name)
                col.see(value)
    return list(found.values())


def _table_row(row: dict[str, Any], meta_cols: list[MetaColumn]) -> dict[str, Any]:
    """A final row with the import's names (text) and its metadata spread into columns."""
    out = {k: row[k] for k in TABLE_COLUMNS if k != "text"}
    out["text"] = row["input"]
    if "image" in row:
        out["image"] = row["image"]
    meta = row.get("meta") or {}
    for col in meta_cols:
        out[col.name] = meta.get(col.key)
    return out


def _parquet_schema(raw: bool, meta_cols: list[MetaColumn] | None = None, images: bool = False) -> Any:
    import pyarrow as pa

    if images:
        return _parquet_schema(raw, meta_cols).insert(2, pa.field("image", pa.string()))
    s, f, b = pa.string(), pa.float64(), pa.bool_()
    if raw:
        fields = [
            ("id", s), ("input", s), ("annotator", s), ("tier", s), ("kind", s), ("action", s), ("value", s),
            ("draft_shown", b), ("draft", s), ("blind", b), ("seconds", f), ("counts", b), ("correct", f),
            ("guideline_version", pa.int64()), ("created_at", pa.timestamp("us", tz="UTC")),
        ]
    else:
        fields = [
            ("id", s), ("text", s), ("label", s), ("confidence", f), ("method", s), ("n_labels", pa.int64()),
            ("agreement", f), ("source", s),
        ]
        types = {"bool": b, "int": pa.int64(), "float": f}
        fields += [(c.name, types.get(c.kind, s)) for c in meta_cols or []]
    return pa.schema(fields)


_JSON_TEXT_COLUMNS = {"label", "value", "draft"}


def _write_parquet(rows: Iterable[dict[str, Any]], path: Path, raw: bool, meta_cols: list[MetaColumn] | None = None,
                   batch_rows: int = PARQUET_BATCH_ROWS, images: bool = False) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema(raw, meta_cols, images)
    names = schema.names
    kinds = {c.name: c.kind for c in meta_cols or []}
    as_text = [name in _JSON_TEXT_COLUMNS or kinds.get(name) in ("json", "str", "null") for name in names]
    as_float = [kinds.get(name) == "float" for name in names]
    n = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        batch: dict[str, list[Any]] = {name: [] for name in names}

        def flush() -> None:
            if batch[names[0]]:
                writer.write_table(pa.Table.from_pydict(batch, schema=schema), row_group_size=batch_rows)
                for col in batch.values():
                    col.clear()

        for row in rows:
            if not raw:
                row = _table_row(row, meta_cols or [])
            for name, text, flt in zip(names, as_text, as_float, strict=True):
                v = row.get(name)
                batch[name].append(_text_cell(v) if text else (float(v) if flt and v is not None else v))
            n += 1
            if n % batch_rows == 0:
                flush()
        flush()
    return n


# --- CoNLL (spans as BIO tags per token) ------------------------------------------------------

TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokenize(text: str) -> list[tuple[int, int]]:
    """The CoNLL tokenizer: runs of word characters (letters, digits, '_'), and every other non-space
    character on its own; (start, end) character offsets, end exclusive."""
    return [(m.start(), m.end()) for m in TOKEN_RE.finditer(text)]


def bio_tags(text: str, spans: list[dict[str, Any]]) -> tuple[list[tuple[str, str]], list[str]]:
    """(token, tag) pairs for a text and its spans, and a note for each span whose offsets cut a token
    (it is tagged on every token it touches, and reported) or that touches no token (left out)."""
    tokens = tokenize(text)
    tags = ["O"] * len(tokens)
    problems: list[str] = []
    for span in sorted(spans, key=lambda s: (s["start"], s["end"])):
        start, end, label = int(span["start"]), int(span["end"]), str(span["label"])
        touched = [i for i, (a, b) in enumerate(tokens) if a < end and b > start]
        shown = f"{start}-{end} {label} {text[start:end]!r}"
        if not touched:
            problems.append(f"span {shown} covers no token (left out)")
            continue
        first, last = tokens[touched[0]], tokens[touched[-1]]
        cut = []
        if first[0] != start:
            cut.append(text[first[0] : first[1]])
        if last[1] != end:
            cut.append(text[last[0] : last[1]])
        if cut:
            problems.append(f"span {shown} cuts the token(s) {', '.join(repr(c) for c in dict.fromkeys(cut))}: "
                            "tagged on the whole token(s)")
        if any(tags[i] != "O" for i in touched):
            problems.append(f"span {shown} shares a token with the span before it: that token keeps the first tag")
        for j, i in enumerate(touched):
            if tags[i] == "O":
                tags[i] = ("B-" if j == 0 else "I-") + label
    return [(text[a:b], tag) for (a, b), tag in zip(tokens, tags, strict=True)], problems


MAX_REPORTED = 20


def _write_conll(rows: Iterable[dict[str, Any]], fh: IO[str], warnings: list[str]) -> int:
    """One block per item: `# id = ID`, then `TOKEN<TAB>TAG` lines, then a blank line."""
    n = cut = 0
    for row in rows:
        pairs, problems = bio_tags(row["input"], row["label"])
        fh.write(f"# id = {' '.join(str(row['id']).split())}\n")
        for token, tag in pairs:
            fh.write(f"{token}\t{tag}\n")
        fh.write("\n")
        for p in problems:
            cut += 1
            if cut <= MAX_REPORTED:
                warnings.append(f"item {row['id']}: {p}")
        n += 1
    if cut > MAX_REPORTED:
        warnings.append(f"... and {cut - MAX_REPORTED} more span(s) not on token boundaries")
    return n


# --- Hugging Face datasets ------------------------------------------------------------------


def hf_features(spec: ProjectSpec, images: bool = False) -> Any:
    """The `datasets.Features` of an hf export: the answer under its import name (label, labels, spans,
    rewrite) with ClassLabel for label names; spans are character offsets (end exclusive)."""
    try:
        import datasets
    except ImportError:
        raise ExportProblem(
            "The hf format needs the Hugging Face `datasets` package: pip install 'labelbot[hf]'."
        ) from None
    List = getattr(datasets, "List", None) or datasets.Sequence
    names = spec.label_names
    answer: dict[str, Any]
    if spec.task is TaskType.CLASSIFICATION:
        answer = {"label": datasets.ClassLabel(names=names)}
    elif spec.task is TaskType.MULTILABEL:
        answer = {"labels": List(datasets.ClassLabel(names=names))}
    elif spec.task is TaskType.SPANS:
        answer = {"spans": List({"start": datasets.Value("int32"), "end": datasets.Value("int32"),
                                 "label": datasets.ClassLabel(names=names)})}
    else:
        answer = {"rewrite": datasets.Value("string")}
    return datasets.Features({
        "id": datasets.Value("string"), "text": datasets.Value("string"), **answer,
        "confidence": datasets.Value("float64"), "method": datasets.Value("string"),
        "n_labels": datasets.Value("int64"), "agreement": datasets.Value("float64"),
        "source": datasets.Value("string"), "meta": datasets.Value("string"),
        **({"image": datasets.Image(), "image_ref": datasets.Value("string")} if images else {}),
    })


HF_ANSWER = {TaskType.CLASSIFICATION: "label", TaskType.MULTILABEL: "labels", TaskType.SPANS: "spans",
             TaskType.REWRITE: "rewrite"}


def _hf_record(spec: ProjectSpec, row: dict[str, Any], image: Callable[[dict[str, Any]], Any] | None = None
               ) -> dict[str, Any]:
    value = row["label"]
    if spec.task is TaskType.SPANS:
        value = [{"start": int(s["start"]), "end": int(s["end"]), "label": s["label"]} for s in value]
    return {
        "id": row["id"], "text": row["input"], HF_ANSWER[spec.task]: value, "confidence": row["confidence"],
        "method": row["method"], "n_labels": row["n_labels"], "agreement": row["agreement"], "source": row["source"],
        "meta": json.dumps(row["meta"], ensure_ascii=False, default=_json_default) if row["meta"] else None,
        **({"image": image(row), "image_ref": row.get("image")} if image is not None else {}),
    }


def _hf_image(session: Session, project_id: int) -> Callable[[dict[str, Any]], Any]:
    """A row's `Image` feature value: the stored file's bytes (None for a URL image or a text item)."""

    def image(row: dict[str, Any]) -> Any:
        if not row.get("image"):
            return None
        stored = stored_image(session, project_id, row["id"])
        return {"bytes": stored[1], "path": None} if stored is not None else None

    return image


def _write_hf(splits: dict[str, list[dict[str, Any]]], out: Path, spec: ProjectSpec,
              image: Callable[[dict[str, Any]], Any] | None = None) -> None:
    """A `datasets.DatasetDict` (one Dataset per split) saved with `save_to_disk`. With image items
    (`image(row)`): an `Image` feature holding each stored file's bytes (None for an image URL, whose
    reference stays in `image_ref`)."""
    features = hf_features(spec, images=image is not None)
    import datasets

    parts = {
        name: datasets.Dataset.from_list([_hf_record(spec, r, image) for r in rows], features=features)
        for name, rows in splits.items()
    }
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # the CLI prints its own closing line
    try:
        datasets.DatasetDict(parts).save_to_disk(str(out))
    finally:
        if bars:
            datasets.enable_progress_bars()


def write_rows(
    rows: Iterable[dict[str, Any]], path: Path, fmt: str, *, raw: bool = False, spec: ProjectSpec | None = None,
    meta_cols: list[MetaColumn] | None = None, warnings: list[str] | None = None, images: bool = False,
    image_url: Callable[[dict[str, Any]], str | None] | None = None,
) -> int:
    """Write rows (from `final_rows` or `raw_rows`) to `path` in `fmt`; returns the rows written.
    Final CSV and Parquet files spread the metadata into `meta_cols` (see `meta_columns`). `images`:
    the rows carry the `image` column; `image_url(row)`: the image a fine-tuning line shows."""
    if fmt == "parquet":
        return _write_parquet(rows, path, raw, meta_cols, images=images)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        if fmt == "csv":
            if raw:
                return _write_csv(rows, fh, _with_image(RAW_COLUMNS, images))
            cols = meta_cols or []
            names = (*_with_image(TABLE_COLUMNS, images), *(c.name for c in cols))
            return _write_csv((_table_row(r, cols) for r in rows), fh, names)
        if fmt == "openai":
            assert spec is not None and not raw
            system = system_prompt(spec)
            see = image_url or (lambda row: None)
            return _write_jsonl((openai_record(spec, r, system, see(r)) for r in rows), fh)
        if fmt == "conll":
            return _write_conll(rows, fh, warnings if warnings is not None else [])
        return _write_jsonl(rows, fh)


def _image_urls(session: Session, project_id: int) -> Callable[[dict[str, Any]], str | None]:
    """For a fine-tuning line: the row's image as a data: URL (a stored file) or its https:// URL."""
    from bot.services.images.files import data_url, for_model

    def url(row: dict[str, Any]) -> str | None:
        ref = row.get("image")
        if not ref:
            return None
        stored = stored_image(session, project_id, row["id"])
        return data_url(*for_model(*stored)) if stored is not None else str(ref)

    return url


# --------------------------------------------------------------------------------------------
# Train / validation split
# --------------------------------------------------------------------------------------------


def _stratum(task: TaskType, row: dict[str, Any]) -> str:
    """Rows are split within strata: the label (classification), the label set (multilabel), one
    stratum otherwise."""
    if task is TaskType.CLASSIFICATION:
        return str(row["label"])
    if task is TaskType.MULTILABEL:
        return json.dumps(sorted(row["label"]))
    return ""


def split_rows(rows: list[dict[str, Any]], fraction: float, seed: int, task: TaskType) -> tuple[list, list]:
    """(train, validation): round(n * fraction) rows held out (at least 1 when there are 2 rows or more),
    shared among the strata by largest remainder so each stratum keeps its share; which rows, by a
    shuffle seeded with `seed` and the stratum. Both keep the input order."""
    n = len(rows)
    total = round(n * fraction)
    if n >= 2:
        total = min(max(total, 1), n - 1)
    strata: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        strata.setdefault(_stratum(task, row), []).append(i)
    quotas = {k: len(v) * total / n for k, v in strata.items()} if n else {}
    take = {k: math.floor(q) for k, q in quotas.items()}
    rest = total - sum(take.values())
    for k in sorted(quotas, key=lambda k: (-(quotas[k] - take[k]), -len(strata[k]), k))[:rest]:
        take[k] += 1
    held: set[int] = set()
    for k, idx in strata.items():
        order = list(idx)
        random.Random(f"{seed}:{k}").shuffle(order)
        held.update(order[: take[k]])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def split_paths(out: Path, fmt: str) -> tuple[Path, Path]:
    """a.jsonl -> a-train.jsonl, a-validation.jsonl."""
    ext = f".{EXTENSIONS[fmt]}" if EXTENSIONS[fmt] else ""
    stem = out.name[: -len(ext)] if ext and out.name.lower().endswith(ext) else out.name
    return out.with_name(f"{stem}-train{ext}"), out.with_name(f"{stem}-validation{ext}")


# --------------------------------------------------------------------------------------------
# The use case
# --------------------------------------------------------------------------------------------


def default_filename(slug: str, options: ExportOptions, now: datetime) -> str:
    kind = "raw" if options.raw else ("openai" if options.fmt == "openai" else "final")
    ext = EXTENSIONS[options.fmt]
    return f"{slug}-{kind}-{now:%Y%m%d}" + (f".{ext}" if ext else "")


def _count_waiting(session: Session, project: Project, stats: ExportStats) -> None:
    """Items a final export leaves out because they are not settled yet (open, escalated)."""
    rows = session.execute(
        select(Item.status, func.count()).where(
            Item.project_id == project.id,
            Item.status.in_([ItemStatus.OPEN.value, ItemStatus.ESCALATED.value]),
        ).group_by(Item.status)
    ).all()
    counts = {str(k): int(v) for k, v in rows}
    stats.open = counts.get(ItemStatus.OPEN.value, 0)
    stats.escalated = counts.get(ItemStatus.ESCALATED.value, 0)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _commit(part: Path, out: Path) -> None:
    """Move a finished `.part` into place (a directory replaces the old one)."""
    if part.is_dir() and out.exists():
        old = out.with_name(out.name + ".old")
        _remove(old)
        os.replace(out, old)
        os.replace(part, out)
        _remove(old)
    else:
        os.replace(part, out)


def export_project(
    db: Database,
    slug: str,
    out: str | Path,
    options: ExportOptions,
    *,
    now: datetime,
    escalate: bool = True,
    progress: Progress | None = None,
    chunk_items: int | None = None,
) -> ExportResult:
    """Export a project to `out` (each file written to `NAME.part`, renamed when complete).

    Before a final export, complete items below the project's `escalation.min_confidence` go to the
    expert queue (`escalate=False` skips that); the file is then read from one snapshot. With
    `options.validation` the rows are split (stratified, seeded) into OUT-train and OUT-validation files
    (hf: the train and validation splits of one DatasetDict).
    Raises NotFound (unknown project) or ExportProblem (options or a path that do not fit)."""
    options.check()
    out = Path(out)
    check_out(out, options.fmt)
    with db.read() as s:
        options.check(get_project(s, slug).task)
    if options.fmt == "hf":
        with db.read() as s:
            hf_features(spec_of(get_project(s, slug)))  # the clear message when `datasets` is missing
    escalated = _adj().refresh_low_confidence(db, slug, now) if escalate and not options.raw else 0
    stats = ExportStats()
    warnings: list[str] = []
    files: list[tuple[Path, int]] = []
    parts: list[Path] = []
    done = False
    try:
        with db.read() as s:
            project = get_project(_adj().read_snapshot(s), slug)
            spec = spec_of(project)
            meta_cols: list[MetaColumn] = []
            images = has_images(s, project)
            if options.raw:
                rows: Iterable[dict[str, Any]] = raw_rows(s, project, progress=progress, chunk_items=chunk_items,
                                                          images=images)
            else:
                _count_waiting(s, project, stats)
                if options.fmt in ("csv", "parquet"):
                    meta_cols = meta_columns(s, project, options.include_gold, chunk_items)
                rows = final_rows(
                    s, project, method=options.method, min_confidence=options.min_confidence, stats=stats,
                    progress=progress, chunk_items=chunk_items, include_gold=options.include_gold, images=images,
                )
            see = _image_urls(s, project.id) if images else None
            if options.fmt == "hf":
                listed = list(rows)
                splits = {"train": listed}
                if options.validation is not None:
                    splits["train"], splits["validation"] = split_rows(listed, options.validation, options.seed,
                                                                       spec.task)
                part = out.with_name(out.name + ".part")
                parts.append(part)
                _remove(part)
                _write_hf(splits, part, spec, _hf_image(s, project.id) if images else None)
                targets = [(part, out, len(listed))]
                files = [(out / name, len(r)) for name, r in splits.items()]
            elif options.validation is not None:
                train, valid = split_rows(list(rows), options.validation, options.seed, spec.task)
                targets = []
                for path, chunk in zip(split_paths(out, options.fmt), (train, valid), strict=True):
                    part = path.with_name(path.name + ".part")
                    parts.append(part)
                    n = write_rows(chunk, part, options.fmt, spec=spec, meta_cols=meta_cols, warnings=warnings,
                                   images=images, image_url=see)
                    targets.append((part, path, n))
                files = [(path, n) for _part, path, n in targets]
            else:
                part = out.with_name(out.name + ".part")
                parts.append(part)
                n = write_rows(rows, part, options.fmt, raw=options.raw, spec=spec, meta_cols=meta_cols,
                               warnings=warnings, images=images, image_url=see)
                targets = [(part, out, n)]
                files = [(out, n)]
        for part, path, _n in targets:
            _commit(part, path)
        done = True
    finally:
        if not done:
            for part in parts:
                _remove(part)
    total = sum(n for _p, n in files)
    train_rows = files[0][1] if files else 0
    if options.fmt == "openai" and train_rows < OPENAI_MIN_ROWS:
        warnings.append(
            f"Only {train_rows} training example(s) were written; OpenAI fine-tuning needs at least "
            f"{OPENAI_MIN_ROWS}."
        )
    path = out if options.fmt == "hf" or options.validation is None else files[0][0]
    return ExportResult(rows=total, path=path, options=options, stats=stats, escalated=escalated, files=files,
                        warnings=warnings)


def parse_export_args(text: str) -> tuple[str | None, ExportOptions]:
    """`[project] [format] [raw] [gold]` in any order -> (slug or None, options). Raises ExportProblem."""
    slug: str | None = None
    fmt: str | None = None
    raw = gold = False
    for word in text.lower().split():
        if word in FORMATS:
            if fmt is not None:
                raise ExportProblem(f"Choose one format, not both {fmt} and {word}.")
            fmt = word
        elif word == "raw":
            raw = True
        elif word == "gold":
            gold = True
        elif slug is None:
            slug = word
        else:
            raise ExportProblem(f"I do not understand {word!r}.")
    options = ExportOptions(fmt=fmt or "jsonl", raw=raw, include_gold=gold)
    options.check()
    return slug, options
