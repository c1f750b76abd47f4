"""`labelbot images SLUG [--upload] [--retry-failed]`: where a project's images stand, and uploading them now.

Registered by `bot.cli` through `COMMANDS`.
"""

from __future__ import annotations

import click

from bot.cli.common import UserError, friendly, open_db, progress_bar
from bot.config import Settings


def _client_for(settings: Settings, database: object) -> object:
    """team id -> a Web API client: the bot token's (one workspace), or the installed one (OAuth)."""
    from bot.slack.client import make_client

    if settings.slack_bot_token and not settings.oauth_enabled:
        client = make_client(settings)
        return lambda team_id: client
    if settings.oauth_enabled:
        from bot.deps import Deps
        from bot.slack.oauth import client_for_team, stores

        deps = Deps(settings=settings, db=database)  # type: ignore[arg-type]
        installations, _ = stores(deps)
        return lambda team_id: client_for_team(deps, installations, team_id)
    raise UserError("Set SLACK_BOT_TOKEN (or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET with the app installed) "
                    "to upload images.")


@click.command("images")
@click.argument("slug")
@click.option("--upload", is_flag=True, help="Upload the images still waiting now (the running bot does it too, "
                                             "ahead of demand).")
@click.option("--retry-failed", is_flag=True, help="Queue failed uploads again, and serve again URL images that "
                                                   "Slack could not show (after fixing the cause).")
@friendly
def images(slug: str, upload: bool, retry_failed: bool) -> None:
    """Where a project's images stand: uploaded to Slack, waiting, failed (and why)."""
    from datetime import UTC, datetime

    from bot.services import images as service
    from bot.services.projects import get_project

    database = open_db()
    with database.read() as s:
        project = get_project(s, slug)
        project_id, team_id = project.id, project.team_id
    if retry_failed:
        queued, back = service.retry_failed(database, project_id, team_id)
        click.echo(f"{queued} failed upload(s) queued again; {back} URL item(s) served again.")
    if upload:
        client_for = _client_for(Settings.from_env(), database)
        with database.read() as s:
            waiting = service.image_status(s, get_project(s, slug)).uploads.get("pending", 0)
        progress, advance = progress_bar(waiting or None, f"Uploading {slug}'s images")
        total = service.UploadStats()
        with progress:
            while True:
                stats = service.upload_pending(database, client_for, lambda: datetime.now(UTC),  # type: ignore[arg-type]
                                               teams={team_id})
                total.add(stats)
                advance(stats.uploaded + stats.failed + stats.given_up)
                if not stats.capped:
                    break
        click.echo(total.summary())
        for line in total.errors[:5]:
            click.echo(f"  {line}")
    with database.read() as s:
        for line in service.image_status(s, get_project(s, slug)).lines():
            click.echo(line)


COMMANDS = [images]
