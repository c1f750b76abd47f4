"""Task-shaped label values: canonical form, canonical key, validation against a spec and a text.

classification: "label"            multilabel: ["a", "b"] (sorted, unique)
spans: [{"start": 0, "end": 5, "label": "LOC"}] (end exclusive, sorted)     rewrite: "text"
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from typing import Any, Protocol

from bot.core.enums import TaskType
from bot.core.errors import LabelbotError

MAX_REWRITE_CHARS = 3000
#: A Slack member id (U… for people, W… for Enterprise Grid members).
MEMBER_ID_RE = re.compile(r"^[UW][A-Z0-9]{2,}$")


class HasLabels(Protocol):
    """What `normalize` needs of a project spec: its label names."""

    @property
    def label_names(self) -> Sequence[str]: ...


class ValueProblem(LabelbotError, ValueError):
    """A value that does not fit the task; the message is shown to a person."""


def member_id_problem(user: str) -> str | None:
    """Why `user` is not a Slack member id (a sentence for a person), or None when it is one."""
    if MEMBER_ID_RE.match(user or ""):
        return None
    hint = " (member ids are upper case)" if MEMBER_ID_RE.match((user or "").upper()) else ""
    return (f"{user!r} is not a Slack member id{hint}: member ids look like U0123ABCD. In Slack, open the "
            "person's profile, click ⋮ (More) and Copy member ID.")


def _loose(name: str) -> str:
    return re.sub(r"[\s_]+", "", name.casefold())


def did_you_mean(name: str, labels: Sequence[str]) -> str:
    """" (did you mean 'billing'?)" when `name` differs from a label only by case or spaces, else ""."""
    close = [label for label in labels if _loose(label) == _loose(name)]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(values: Sequence[str], labels: Sequence[str], noun: str = "label") -> str:
    hints = [did_you_mean(v, labels) for v in values]
    if len(values) == 1 and hints[0]:
        return f"unknown {noun} {values[0]!r}{hints[0]}"
    named = ", ".join(f"{v!r}{h}" for v, h in zip(values, hints, strict=True))
    return f"unknown {noun} {named} (allowed: {', '.join(labels)})"


def labels_version(names: Sequence[str]) -> str:
    """A short fingerprint of a project's label list, in order. Label buttons carry positions in the
    list their message was built from, with this fingerprint: a click made before a lead inserted,
    removed or reordered labels is refused instead of landing on whatever label now sits there."""
    data = "\x1f".join(names).encode("utf-8")
    return hashlib.blake2b(data, digest_size=5, person=b"lb-labels").hexdigest()


def canonical_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def decode_key(key: str | None) -> Any:
    """The value a canonical key stands for (None stays None)."""
    return None if key is None else json.loads(key)


def normalize(task: TaskType, value: Any, spec: HasLabels, text: str | None = None) -> Any:
    """Return the canonical value or raise ValueProblem saying what is wrong."""
    labels = spec.label_names
    if task is TaskType.CLASSIFICATION:
        if not isinstance(value, str) or not value.strip():
            raise ValueProblem("label must be a non-empty string")
        value = value.strip()
        if value not in labels:
            raise ValueProblem(_unknown([value], labels))
        return value
    if task is TaskType.MULTILABEL:
        if isinstance(value, str):
            value = [v.strip() for v in value.split("|") if v.strip()] if value.strip() else []
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueProblem("labels must be a list of label names")
        unknown = sorted({v for v in value if v not in labels})
        if unknown:
            raise ValueProblem(_unknown(unknown, labels, "label(s)"))
        return sorted(set(value))
    if task is TaskType.SPANS:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueProblem("spans must be a JSON list of {start, end, label}") from None
        if not isinstance(value, list | tuple):
            raise ValueProblem("spans must be a list of {start, end, label}")
        out = []
        for i, span in enumerate(value):
            if not isinstance(span, dict) or not {"start", "end", "label"} <= set(span):
                raise ValueProblem(f"span {i + 1} must have start, end and label")
            start, end, label = span["start"], span["end"], span["label"]
            if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool):
                raise ValueProblem(f"span {i + 1}: start and end must be whole numbers")
            if label not in labels:
                raise ValueProblem(f"span {i + 1}: " + _unknown([str(label)], labels))
            if not 0 <= start < end:
                raise ValueProblem(f"span {i + 1}: needs 0 <= start < end, got {start}..{end}")
            if text is not None and end > len(text):
                raise ValueProblem(f"span {i + 1}: {start}..{end} is outside the text ({len(text)} characters)")
            out.append({"start": start, "end": end, "label": label})
        out.sort(key=lambda s: (s["start"], s["end"], s["label"]))
        for a, b in itertools.pairwise(out):
            if b["start"] < a["end"]:
                raise ValueProblem(f"spans {a['start']}..{a['end']} and {b['start']}..{b['end']} overlap")
        return out
    if task is TaskType.REWRITE:
        if not isinstance(value, str) or not value.strip():
            raise ValueProblem("rewrite must be non-empty text")
        if len(value) > MAX_REWRITE_CHARS:
            raise ValueProblem(f"rewrite must be at most {MAX_REWRITE_CHARS} characters")
        return value.strip()
    raise ValueProblem(f"unknown task {task}")


def display(task: TaskType, value: Any, text: str | None = None) -> str:
    """A short human rendering of a value (plain text; callers escape for mrkdwn)."""
    if value is None:
        return "—"
    if task is TaskType.CLASSIFICATION or task is TaskType.REWRITE:
        return str(value)
    if task is TaskType.MULTILABEL:
        return ", ".join(value) if value else "(none)"
    if task is TaskType.SPANS:
        if not value:
            return "(no spans)"
        parts = []
        for s in value:
            surface = text[s["start"] : s["end"]] if text else f"{s['start']}..{s['end']}"
            parts.append(f"{surface} → {s['label']}")
        return "; ".join(parts)
    return str(value)


# --- CSV cells ------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(text: str) -> str:
    """A CSV cell that a spreadsheet never runs as a formula: text starting with = + - @ TAB or CR gets a
    leading apostrophe. So does text that already starts with apostrophes before one of those, so that
    `csv_unsafe` undoes it exactly (imports of labelbot's own exports round-trip)."""
    return "'" + text if text.lstrip("'").startswith(_FORMULA_START) else text


def csv_unsafe(text: str) -> str:
    """The inverse of `csv_safe`, applied to CSV cells on import."""
    if text.startswith("'") and text.lstrip("'").startswith(_FORMULA_START):
        return text[1:]
    return text
