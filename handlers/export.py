"""`/label-export [project] [jsonl|csv|parquet|openai] [raw]`: a lead gets the export in their DM.

Ack at once; check the arguments and that the user leads the project (a quick read); then the export
runs on a small pool owned by the app's deps (a big project takes a while, and Bolt's listener
threads must stay free for acks), is written to a temporary file, uploaded into the lead's DM with
`files_upload_v2`, and the lead gets an ephemeral note.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.blocks import export as ui
from bot.blocks.access import denied, with_usage
from bot.core.types import LeadOf
from bot.deps import Deps
from bot.services.access import project_for_lead
from bot.services.export import ExportOptions, ExportProblem, default_filename, export_project, parse_export_args


class ExportHandlers:
    def __init__(self, deps: Deps, workers: int = 2) -> None:
        self.deps = deps
        self.pool = deps.pool("export", workers)

    def on_command(self, ack: Any, command: dict[str, Any], client: WebClient, respond: Any,
                   logger: logging.Logger) -> None:
        ack()
        user = command.get("user_id", "")
        try:
            slug, options = parse_export_args(command.get("text") or "")
            chosen = project_for_lead(self.deps.db, command.get("team_id"), user, slug)
            if not isinstance(chosen, LeadOf):
                respond(text=denied(ui.EXPORT, chosen), response_type="ephemeral")
                return
            options.check(chosen.task)
        except ExportProblem as e:
            respond(text=with_usage(ui.EXPORT, str(e)), response_type="ephemeral")
            return
        respond(text=ui.working(chosen.name, options.what, options.fmt), response_type="ephemeral")
        self.pool.submit(self.send, client, respond, logger, user, chosen, options)

    def send(self, client: WebClient, respond: Any, logger: logging.Logger, user: str, chosen: LeadOf,
             options: ExportOptions) -> None:
        """Runs on the export pool: this is its error boundary (Bolt's app.error does not see it)."""
        try:
            now = self.deps.clock.now()
            with tempfile.TemporaryDirectory(prefix="labelbot-export-") as tmp:
                path = Path(tmp) / default_filename(chosen.slug, options, now)
                result = export_project(self.deps.db, chosen.slug, path, options, now=now)
                dm = client.conversations_open(users=user)["channel"]["id"]
                client.files_upload_v2(channel=dm, file=str(path), filename=path.name,
                                       title=f"{chosen.name} ({options.what})"[:250],
                                       initial_comment=ui.file_comment(chosen.name, result.details()))
            respond(text=ui.sent(chosen.name, result.rows, path.name), response_type="ephemeral")
        except Exception:
            logger.exception("export of %s for %s failed", chosen.slug, user)
            respond(text=ui.failed(chosen.name), response_type="ephemeral")


def register(app: App, deps: Deps) -> None:
    h = ExportHandlers(deps)
    app.command("/label-export")(h.on_command)
