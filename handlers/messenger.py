"""Slack I/O for the labeling loop: the person's DM, ephemeral notes, posting an example, and
showing what a service returned (through the pure builders of `bot.blocks.labeling`)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.blocks import labeling as ui
from bot.blocks.payloads import clicked_message, team_of, user_of
from bot.core.types import Answered, QuizFinished, ShowTask, Start, Task
from bot.deps import Deps
from bot.services.labeling import flow

log = logging.getLogger("labelbot")


class Messenger:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._dm_cache: dict[tuple[str, str], str] = {}
        self._dm_lock = threading.Lock()

    def dm(self, client: WebClient, team_id: str, user_id: str) -> str:
        key = (team_id, user_id)
        with self._dm_lock:
            if key in self._dm_cache:
                return self._dm_cache[key]
        channel = client.conversations_open(users=user_id)["channel"]["id"]
        with self._dm_lock:
            self._dm_cache[key] = channel
        return channel

    def tell(self, client: WebClient, body: dict[str, Any], text: str) -> None:
        """An ephemeral note to the clicking person (through response_url; their DM otherwise)."""
        url = body.get("response_url")
        if url:
            WebhookClient(url, timeout=10).send(text=text, response_type="ephemeral", replace_original=False)
        else:
            client.chat_postMessage(channel=self.dm(client, team_of(body), user_of(body)), text=text)

    def say(self, client: WebClient, team: str, user: str, respond: Any, text: str,
            blocks: list[dict[str, Any]] | None = None) -> None:
        """Answer a command (ephemeral through `respond`) or a button in the DM (no `respond`)."""
        if respond is not None:
            respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)
        else:
            client.chat_postMessage(channel=self.dm(client, team, user), text=text, blocks=blocks)

    def post_task(self, client: WebClient, team: str, user: str, task: Task, *, again: bool = True) -> None:
        text, blocks = ui.example_message(task)
        try:
            resp = client.chat_postMessage(channel=self.dm(client, team, user), text=text, blocks=blocks,
                                           unfurl_links=False, unfurl_media=False)
        except SlackApiError as err:
            reason = image_refusal(task, err)
            if reason is None:
                raise
            self._image_refused(client, team, user, task, reason, again)
            return
        flow.message_posted(self.deps.db, task.assignment_id, resp["channel"], resp["ts"])

    def _image_refused(self, client: WebClient, team: str, user: str, task: Task, reason: str, again: bool) -> None:
        """Slack would not show the example's picture: set it aside, say so, and serve the next one (once)."""
        done = flow.image_not_shown(self.deps.db, self.deps.clock.now(), task.assignment_id, reason)
        log.warning("example %s (item %s) not posted: Slack refused its image (%s); %s", task.assignment_id,
                    task.item_external_id, reason, done)
        channel = self.dm(client, team, user)
        if task.kind == "quiz":
            client.chat_postMessage(channel=channel, text=ui.IMAGE_REFUSED_QUIZ)
            return
        client.chat_postMessage(channel=channel, text=ui.IMAGE_REFUSED)
        if again:
            result = flow.start_labeling(self.deps.db, self.deps.clock.now(), team, user, task.project_slug)
            if isinstance(result, ShowTask):
                self.post_task(client, team, user, result.task, again=False)
            else:
                text, blocks = ui.start_message(result)
                client.chat_postMessage(channel=channel, text=text, blocks=blocks)

    def show_start(self, client: WebClient, team: str, user: str, result: Start, respond: Any) -> None:
        if isinstance(result, ShowTask):
            self.post_task(client, team, user, result.task)
            if respond is not None:
                respond(text=ui.in_your_dm(result.task), response_type="ephemeral")
            return
        text, blocks = ui.start_message(result)
        self.say(client, team, user, respond, text, blocks)

    def show_answered(self, client: WebClient, body: dict[str, Any], done: Answered,
                      origin: tuple[str | None, str | None] = (None, None)) -> None:
        """Replace the answered message with what was chosen, then show what comes next."""
        answer, team, user = done.answer, team_of(body), user_of(body)
        self._replace_answered(client, body, done, answer.channel or origin[0], answer.ts or origin[1])
        nxt = done.next
        if isinstance(nxt, ShowTask):
            self.post_task(client, team, user, nxt.task)
        elif isinstance(nxt, QuizFinished):
            text, blocks = ui.quiz_end_message(nxt.feedback, nxt.summary, nxt.slug)
            client.chat_postMessage(channel=self.dm(client, team, user), text=text, blocks=blocks)
        elif nxt is not None:
            done_text, done_blocks = ui.start_message(nxt)
            client.chat_postMessage(channel=self.dm(client, team, user), text=done_text, blocks=done_blocks)

    def _replace_answered(self, client: WebClient, body: dict[str, Any], done: Answered, channel: str | None,
                          ts: str | None) -> None:
        text, blocks = ui.record_message(done.answer)
        if done.answer.feedback is not None:
            blocks = blocks + ui.feedback_blocks(done.answer.feedback)
        channel = channel or clicked_message(body)[0]
        ts = ts or clicked_message(body)[1]
        if body.get("response_url") and ts and clicked_message(body)[1] == ts:
            # The click came from this very message: replace it through its response_url, which spares
            # chat.update's per-workspace rate limit (Tier 3) on every click.
            sent = WebhookClient(body["response_url"], timeout=10).send(text=text, blocks=blocks,
                                                                        replace_original=True)
            if sent.status_code != 200 and channel:  # e.g. a response_url past its 30 minutes
                client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        elif channel and ts:
            client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)


def image_refusal(task: Task, err: SlackApiError) -> str | None:
    """Why Slack refused an example message because of its picture (None: not that)."""
    data = getattr(err.response, "data", None)
    if task.image is None or not isinstance(data, dict) or data.get("error") != "invalid_blocks":
        return None
    details = [str(e) for e in (data.get("errors") or (data.get("response_metadata") or {}).get("messages") or [])]
    about_image = [d for d in details if "image" in d.lower() or "slack_file" in d]
    if details and not about_image:
        return None
    return "invalid_blocks: " + "; ".join(about_image or details)[:500]
