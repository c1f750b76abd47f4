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


def _frame_activity(frame: pd.DataFrame) -> Activity:
    if frame.empty:
        return Activity()
    groups = frame.groupby(
        [frame["kind"].astype(object), frame["action"].astype(object), frame["counts"].astype(bool)],
        sort=False, observed=True,
    ).size()
    return Activity.from_rows((k, a, c, n) for (k, a, c), n in groups.items())


def activity_section(window: pd.DataFrame, days: list[date], tz: str) -> dict[str, Any]:
    """The window's label rows in the one vocabulary: in all, per local day (`days`, as the trend) and per
    annotator (by member id)."""
    total = _frame_activity(window)
    per_annotator: dict[str, dict[str, int]] = {}
    if len(window):
        for user, rows in window.groupby(window["annotator"].astype(object), sort=True):
            per_annotator[str(user)] = _frame_activity(rows).to_dict()
    per_day: list[dict[str, Any]] = []
    day_of = local_days(window["created_at"], tz) if len(window) else np.empty(0, dtype="datetime64[D]")
    for day in days:
        rows = window.loc[day_of == np.datetime64(day, "D")] if len(window) else window
        per_day.append({"day": day, **_frame_activity(rows).to_dict()})
    return {"window": total.to_dict(), "per_day": per_day, "per_annotator": per_annotator}


def add_daily_series(daily: list[dict[str, Any]], window: pd.DataFrame, tz: str) -> None:
    """Add to each day of the trend its anchoring (answers matching a shown draft minus answers matching
    a hidden one, as `drift.anchoring_from_counts` defines it) and how many answers it rests on."""
    zone = ZoneInfo(tz)
    for entry in daily:
        day = entry["day"] if isinstance(entry["day"], date) else date.fromisoformat(str(entry["day"]))
        start = _local_midnight(day, zone)
        counts = week_counts(window, start, _local_midnight(day + timedelta(days=1), zone)) if len(window) \
            else (0, 0, 0, 0)
        measure = drift_stats.anchoring_from_counts(*counts)
        entry["anchoring"] = measure.value
        entry["anchoring_n"] = counts[1] + counts[3]
