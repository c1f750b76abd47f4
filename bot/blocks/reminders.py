"""PURE Block Kit for reminders: the daily nudge, and what turning reminders off or on says."""

from __future__ import annotations

from typing import Any

from bot.blocks.ids import Action
from bot.blocks.text import button, context_md, cut, fallback_text, safe_mrkdwn, section_md
from bot.core.types import Waiting

MAX_PROJECT_BUTTONS = 4  # plus "Stop reminders": one row


def _examples(w: Waiting) -> str:
    n = f"{w.count:,}{'+' if w.more else ''}"
    return f"{n} example{'' if w.count == 1 and not w.more else 's'}"


def reminder_message(waiting: list[Waiting]) -> tuple[str, list[dict[str, Any]]]:
    """"12 examples are waiting in *Support intents*", with Start labeling and Stop reminders."""
    first, rest = waiting[0], waiting[1:]
    verb = "is" if first.count == 1 and not first.more else "are"
    line = f"{_examples(first)} {verb} waiting in *{safe_mrkdwn(first.name, 200)}*"
    others = [f"{_examples(w)} in *{safe_mrkdwn(w.name, 200)}*" for w in rest[:10]]
    if others:
        line += (", " + ", ".join(others[:-1]) if len(others) > 1 else "") + f" and {others[-1]}"
    text = f":wave: {line}. A few minutes today keep the project moving."
    elements = [
        button("Start labeling" if len(waiting) == 1 else cut(f"Start: {w.name}", 75), Action.START, w.slug,
               "primary" if i == 0 else None)
        for i, w in enumerate(waiting[:MAX_PROJECT_BUTTONS])
    ]
    elements.append(button("Stop reminders", Action.REMINDERS_OFF, "off"))
    blocks = [
        section_md(cut(text, 2900), "rm.text"),
        {"type": "actions", "block_id": "rm.actions", "elements": elements},
        context_md("One reminder a day at most, only on days you have not labeled yet. "
                   "`/label reminders off` stops them too."),
    ]
    return fallback_text(f"{first.count:,}{'+' if first.more else ''} examples are waiting in {first.name}", 150), \
        blocks


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
