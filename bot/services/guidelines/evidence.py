"""Where people disagree: the evidence a guideline revision is built from (reads only).

Counting production answers under the current guideline version (under every version when the current
one has too few yet), the most confused label pairs with 2-3 items where people split on each (those an
expert settled first, with the decision), items flagged Ambiguous, and for a revision, how each pair
fared under the previous version. Reads are bounded (the newest `MAX_ROWS` answers of a version, through
the labels' (project_id, created_at) index), so the cost does not grow with the project.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from bot.core.enums import Action, AssignmentKind, TaskType
from bot.core.guidelines import Evidence, PairEvidence, QuotedItem
from bot.core.values import display
from bot.quality import revision as rev
from bot.quality.agreement import agreement_intervals
from bot.services.guidelines.compose import quote
from bot.spec import ProjectSpec
from storage.models import GuidelineVersion, Item, Label, Project

MAX_ROWS = 50_000  # newest answers read per version
SKEW = timedelta(hours=1)  # clocks of replicas may differ a little around a publication
TOP_PAIRS = 3
ITEMS_PER_PAIR = 3
AMBIGUOUS_ITEMS = 5
SPLIT_ITEMS = 5

Bounds = dict[int, tuple[datetime, datetime | None]]


def version_bounds(session: Session, project_id: int) -> Bounds:
    """version -> (published at, the next version's publication or None)."""
    rows = session.execute(
        select(GuidelineVersion.version, GuidelineVersion.created_at)
        .where(GuidelineVersion.project_id == project_id).order_by(GuidelineVersion.version)
    ).all()
    out: Bounds = {}
    for i, (version, created) in enumerate(rows):
        out[int(version)] = (created, rows[i + 1][1] if i + 1 < len(rows) else None)
    return out


def _version_filter(version: int | None, bounds: Bounds) -> list[ColumnElement[bool]]:
    if version is None:
        return []
    where: list[ColumnElement[bool]] = [func.coalesce(Label.guideline_version, 1) == version]
    if version in bounds:
        since, until = bounds[version]
        if version > 1:  # version 1 also holds the answers given before versions were recorded
            where.append(Label.created_at >= since - SKEW)
        if until is not None:
            where.append(Label.created_at < until + SKEW)
    return where


def answers_frame(session: Session, project_id: int, version: int | None, bounds: Bounds,
                  *, limit: int = MAX_ROWS) -> pd.DataFrame:
    """The newest counting production answers under `version` (None: any): item_id, annotator,
    value_key, created_at (one per item and person: production assignments are unique)."""
    rows = session.execute(
        select(Label.item_id, Label.user_id, Label.value_key, Label.created_at)
        .where(Label.project_id == project_id, Label.kind == AssignmentKind.PRODUCTION.value,
               Label.counts.is_(True), Label.value_key.is_not(None), *_version_filter(version, bounds))
        .order_by(Label.created_at.desc()).limit(limit)
    ).all()
    return pd.DataFrame(
        {
            "item_id": pd.Series([r[0] for r in rows], dtype="int64"),
            "annotator": pd.Series([r[1] for r in rows], dtype=object),
            "value_key": pd.Series([r[2] for r in rows], dtype=object),
            "created_at": pd.to_datetime(pd.Series([r[3] for r in rows], dtype=object), utc=True),
        }
    )


def _shown(task: TaskType, key: str, text: str | None = None) -> str:
    """A value key as people see the answer."""
    try:
        value = json.loads(key)
    except (TypeError, ValueError):
        return str(key)
    return quote(display(task, value, text), 120)


class _Quoter:
    """Items quoted as evidence: their text, how people answered, the expert's decision."""

    def __init__(self, session: Session, project_id: int, task: TaskType, frame: pd.DataFrame) -> None:
        self.session, self.project_id, self.task, self.frame = session, project_id, task, frame

    def experts(self, item_ids: list[int]) -> dict[int, tuple[str, str]]:
        """item_id -> (value_key, expert user) of the latest expert answer."""
        if not item_ids:
            return {}
        rows = self.session.execute(
            select(Label.item_id, Label.value_key, Label.user_id)
            .where(Label.item_id.in_(item_ids), Label.kind == AssignmentKind.EXPERT.value,
                   Label.value_key.is_not(None))
            .order_by(Label.id)
        ).all()
        return {int(item): (str(key), str(user)) for item, key, user in rows}

    def quote(self, item_ids: list[int], flagged: dict[int, int] | None = None) -> list[QuotedItem]:
        if not item_ids:
            return []
        items = {
            int(i): (str(e), str(t))
            for i, e, t in self.session.execute(
                select(Item.id, Item.external_id, Item.text).where(Item.id.in_(item_ids))
            ).all()
        }
        experts = self.experts(item_ids)
        answers = self.frame.loc[self.frame["item_id"].isin(item_ids).to_numpy(dtype=bool)]
        out = []
        for item_id in item_ids:
            if item_id not in items:
                continue
            external, text = items[item_id]
            keys = answers.loc[(answers["item_id"] == item_id).to_numpy(dtype=bool), "value_key"]
            counts = Counter(_shown(self.task, k, text) for k in keys)
            expert = experts.get(item_id)
            out.append(QuotedItem(
                item_id=item_id, external_id=external, text=quote(text), answers=dict(counts),
                expert=_shown(self.task, expert[0], text) if expert else None,
                expert_user=expert[1] if expert else None, flagged=(flagged or {}).get(item_id, 0),
            ))
        return out


def _ambiguous(session: Session, project_id: int, version: int | None, bounds: Bounds) -> dict[int, int]:
    """item_id -> times flagged Ambiguous (production), most flagged first."""
    rows = session.execute(
        select(Label.item_id, func.count())
        .where(Label.project_id == project_id, Label.kind == AssignmentKind.PRODUCTION.value,
               Label.action == Action.AMBIGUOUS.value, *_version_filter(version, bounds))
        .group_by(Label.item_id).order_by(func.count().desc(), Label.item_id).limit(AMBIGUOUS_ITEMS)
    ).all()
    return {int(i): int(n) for i, n in rows}


def _pick(session: Session, quoter: _Quoter, rows: list[tuple[Any, int, int]], n: int) -> list[int]:
    """Items where people split, those an expert settled first, then the most evenly split."""
    candidates = [int(r[0]) for r in rows[:50]]
    settled = set(quoter.experts(candidates))
    ranked = sorted(range(len(candidates)), key=lambda i: (candidates[i] not in settled, i))
    return [candidates[i] for i in ranked[:n]]


def gather(session: Session, project: Project, spec: ProjectSpec, *, current: int) -> Evidence:
    """The evidence for revising `project`'s guidelines (version `current` in force)."""
    task = spec.task
    bounds = version_bounds(session, project.id)
    frame = answers_frame(session, project.id, current, bounds)
    scope, note = f"version {current}", None
    scope_version: int | None = current
    items_now = _items(frame)
    if items_now < rev.MIN_ITEMS and current > 1:
        scope, scope_version = "all versions", None
        note = (f"Version {current} has {items_now} item{'s' if items_now != 1 else ''} with two or more answers so "
                f"far; the evidence covers every version.")
        frame = answers_frame(session, project.id, None, bounds)
    intervals = agreement_intervals(frame, n_boot=0)
    categorical = task in (TaskType.CLASSIFICATION, TaskType.MULTILABEL)
    quoter = _Quoter(session, project.id, task, frame)
    pairs: list[PairEvidence] = []
    split: list[QuotedItem] = []
    if categorical and not frame.empty:
        before_frame = (answers_frame(session, project.id, current - 1, bounds)
                        if scope_version is not None and current > 1 else None)
        for confusion, pair in rev.version_agreement(frame, top=TOP_PAIRS, n_boot=0).confused:
            before = rev.pair_agreement(before_frame, confusion.first, confusion.second) \
                if before_frame is not None else None
            picked = _pick(session, quoter, rev.split_items(frame, confusion.first, confusion.second),
                           ITEMS_PER_PAIR)
            recommendation = (rev.recommend(before, pair, versions=(current - 1, current))
                              if before is not None else None)
            pairs.append(PairEvidence(
                first=_category(task, confusion.first), second=_category(task, confusion.second),
                count=confusion.count, share=confusion.share, agreement=pair.value, pairs=pair.pairs,
                items=quoter.quote(picked),
                before=before.value if before is not None else None,
                before_pairs=before.pairs if before is not None else 0,
                recommendation=recommendation,
            ))
    elif not frame.empty:
        split = quoter.quote(_most_split(session, quoter, frame))
    flagged = _ambiguous(session, project.id, scope_version, bounds)
    ambiguous = quoter.quote(list(flagged), flagged)
    return Evidence(
        slug=project.slug, name=project.name, task=task.value, version=current, scope=scope,
        answers=len(frame), items=items_now if scope_version is not None else _items(frame),
        percent=intervals.percent.value, alpha=intervals.alpha.value if task is TaskType.CLASSIFICATION else None,
        labels=list(spec.label_names), pairs=pairs, split=split, ambiguous=ambiguous, note=note,
    )


def _items(frame: pd.DataFrame) -> int:
    if frame.empty:
        return 0
    per_item = frame.groupby("item_id").size()
    return int((per_item >= 2).sum())


def _category(task: TaskType, name: str) -> str:
    """A confusion's category as people see it (multilabel categories are label sets)."""
    if task is TaskType.CLASSIFICATION:
        return name
    return _shown(task, name)


def _most_split(session: Session, quoter: _Quoter, frame: pd.DataFrame) -> list[int]:
    """Items with the most distinct answers (2+), for tasks whose answers are not categories."""
    per_item = frame.groupby("item_id")["value_key"].agg(["nunique", "size"])
    per_item = per_item.loc[(per_item["nunique"] >= 2).to_numpy()]
    ranked = per_item.sort_values(["nunique", "size"], ascending=False, kind="stable")
    rows = [(int(i), 0, 0) for i in ranked.index[:50]]
    return _pick(session, quoter, rows, SPLIT_ITEMS)


__all__ = ["MAX_ROWS", "answers_frame", "gather", "version_bounds"]
