"""What leads read first: where the project stands (items, answers today and this week, when it will be
done at the current pace), and every count of the window in the one vocabulary of `bot.core.activity`.

- `progress_section` reads the database (item statuses, recent answers): it does not depend on the
  report's window, so `/label-report intents 1` still says how the week went;
- `activity_section` counts the window's labels frame (answers, skips, ambiguous flags, quiz answers,
  gold checks, expert decisions), in all and per local day;
- `add_daily_series` adds the anchoring figure of each local day to the daily trend (for the chart).
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from bot.core.activity import Activity
from bot.core.enums import ItemStatus
from bot.quality import drift as drift_stats
from bot.services.activity import activity_between, item_counts
from bot.services.reports.sections import week_counts
from bot.spec import ProjectSpec
from storage.frames import local_days
from storage.models import Item, Label, Project

#: The pace is measured over the last this many days (fewer when the project is younger).
PACE_DAYS = 7


def _utc64(when: datetime) -> np.datetime64:
    return np.datetime64(when.astimezone(ZoneInfo("UTC")).replace(tzinfo=None), "ns")


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def progress_section(session: Session, project: Project, spec: ProjectSpec, now: datetime,
                     tz: str | None = None) -> dict[str, Any]:
    """Items open / complete / escalated / in the expert queue, answers today and this week (local days of
    the report's time zone, weeks from Monday), the pace of counting answers and the finish date it gives."""
    zone = ZoneInfo(tz or spec.report.timezone)
    local_today = now.astimezone(zone).date()
    today_start = _local_midnight(local_today, zone)
    week_start = _local_midnight(local_today - timedelta(days=local_today.weekday()), zone)
    items = item_counts(session, project.id)
    # Counting answers still needed: each open item needs `redundancy` of them.
    needed = session.scalar(
        select(func.coalesce(func.sum(case((Item.labels_done < spec.redundancy,
                                            spec.redundancy - Item.labels_done), else_=0)), 0))
        .where(Item.project_id == project.id, Item.status == ItemStatus.OPEN)
    )
    today = activity_between(session, project.id, today_start, now)
    week = activity_between(session, project.id, week_start, now)
    pace_since = now - timedelta(days=PACE_DAYS)
    counting = (Label.project_id == project.id, Label.kind == "production", Label.counts.is_(True))
    first = session.scalar(select(func.min(Label.created_at)).where(*counting))
    recent = session.scalar(select(func.count()).select_from(Label).where(*counting, Label.created_at >= pace_since))
    out: dict[str, Any] = {
        "items": items,
        "answers_needed": int(needed or 0),
        "today": {"day": local_today, **today.to_dict()},
        "this_week": {"since": week_start.date(), **week.to_dict()},
        "pace_per_day": None,
        "pace_days": None,
        "finish": None,
        "days_left": None,
        "reason": None,
    }
    if not out["answers_needed"]:
        out["reason"] = "every item has its answers" if items["total"] else "no items imported yet"
        return out
    if first is None or not recent:
        out["reason"] = f"no counting answers in the last {PACE_DAYS} days, so no pace to go by"
        return out
    # Pace over the elapsed time since the first answer, at most PACE_DAYS and at least one day.
    span_days = min(float(PACE_DAYS), max(1.0, (now - first).total_seconds() / 86400))
    pace = int(recent) / span_days
    days_left = math.ceil(out["answers_needed"] / pace)
    out.update(pace_per_day=round(pace, 1), pace_days=round(span_days, 1), days_left=days_left,
               finish=local_today + timedelta(days=days_left))
    return out


# --- the window's counts ---------------------------------------------------------------------------


def _grouped(frame: pd.DataFrame, by: pd.Series | np.ndarray | None = None) -> dict[Any, Activity]:
    """Activity of the frame's rows (per value of `by`, when given): one groupby, folded by the vocabulary."""
    if frame.empty:
        return {}
    keys = [frame["kind"].astype(object), frame["action"].astype(object), frame["counts"].astype(bool)]
    if by is not None:
        keys.insert(0, pd.Series(by, index=frame.index))
    sizes = frame.groupby(keys, sort=False, observed=True).size()
    rows: dict[Any, list[tuple[str, str, bool, int]]] = {}
    for key, n in sizes.items():
        group, rest = (key[0], key[1:]) if by is not None else (None, key)
        rows.setdefault(group, []).append((*rest, int(n)))
    return {group: Activity.from_rows(r) for group, r in rows.items()}


def activity_section(window: pd.DataFrame, days: list[date], tz: str) -> dict[str, Any]:
    """The window's label rows in the one vocabulary: in all, per local day (`days`, as the trend) and per
    annotator (by member id). Two groupbys over the frame, whatever its size."""
    total = _grouped(window).get(None, Activity())
    by_day: dict[date, Activity] = {}
    per_annotator: dict[str, dict[str, int]] = {}
    if len(window):
        by_day = {pd.Timestamp(k).date(): v for k, v in _grouped(window, local_days(window["created_at"], tz)).items()}
        by_user = _grouped(window, window["annotator"].astype(object).to_numpy())
        per_annotator = {str(user): by_user[user].to_dict() for user in sorted(by_user, key=str)}
    per_day = [{"day": day, **by_day.get(day, Activity()).to_dict()} for day in days]
    return {"window": total.to_dict(), "per_day": per_day, "per_annotator": per_annotator}


def add_daily_series(daily: list[dict[str, Any]], window: pd.DataFrame, tz: str) -> None:
    """Add to each day of the trend its anchoring (answers matching a shown draft minus answers matching
    a hidden one, counted as `sections.week_counts` counts them and turned into the difference by
    `drift.anchoring_from_counts`) and how many answers it rests on. Each day reads only its own rows
    (a slice of the frame sorted by time), so the whole series costs one pass over the window."""
    zone = ZoneInfo(tz)
    created = window["created_at"]
    if len(window) and not created.is_monotonic_increasing:
        window = window.iloc[np.argsort(created.to_numpy(), kind="stable")]
        created = window["created_at"]
    stamps = created.to_numpy(dtype="datetime64[ns]")  # UTC
    for entry in daily:
        day = entry["day"] if isinstance(entry["day"], date) else date.fromisoformat(str(entry["day"]))
        start, end = _local_midnight(day, zone), _local_midnight(day + timedelta(days=1), zone)
        lo, hi = (int(np.searchsorted(stamps, _utc64(t), side="left")) for t in (start, end))
        counts = week_counts(window.iloc[lo:hi], start, end) if hi > lo else (0, 0, 0, 0)
        measure = drift_stats.anchoring_from_counts(*counts)
        entry["anchoring"] = measure.value
        entry["anchoring_n"] = counts[1] + counts[3]
