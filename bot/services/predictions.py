"""Your own model's predictions as drafts: checked like LLM output, stored as draft rows.

An item may carry a prediction on import (`draft`, optional `draft_confidence` 0-1 and `draft_model`),
and `labelbot draft SLUG --from FILE` adds or replaces predictions later. Each is stored as a `Draft`
row (status ok) under its model name with the prompt version `import:<digest>`, so the whole draft
machinery treats it like an LLM draft: blind controls withhold it, anchoring and drift compare answers
with it, and the report measures it per model name. Serving prefers an imported prediction to an LLM
draft (the newest imported one wins), and the LLM prefetch skips items that have one.

A prediction with a different value or confidence is a new row (the digest changes), so labels given
against an older prediction keep pointing at what they were shown; importing the same one again is a
no-op.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bot.core.enums import DraftStatus, TaskType
from bot.core.values import ValueProblem, canonical_key, normalize
from bot.spec import ProjectSpec
from storage.models import Draft

PREDICTION_FIELDS = ("draft", "draft_confidence", "draft_model")
DEFAULT_MODEL = "imported"
IMPORTED_PREFIX = "import:"
MAX_MODEL_CHARS = 200


@dataclass(frozen=True)
class Prediction:
    value: Any
    key: str
    confidence: float | None
    model: str

    @property
    def version(self) -> str:
        digest = hashlib.blake2b(f"{self.key}|{self.confidence!r}".encode(), digest_size=8).hexdigest()
        return IMPORTED_PREFIX + digest


def is_imported(prompt_version: str | None) -> bool:
    return bool(prompt_version) and str(prompt_version).startswith(IMPORTED_PREFIX)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def prediction_of(row: dict[str, Any], spec: ProjectSpec, text: str) -> Prediction | None:
    """The prediction a file row carries (None without `draft`), checked against the task, the labels
    and the text like an LLM's output. Raises ValueProblem naming the field."""
    raw = row.get("draft")
    if _missing(raw):
        if spec.task is TaskType.MULTILABEL and raw == "":
            raw = []
        else:
            extra = [f for f in ("draft_confidence", "draft_model") if not _missing(row.get(f))]
            if extra:
                raise ValueProblem(f"field {extra[0]!r} is given without a 'draft'")
            return None
    if spec.task in (TaskType.MULTILABEL, TaskType.SPANS) and isinstance(raw, str):
        stripped = raw.strip()
        if stripped.startswith("["):
            try:
                raw = json.loads(stripped)
            except json.JSONDecodeError:
                raise ValueProblem("field 'draft' is not a JSON list") from None
        elif spec.task is TaskType.SPANS:
            raise ValueProblem('field \'draft\' must be a JSON list of spans like [{"start": 0, "end": 5, '
                               '"label": "LOC"}]')
    if hasattr(raw, "tolist"):  # numpy arrays from Parquet list columns
        raw = raw.tolist()  # type: ignore[union-attr]
    try:
        value = normalize(spec.task, raw, spec, text)
    except ValueProblem as e:
        raise ValueProblem(f"field 'draft': {e}") from None
    given: Any = row.get("draft_confidence")
    confidence: float | None = None
    if not _missing(given):
        try:
            confidence = float(given)
        except (TypeError, ValueError):
            raise ValueProblem("field 'draft_confidence' must be a number between 0 and 1") from None
        if not 0 <= confidence <= 1 or math.isnan(confidence):
            raise ValueProblem(f"field 'draft_confidence' must be between 0 and 1, not {confidence:g}")
    model = row.get("draft_model")
    model = DEFAULT_MODEL if _missing(model) else " ".join(str(model).split())
    if len(model) > MAX_MODEL_CHARS:
        raise ValueProblem(f"field 'draft_model' is longer than {MAX_MODEL_CHARS} characters")
    return Prediction(value, canonical_key(value), confidence, model)


@dataclass
class StoreResult:
    added: int = 0  # items that got a prediction they did not have
    replaced: int = 0  # items whose newest prediction of that model changed
    unchanged: int = 0


def store_predictions(session: Session, project_id: int, predictions: list[tuple[int, Prediction]],
                      now: datetime) -> StoreResult:
    """Store (item id, prediction) pairs as draft rows. A prediction equal to the item's newest one of
    that model changes nothing; any other becomes a new row (older rows stay: labels point at them)."""
    result = StoreResult()
    for start in range(0, len(predictions), 500):
        chunk = predictions[start : start + 500]
        newest: dict[tuple[int, str], str] = {}
        taken: set[tuple[int, str, str]] = set()
        rows = session.execute(
            select(Draft.item_id, Draft.model, Draft.prompt_version)
            .where(Draft.item_id.in_([item_id for item_id, _p in chunk]),
                   Draft.prompt_version.like(IMPORTED_PREFIX + "%"))
            .order_by(Draft.id)
        )
        for item_id, model, version in rows:
            newest[(item_id, model)] = version
            taken.add((item_id, model, version))
        new_rows: list[dict[str, Any]] = []
        for item_id, p in chunk:
            current = newest.get((item_id, p.model))
            if current is not None and (current == p.version or current.startswith(p.version + ".")):
                result.unchanged += 1
                continue
            version, n = p.version, 1
            while (item_id, p.model, version) in taken:  # an earlier prediction came back
                n += 1
                version = f"{p.version}.{n}"
            new_rows.append({
                "project_id": project_id, "item_id": item_id, "model": p.model, "prompt_version": version,
                "status": DraftStatus.OK.value, "value": p.value, "value_key": p.key, "confidence": p.confidence,
                "prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0, "attempts": 0, "simulated": False,
                "created_at": now,
            })
            taken.add((item_id, p.model, version))
            newest[(item_id, p.model)] = version
            if current is None:
                result.added += 1
            else:
                result.replaced += 1
        if new_rows:  # Core executemany: no ORM bookkeeping for a bulk load
            session.execute(insert(Draft), new_rows)
    return result
