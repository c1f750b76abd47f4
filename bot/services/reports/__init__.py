"""Quality reports: `build_report` assembles a `Report` from the labels frame and the statistics in
`bot.quality`; `run_due_reports` posts the daily summary once per project and local day.

Nothing here computes a statistic itself: agreement, gold accuracy, draft effects, drift, anchoring
and the LLM-as-annotator numbers come from `bot.quality.{agreement,drift,llm}`; token counts and cost
from `bot.services.drafting.draft_stats`. This module chooses the rows, calls them,
turns their `Measure`s into JSON (a value, or null plus a reason) and derives the alerts.

Rows used:
- agreement, drift, anchoring, draft actions, speed: production answers (`kind == "production"`);
  agreement only those that count (qualified members), drift/anchoring/speed every production answer;
- gold accuracy: quiz and honeypot (hidden check) answers on gold items, per annotator;
- LLM as annotator: drafts against gold items, and against the strict-majority consensus of the
  counting production answers (all items, and blind answers only: shown drafts anchor humans).

The package: `model` (Report, Alert, JSON), `build` (reading the window and assembling), `sections`,
`daily` (the scheduled post), `chart` (the PNG). Who may see a report: `bot.services.access`.

Importing this package is cheap: pandas, statsmodels and scipy (`build`) and matplotlib (`chart`) are
imported when a report is built, not when the app starts (`build_report` and `report_for` below load
`build` on their first call).
"""

from __future__ import annotations

from datetime import datetime

from bot.services.reports.daily import RunOutcome, run_due_reports
from bot.services.reports.model import (
    DAILY_WINDOW_DAYS,
    MAX_DAYS,
    Alert,
    Report,
    ReportError,
    parse_report_args,
    report_window,
    to_json_text,
)
from storage.db import Database


def build_report(db: Database, slug: str, *, since: datetime, until: datetime, now: datetime) -> Report:
    """Assemble the report of project `slug` for labels created in [since, until) (`build.build_report`)."""
    from bot.services.reports import build

    return build.build_report(db, slug, since=since, until=until, now=now)


def report_for(db: Database, slug: str, days: float, now: datetime) -> Report:
    """The report of the last `days` days up to `now` (`build.report_for`)."""
    from bot.services.reports import build

    return build.report_for(db, slug, days, now)


__all__ = [
    "DAILY_WINDOW_DAYS",
    "MAX_DAYS",
    "Alert",
    "Report",
    "ReportError",
    "RunOutcome",
    "build_report",
    "parse_report_args",
    "report_for",
    "report_window",
    "run_due_reports",
    "to_json_text",
]
