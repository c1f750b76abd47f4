"""`labelbot serve`: Socket Mode, or HTTP under gunicorn."""

from __future__ import annotations

import click

from bot.cli.common import friendly
from bot.config import Settings


# ---------------------------------------------------------------------------------- serve
@click.command("serve")
@click.option("--http", "http_mode", is_flag=True, help="Serve /slack/events over HTTP instead of Socket Mode.")
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="gunicorn worker processes (HTTP).")
@click.option("--threads", default=8, show_default=True, type=int, help="threads per worker (HTTP).")
@click.option("--no-scheduler", is_flag=True, help="Do not run the scheduler (drafting, reports) here.")
@friendly
def serve(http_mode: bool, host: str, port: int, workers: int, threads: int, no_scheduler: bool) -> None:
    """Run the bot (Socket Mode with SLACK_APP_TOKEN, or HTTP with --http)."""
    settings = Settings.from_env()
    settings.require_for_serve(http=http_mode)
    from bot.runtime import server

    server.run(settings, http=http_mode, host=host, port=port, workers=workers, threads=threads,
               scheduler=not no_scheduler)


COMMANDS = [serve]
