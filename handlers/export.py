"""`/label-export [project] [jsonl|csv|parquet|openai] [raw]`: a lead gets the export in their DM.

Ack at once; check the arguments and that the user leads the project (a quick read); then the export
runs on this module's own small thread pool (a big project takes a while, and Bolt's listener threads
must stay free for acks), is written to a temporary file, uploaded into the lead's DM with
`files_upload_v2`, and the lead gets an ephemeral note.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.blocks import export as ui
from bot.core.enums import Tier
from bot.services.export import FORMATS, ExportOptions, ExportProblem, default_filename, export_project
from bot.services.projects import is_lead, list_projects
from storage.models import Member, Project


def parse_args(text: str) -> tuple[str | None, ExportOptions]:
    """`[project] [format] [raw]` in any order -> (slug or None, options). Raises ExportProblem."""
    slug: str | None = None
    fmt: str | None = None
    raw = False
    for word in text.lower().split():
        if word in FORMATS:
            if fmt is not None:
                raise ExportProblem(f"Choose one format, not both {fmt} and {word}.")
            fmt = word
        elif word == "raw":
            raw = True
        elif slug is None:
            slug = word
        else:
            raise ExportProblem(f"I do not understand {word!r}.")
    options = ExportOptions(fmt=fmt or "jsonl", raw=raw)
    options.check()
    return slug, options


def _leads(session: Session, project: Project) -> list[str]:
    return list(
        session.scalars(
            select(Member.user_id)
            .where(Member.project_id == project.id, Member.tier == Tier.LEAD)
            .order_by(Member.user_id)
        )
    )


class ExportHandlers:
    def __init__(self, deps: Any, workers: int = 2) -> None:
        self.deps = deps
        self.pool = deps.pool("export", workers)

    def _choose(self, session: Session, team: str, user: str, slug: str | None) -> Project | str:
        """The project to export, or what to tell the user instead."""
        projects = list_projects(session, team)
        if slug is not None:
            project = next((p for p in projects if p.slug == slug), None)
            if project is None:
                known = ", ".join(p.slug for p in projects[:20]) or "none yet"
                return ui.usage(f"There is no project {slug!r} in this workspace (projects: {known}).")
            if not is_lead(session, project, user):
                return ui.not_a_lead(project.name, _leads(session, project))
            return project
        mine = [p for p in projects if is_lead(session, p, user)]
        if not mine:
            return ui.leads_nothing()
        if len(mine) > 1:
            return ui.choose_project([p.slug for p in mine])
        return mine[0]

    def on_command(self, ack: Any, command: dict[str, Any], client: WebClient, respond: Any,
                   logger: logging.Logger) -> None:
        ack()
        team, user = command.get("team_id", ""), command.get("user_id", "")
        try:
            slug, options = parse_args(command.get("text") or "")
        except ExportProblem as e:
            respond(text=ui.usage(str(e)), response_type="ephemeral")
            return
        with self.deps.db.read() as s:
            chosen = self._choose(s, team, user, slug)
            if isinstance(chosen, str):
                respond(text=chosen, response_type="ephemeral")
                return
            slug, name, task = chosen.slug, chosen.name, chosen.task
        try:
            options.check(task)
        except ExportProblem as e:
            respond(text=ui.usage(str(e)), response_type="ephemeral")
            return
        respond(text=ui.working(name, options.what, options.fmt), response_type="ephemeral")
        self.pool.submit(self.send, client, respond, logger, user, slug, name, options)

    def send(self, client: WebClient, respond: Any, logger: logging.Logger, user: str, slug: str, name: str,
             options: ExportOptions) -> None:
        """Runs on the export pool: this is its error boundary (Bolt's app.error does not see it)."""
        try:
            now = self.deps.clock.now()
            with tempfile.TemporaryDirectory(prefix="labelbot-export-") as tmp:
                path = Path(tmp) / default_filename(slug, options, now)
                result = export_project(self.deps.db, slug, path, options, now=now)
                dm = client.conversations_open(users=user)["channel"]["id"]
                client.files_upload_v2(
                    channel=dm,
                    file=str(path),
                    filename=path.name,
                    title=f"{name} ({options.what})"[:250],
                    initial_comment=ui.file_comment(name, result.details()),
                )
            respond(text=ui.sent(name, result.rows, path.name), response_type="ephemeral")
        except Exception:
            logger.exception("export of %s for %s failed", slug, user)
            respond(text=ui.failed(name), response_type="ephemeral")


def register(app: App, deps: Any) -> None:
    h = ExportHandlers(deps)
    app.command("/label-export")(h.on_command)
