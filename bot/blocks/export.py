"""PURE texts for `/label-export` (mrkdwn we write; untrusted parts escaped)."""

from __future__ import annotations

from bot.blocks.access import LeadCommand
from bot.blocks.text import fallback_text, safe_mrkdwn

USAGE = (
    "Usage: `/label-export [project] [jsonl|csv|parquet|openai|conll] [raw] [gold]`, e.g. `/label-export intents "
    "csv` or `/label-export intents raw`. The final dataset leaves the gold set out unless you add `gold`. The "
    "file arrives in your DM; only project leads can export."
)


EXPORT = LeadCommand(
    usage=USAGE, act_on="export", can="export it", ask="Ask {who} for the file.",
    nothing="there is nothing you can export", example="/label-export {slug}",
)


def working(project_name: str, what: str, fmt: str) -> str:
    return f"Exporting the {what} of *{safe_mrkdwn(project_name, 200)}* as {fmt}; the file will arrive in your DM."


def file_comment(project_name: str, summary: str) -> str:
    return fallback_text(f"{project_name}: {summary}", 1000)


def sent(project_name: str, rows: int, filename: str) -> str:
    return (
        f"Sent `{safe_mrkdwn(filename, 200)}` ({rows:,} rows) from *{safe_mrkdwn(project_name, 200)}* "
        "to your DM."
    )


def failed(project_name: str) -> str:
    return (
        f":warning: The export of *{safe_mrkdwn(project_name, 200)}* failed on our side; nothing was sent. "
        "Please try again, or use `labelbot export` on the server."
    )
