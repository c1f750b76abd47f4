"""FakeSlack answers the real slack_sdk.WebClient the way Slack does."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from bot.sandbox.fake_slack import FakeSlack, check_message_blocks, check_view


@pytest.fixture(scope="module")
def server() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_user("U0ALICE", "alice", tz="Europe/Paris", is_admin=True)
        fake.add_user("U0BOB", "bob")
        yield fake
        assert fake.internal_errors == []


@pytest.fixture
def fake(server: FakeSlack) -> FakeSlack:
    server.reset()
    return server


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=fake.bot_token, base_url=fake.api_url)


def error_of(call: Any) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as info:
        call()
    return info.value.response.data


def text(value: str, kind: str = "plain_text") -> dict[str, Any]:
    return {"type": kind, "text": value}


def button(action_id: str = "b", label: str = "Go", **extra: Any) -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": text(label), **extra}


def option(value: str, label: str | None = None) -> dict[str, Any]:
    return {"text": text(label or value), "value": value}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---- auth and plumbing --------------------------------------------------------------------------


def test_token_is_checked_on_every_method(fake: FakeSlack, client: WebClient):
    assert error_of(lambda: WebClient(base_url=fake.api_url).auth_test())["error"] == "not_authed"
    assert (
        error_of(lambda: WebClient(token="xoxb-wrong", base_url=fake.api_url).users_info(user="U0ALICE"))["error"]
        == "invalid_auth"
    )
    auth = client.auth_test()
    assert (auth["team_id"], auth["user_id"], auth["bot_id"]) == ("T0TEST", "U0BOT", "B0BOT")


def test_unknown_method(client: WebClient):
    assert error_of(lambda: client.api_call("labels.frobnicate"))["error"] == "unknown_method"


def test_calls_are_recorded_in_order_without_the_token(fake: FakeSlack, client: WebClient):
    client.auth_test()
    client.users_info(user="U0BOB")
    assert [name for name, _ in fake.calls] == ["auth.test", "users.info"]
    assert fake.calls_to("users.info") == [{"user": "U0BOB"}]


def test_form_encoded_bodies_and_json_strings_are_understood(fake: FakeSlack, client: WebClient):
    channel = fake.dm_channel("U0ALICE")
    blocks = [{"type": "section", "text": text("hi", "mrkdwn")}]
    client.api_call("chat.postMessage", params={"channel": channel, "text": "t", "blocks": json.dumps(blocks)})
    assert fake.last_message(channel)["blocks"][0]["text"] == text("hi", "mrkdwn")
    legacy = WebClient(base_url=fake.api_url)  # token in the form body, as old clients send it
    assert legacy.api_call("auth.test", params={"token": fake.bot_token})["ok"]


def test_users_info(client: WebClient):
    user = client.users_info(user="U0ALICE")["user"]
    assert (user["id"], user["name"], user["tz"], user["is_admin"]) == ("U0ALICE", "alice", "Europe/Paris", True)
    assert user["tz_offset"] in (3600, 7200)
    assert error_of(lambda: client.users_info(user="U0NOBODY"))["error"] == "user_not_found"


# ---- conversations and messages ------------------------------------------------------------------


def test_dm_channels_are_stable_per_user(fake: FakeSlack, client: WebClient):
    first = client.conversations_open(users="U0ALICE")["channel"]["id"]
    again = client.conversations_open(users=["U0ALICE"])
    other = client.conversations_open(users="U0BOB")["channel"]["id"]
    assert first.startswith("D") and again["channel"]["id"] == first and again["already_open"]
    assert other != first and fake.dm_channel("U0BOB") == other
    assert error_of(lambda: client.conversations_open(users="U0NOBODY"))["error"] == "user_not_found"


def test_post_update_delete(fake: FakeSlack, client: WebClient):
    channel = fake.dm_channel("U0ALICE")
    first = client.chat_postMessage(channel=channel, text="one")
    second = client.chat_postMessage(channel="U0ALICE", text="two")  # a user id posts to the DM
    assert first["ts"] == "1700000000.000100"
    assert second["channel"] == channel and float(second["ts"]) > float(first["ts"])
    assert first["message"]["user"] == "U0BOT" and first["message"]["bot_id"] == "B0BOT"

    updated = client.chat_update(channel=channel, ts=first["ts"], text="one, edited")
    assert updated["ts"] == first["ts"] and updated["text"] == "one, edited"
    client.chat_delete(channel=channel, ts=second["ts"])

    history = fake.messages(channel)
    assert [(m["ts"], m["text"]) for m in history] == [(first["ts"], "one, edited")]
    assert history[0]["edited"]["user"] == "U0BOT"
    assert error_of(lambda: client.chat_update(channel=channel, ts="1.2", text="x"))["error"] == "message_not_found"
    assert error_of(lambda: client.chat_delete(channel=channel, ts=second["ts"]))["error"] == "message_not_found"
    assert error_of(lambda: client.api_call("chat.postMessage", json={"channel": channel}))["error"] == "no_text"


def test_update_keeps_blocks_unless_given(fake: FakeSlack, client: WebClient):
    channel = fake.dm_channel("U0ALICE")
    blocks = [{"type": "section", "block_id": "s", "text": text("x", "mrkdwn")}]
    ts = client.chat_postMessage(channel=channel, text="t", blocks=blocks)["ts"]
    client.chat_update(channel=channel, ts=ts, text="t2")
    assert fake.message(channel, ts)["blocks"] == blocks
    client.chat_update(channel=channel, ts=ts, text="t3", blocks=[])
    assert fake.message(channel, ts)["blocks"] == []


def test_channels_registry(fake: FakeSlack, client: WebClient):
    labeling = fake.add_channel("labeling")
    outside = fake.add_channel("#elsewhere", bot_member=False)
    assert fake.add_channel("labeling") == labeling and fake.channel_id("#labeling") == labeling

    assert client.chat_postMessage(channel="#labeling", text="report")["channel"] == labeling
    assert fake.last_message("labeling")["text"] == "report"
    assert error_of(lambda: client.chat_postMessage(channel=outside, text="x"))["error"] == "not_in_channel"
    assert error_of(lambda: client.chat_postMessage(channel="C0MISSING", text="x"))["error"] == "channel_not_found"


def test_ephemerals_are_kept_per_user(fake: FakeSlack, client: WebClient):
    team = fake.add_channel("team", members=["U0ALICE"])
    reply = client.chat_postEphemeral(channel=team, user="U0ALICE", text="only you")
    assert reply["message_ts"]
    assert [(m["text"], m["channel"], m["is_ephemeral"]) for m in fake.ephemerals("U0ALICE")] == [
        ("only you", team, True)
    ]
    assert fake.messages(team) == []
    failure = error_of(lambda: client.chat_postEphemeral(channel=team, user="U0BOB", text="x"))
    assert failure["error"] == "user_not_in_channel"


def test_long_message_text_is_cut_not_refused(fake: FakeSlack, client: WebClient):
    channel = fake.dm_channel("U0ALICE")
    client.chat_postMessage(channel=channel, text="x" * 40_500)
    assert len(fake.last_message(channel)["text"]) == 40_000


def test_slack_generates_missing_block_and_action_ids(fake: FakeSlack, client: WebClient):
    channel = fake.dm_channel("U0ALICE")
    blocks = [{"type": "actions", "elements": [{"type": "button", "text": text("Go")}]}]
    posted = client.chat_postMessage(channel=channel, text="t", blocks=blocks)["message"]["blocks"][0]
    assert posted["block_id"] and posted["elements"][0]["action_id"]


def test_wait_for_wakes_on_requests_and_times_out(fake: FakeSlack, client: WebClient):
    channel = fake.dm_channel("U0ALICE")
    timer = threading.Timer(0.05, lambda: client.chat_postMessage(channel=channel, text="later"))
    timer.start()
    assert fake.wait_for(lambda: fake.last_message(channel), timeout=2)["text"] == "later"
    timer.join()
    with pytest.raises(AssertionError, match=r"within 0\.1s"):
        fake.wait_for(lambda: fake.messages("C0NONE"), timeout=0.1)


def test_reset_forgets_state_but_keeps_users(fake: FakeSlack, client: WebClient):
    client.chat_postMessage(channel="U0ALICE", text="x")
    fake.reset()
    assert fake.messages("U0ALICE") == [] and fake.calls == []
    assert client.users_info(user="U0ALICE")["ok"]


# ---- Block Kit validation -------------------------------------------------------------------------


def _actions(elements: list[Any]) -> dict[str, Any]:
    return {"type": "actions", "elements": elements}


INVALID_BLOCKS = [
    pytest.param(
        [{"type": "section", "text": text("x" * 3001, "mrkdwn")}],
        "[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]",
        id="section-text",
    ),
    pytest.param(
        [{"type": "section", "fields": [text("f", "mrkdwn")] * 11}],
        "[ERROR] no more than 10 items allowed [json-pointer:/blocks/0/fields]",
        id="fields-count",
    ),
    pytest.param(
        [{"type": "section", "fields": [text("f" * 2001, "mrkdwn")]}],
        "[ERROR] must be less than 2001 characters [json-pointer:/blocks/0/fields/0/text]",
        id="field-length",
    ),
    pytest.param(
        [{"type": "header", "text": text("h" * 151)}],
        "[ERROR] must be less than 151 characters [json-pointer:/blocks/0/text/text]",
        id="header-length",
    ),
    pytest.param(
        [{"type": "header", "text": text("h", "mrkdwn")}],
        "[ERROR] must be one of: plain_text [json-pointer:/blocks/0/text/type]",
        id="header-plain-only",
    ),
    pytest.param(
        [_actions([button(label="b" * 76)])],
        "[ERROR] must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]",
        id="button-text",
    ),
    pytest.param(
        [_actions([{**button(), "text": text("Go", "mrkdwn")}])],
        "[ERROR] must be one of: plain_text [json-pointer:/blocks/0/elements/0/text/type]",
        id="button-text-plain-only",
    ),
    pytest.param(
        [_actions([button(value="v" * 2001)])],
        "[ERROR] must be less than 2001 characters [json-pointer:/blocks/0/elements/0/value]",
        id="button-value",
    ),
    pytest.param(
        [_actions([button(url="https://x/" + "u" * 3000)])],
        "[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/elements/0/url]",
        id="button-url",
    ),
    pytest.param(
        [_actions([button(action_id="a" * 256)])],
        "[ERROR] must be less than 256 characters [json-pointer:/blocks/0/elements/0/action_id]",
        id="action-id",
    ),
    pytest.param(
        [{"type": "divider", "block_id": "d" * 256}],
        "[ERROR] must be less than 256 characters [json-pointer:/blocks/0/block_id]",
        id="block-id",
    ),
    pytest.param(
        [{"type": "divider", "block_id": "same"}, {"type": "divider", "block_id": "same"}],
        "[ERROR] duplicate block_id: same [json-pointer:/blocks/1/block_id]",
        id="duplicate-block-id",
    ),
    pytest.param(
        [_actions([button(f"b{i}") for i in range(26)])],
        "[ERROR] no more than 25 items allowed [json-pointer:/blocks/0/elements]",
        id="actions-elements",
    ),
    pytest.param(
        [{"type": "context", "elements": [text("c", "mrkdwn")] * 11}],
        "[ERROR] no more than 10 items allowed [json-pointer:/blocks/0/elements]",
        id="context-elements",
    ),
    pytest.param(
        [_actions([{"type": "static_select", "action_id": "s", "options": [option(str(i)) for i in range(101)]}])],
        "[ERROR] no more than 100 items allowed [json-pointer:/blocks/0/elements/0/options]",
        id="select-options",
    ),
    pytest.param(
        [_actions([{"type": "checkboxes", "action_id": "c", "options": [option(str(i)) for i in range(11)]}])],
        "[ERROR] no more than 10 items allowed [json-pointer:/blocks/0/elements/0/options]",
        id="checkbox-options",
    ),
    pytest.param(
        [_actions([{"type": "radio_buttons", "action_id": "r", "options": [option(str(i)) for i in range(11)]}])],
        "[ERROR] no more than 10 items allowed [json-pointer:/blocks/0/elements/0/options]",
        id="radio-options",
    ),
    pytest.param(
        [_actions([{"type": "static_select", "action_id": "s", "options": [option("v", "t" * 76)]}])],
        "[ERROR] must be less than 76 characters [json-pointer:/blocks/0/elements/0/options/0/text/text]",
        id="option-text",
    ),
    pytest.param(
        [_actions([{"type": "static_select", "action_id": "s", "options": [option("v" * 151, "t")]}])],
        "[ERROR] must be less than 151 characters [json-pointer:/blocks/0/elements/0/options/0/value]",
        id="option-value",
    ),
    pytest.param(
        [
            {
                "type": "input",
                "label": text("L"),
                "element": {"type": "plain_text_input", "action_id": "t", "max_length": 3001},
            }
        ],
        "[ERROR] must be an integer between 0 and 3000 [json-pointer:/blocks/0/element/max_length]",
        id="input-max-length",
    ),
    pytest.param(
        [{"type": "section", "text": {"type": "markdown", "text": "x"}}],
        "[ERROR] must be a valid enum value [json-pointer:/blocks/0/text/type]",
        id="text-type",
    ),
    pytest.param(
        [{"type": "section", "text": text("", "mrkdwn")}],
        "[ERROR] must be more than 0 characters [json-pointer:/blocks/0/text/text]",
        id="empty-text",
    ),
    pytest.param(
        [{"type": "section", "text": {"type": "mrkdwn", "text": "x", "emoji": False}}],
        "[ERROR] invalid additional property: emoji [json-pointer:/blocks/0/text]",
        id="emoji-on-mrkdwn",
    ),
    pytest.param(
        [{"type": "divider"}] * 51,
        "[ERROR] no more than 50 items allowed [json-pointer:/blocks]",
        id="blocks-per-message",
    ),
    pytest.param(
        [{"type": "carousel"}],
        "[ERROR] unsupported type: carousel [json-pointer:/blocks/0/type]",
        id="unknown-block",
    ),
    pytest.param(
        [
            _actions(
                [
                    {
                        "type": "static_select",
                        "action_id": "s",
                        "options": [option("a")],
                        "initial_option": option("zzz"),
                    }
                ]
            )
        ],
        "[ERROR] must match one of the provided options [json-pointer:/blocks/0/elements/0/initial_option]",
        id="initial-option",
    ),
]


@pytest.mark.parametrize(("blocks", "message"), INVALID_BLOCKS)
def test_invalid_blocks_are_refused_with_pointers(fake: FakeSlack, client: WebClient, blocks: Any, message: str):
    data = error_of(lambda: client.chat_postMessage(channel="U0ALICE", text="t", blocks=blocks))
    assert data["error"] == "invalid_blocks"
    assert message in data["response_metadata"]["messages"]
    assert message.removeprefix("[ERROR] ") in data["errors"]
    assert fake.messages("U0ALICE") == []


def test_valid_labeling_message_passes() -> None:
    blocks = [
        {"type": "header", "text": text("h" * 150)},
        {
            "type": "section",
            "block_id": "item",
            "text": {"type": "plain_text", "text": "x" * 3000, "emoji": False},
            "accessory": button("more", "Show full text"),
        },
        {"type": "section", "fields": [text("f" * 2000, "mrkdwn")] * 10},
        _actions([button(f"b{i}", "b" * 75, value="v" * 2000) for i in range(25)]),
        {"type": "context", "elements": [text("c", "mrkdwn")] * 10},
        _actions([{"type": "static_select", "action_id": "s", "options": [option(str(i)) for i in range(100)]}]),
        _actions([{"type": "checkboxes", "action_id": "c", "options": [option(str(i)) for i in range(10)]}]),
    ]
    assert check_message_blocks(blocks) == []


# ---- views -----------------------------------------------------------------------------------------


def modal(**overrides: Any) -> dict[str, Any]:
    view = {
        "type": "modal",
        "callback_id": "edit",
        "title": text("Edit"),
        "submit": text("Save"),
        "close": text("Cancel"),
        "blocks": [
            {
                "type": "input",
                "block_id": "b",
                "label": text("L"),
                "element": {"type": "plain_text_input", "action_id": "t"},
            }
        ],
    }
    view.update(overrides)
    return view


INVALID_VIEWS = [
    pytest.param(
        modal(title=text("t" * 25)),
        "[ERROR] must be less than 25 characters [json-pointer:/view/title/text]",
        id="title",
    ),
    pytest.param(
        modal(submit=text("s" * 25)),
        "[ERROR] must be less than 25 characters [json-pointer:/view/submit/text]",
        id="submit",
    ),
    pytest.param(
        modal(close=text("c" * 25)),
        "[ERROR] must be less than 25 characters [json-pointer:/view/close/text]",
        id="close",
    ),
    pytest.param(
        modal(private_metadata="p" * 3001),
        "[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]",
        id="private-metadata",
    ),
    pytest.param(
        modal(callback_id="c" * 256),
        "[ERROR] must be less than 256 characters [json-pointer:/view/callback_id]",
        id="callback-id",
    ),
    pytest.param(
        modal(blocks=[{"type": "divider"}] * 101),
        "[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]",
        id="blocks-per-modal",
    ),
    pytest.param(
        modal(title=text("Edit", "mrkdwn")),
        "[ERROR] must be one of: plain_text [json-pointer:/view/title/type]",
        id="title-plain-only",
    ),
]


@pytest.mark.parametrize(("view", "message"), INVALID_VIEWS)
def test_invalid_views_are_refused(fake: FakeSlack, client: WebClient, view: dict[str, Any], message: str):
    data = error_of(lambda: client.views_open(trigger_id=fake.new_trigger_id("U0ALICE"), view=view))
    assert data["error"] == "invalid_arguments"
    assert message in data["response_metadata"]["messages"]
    assert fake.views_open("U0ALICE") == []


def test_a_modal_of_100_blocks_and_a_home_of_100_blocks_pass() -> None:
    assert check_view(modal(blocks=[{"type": "divider"}] * 100)) == []
    assert check_view({"type": "home", "blocks": [{"type": "divider"}] * 100}) == []


def test_view_too_large(fake: FakeSlack, client: WebClient):
    blocks = [{"type": "section", "text": text("x" * 2900, "mrkdwn")} for _ in range(90)]
    data = error_of(lambda: client.views_open(trigger_id=fake.new_trigger_id("U0ALICE"), view=modal(blocks=blocks)))
    assert data["error"] == "view_too_large"


def test_trigger_ids_are_single_use_and_expire_after_3_seconds() -> None:
    clock = Clock()
    with FakeSlack(clock=clock) as fake:
        client = WebClient(token=fake.bot_token, base_url=fake.api_url)
        trigger = fake.new_trigger_id("U0BOT")
        view = client.views_open(trigger_id=trigger, view=modal())["view"]
        assert view["id"].startswith("V") and view["hash"] and view["callback_id"] == "edit"
        assert fake.views_open("U0BOT")[0]["id"] == view["id"]
        assert error_of(lambda: client.views_open(trigger_id=trigger, view=modal()))["error"] == "expired_trigger_id"
        assert error_of(lambda: client.views_open(trigger_id="123.456.abc", view=modal()))["error"] == (
            "expired_trigger_id"
        )
        late = fake.new_trigger_id("U0BOT")
        clock.now += 3.5
        assert error_of(lambda: client.views_open(trigger_id=late, view=modal()))["error"] == "expired_trigger_id"


def test_views_update_by_id_or_external_id_with_hash(fake: FakeSlack, client: WebClient):
    opened = client.views_open(trigger_id=fake.new_trigger_id("U0ALICE"), view=modal(external_id="ext-1"))["view"]

    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal(title=text("Loaded")))["view"]
    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    assert fake.views_open("U0ALICE")[-1]["title"] == text("Loaded")

    stale = error_of(lambda: client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal()))
    assert stale["error"] == "hash_conflict"

    client.views_open(trigger_id=fake.new_trigger_id("U0BOB"), view=modal(external_id="ext-2"))
    by_external = client.views_update(external_id="ext-2", view=modal(external_id="ext-2", title=text("Again")))
    assert by_external["view"]["external_id"] == "ext-2"
    assert fake.views_open("U0BOB")[-1]["title"] == text("Again")
    assert error_of(lambda: client.views_update(view_id="V0NONE", view=modal()))["error"] == "not_found"
    duplicate = error_of(
        lambda: client.views_open(trigger_id=fake.new_trigger_id("U0BOB"), view=modal(external_id="ext-1"))
    )
    assert duplicate["error"] == "duplicate_external_id"


def test_views_push_stops_at_three(fake: FakeSlack, client: WebClient):
    client.views_open(trigger_id=fake.new_trigger_id("U0ALICE"), view=modal())
    client.views_push(trigger_id=fake.new_trigger_id("U0ALICE"), view=modal(title=text("Two")))
    third = client.views_push(trigger_id=fake.new_trigger_id("U0ALICE"), view=modal(title=text("Three")))["view"]
    assert third["previous_view_id"] == fake.views_open("U0ALICE")[1]["id"]
    data = error_of(lambda: client.views_push(trigger_id=fake.new_trigger_id("U0ALICE"), view=modal()))
    assert data["error"] == "push_limit_reached"
    assert [v["title"]["text"] for v in fake.views_open("U0ALICE")] == ["Edit", "Two", "Three"]


def test_view_submission_answers_change_the_stack(fake: FakeSlack, client: WebClient):
    root = client.views_open(trigger_id=fake.new_trigger_id("U0ALICE"), view=modal())["view"]
    assert fake.apply_view_submission("U0ALICE", root["id"], {"response_action": "errors", "errors": {}}) == []
    assert len(fake.views_open("U0ALICE")) == 1
    fake.apply_view_submission("U0ALICE", root["id"], {"response_action": "update", "view": modal(title=text("U"))})
    assert fake.views_open("U0ALICE")[0]["title"] == text("U")
    fake.apply_view_submission("U0ALICE", root["id"], {"response_action": "push", "view": modal(title=text("P"))})
    assert len(fake.views_open("U0ALICE")) == 2
    bad = fake.apply_view_submission(
        "U0ALICE", root["id"], {"response_action": "update", "view": modal(title=text("t" * 30))}
    )
    assert bad[0] == "invalid_arguments"
    fake.apply_view_submission("U0ALICE", root["id"], {"response_action": "clear"})
    assert fake.views_open("U0ALICE") == []


def test_home_tab_per_user(fake: FakeSlack, client: WebClient):
    home = {"type": "home", "blocks": [{"type": "section", "text": text("Your stats", "mrkdwn")}]}
    first = client.views_publish(user_id="U0ALICE", view=home)["view"]
    second = client.views_publish(user_id="U0ALICE", view=home, hash=first["hash"])["view"]
    assert second["id"] == first["id"] and fake.home("U0ALICE")["hash"] == second["hash"]
    assert fake.home("U0BOB") is None
    assert error_of(lambda: client.views_publish(user_id="U0ALICE", view=home, hash=first["hash"]))["error"] == (
        "hash_conflict"
    )
    assert error_of(lambda: client.views_publish(user_id="U0ALICE", view=modal()))["error"] == "invalid_arguments"


# ---- files -----------------------------------------------------------------------------------------


def test_files_upload_v2_round_trip(fake: FakeSlack, client: WebClient):
    reports = fake.add_channel("reports")
    result = client.files_upload_v2(
        channel=reports,
        content=b"\x89PNG fake chart",
        filename="agreement.png",
        title="Agreement",
        initial_comment="Daily report",
    )
    assert result["file"]["title"] == "Agreement"
    [stored] = fake.files(reports)
    assert stored["content"] == b"\x89PNG fake chart" and stored["name"] == "agreement.png"
    assert stored["initial_comment"] == "Daily report" and stored["channels"] == [reports]
    share = fake.last_message(reports)
    assert share["subtype"] == "file_share" and share["text"] == "Daily report"
    assert share["files"][0]["id"] == stored["id"]
    assert [name for name, _ in fake.calls] == ["files.getUploadURLExternal", "files.completeUploadExternal"]


def test_complete_upload_needs_the_bytes(fake: FakeSlack, client: WebClient):
    file_id = client.files_getUploadURLExternal(filename="a.csv", length=3)["file_id"]
    data = error_of(lambda: client.files_completeUploadExternal(files=[{"id": file_id, "title": "A"}]))
    assert data["error"] == "file_not_found"


# ---- fault injection -------------------------------------------------------------------------------


def test_rate_limit_answer_has_retry_after(fake: FakeSlack, client: WebClient):
    fake.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="U0ALICE", text="x")
    assert info.value.response.status_code == 429
    assert info.value.response.data == {"ok": False, "error": "ratelimited"}
    assert info.value.response.headers["Retry-After"] == "7"
    assert client.chat_postMessage(channel="U0ALICE", text="x")["ok"]


def test_retry_handler_gets_through_a_rate_limit(fake: FakeSlack):
    client = WebClient(token=fake.bot_token, base_url=fake.api_url)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    fake.fail_next("chat.postMessage", status=429, retry_after=0)
    assert client.chat_postMessage(channel="U0ALICE", text="x")["ok"]
    assert len(fake.calls_to("chat.postMessage")) == 2
    assert len(fake.messages("U0ALICE")) == 1


def test_server_errors_and_arbitrary_errors(fake: FakeSlack, client: WebClient):
    fake.fail_next("users.info", status=500)
    fake.fail_next("*", error="team_access_not_granted", times=2)
    with pytest.raises(SlackApiError) as info:
        client.users_info(user="U0ALICE")
    assert info.value.response.status_code == 500
    assert error_of(client.auth_test)["error"] == "team_access_not_granted"
    assert error_of(client.auth_test)["error"] == "team_access_not_granted"
    assert client.auth_test()["ok"]


# ---- response_url ----------------------------------------------------------------------------------


def test_response_url_ephemeral_in_channel_replace_and_delete(fake: FakeSlack, client: WebClient):
    channel = fake.dm_channel("U0ALICE")
    ts = client.chat_postMessage(channel=channel, text="question", blocks=[{"type": "divider"}])["ts"]
    url = fake.new_response_url(channel, "U0ALICE", message_ts=ts)
    hook = WebhookClient(url)

    assert hook.send(text="just for you").status_code == 200
    assert [m["text"] for m in fake.ephemerals("U0ALICE")] == ["just for you"]
    hook.send(text="for everyone", response_type="in_channel")
    assert fake.last_message(channel)["text"] == "for everyone"
    hook.send(text="answered", replace_original=True)
    assert fake.message(channel, ts)["text"] == "answered" and fake.message(channel, ts)["blocks"] == []
    hook.send(text="", delete_original=True)
    assert fake.message(channel, ts) is None
    assert hook.send(text="fifth use").status_code == 200
    refused = hook.send(text="sixth use")
    assert refused.status_code == 404 and refused.body == "used_url"
    assert [r["status"] for r in fake.responses] == [200] * 5


def test_response_url_replaces_an_ephemeral(fake: FakeSlack, client: WebClient):
    channel = fake.dm_channel("U0ALICE")
    ts = client.chat_postEphemeral(channel=channel, user="U0ALICE", text="pick one")["message_ts"]
    url = fake.new_response_url(channel, "U0ALICE", message_ts=ts, is_ephemeral=True)
    WebhookClient(url).send(text="picked", replace_original=True)
    assert [m["text"] for m in fake.ephemerals("U0ALICE")] == ["picked"]


def test_response_url_refuses_invalid_blocks(fake: FakeSlack):
    url = fake.new_response_url(fake.dm_channel("U0ALICE"), "U0ALICE")
    response = WebhookClient(url).send(text="x", blocks=[{"type": "header", "text": text("h" * 200)}])
    assert response.status_code == 400 and response.body == "invalid_blocks"
    assert fake.responses[0]["error"] == "invalid_blocks" and fake.ephemerals("U0ALICE") == []


def test_unknown_paths_and_response_tokens_are_404(fake: FakeSlack):
    for path in ("/nope", "/response/unknown"):
        request = urllib.request.Request(fake.base_url + path, data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 404


def test_scopes_header_conversations_info_and_list_and_app_tokens() -> None:
    with FakeSlack(bot_token="xoxb-s", app_token="xapp-s") as fake:
        client = WebClient(token="xoxb-s", base_url=fake.api_url)
        general = fake.add_channel("general")
        fake.add_channel("random", bot_member=False)
        fake.add_channel("secret", is_private=True, bot_member=False)
        team = fake.add_channel("team", is_private=True)
        answer = client.auth_test()
        assert answer.headers["x-oauth-scopes"].split(",") == list(fake.scopes)
        info = client.conversations_info(channel=general)["channel"]
        assert (info["name"], info["is_member"], info["is_private"]) == ("general", True, False)
        names, cursor = [], None
        while True:
            page = client.conversations_list(types="public_channel,private_channel", limit=1, cursor=cursor)
            names += [c["name"] for c in page["channels"]]
            cursor = page["response_metadata"]["next_cursor"]
            if not cursor:
                break
        assert names == ["general", "random", "team"]  # a private channel without the bot is invisible
        with pytest.raises(SlackApiError, match="channel_not_found"):
            client.conversations_info(channel="#general")  # an id, not a name
        fake.scopes = [s for s in fake.scopes if s != "groups:read"]
        with pytest.raises(SlackApiError) as missing:
            client.conversations_info(channel=team)
        assert (missing.value.response["error"], missing.value.response["needed"]) == ("missing_scope", "groups:read")
        assert client.apps_connections_open(app_token="xapp-s")["url"].startswith("wss://")
        with pytest.raises(SlackApiError, match="not_allowed_token_type"):
            client.apps_connections_open(app_token="xoxb-s")
        with pytest.raises(SlackApiError, match="not_allowed_token_type"):
            WebClient(token="xapp-s", base_url=fake.api_url).auth_test()
