"""`labelbot doctor`: check tokens, scopes, the mode's credentials, the database, the LLM and the report
channels, each with a one-line fix. Exit status 1 when anything failed."""

from __future__ import annotations

import sys
from typing import Any

import click

from bot.cli.common import friendly
from bot.config import Settings


def _oauth_bots(settings: Settings) -> list[Any]:
    """One bot token per installed workspace (the newest installation of each), from the installation store."""
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
    from sqlalchemy import inspect, select

    from bot.services.doctor import BotToken
    from bot.slack.client import make_client
    from storage.db import Database

    db = Database(settings.database_url)
    try:
        store = SQLAlchemyInstallationStore(client_id=settings.slack_client_id or "", engine=db.engine)
        bots = store.bots
        if not inspect(db.engine).has_table(bots.name):
            return []
        with db.engine.connect() as conn:
            rows = conn.execute(select(bots.c.team_id, bots.c.bot_token).where(bots.c.client_id == store.client_id)
                                .order_by(bots.c.installed_at.desc())).all()
    except Exception:  # an unreachable database is reported by its own check
        return []
    finally:
        db.dispose()
    newest: dict[str, str] = {}
    for team_id, token in rows:
        if team_id and token:
            newest.setdefault(team_id, token)
    return [BotToken(f"workspace {team}", make_client(settings, token=token)) for team, token in sorted(newest.items())]


@click.command("doctor")
@click.option("--http", "http_mode", is_flag=True, envvar="LABELBOT_HTTP",
              help="Check the HTTP set-up (signing secret) instead of Socket Mode (app token).")
@click.option("--llm-call", is_flag=True, help="Try one tiny completion per model instead of models.list.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@friendly
def doctor(http_mode: bool, llm_call: bool, as_json: bool) -> None:
    """Check that labelbot is set up right: Slack token and scopes, Socket Mode or HTTP credentials, the
    database and its migrations, the LLM server and models, the report channels."""
    from bot.services.doctor import BotToken, render_json, render_text, run_checks
    from bot.slack.client import make_client
    from bot.slack.manifest import bot_scopes

    settings = Settings.from_env()
    if settings.oauth_enabled:
        bots = _oauth_bots(settings)
    elif settings.slack_bot_token:
        bots = [BotToken("SLACK_BOT_TOKEN", make_client(settings))]
    else:
        bots = []
    report = run_checks(settings, http=http_mode, bots=bots, required_scopes=bot_scopes(),
                        app_client_factory=lambda token: make_client(settings, token=token), llm_call=llm_call)
    click.echo(render_json(report) if as_json else render_text(report))
    sys.exit(0 if report.ok else 1)


COMMANDS = [doctor]
