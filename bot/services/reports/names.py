"""People in a report by display name: `name_people` asks `users.info` (through the cached `NameBook`)
for everyone the report mentions. The JSON keeps member ids everywhere and adds `names`."""

from __future__ import annotations

from typing import Any

from bot.services.people import NameBook
from bot.services.reports.model import Report


def people_of(report: Report) -> list[str]:
    """Every member id the report mentions (annotators, gold answers, pairs, suspensions, alerts)."""
    ids: list[str] = [str(r.get("user")) for r in report.per_annotator]
    ids += [str(s.get("user")) for s in report.suspensions]
    ids += [a.subject for a in report.alerts if a.subject]
    for table in ("quiz", "hidden"):
        ids += [str(u) for u in (report.gold.get(table) or {})]
    for pair in report.agreement.get("cohen_kappa") or []:
        ids += [str(pair.get("a")), str(pair.get("b"))]
    return list(dict.fromkeys(ids))


def name_people(report: Report, book: NameBook, client: Any, team_id: str) -> Report:
    """Fill `report.names` from Slack (cached); people Slack cannot name keep their member id."""
    report.names = book.names(client, team_id, people_of(report))
    return report
