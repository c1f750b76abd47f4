"""PURE texts for `/label-export` (mrkdwn we write; untrusted parts escaped)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.blocks.text import fallback_text, safe_mrkdwn

USAGE = (
    "Usage: `/label-export [project] [jsonl|csv|parquet|openai] [raw]`, e.g. `/label-export intents csv` "
    "or `/label-export intents raw`. The file arrives in your DM; only project leads can export."
)


def usage(problem: str | None = None) -> str:
    return f"{safe_mrkdwn(problem, 500)} {USAGE}" if problem else USAGE


def not_a_lead(project_name: str, leads: Sequence[str]) -> str:
    name = safe_mrkdwn(project_name, 200)
    if not leads:
        return (
            f"Only project leads can export *{name}*, and it has none yet: someone running labelbot can add one "
            "with `labelbot member SLUG USER --tier lead`."
        )
    who = ", ".join(f"<@{u}>" for u in leads[:10])
    return f"Sorry, only the leads of *{name}* can export it. Ask {who} for the file."


def leads_nothing() -> str:
    return "You lead no project in this workspace, so there is nothing you can export. " + USAGE


def choose_project(slugs: Sequence[str]) -> str:
    names = ", ".join(f"`{safe_mrkdwn(s, 40)}`" for s in slugs[:20])
    first = safe_mrkdwn(slugs[0], 40)
    return f"You lead several projects; say which one, e.g. `/label-export {first}`. Yours: {names}."


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
