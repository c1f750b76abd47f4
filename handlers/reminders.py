"""The buttons of a reminder DM ("Stop reminders", "Turn reminders back on") and `/label reminders`.

Ack, read the click, one service call (`bot.services.reminders.set_reminders`), then replace the
message with what changed (`bot.blocks.reminders`). "Start labeling" is the labeling loop's Start button.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.blocks import payloads
from bot.blocks.ids import Action
from bot.blocks.reminders import reminders_changed, reminders_status
from bot.deps import Deps
from bot.services import reminders as service


def say(deps: Deps, team: str, user: str, setting: bool | None) -> tuple[str, list[dict] | None]:
    """`/label reminders [off|on]`: change the setting, or say what it is."""
    if setting is None:
        return reminders_status(service.reminders_on(deps.db, team, user)), None
    return reminders_changed(service.set_reminders(deps.db, team, user, setting, deps.clock.now()))


class ReminderHandlers:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def on_switch(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        ack()
        enabled = service.set_reminders(self.deps.db, payloads.team_of(body), payloads.user_of(body),
                                        action.get("action_id") == Action.REMINDERS_ON, self.deps.clock.now())
        text, blocks = reminders_changed(enabled)
        respond(text=text, blocks=blocks, replace_original=True)


def register(app: App, deps: Deps) -> None:
    h = ReminderHandlers(deps)
    app.action(Action.REMINDERS_OFF)(h.on_switch)
    app.action(Action.REMINDERS_ON)(h.on_switch)
