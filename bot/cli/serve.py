"""`labelbot serve`: Socket Mode, or HTTP under gunicorn."""

from __future__ import annotations

import click
from click.core import ParameterSource

from bot.cli.common import friendly
from bot.config import Settings


# ---------------------------------------------------------------------------------- serve
@click.command("serve")
@click.option("--http", "http_mode", is_flag=True, envvar="LABELBOT_HTTP",
              help="Serve /slack/events over HTTP instead of Socket Mode.")
@click.option("--host", default="0.0.0.0", show_default=True, envvar="LABELBOT_HOST")
@click.option("--port", default=3000, show_default=True, type=int, envvar="LABELBOT_PORT",
              help="HTTP port; in Socket Mode, given explicitly, it serves /healthz and /metrics only.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), envvar="LABELBOT_WORKERS",
              help="gunicorn worker processes (HTTP).")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256), envvar="LABELBOT_THREADS",
              help="threads per worker (HTTP).")
@click.option("--no-scheduler", is_flag=True, help="Do not run the scheduler (drafting, reports) here.")
@click.pass_context
@friendly
def serve(ctx: click.Context, http_mode: bool, host: str, port: int, workers: int, threads: int,
          no_scheduler: bool) -> None:
    """Run the bot (Socket Mode with SLACK_APP_TOKEN, or HTTP with --http). Options also come from
    LABELBOT_HTTP, LABELBOT_HOST, LABELBOT_PORT, LABELBOT_WORKERS and LABELBOT_THREADS."""
    settings = Settings.from_env()
    settings.require_for_serve(http=http_mode)
    from bot.runtime import server

    port_given = ctx.get_parameter_source("port") in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    server.run(settings, http=http_mode, host=host, port=port, workers=workers, threads=threads,
               scheduler=not no_scheduler, ops_port=port if port_given and not http_mode else None)


COMMANDS = [serve]
