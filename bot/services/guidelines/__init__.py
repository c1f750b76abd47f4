"""The guideline revision loop: low agreement fixed at its cause.

labelbot sees where people disagree (confused label pairs, items an expert had to settle, items flagged
Ambiguous). This package turns that into a proposed revision of the guidelines (`suggest`: written by
the project's LLM, or a template with the same evidence), publishes the lead's edited text as a new
version (`publish`: the drafting prompt follows, every qualified annotator gets one DM, quoted expert
decisions can become gold) and keeps the history (`history`, `show`). Whether a revision helped is
measured per version in the report (`bot.services.reports.guidelines`).

The package: `versions` (history, publish), `evidence` (the reads), `compose` (pure text: template,
prompt, summaries), `writer` (LLM and simulated writers), `suggesting`, `notices` (the DMs, claimed once).

Importing the package is cheap: `suggest` and friends load the evidence reads (pandas and the
agreement statistics) on their first call.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.services.guidelines.versions import (
    RevisionProblem,
    audience,
    current_info,
    first_version,
    history,
    publish,
    show,
)
from bot.services.guidelines.writer import LLMWriter, SimulatedWriter, Writer, WriterFailed, writer_for

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.core.guidelines import Suggestion
    from storage.db import Database


def suggest(db: Database, slug: str, *, requested_by: str, now: datetime, writer: Writer | None,
            team_id: str | None = None) -> Suggestion:
    """Build, store and return a suggestion for `slug`'s next guideline version (`suggesting.suggest`)."""
    from bot.services.guidelines import suggesting

    return suggesting.suggest(db, slug, requested_by=requested_by, now=now, writer=writer, team_id=team_id)


def latest_suggestion(db: Database, slug: str, *, based_on_current: bool = True) -> Suggestion | None:
    """The newest suggestion of `slug` (`suggesting.latest_suggestion`)."""
    from bot.services.guidelines import suggesting

    return suggesting.latest_suggestion(db, slug, based_on_current=based_on_current)


def suggestion_stats(session: Session, project_id: int) -> dict[str, Any]:
    """How suggestions were written (`suggesting.suggestion_stats`)."""
    from bot.services.guidelines import suggesting

    return suggesting.suggestion_stats(session, project_id)


__all__ = [
    "LLMWriter",
    "RevisionProblem",
    "SimulatedWriter",
    "Writer",
    "WriterFailed",
    "audience",
    "current_info",
    "first_version",
    "history",
    "latest_suggestion",
    "publish",
    "show",
    "suggest",
    "suggestion_stats",
    "writer_for",
]
