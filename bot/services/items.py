"""Removing items from a project (`labelbot items remove`), all or nothing.

An item nobody answered is simply removed (its drafts and open leases go with it). An item with
answers (any label row: answers, skips, flags, quiz answers, gold checks, expert decisions) is refused
unless `with_answers`: then it is copied, with its gold answer and every label row, into the
`removed_items` audit table before it goes, so nothing anyone did is lost. Running quizzes that would
ask a removed gold item are abandoned (the person starts a new one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.core.enums import QuizStatus
from bot.core.errors import Conflict, NotFound
from storage.models import Gold, Item, Label, Project, QuizAttempt, RemovedItem

MAX_NAMED = 20


@dataclass
class RemoveResult:
    removed: int = 0
    kept_answers: int = 0  # label rows copied into removed_items
    gold: int = 0
    quizzes_abandoned: int = 0
    ids: list[str] = field(default_factory=list)

    def summary(self, slug: str) -> str:
        if not self.removed:
            return f"Nothing to remove from {slug}."
        parts = [f"Removed {self.removed:,} item(s) from {slug}"]
        if self.gold:
            parts.append(f"{self.gold:,} of them gold")
        if self.kept_answers:
            parts.append(f"their {self.kept_answers:,} label(s) kept in the removed_items audit table")
        if self.quizzes_abandoned:
            parts.append(f"{self.quizzes_abandoned:,} running quiz(zes) abandoned (a new one can start)")
        return "; ".join(parts) + "."


def read_ids(path: str | Path, id_column: str = "id") -> list[str]:
    """Item ids from a file: .jsonl/.json/.csv/.tsv/.parquet (the `id_column`), otherwise one id per line."""
    from bot.services.importer import IMPORT_SUFFIXES, ImportError_, read_column

    path = Path(path)
    if not path.exists():
        raise ImportError_(str(path), ["no such file"])
    if path.suffix.lower() in IMPORT_SUFFIXES:
        return read_column(path, id_column)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ImportError_(str(path), ["not UTF-8; save the file as UTF-8"]) from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _label_row(label: Label) -> dict[str, Any]:
    return {
        "user": label.user_id, "kind": label.kind, "action": label.action, "value": label.value,
        "draft_shown": label.draft_shown, "seconds": label.seconds, "counts": label.counts,
        "correct": label.correct, "created_at": label.created_at.isoformat(),
    }


def remove_items(session: Session, project: Project, external_ids: list[str], now: datetime, *,
                 with_answers: bool = False) -> RemoveResult:
    """Remove these items (by external id). Unknown ids, or items with answers without `with_answers`,
    refuse the whole request (nothing is removed) with a message naming them."""
    wanted = list(dict.fromkeys(i.strip() for i in external_ids if i and i.strip()))
    if not wanted:
        raise Conflict("Name the items to remove: ids on the command line, or --file with one id per line.")
    items: dict[str, Item] = {}
    for start in range(0, len(wanted), 900):
        chunk = wanted[start : start + 900]
        for item in session.scalars(select(Item).where(Item.project_id == project.id, Item.external_id.in_(chunk))):
            items[item.external_id] = item
    unknown = [i for i in wanted if i not in items]
    if unknown:
        named = ", ".join(repr(i) for i in unknown[:MAX_NAMED]) + (f" and {len(unknown) - MAX_NAMED} more"
                                                                   if len(unknown) > MAX_NAMED else "")
        raise NotFound(f"Nothing was removed: {len(unknown)} id(s) are not items of {project.slug}: {named}.")
    ids = [items[i].id for i in wanted]
    answered: dict[int, int] = {}
    for start in range(0, len(ids), 900):
        answered.update(session.execute(
            select(Label.item_id, func.count()).where(Label.item_id.in_(ids[start : start + 900]))
            .group_by(Label.item_id)
        ).all())
    if answered and not with_answers:
        with_labels = [i for i in wanted if items[i].id in answered]
        named = ", ".join(f"{i!r} ({answered[items[i].id]})" for i in with_labels[:MAX_NAMED])
        more = f" and {len(with_labels) - MAX_NAMED} more" if len(with_labels) > MAX_NAMED else ""
        raise Conflict(
            f"Nothing was removed: {len(with_labels)} item(s) already have answers: {named}{more}. "
            "Pass --with-answers to remove them anyway; their answers are kept in the removed_items table."
        )
    result = RemoveResult(ids=wanted)
    gold = {g.item_id: g for start in range(0, len(ids), 900)
            for g in session.scalars(select(Gold).where(Gold.item_id.in_(ids[start : start + 900])))}
    for ext in wanted:
        item = items[ext]
        if item.id not in answered and item.id not in gold:
            continue
        labels = list(session.scalars(select(Label).where(Label.item_id == item.id).order_by(Label.id)))
        g = gold.get(item.id)
        session.add(RemovedItem(
            project_id=project.id, external_id=item.external_id, text=item.text, meta=item.meta, status=item.status,
            gold={"value": g.value, "explanation": g.explanation, "source": g.source} if g is not None else None,
            labels=[_label_row(label) for label in labels], label_count=len(labels), created_at=item.created_at,
            removed_at=now,
        ))
        result.kept_answers += len(labels)
    result.gold = len(gold)
    if gold:
        removed = set(gold)
        for attempt in session.scalars(select(QuizAttempt).where(QuizAttempt.project_id == project.id,
                                                                 QuizAttempt.status == QuizStatus.RUNNING)):
            if removed & set(json.loads(attempt.item_ids) if isinstance(attempt.item_ids, str) else attempt.item_ids):
                attempt.status = QuizStatus.ABANDONED
                attempt.finished_at = now
                result.quizzes_abandoned += 1
    session.flush()
    for start in range(0, len(ids), 900):
        # Assignments, labels, drafts and the gold row go with the item (ON DELETE CASCADE).
        session.execute(delete(Item).where(Item.id.in_(ids[start : start + 900])))
    result.removed = len(ids)
    return result
