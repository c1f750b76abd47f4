"""`/label` and every click of the labeling loop and the quiz.

Each listener acks first, then calls one service inside one unit of work, then talks to Slack.
No LLM call happens here: drafts were made ahead of demand and stored.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from bot.blocks import labeling as ui
from bot.blocks.ids import CHOOSE_RE, Action, Block, View
from bot.core.enums import AssignmentKind, MemberState, TaskType
from bot.core.errors import NotFound, Refused
from bot.core.types import Answer, Task
from bot.services.labeling import (
    build_task,
    entry,
    load_assignment,
    member_stats,
    next_task,
    progress_for,
    queue_busy,
    record_answer,
    resolve_project,
    set_message,
)
from bot.services.labeling.quiz import next_quiz_question, quiz_summary_lines, start_quiz
from bot.services.projects import get_member, get_project, spec_of
from storage.models import Assignment, Draft, Item, Member, Project

log = logging.getLogger("labelbot.labeling")


def _team(body: dict[str, Any]) -> str:
    team = body.get("team") or {}
    return (team.get("id") if isinstance(team, dict) else None) or body.get("team_id") or (
        body.get("user", {}).get("team_id", "")
    )


def _user(body: dict[str, Any]) -> str:
    return body.get("user", {}).get("id") or body.get("user_id", "")


def _parse_value(value: str) -> tuple[int, int | None]:
    """Button values are "<assignment id>" or "<assignment id>:<label index>"."""
    head, _, tail = (value or "").partition(":")
    if not head.isdigit() or (tail and not tail.isdigit()):
        raise Refused("That button is not one of ours, so nothing was recorded.")
    return int(head), int(tail) if tail else None


class LabelingHandlers:
    def __init__(self, deps: Any) -> None:
        self.deps = deps
        self.db = deps.db
        self.clock = deps.clock
        self._dm_cache: dict[tuple[str, str], str] = {}
        self._dm_lock = threading.Lock()

    # -------------------------------------------------------------------------------- helpers
    def dm(self, client: WebClient, team_id: str, user_id: str) -> str:
        key = (team_id, user_id)
        with self._dm_lock:
            if key in self._dm_cache:
                return self._dm_cache[key]
        channel = client.conversations_open(users=user_id)["channel"]["id"]
        with self._dm_lock:
            self._dm_cache[key] = channel
        return channel

    def tell(self, client: WebClient, body: dict[str, Any], text: str, blocks: list | None = None) -> None:
        """An ephemeral note to the clicking user (through response_url; their DM otherwise)."""
        url = body.get("response_url")
        if url:
            WebhookClient(url, timeout=10).send(
                text=text, blocks=blocks, response_type="ephemeral", replace_original=False
            )
        else:
            client.chat_postMessage(channel=self.dm(client, _team(body), _user(body)), text=text, blocks=blocks)

    def post_task(self, client: WebClient, team_id: str, user_id: str, task: Task) -> None:
        channel = self.dm(client, team_id, user_id)
        text, blocks = ui.example_message(task)
        resp = client.chat_postMessage(channel=channel, text=text, blocks=blocks, unfurl_links=False,
                                       unfurl_media=False)
        with self.db.session() as s:
            set_message(s, task.assignment_id, resp["channel"], resp["ts"])

    # -------------------------------------------------------------------------------- /label
    def on_command(self, ack: Any, command: dict[str, Any], client: WebClient, respond: Any) -> None:
        ack()
        words = (command.get("text") or "").split()
        team, user = command.get("team_id", ""), command.get("user_id", "")
        verb = words[0].lower() if words else ""
        if verb == "help":
            respond(text="labelbot help", blocks=ui.help_blocks(), response_type="ephemeral")
        elif verb == "stats":
            with self.db.read() as s:
                stats = member_stats(s, team, user, self.clock.now())
            respond(text="Your numbers", blocks=ui.stats_blocks(stats), response_type="ephemeral")
        elif verb == "quiz":
            if len(words) > 2:
                respond(text="Usage: `/label quiz [project]`", response_type="ephemeral")
                return
            self.begin_quiz(client, team, user, words[1] if len(words) > 1 else None, respond=respond)
        elif len(words) > 1:
            respond(text="Usage: `/label [project]`, `/label quiz [project]`, `/label stats` or `/label help`.",
                    response_type="ephemeral")
        else:
            self.begin_labeling(client, team, user, words[0] if words else None, respond=respond)

    def _say(self, client: WebClient, team: str, user: str, respond: Any, text: str,
             blocks: list | None = None) -> None:
        if respond is not None:
            respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)
        else:
            client.chat_postMessage(channel=self.dm(client, team, user), text=text, blocks=blocks)

    def begin_labeling(self, client: WebClient, team: str, user: str, slug: str | None, respond: Any = None) -> None:
        now = self.clock.now()
        try:
            with self.db.session() as s:
                e = entry(s, team, user, slug)
                task = None
                picker = [(p.slug, p.name) for p in e.choices]
                project = (e.project.slug, e.project.name) if e.project else None
                busy, done = False, 0
                if e.kind == "task":
                    task = next_task(s, e.project, e.member, now, self.db.dialect)
                    if task is None:
                        busy = queue_busy(s, e.project, user)
                        done = self._done_today(s, e.project, user)
        except (NotFound, Refused) as err:
            self._say(client, team, user, respond, str(err))
            return
        if e.kind == "choose":
            self._say(client, team, user, respond, "Choose a project", ui.project_picker(picker))
        elif e.kind == "not_member":
            self._say(client, team, user, respond, e.message)
        elif e.kind == "quiz_offer":
            assert project is not None
            self._say(client, team, user, respond, "Take the quiz first", ui.quiz_offer(*project))
        elif e.kind == "suspended":
            assert project is not None
            reason = f"Your labels on this project are paused: {e.message}." if e.message else ""
            self._say(client, team, user, respond, "Your labels are paused", ui.quiz_offer(*project, reason))
        elif task is None:
            assert project is not None
            text, blocks = ui.done_message(project[1], done, busy=busy, slug=project[0])
            self._say(client, team, user, respond, text, blocks)
        else:
            self.post_task(client, team, user, task)
            if respond is not None:
                respond(text=":incoming_envelope: Your next example is in your DM with me.",
                        response_type="ephemeral")

    def begin_quiz(self, client: WebClient, team: str, user: str, slug: str | None, respond: Any = None) -> None:


        now = self.clock.now()
        try:
            with self.db.session() as s:
                found = resolve_project(s, team, slug, user)
                if isinstance(found, list):
                    picker = [(p.slug, p.name) for p in found]
                    task = None
                else:
                    picker = []
                    task = start_quiz(s, found, user, now)
        except (NotFound, Refused) as err:
            self._say(client, team, user, respond, str(err))
            return
        if task is None:
            self._say(client, team, user, respond, "Choose a project", ui.project_picker(picker, verb="quiz"))
            return
        self.post_task(client, team, user, task)
        if respond is not None:
            respond(text=":pencil2: Your quiz is in your DM with me.", response_type="ephemeral")

    # -------------------------------------------------------------------------------- answers
    def _answer(self, ack: Any, body: dict[str, Any], client: WebClient, aid: int, action: str,
                value: Any = None) -> None:
        """Store the answer and lease the next example in one unit of work, THEN ack: an HTTP 200 for
        a click means the answer is stored (it takes milliseconds, well inside Slack's 3 s)."""
        team, user = _team(body), _user(body)
        now = self.clock.now()
        try:
            with self.db.session() as s:
                answer = record_answer(s, team_id=team, user_id=user, assignment_id=aid, action=action,
                                       value=value, now=now)
                follow = None if answer.duplicate else self._follow_up(s, answer, now)
        except Refused as err:
            ack()
            self.tell(client, body, str(err))
            return
        ack()
        if answer.duplicate:
            return  # a double click, a retry or a replay: already recorded, nothing more to do
        self._after(body, client, answer, follow, team, user)

    def _follow_up(self, s: Any, answer: Answer, now: Any) -> Task | None:
        """Pick what comes next inside the same unit of work as the answer."""
        if answer.kind == AssignmentKind.QUIZ:
            return next_quiz_question(s, answer.assignment_id, now)
        if answer.suspended:
            return None
        assignment = s.get(Assignment, answer.assignment_id)
        member = s.get(Member, assignment.member_id)
        project = s.get(Project, assignment.project_id)
        if member.state != MemberState.QUALIFIED:
            return None
        return next_task(s, project, member, now, self.db.dialect, resume=False)

    def _after(self, body: dict[str, Any], client: WebClient, answer: Answer, follow: Task | None,
               team: str, user: str) -> None:
        text, blocks = ui.record_message(answer)
        fb = answer.feedback
        if fb is not None:
            blocks = blocks + ui.feedback_blocks(fb)
        channel = answer.channel or (body.get("channel") or {}).get("id")
        ts = answer.ts or (body.get("container") or {}).get("message_ts")
        container_ts = (body.get("container") or {}).get("message_ts")
        if body.get("response_url") and container_ts and container_ts == ts:
            # The click came from this very message: replace it through its response_url, which spares
            # chat.update's per-workspace rate limit (Tier 3) on every click.
            sent = WebhookClient(body["response_url"], timeout=10).send(
                text=text, blocks=blocks, replace_original=True
            )
            if sent.status_code != 200 and channel:  # e.g. a response_url past its 30 minutes
                client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        elif channel and ts:
            client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        if fb is not None and fb.finished:
            end_text, end_blocks = ui.quiz_end_message(fb, quiz_summary_lines(fb), answer.project_slug)
            client.chat_postMessage(channel=self.dm(client, team, user), text=end_text, blocks=end_blocks)
            return
        if answer.suspended:
            with self.db.read() as s:
                project = get_project(s, answer.project_slug)
                name = project.name
            reason = f"Your labels on this project are paused: {answer.suspension_reason}."
            client.chat_postMessage(channel=self.dm(client, team, user), text=reason,
                                    blocks=ui.quiz_offer(answer.project_slug, name, reason))
            return
        if follow is not None:
            self.post_task(client, team, user, follow)
        elif answer.kind != AssignmentKind.QUIZ:
            with self.db.read() as s:
                project = get_project(s, answer.project_slug)
                name, done = project.name, self._done_today(s, project, user)
                busy = queue_busy(s, project, user)
            end_text, end_blocks = ui.done_message(name, done, busy=busy, slug=answer.project_slug)
            client.chat_postMessage(channel=self.dm(client, team, user), text=end_text, blocks=end_blocks)

    def _done_today(self, s: Any, project: Project, user: str) -> int:
        member = get_member(s, project, user)
        return progress_for(s, project, member, self.clock.now()).done_today if member else 0

    def _parsed(self, ack: Any, body: dict[str, Any], client: WebClient, raw: str,
                *, need_index: bool = False) -> tuple[int, int | None] | None:
        """The (assignment id, label index) a button carries; a forged value is refused (acked, told)."""
        try:
            aid, index = _parse_value(raw)
            if need_index and index is None:
                raise Refused("That button is not one of ours, so nothing was recorded.")
        except Refused as err:
            ack()
            self.tell(client, body, str(err))
            return None
        return aid, index

    def on_choose(self, ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        raw = action.get("value") or (action.get("selected_option") or {}).get("value", "")
        if (parsed := self._parsed(ack, body, client, raw, need_index=True)) is not None:
            self._answer(ack, body, client, parsed[0], "choose", parsed[1])

    def _simple(self, verb: str):  # type: ignore[no-untyped-def]
        def listener(ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
            if (parsed := self._parsed(ack, body, client, action.get("value", ""))) is not None:
                self._answer(ack, body, client, parsed[0], verb)

        listener.__name__ = f"on_{verb}"
        return listener

    def on_submit_checks(self, ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        if (parsed := self._parsed(ack, body, client, action.get("value", ""))) is None:
            return
        state = (body.get("state") or {}).get("values", {})
        selected = None
        for block in state.values():
            if Action.CHECKS in block:
                selected = block[Action.CHECKS].get("selected_options") or []
        indices = [int(o["value"]) for o in (selected or []) if str(o.get("value", "")).isdigit()]
        self._answer(ack, body, client, parsed[0], "edit", ("indices", indices))

    def on_noop(self, ack: Any) -> None:
        ack()

    # -------------------------------------------------------------------------------- modals
    def on_edit_or_reject(self, ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        mode = "reject" if action["action_id"] == Action.REJECT else "edit"
        team, user = _team(body), _user(body)
        try:
            aid, _ = _parse_value(action.get("value", ""))
            with self.db.read() as s:
                assignment = load_assignment(s, aid, team, user)
                if assignment.status != "open":
                    return
                project = s.get(Project, assignment.project_id)
                spec = spec_of(project)
                task = build_task(s, project, spec, assignment, self.clock.now())
                item = s.get(Item, assignment.item_id)
                draft = s.get(Draft, assignment.draft_id) if assignment.draft_shown and assignment.draft_id else None
        except Refused as err:
            self.tell(client, body, str(err))
            return
        if draft is None:
            mode = "answer"
        initial = ""
        if spec.task is TaskType.SPANS:
            from bot.core.markup import render

            initial = render(item.text, draft.value if (draft is not None and mode == "edit") else [])
        elif spec.task is TaskType.REWRITE and mode == "edit" and draft is not None:
            initial = str(draft.value)
        channel = (body.get("channel") or {}).get("id")
        ts = (body.get("container") or {}).get("message_ts")
        view = ui.edit_modal(task, mode, initial, {"a": aid, "m": mode, "c": channel, "t": ts})
        client.views_open(trigger_id=body["trigger_id"], view=view)

    def on_edit_submit(self, ack: Any, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        from bot.core.markup import MarkupError, parse

        team, user = _team(body), _user(body)
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            aid, mode = int(meta["a"]), str(meta.get("m", "edit"))
        except (ValueError, KeyError, TypeError):
            ack(response_action="errors", errors={Block.EDIT_INPUT: "This form is damaged; close it and try again."})
            return
        raw = (view.get("state", {}).get("values", {}).get(Block.EDIT_INPUT, {}).get("value", {}) or {}).get("value")
        raw = raw or ""
        now = self.clock.now()
        try:
            with self.db.session() as s:
                assignment = load_assignment(s, aid, team, user)
                project = s.get(Project, assignment.project_id)
                spec = spec_of(project)
                item = s.get(Item, assignment.item_id)
                if spec.task is TaskType.SPANS:
                    value: Any = parse(raw, item.text, spec.label_names)
                else:
                    if not raw.strip():
                        raise MarkupError("Write the corrected text (it cannot be empty).")
                    value = raw
                action = {"edit": "edit", "reject": "reject"}.get(mode, "choose")
                answer = record_answer(s, team_id=team, user_id=user, assignment_id=aid, action=action,
                                       value=value, now=now)
                follow = None if answer.duplicate else self._follow_up(s, answer, now)
        except MarkupError as err:
            ack(response_action="errors", errors={Block.EDIT_INPUT: str(err)[:300]})
            return
        except Refused as err:
            ack(response_action="errors", errors={Block.EDIT_INPUT: str(err)[:300]})
            return
        ack()
        if answer.duplicate:
            return
        if not answer.channel and meta.get("c"):
            answer.channel, answer.ts = meta.get("c"), meta.get("t")
        self._after(body, client, answer, follow, team, user)

    def on_full_text(self, ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        try:
            aid, _ = _parse_value(action.get("value", ""))
            with self.db.read() as s:
                assignment = load_assignment(s, aid, _team(body), _user(body))
                text = s.get(Item, assignment.item_id).text
        except Refused as err:
            self.tell(client, body, str(err))
            return
        client.views_open(trigger_id=body["trigger_id"], view=ui.full_text_modal(text))

    def on_guidelines(self, ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        slug = action.get("value", "")
        try:
            with self.db.read() as s:
                project = get_project(s, slug)
                if project.team_id != _team(body):
                    raise NotFound("No such project in this workspace.")
                spec = spec_of(project)
        except NotFound as err:
            self.tell(client, body, str(err))
            return
        view = ui.guidelines_modal(project.name, spec.instructions, [(lb.name, lb.description) for lb in spec.labels])
        client.views_open(trigger_id=body["trigger_id"], view=view)

    def on_start(self, ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient,
                 respond: Any) -> None:
        ack()
        has_url = bool(body.get("response_url"))
        self.begin_labeling(client, _team(body), _user(body), action.get("value") or None,
                            respond=respond if has_url else None)

    def on_quiz_start(self, ack: Any, body: dict[str, Any], action: dict[str, Any], client: WebClient,
                      respond: Any) -> None:
        ack()
        has_url = bool(body.get("response_url"))
        self.begin_quiz(client, _team(body), _user(body), action.get("value") or None,
                        respond=respond if has_url else None)


def register(app: App, deps: Any) -> None:
    h = LabelingHandlers(deps)
    app.command("/label")(h.on_command)
    app.action(CHOOSE_RE)(h.on_choose)
    app.action(Action.SELECT)(h.on_choose)
    app.action(Action.ACCEPT)(h._simple("accept"))
    app.action(Action.SKIP)(h._simple("skip"))
    app.action(Action.AMBIGUOUS)(h._simple("ambiguous"))
    app.action(Action.SUBMIT)(h.on_submit_checks)
    app.action(Action.CHECKS)(h.on_noop)
    app.action(Action.EDIT)(h.on_edit_or_reject)
    app.action(Action.REJECT)(h.on_edit_or_reject)
    app.action(Action.FULL_TEXT)(h.on_full_text)
    app.action(Action.GUIDELINES)(h.on_guidelines)
    app.action(Action.START)(h.on_start)
    app.action(Action.QUIZ_START)(h.on_quiz_start)
    app.view(View.EDIT)(h.on_edit_submit)
