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
"""

from __future__ import annotations

from bot.services.reports.build import build_report, parse_report_args, report_for, report_window
from bot.services.reports.daily import RunOutcome, run_due_reports
from bot.services.reports.model import DAILY_WINDOW_DAYS, MAX_DAYS, Alert, Report, ReportError, to_json_text

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
