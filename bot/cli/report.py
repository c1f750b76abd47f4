"""`labelbot report SLUG [--days N] [--json] [--chart FILE]`: the quality report on the command line.

Registered by `bot.cli` through `COMMANDS`. Prints the text report (progress and alerts first) or its
JSON; `--chart` also writes the chart PNG. With SLACK_BOT_TOKEN set, people are shown by their Slack
display name (`users.info`); `--no-names` keeps member ids.
"""

from __future__ import annotations

from pathlib import Path

import click

from bot.config import Settings
from bot.core.clock import SystemClock
from bot.services.reports import MAX_DAYS, ReportError, report_for, to_json_text


@click.command("report")
@click.argument("slug")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, MAX_DAYS), help="Window length.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of text.")
@click.option("--chart", type=click.Path(dir_okay=False, writable=True), help="Also write the chart PNG here.")
@click.option("--names/--no-names", default=True, show_default=True,
              help="Show people by their Slack display name (needs SLACK_BOT_TOKEN and the users:read scope).")
def report_cmd(slug: str, days: int, as_json: bool, chart: str | None, names: bool) -> None:
    """Agreement, gold accuracy, drafts, drift and alerts for the last DAYS days."""
    from bot.cli.common import UserError, friendly, open_db

    @friendly
    def run() -> None:
        try:
            report = report_for(open_db(), slug, days, SystemClock().now())
        except ReportError as e:
            raise UserError(str(e)) from None
        settings = Settings.from_env()
        if names and settings.slack_bot_token and not settings.oauth_enabled:
            from bot.services.people import NameBook
            from bot.services.reports.names import name_people
            from bot.slack.client import make_client

            name_people(report, NameBook(), make_client(settings), "")
        if as_json:
            click.echo(to_json_text(report))
        else:
            click.echo(report.to_text(), nl=False)
        if chart:
            from bot.services.reports.chart import report_chart

            Path(chart).write_bytes(report_chart(report.to_json()))
            click.echo(f"Chart written to {chart}", err=as_json)

    run()


COMMANDS = [report_cmd]
