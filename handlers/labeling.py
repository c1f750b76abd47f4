"""`/label` and every click of the labeling loop and the quiz.

Each listener reads the payload (pure, `bot.blocks.payloads`), makes one service call
(`bot.services.labeling.flow`, its own unit of work) and shows the typed result (`handlers.messenger`).
A click is acknowledged only after its answer is stored (an HTTP 200 means saved; it takes
milliseconds). No LLM call happens here: drafts were made ahead of demand and stored.
A refusal (`LabelbotError`: a forged or stale click, an unknown project) is told to the person and
records nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.blocks import labeling as ui
from bot.blocks import payloads
from bot.blocks.ids import CHOOSE_RE, Action, Block, View
from bot.core.errors import LabelbotError
from bot.deps import Deps
from bot.services.labeling import flow
from handlers import reminders
from handlers.messenger import Messenger

Listener = Callable[..., None]


class LabelingHandlers:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.out = Messenger(deps)

    def on_command(self, ack: Any, command: dict[str, Any], client: WebClient, respond: Any) -> None:
        ack()
        team, user = command.get("team_id", ""), command.get("user_id", "")
        try:
            cmd = payloads.label_command(command.get("text"))
            if cmd.verb == "help":
                respond(text="labelbot help", blocks=ui.help_blocks(), response_type="ephemeral")
            elif cmd.verb == "stats":
                stats = flow.my_stats(self.deps.db, self.deps.clock.now(), team, user)
                respond(text="Your numbers", blocks=ui.stats_blocks(stats), response_type="ephemeral")
            elif cmd.verb == "reminders":
                text, blocks = reminders.say(self.deps, team, user, cmd.setting)
                respond(text=text, blocks=blocks, response_type="ephemeral")
            else:
                self.begin(client, team, user, cmd.slug, respond, quiz=cmd.verb == "quiz")
        except LabelbotError as err:
            respond(text=str(err), response_type="ephemeral", replace_original=False)

    def begin(self, client: WebClient, team: str, user: str, slug: str | None, respond: Any, *, quiz: bool) -> None:
        """Serve the next example (or quiz question), or say why there is none."""
        start = flow.start_quiz_for if quiz else flow.start_labeling
        try:
            result = start(self.deps.db, self.deps.clock.now(), team, user, slug)
        except LabelbotError as err:
            self.out.say(client, team, user, respond, str(err))
            return
        self.out.show_start(client, team, user, result, respond)

    def answering(self, verb: str) -> Listener:
        """A listener that records `verb` for the clicked assignment, then acks and shows what is next."""

        def listener(ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
            try:
                aid, value = payloads.answer_of(verb, action, body)
                done = flow.answer(self.deps.db, self.deps.clock.now(), payloads.team_of(body),
                                   payloads.user_of(body), aid, verb, value)
            except LabelbotError as err:
                ack()
                self.out.tell(client, body, str(err))
                return
            ack()
            if not done.answer.duplicate:  # a double click, a retry or a replay changes nothing
                self.out.show_answered(client, body, done)

        listener.__name__ = f"on_{verb}"
        return listener

    def on_noop(self, ack: Any) -> None:
        ack()

    def on_edit_or_reject(self, ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        try:
            aid, _ = payloads.button_value(action.get("value"))
            editor = flow.open_editor(self.deps.db, self.deps.clock.now(), payloads.team_of(body),
                                      payloads.user_of(body), aid, reject=action["action_id"] == Action.REJECT)
        except LabelbotError as err:
            self.out.tell(client, body, str(err))
            return
        if editor is not None:
            meta = payloads.edit_metadata(aid, editor.mode, body)
            view = ui.edit_modal(editor.task, editor.mode, editor.initial, meta, note=editor.note)
            client.views_open(trigger_id=body["trigger_id"], view=view)

    def on_edit_submit(self, ack: Any, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        try:
            form = payloads.edit_submission(view)
            done = flow.submit_editor(self.deps.db, self.deps.clock.now(), payloads.team_of(body),
                                      payloads.user_of(body), form.assignment_id, form.mode, form.text)
        except LabelbotError as err:
            ack(response_action="errors", errors={Block.EDIT_INPUT: str(err)[:300]})
            return
        ack()
        if not done.answer.duplicate:
            self.out.show_answered(client, body, done, origin=(form.channel, form.ts))

    def on_full_text(self, ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        try:
            aid, _ = payloads.button_value(action.get("value"))
            text = flow.item_text(self.deps.db, payloads.team_of(body), payloads.user_of(body), aid)
        except LabelbotError as err:
            self.out.tell(client, body, str(err))
            return
        client.views_open(trigger_id=body["trigger_id"], view=ui.full_text_modal(text))

    def on_full_image(self, ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        try:
            aid, _ = payloads.button_value(action.get("value"))
            image = flow.item_image(self.deps.db, payloads.team_of(body), payloads.user_of(body), aid)
        except LabelbotError as err:
            self.out.tell(client, body, str(err))
            return
        client.views_open(trigger_id=body["trigger_id"], view=ui.full_image_modal(image))

    def on_guidelines(self, ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        try:
            g = flow.guidelines(self.deps.db, payloads.team_of(body), action.get("value", ""))
        except LabelbotError as err:
            self.out.tell(client, body, str(err))
            return
        client.views_open(trigger_id=body["trigger_id"], view=ui.guidelines_modal(
            g.name, g.instructions, g.labels, version=g.version, published_at=g.published_at, changes=g.changes))

    def starting(self, *, quiz: bool) -> Listener:
        """The Start labeling / Take quiz buttons."""

        def listener(ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient, respond: Any) -> None:
            ack()
            self.begin(client, payloads.team_of(body), payloads.user_of(body), action.get("value") or None,
                       respond if body.get("response_url") else None, quiz=quiz)

        listener.__name__ = "on_quiz_start" if quiz else "on_start"
        return listener


def register(app: App, deps: Deps) -> None:
    h = LabelingHandlers(deps)
    app.command("/label")(h.on_command)
    app.action(CHOOSE_RE)(h.answering("choose"))
    app.action(Action.SELECT)(h.answering("choose"))
    app.action(Action.ACCEPT)(h.answering("accept"))
    app.action(Action.SKIP)(h.answering("skip"))
    app.action(Action.AMBIGUOUS)(h.answering("ambiguous"))
    app.action(Action.SUBMIT)(h.answering("edit"))
    app.action(Action.CHECKS)(h.on_noop)
    app.action(Action.EDIT)(h.on_edit_or_reject)
    app.action(Action.REJECT)(h.on_edit_or_reject)
    app.action(Action.FULL_TEXT)(h.on_full_text)
    app.action(Action.FULL_IMAGE)(h.on_full_image)
    app.action(Action.GUIDELINES)(h.on_guidelines)
    app.action(Action.START)(h.starting(quiz=False))
    app.action(Action.QUIZ_START)(h.starting(quiz=True))
    app.view(View.EDIT)(h.on_edit_submit)
