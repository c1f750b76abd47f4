"""`labelbot report SLUG [--days N] [--json] [--chart FILE]`: the quality report on the command line.

Registered by `bot.cli` through `COMMANDS`. Prints the text report (alerts first) or its JSON;
`--chart` also writes the three-panel PNG.
"""

from __future__ import annotations

from pathlib import Path

import click

from bot.core.clock import SystemClock
from bot.services.reports import MAX_DAYS, ReportError, report_for, to_json_text


@click.command("report")
@click.argument("slug")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, MAX_DAYS), help="Window length.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of text.")
@click.option("--chart", type=click.Path(dir_okay=False, writable=True), help="Also write the chart PNG here.")
def report_cmd(slug: str, days: int, as_json: bool, chart: str | None) -> None:
    """Agreement, gold accuracy, drafts, drift and alerts for the last DAYS days."""
    from bot.cli.common import UserError, friendly, open_db

    @friendly
    def run() -> None:
        try:
            report = report_for(open_db(), slug, days, SystemClock().now())
        except ReportError as e:
            raise UserError(str(e)) from None
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
