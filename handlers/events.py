"""Events API: publish the Home tab, note uninstalls. Each listener handles an event_id once across
replicas (`bot.services.events.handling`); a delivery whose handling failed is handled on Slack's retry."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App

from bot.blocks.labeling import home_view
from bot.deps import Deps
from bot.services import events
from bot.services.labeling import flow

log = logging.getLogger("labelbot.events")


class EventHandlers:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def on_home_opened(self, event: dict[str, Any], body: dict[str, Any], client: Any) -> None:
        if event.get("tab", "home") != "home":
            return
        with events.handling(self.deps.db, body.get("event_id"), self.deps.clock.now()) as mine:
            if not mine:  # Slack's retry of a delivery handled (or being handled) elsewhere
                return
            user = event["user"]
            team = body.get("team_id") or ""
            stats = flow.my_stats(self.deps.db, self.deps.clock.now(), team, user)
            client.views_publish(user_id=user, view=home_view(stats))

    def on_uninstalled(self, body: dict[str, Any]) -> None:
        with events.handling(self.deps.db, body.get("event_id"), self.deps.clock.now()) as mine:
            if not mine:
                return
            log.warning("labelbot was uninstalled from workspace %s", body.get("team_id"))
            store = self.deps.installation_store
            if store is not None:
                store.delete_all(enterprise_id=body.get("enterprise_id"), team_id=body.get("team_id"))

    def on_tokens_revoked(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        with events.handling(self.deps.db, body.get("event_id"), self.deps.clock.now()) as mine:
            if not mine:
                return
            log.warning("tokens revoked in workspace %s: %s", body.get("team_id"), event.get("tokens"))
            store = self.deps.installation_store
            if store is not None and (event.get("tokens") or {}).get("bot"):
                store.delete_bot(enterprise_id=body.get("enterprise_id"), team_id=body.get("team_id"))


def register(app: App, deps: Deps) -> None:
    h = EventHandlers(deps)
    app.event("app_home_opened")(h.on_home_opened)
    app.event("app_uninstalled")(h.on_uninstalled)
    app.event("tokens_revoked")(h.on_tokens_revoked)
