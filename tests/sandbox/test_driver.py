"""The driver against a minimal real Bolt app served over HTTP, with FakeSlack as its Web API."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from bot.sandbox.driver import Driver, Reply, SlackUser, sign
from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.http import serve_wsgi

SECRET = "test-signing-secret"

QUESTION_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "block_id": "item", "text": {"type": "mrkdwn", "text": "Is this spam?"}},
    {
        "type": "actions",
        "block_id": "answer",
        "elements": [
            {"type": "button", "action_id": "t.yes", "text": {"type": "plain_text", "text": "Yes"}, "value": "a1"},
            {"type": "button", "action_id": "t.no", "text": {"type": "plain_text", "text": "No"}, "value": "a1"},
        ],
    },
    {
        "type": "actions",
        "block_id": "multi",
        "elements": [
            {
                "type": "checkboxes",
                "action_id": "t.checks",
                "options": [
                    {"text": {"type": "plain_text", "text": "A"}, "value": "a"},
                    {"text": {"type": "plain_text", "text": "B"}, "value": "b"},
                ],
                "initial_options": [{"text": {"type": "plain_text", "text": "A"}, "value": "a"}],
            },
            {"type": "button", "action_id": "t.submit", "text": {"type": "plain_text", "text": "Submit"}},
        ],
    },
]

MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "t.edit",
    "private_metadata": "assignment-7",
    "title": {"type": "plain_text", "text": "Edit"},
    "submit": {"type": "plain_text", "text": "Save"},
    "blocks": [
        {
            "type": "input",
            "block_id": "rewrite",
            "label": {"type": "plain_text", "text": "Rewrite"},
            "element": {"type": "plain_text_input", "action_id": "text", "initial_value": "draft"},
        }
    ],
}


HOME: dict[str, Any] = {
    "type": "home",
    "blocks": [
        {
            "type": "section",
            "block_id": "stats",
            "text": {"type": "mrkdwn", "text": "Hi"},
            "accessory": {
                "type": "static_select",
                "action_id": "t.project",
                "options": [
                    {"text": {"type": "plain_text", "text": "Intents"}, "value": "intents"},
                    {"text": {"type": "plain_text", "text": "Spans"}, "value": "spans"},
                ],
            },
        },
        {
            "type": "actions",
            "block_id": "go",
            "elements": [{"type": "button", "action_id": "t.home", "text": {"type": "plain_text", "text": "Start"}}],
        },
    ],
}


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def add(self, body: dict[str, Any], headers: dict[str, Any] | None = None) -> None:
        with self.lock:
            self.bodies.append(body)
            self.headers.append(headers or {})


def build_app(fake: FakeSlack, seen: Recorder) -> App:
    app = App(signing_secret=SECRET, client=WebClient(token=fake.bot_token, base_url=fake.api_url))

    @app.command("/label")
    def on_label(ack: Any, body: dict[str, Any], respond: Any, client: WebClient) -> None:
        ack()
        seen.add(body)
        if body["text"] == "edit":
            client.views_open(trigger_id=body["trigger_id"], view=MODAL)
            return
        respond(text=f"working on {body['text']!r}")
        client.chat_postMessage(channel=body["channel_id"], text="Question", blocks=QUESTION_BLOCKS)

    @app.action("t.yes")
    def on_yes(ack: Any, body: dict[str, Any], respond: Any) -> None:
        ack()
        seen.add(body)
        respond(replace_original=True, text="You chose: yes")

    @app.action("t.checks")
    @app.action("t.submit")
    def on_checks(ack: Any, body: dict[str, Any]) -> None:
        ack()
        seen.add(body)

    @app.view("t.edit")
    def on_edit(ack: Any, view: dict[str, Any]) -> None:
        text = view["state"]["values"]["rewrite"]["text"]["value"] or ""
        if not text.strip():
            ack(response_action="errors", errors={"rewrite": "Write something"})
            return
        ack()
        seen.add({"submitted": text, "private_metadata": view["private_metadata"]})

    @app.event("app_home_opened")
    def on_home(event: dict[str, Any], client: WebClient, body: dict[str, Any], request: Any) -> None:
        seen.add(body, dict(request.headers))
        client.views_publish(user_id=event["user"], view=HOME)

    @app.action("t.home")
    def on_home_button(ack: Any, body: dict[str, Any]) -> None:
        ack()
        seen.add(body)

    return app


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[FakeSlack, Recorder, str]]:
    seen = Recorder()
    with FakeSlack() as fake:
        app = build_app(fake, seen)
        with serve_wsgi(SlackRequestHandler(app)) as base_url:
            yield fake, seen, f"{base_url}/slack/events"
        assert fake.internal_errors == []


@pytest.fixture
def fake(stack: tuple[FakeSlack, Recorder, str]) -> FakeSlack:
    stack[0].reset()
    stack[1].bodies.clear()
    stack[1].headers.clear()
    return stack[0]


@pytest.fixture
def seen(stack: tuple[FakeSlack, Recorder, str], fake: FakeSlack) -> Recorder:
    return stack[1]


@pytest.fixture
def alice(stack: tuple[FakeSlack, Recorder, str], fake: FakeSlack) -> Driver:
    return Driver(stack[2], SECRET, fake, user_id="U0ALICE", user_name="alice")


def post_question(alice: Driver, fake: FakeSlack) -> dict[str, Any]:
    assert alice.command("/label", "demo").status == 200
    return fake.wait_for(lambda: fake.last_message(alice.dm))


def test_sign_matches_slack_sdk_verifier() -> None:
    body = "token=x&text=hello%20world"
    expected = SignatureVerifier(SECRET).generate_signature(timestamp="1700000000", body=body)
    assert sign(SECRET, body, 1700000000) == expected
    assert sign(SECRET, body.encode(), "1700000000") == expected
    manual = hmac.new(SECRET.encode(), b"v0:1700000000:" + body.encode(), hashlib.sha256).hexdigest()
    assert expected == f"v0={manual}"


def test_signed_command_reaches_listener_which_responds_and_posts(alice: Driver, fake: FakeSlack, seen: Recorder):
    reply = alice.command("/label", "quiz demo")

    assert reply.status == 200
    fake.wait_for(lambda: fake.responses and fake.messages(alice.dm))
    body = seen.bodies[0]
    assert body["command"] == "/label" and body["text"] == "quiz demo"
    assert body["user_id"] == "U0ALICE" and body["user_name"] == "alice" and body["team_id"] == fake.team_id
    assert body["channel_id"] == alice.dm and body["channel_name"] == "directmessage"
    assert body["response_url"].startswith(fake.base_url + "/response/")
    # respond() went through the response_url: an ephemeral for alice in her DM
    assert fake.responses[0]["status"] == 200
    assert [m["text"] for m in fake.ephemerals("U0ALICE")] == ["working on 'quiz demo'"]
    # chat.postMessage was recorded and the message is in the DM history
    assert fake.calls_to("chat.postMessage")[0]["channel"] == alice.dm
    assert fake.last_message(alice.dm)["text"] == "Question"


@pytest.mark.parametrize("kind", ["command", "click", "event", "submit"])
def test_bad_signature_is_rejected_with_401(alice: Driver, fake: FakeSlack, seen: Recorder, kind: str):
    message = {"channel": alice.dm, "ts": "1700000000.000100", "blocks": QUESTION_BLOCKS}
    if kind == "command":
        reply = alice.command("/label", "x", bad_signature=True)
    elif kind == "click":
        reply = alice.click(message, "t.yes", bad_signature=True)
    elif kind == "event":
        reply = alice.app_home_opened(bad_signature=True)
    else:
        reply = alice.submit_view({**MODAL, "id": "V1"}, bad_signature=True)
    assert reply.status == 401
    assert seen.bodies == []
    assert fake.calls_to("chat.postMessage") == []


def test_click_sends_block_actions_like_slack(alice: Driver, fake: FakeSlack, seen: Recorder):
    message = post_question(alice, fake)

    reply = alice.click(message, "t.yes")

    assert reply.status == 200
    fake.wait_for(lambda: fake.last_message(alice.dm)["text"] == "You chose: yes")
    body = seen.bodies[-1]
    assert body["type"] == "block_actions"
    assert body["user"] == {"id": "U0ALICE", "username": "alice", "name": "alice", "team_id": fake.team_id}
    assert body["container"] == {
        "type": "message",
        "message_ts": message["ts"],
        "channel_id": alice.dm,
        "is_ephemeral": False,
    }
    assert body["channel"]["id"] == alice.dm
    assert body["message"]["ts"] == message["ts"] and body["message"]["blocks"] == message["blocks"]
    assert "channel" not in body["message"]
    action = body["actions"][0]
    assert (action["action_id"], action["block_id"], action["type"], action["value"]) == (
        "t.yes",
        "answer",
        "button",
        "a1",
    )
    assert body["trigger_id"] and body["response_url"]
    # respond(replace_original=True) replaced the clicked message in place
    updated = fake.last_message(alice.dm)
    assert updated["ts"] == message["ts"] and updated["blocks"] == []


def test_click_on_missing_action_fails_loudly(alice: Driver, fake: FakeSlack):
    message = post_question(alice, fake)
    with pytest.raises(AssertionError, match=r"'t\.maybe' is not in these blocks.*t\.yes"):
        alice.click(message, "t.maybe")


def test_checkbox_changes_are_carried_into_later_clicks(alice: Driver, fake: FakeSlack, seen: Recorder):
    message = post_question(alice, fake)

    alice.click(message, "t.checks", selected_options=["b"])
    alice.click(message, "t.submit")

    fake.wait_for(lambda: len(seen.bodies) == 3)
    checks = next(b for b in seen.bodies if b.get("actions", [{}])[0].get("action_id") == "t.checks")
    assert checks["actions"][0]["selected_options"] == [{"text": {"type": "plain_text", "text": "B"}, "value": "b"}]
    submit = next(b for b in seen.bodies if b.get("actions", [{}])[0].get("action_id") == "t.submit")
    assert submit["state"]["values"]["multi"]["t.checks"] == {
        "type": "checkboxes",
        "selected_options": [{"text": {"type": "plain_text", "text": "B"}, "value": "b"}],
    }


def test_untouched_checkboxes_carry_their_initial_options(alice: Driver, fake: FakeSlack, seen: Recorder):
    message = post_question(alice, fake)
    alice.click(message, "t.submit")
    body = fake.wait_for(lambda: next((b for b in seen.bodies if b.get("type") == "block_actions"), None))
    assert [o["value"] for o in body["state"]["values"]["multi"]["t.checks"]["selected_options"]] == ["a"]


def test_forged_button_value_is_sent_as_given(alice: Driver, fake: FakeSlack, seen: Recorder):
    message = post_question(alice, fake)
    alice.click(message, "t.yes", value="someone-elses-assignment")
    body = fake.wait_for(lambda: next((b for b in seen.bodies if b.get("type") == "block_actions"), None))
    assert body["actions"][0]["value"] == "someone-elses-assignment"


def test_modal_open_validation_errors_then_close_on_submit(alice: Driver, fake: FakeSlack, seen: Recorder):
    alice.command("/label", "edit")
    stack = fake.wait_for(lambda: fake.views_open("U0ALICE"))
    view = stack[-1]
    assert view["callback_id"] == "t.edit" and view["private_metadata"] == "assignment-7"

    rejected = alice.submit_view(view, {"rewrite": {"text": "   "}})
    assert rejected.status == 200
    assert rejected.json == {"response_action": "errors", "errors": {"rewrite": "Write something"}}
    assert len(fake.views_open("U0ALICE")) == 1

    accepted = alice.submit_view(view, {"rewrite": {"text": "a better sentence"}})
    assert accepted.status == 200 and accepted.json is None and accepted.view_errors == []
    assert fake.views_open("U0ALICE") == []
    assert {"submitted": "a better sentence", "private_metadata": "assignment-7"} in seen.bodies


def test_untouched_inputs_are_submitted_with_initial_values(alice: Driver, fake: FakeSlack, seen: Recorder):
    alice.command("/label", "edit")
    view = fake.wait_for(lambda: fake.views_open("U0ALICE"))[-1]
    assert alice.submit_view(view).status == 200
    assert {"submitted": "draft", "private_metadata": "assignment-7"} in seen.bodies


def test_event_delivery_with_retry_headers(alice: Driver, fake: FakeSlack, seen: Recorder):
    reply = alice.app_home_opened(event_id="Ev0001", retry_num=1)

    assert reply.status == 200
    home = fake.wait_for(lambda: fake.home("U0ALICE"))
    assert home["type"] == "home"
    body, headers = seen.bodies[0], seen.headers[0]
    assert body["type"] == "event_callback" and body["event_id"] == "Ev0001"
    assert body["event"]["type"] == "app_home_opened" and body["event"]["user"] == "U0ALICE"
    assert body["authorizations"][0]["user_id"] == fake.bot_user_id
    assert headers["x-slack-retry-num"] == ["1"] and headers["x-slack-retry-reason"] == ["http_timeout"]


def test_as_user_and_slack_user(alice: Driver, fake: FakeSlack):
    bob = alice.as_user("U0BOB", "bob")
    assert bob.user == SlackUser("U0BOB", "bob", fake.team_id)
    assert fake.user("U0BOB")["name"] == "bob"
    assert bob.dm != alice.dm


def test_reply_json_is_none_for_plain_bodies() -> None:
    assert Reply(200, "").json is None
    assert Reply(200, "ok").json is None
    assert Reply(200, json.dumps({"a": 1})).json == {"a": 1}


def test_click_in_a_home_tab_sends_the_view_with_its_state(alice: Driver, fake: FakeSlack, seen: Recorder):
    alice.app_home_opened()
    home = fake.wait_for(lambda: fake.home("U0ALICE"))
    alice.click(home, "t.project", selected_option="spans")  # no listener: Bolt still acks
    alice.click(home, "t.home")

    body = fake.wait_for(lambda: next((b for b in seen.bodies if b.get("type") == "block_actions"), None))
    assert body["container"] == {"type": "view", "view_id": home["id"]}
    assert "message" not in body and "response_url" not in body and "state" not in body
    assert body["view"]["id"] == home["id"] and body["view"]["hash"] == home["hash"]
    assert body["view"]["state"]["values"]["stats"]["t.project"]["selected_option"]["value"] == "spans"
    with pytest.raises(AssertionError, match="not offered"):
        alice.click(home, "t.project", selected_option="nope")
