"""The guideline revision loop: low agreement fixed at its cause.

labelbot sees where people disagree (confused label pairs, items an expert had to settle, items flagged
Ambiguous). This package turns that into a proposed revision of the guidelines (`suggest`: written by
the project's LLM, or a template with the same evidence), publishes the lead's edited text as a new
version (`publish`: the drafting prompt follows, every qualified annotator gets one DM, quoted expert
decisions can become gold) and keeps the history (`history`, `show`). Whether a revision helped is
measured per version in the report (`bot.services.reports.guidelines`).

The package: `versions` (history, publish), `evidence` (the reads), `compose` (pure text: template,
prompt, summaries), `writer` (LLM and simulated writers), `suggest`, `notices` (the DMs, claimed once).
"""

from __future__ import annotations

from bot.services.guidelines.suggest import latest_suggestion, suggest, suggestion_stats
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
