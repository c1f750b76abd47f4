"""The guideline revision loop in Slack: a lead's "Suggest a guideline revision" (under a report) opens a
modal at once, the proposal is written on a small pool (the LLM takes seconds) and fills the modal; the
lead edits it and publishes; every qualified annotator then gets one DM.

The lead check is the one reports and exports use (`bot.services.access`); a refusal is an ephemeral
note. A revision that cannot be published comes back next to the field (`response_action: errors`)
and changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks import guidelines as ui
from bot.blocks.access import denied
from bot.blocks.ids import Action, View
from bot.blocks.payloads import team_of, user_of
from bot.core.errors import LabelbotError
from bot.core.types import LeadOf
from bot.deps import Deps
from bot.jobs import send_guideline_notices
from bot.services import guidelines
from bot.services.access import project_for_lead
from handlers.messenger import Messenger


class GuidelineHandlers:
    def __init__(self, deps: Deps, workers: int = 2) -> None:
        self.deps = deps
        self.out = Messenger(deps)
        self.pool = deps.pool("guidelines", workers)

    def on_suggest(self, ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient,
                   logger: logging.Logger) -> None:
        ack()
        team, user = team_of(body), user_of(body)
        chosen = project_for_lead(self.deps.db, team, user, action.get("value") or None)
        if not isinstance(chosen, LeadOf):
            self.out.tell(client, body, denied(ui.REVISE, chosen))
            return
        try:  # the trigger is valid for 3 s: open now, fill in when the proposal is written
            view = client.views_open(trigger_id=body["trigger_id"], view=ui.waiting_modal(chosen.name))["view"]
        except SlackApiError as e:
            logger.warning("revision modal for %s not opened: %s", chosen.slug, e)
            self.out.tell(client, body, "The revision form could not open in time; please click again.")
            return
        self.pool.submit(self.propose, client, logger, team, user, chosen, view["id"], view.get("hash"))

    def propose(self, client: WebClient, logger: logging.Logger, team: str, user: str, chosen: LeadOf,
                view_id: str, view_hash: str | None) -> None:
        """Runs on the pool: this is its error boundary (Bolt's app.error does not see it)."""
        try:
            suggestion = guidelines.suggest(self.deps.db, chosen.slug, requested_by=user, now=self.deps.clock.now(),
                                            writer=guidelines.writer_for(self.deps.drafter), team_id=team)
            view = ui.revision_modal(suggestion, annotators=guidelines.audience(self.deps.db, chosen.slug))
            client.views_update(view_id=view_id, hash=view_hash, view=view)
        except Exception:
            logger.exception("guideline suggestion of %s for %s failed", chosen.slug, user)
            try:
                client.views_update(view_id=view_id, view=ui.failed_modal(chosen.name))
            except SlackApiError:
                logger.warning("could not tell %s that the suggestion failed", user)

    def on_publish(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        try:
            form = ui.revision_submission(view)
            published = guidelines.publish(
                self.deps.db, form.slug, form.text, author=user_of(body), source="slack", now=self.deps.clock.now(),
                summary=form.summary, based_on=form.based_on, suggestion_id=form.suggestion_id,
                promote=form.promote, team_id=team_of(body), lead=user_of(body),
            )
        except guidelines.RevisionProblem as e:
            ack(response_action="errors", errors={ui.error_block(e.field): str(e)[:1000]})
            return
        except LabelbotError as e:
            ack(response_action="errors", errors={ui.error_block("text"): str(e)[:1000]})
            return
        ack(response_action="update", view=ui.published_modal(published))
        self.pool.submit(send_guideline_notices, self.deps, published.version_id)


def register(app: App, deps: Deps) -> None:
    h = GuidelineHandlers(deps)
    app.action(Action.SUGGEST_REVISION)(h.on_suggest)
    app.view(View.REVISION)(h.on_publish)
