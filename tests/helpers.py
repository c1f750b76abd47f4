"""Seeding helpers for tests: projects, items, gold, drafts and members through the real services."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.core.enums import MemberState
from bot.core.values import canonical_key
from bot.services.importer import import_gold, import_items
from bot.services.projects import create_project, ensure_member, get_project
from bot.spec import ProjectSpec
from storage.db import Database
from storage.models import Draft, Item

TEAM = "T0TEST"


def _jsonl(rows: list[dict[str, Any]]) -> Path:
    path = Path(tempfile.mkdtemp()) / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def seed(
    db: Database,
    spec: ProjectSpec,
    now: datetime,
    items: list[dict[str, Any]] | None = None,
    gold: list[dict[str, Any]] | None = None,
    team: str = TEAM,
) -> None:
    with db.session() as s:
        project = create_project(s, spec, team, now)
        if items:
            import_items(s, project, _jsonl(items), now)
        if gold:
            import_gold(s, project, _jsonl(gold), now)


def qualify(db: Database, slug: str, user_id: str, now: datetime) -> None:
    with db.session() as s:
        member = ensure_member(s, get_project(s, slug), user_id, now)
        member.state = MemberState.QUALIFIED
        member.qualified_at = now


def add_draft(db: Database, slug: str, external_id: str, value: Any, now: datetime, *, model: str = "test-model",
              status: str = "ok", confidence: float = 0.9) -> int:
    with db.session() as s:
        project = get_project(s, slug)
        item = s.scalar(select(Item).where(Item.project_id == project.id, Item.external_id == external_id))
        draft = Draft(
            project_id=project.id, item_id=item.id, model=model, prompt_version="v1", status=status,
            value=value if status == "ok" else None, value_key=canonical_key(value) if status == "ok" else None,
            confidence=confidence, created_at=now,
        )
        s.add(draft)
        s.flush()
        return draft.id
