"""PURE Block Kit for reminders: the daily nudge, and what turning reminders off or on says."""

from __future__ import annotations

from typing import Any

from bot.blocks.ids import Action
from bot.blocks.text import button, context_md, fallback_text, safe_mrkdwn, section_md
from bot.core.types import Waiting

MAX_PROJECTS = 10


def _examples(w: Waiting) -> str:
    n = f"{w.count:,}{'+' if w.more else ''}"
    return f"{n} example{'' if w.count == 1 and not w.more else 's'}"


def reminder_message(waiting: list[Waiting]) -> tuple[str, list[dict[str, Any]]]:
    """"12 examples are waiting in *Support intents*", with Start labeling and Stop reminders (several
    projects: one line and one Start labeling button each)."""
    first = waiting[0]
    verb = "is" if first.count == 1 and not first.more else "are"
    more = f" and {len(waiting) - 1} more project{'s' if len(waiting) > 2 else ''}" if len(waiting) > 1 else ""
    fallback = fallback_text(f"{_examples(first)} {verb} waiting in {first.name}{more}", 150)
    stop = button("Stop reminders", Action.REMINDERS_OFF, "off")
    footer = context_md("One reminder a day at most, only on days you have not labeled yet. "
                        "`/label reminders off` stops them too.")
    if len(waiting) == 1:
        text = (f":wave: {_examples(first)} {verb} waiting in *{safe_mrkdwn(first.name, 200)}*. "
                "A few minutes today keep the project moving.")
        return fallback, [
            section_md(text, "rm.text"),
            {"type": "actions", "block_id": "rm.actions",
             "elements": [button("Start labeling", Action.START, first.slug, "primary"), stop]},
            footer,
        ]
    blocks: list[dict[str, Any]] = [
        section_md(":wave: Examples are waiting for you. A few minutes today keep the projects moving.", "rm.text")
    ]
    for i, w in enumerate(waiting[:MAX_PROJECTS]):
        block = section_md(f"{_examples(w)} in *{safe_mrkdwn(w.name, 200)}*", f"rm.project.{i}")
        block["accessory"] = button("Start labeling", Action.START, w.slug)
        blocks.append(block)
    if len(waiting) > MAX_PROJECTS:
        blocks.append(context_md(f"… and {len(waiting) - MAX_PROJECTS} more projects: `/label` lists them."))
    blocks += [{"type": "actions", "block_id": "rm.actions", "elements": [stop]}, footer]
    return fallback, blocks


def reminders_changed(enabled: bool) -> tuple[str, list[dict[str, Any]]]:
    """What the person sees after Stop reminders / `/label reminders off|on`."""
    if enabled:
        text = (":bell: Reminders are on: on days you have not labeled yet, I'll tell you once when examples are "
                "waiting. `/label reminders off` stops them.")
        return "Reminders are on", [section_md(text, "rm.changed")]
    text = (":no_bell: Reminders are off; I won't nudge you again. Turn them back on any time with "
            "`/label reminders on`.")
    return "Reminders are off", [
        section_md(text, "rm.changed"),
        {"type": "actions", "block_id": "rm.undo",
         "elements": [button("Turn reminders back on", Action.REMINDERS_ON, "on")]},
    ]


def reminders_status(enabled: bool) -> str:
    return ("Your reminders are on. `/label reminders off` stops them." if enabled
            else "Your reminders are off. `/label reminders on` turns them back on.")
