"""`/label-report [project] [days]`: a lead gets the quality report as an ephemeral message, and its
chart in their DM.

Ack at once; parse the arguments and check that the user leads the project (a quick read); answer
anything else with an ephemeral sentence. The report itself runs on a small pool owned by the app's deps
(a big project takes seconds, and Bolt's listener threads must stay free for acks), then arrives as
ephemeral blocks through `respond`, and the chart through `conversations.open` + `files_upload_v2`.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks import report as ui
from bot.blocks.access import denied, with_usage
from bot.blocks.guidelines import with_suggest_button
from bot.core.types import LeadOf
from bot.deps import Deps
from bot.services.access import project_for_lead
from bot.services.reports import ReportError, parse_report_args, report_for
from bot.services.reports.chart import report_chart
from bot.services.reports.names import name_people

DEFAULT_DAYS = 7
COMMAND = "/label-report"


class ReportHandlers:
    def __init__(self, deps: Deps, workers: int = 2) -> None:
        self.deps = deps
        self.pool = deps.pool("report", workers)

    def on_command(
        self, ack: Any, command: dict[str, Any], client: WebClient, respond: Any, logger: logging.Logger
    ) -> None:
        ack()
        user = command.get("user_id", "")
        try:
            slug, days = parse_report_args(command.get("text") or "")
        except ReportError as e:
            respond(text=with_usage(ui.REPORT, str(e)), response_type="ephemeral")
            return
        chosen = project_for_lead(self.deps.db, command.get("team_id"), user, slug)
        if not isinstance(chosen, LeadOf):
            respond(text=denied(ui.REPORT, chosen), response_type="ephemeral")
            return
        days = days or DEFAULT_DAYS
        respond(text=ui.working(chosen.name, days), response_type="ephemeral")
        self.pool.submit(self.send, client, respond, logger, user, chosen, days, command.get("team_id") or "")

    def send(self, client: WebClient, respond: Any, logger: logging.Logger, user: str, chosen: LeadOf,
             days: int, team: str = "") -> None:
        """Runs on the report pool: this is its error boundary (Bolt's app.error does not see it)."""
        try:
            report = report_for(self.deps.db, chosen.slug, days, self.deps.clock.now())
            name_people(report, self.deps.names, client, team)
            data = report.to_json()
            title = f"Quality report: {report.name}"
            blocks = with_suggest_button(ui.summary_blocks(data, title=title), chosen.slug)
            respond(blocks=blocks, text=ui.summary_text(data, title=title),
                    response_type="ephemeral", replace_original=False)
        except Exception:
            logger.exception("report of %s for %s failed", chosen.slug, user)
            respond(text=ui.failed(chosen.name), response_type="ephemeral")
            return
        self.send_chart(client, respond, logger, user, chosen, days, data)

    def send_chart(self, client: WebClient, respond: Any, logger: logging.Logger, user: str, chosen: LeadOf,
                   days: int, data: dict[str, Any]) -> None:
        try:
            dm = client.conversations_open(users=user)["channel"]["id"]
            client.files_upload_v2(channel=dm, file=report_chart(data), filename=f"{chosen.slug}-last-{days}-days.png",
                                   title=f"{chosen.name}: last {days} day{'s' if days != 1 else ''}"[:250])
        except SlackApiError as e:
            logger.warning("report chart of %s for %s not sent: %s", chosen.slug, user, e)
            respond(text=ui.chart_failed(chosen.name, str(e.response.get("error", e))), response_type="ephemeral")


def register(app: App, deps: Deps) -> None:
    h = ReportHandlers(deps)
    app.command(COMMAND)(h.on_command)
