"""Driver: plays the Slack side towards a Bolt endpoint, sending signed requests as Slack does.

Slash commands arrive form-encoded, interactivity as a form field `payload` holding JSON, events as
JSON; each is signed with `X-Slack-Signature` / `X-Slack-Request-Timestamp`. trigger_ids and
response_urls are minted on the `FakeSlack` the app talks to, so `views.open` and `respond()` work.

    driver = Driver(f"{base}/slack/events", SECRET, fake, user_id="U0ALICE", user_name="alice")
    driver.command("/label", "quiz demo")
    msg = fake.wait_for(lambda: fake.last_message(driver.dm))
    driver.click(msg, "label.accept")
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from bot.sandbox.fake_slack import FakeSlack

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# Element type -> (key in a state value / action, key of its initial value in the element).
_STATE_KEYS: dict[str, tuple[str, str]] = {
    "plain_text_input": ("value", "initial_value"),
    "number_input": ("value", "initial_value"),
    "email_text_input": ("value", "initial_value"),
    "url_text_input": ("value", "initial_value"),
    "rich_text_input": ("rich_text_value", "initial_value"),
    "static_select": ("selected_option", "initial_option"),
    "external_select": ("selected_option", "initial_option"),
    "radio_buttons": ("selected_option", "initial_option"),
    "checkboxes": ("selected_options", "initial_options"),
    "multi_static_select": ("selected_options", "initial_options"),
    "multi_external_select": ("selected_options", "initial_options"),
    "users_select": ("selected_user", "initial_user"),
    "multi_users_select": ("selected_users", "initial_users"),
    "conversations_select": ("selected_conversation", "initial_conversation"),
    "multi_conversations_select": ("selected_conversations", "initial_conversations"),
    "channels_select": ("selected_channel", "initial_channel"),
    "multi_channels_select": ("selected_channels", "initial_channels"),
    "datepicker": ("selected_date", "initial_date"),
    "timepicker": ("selected_time", "initial_time"),
    "datetimepicker": ("selected_date_time", "initial_date_time"),
}
_OPTION_KEYS = ("selected_option", "selected_options")
_LIST_KEYS = ("selected_options", "selected_users", "selected_conversations", "selected_channels")


def sign(secret: str, body: str | bytes, ts: int | str) -> str:
    """Slack's request signature: `v0=` + hex HMAC-SHA256 of `v0:{ts}:{body}` under the signing secret."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    base = f"v0:{ts}:".encode() + raw
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SlackUser:
    """Who the driver acts as."""

    id: str
    name: str
    team_id: str = "T0TEST"


@dataclass
class Reply:
    """The Bolt endpoint's HTTP answer. `view_errors`: what Slack would show after a view_submission
    whose answer it cannot apply (invalid view, push limit)."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    view_errors: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is empty or not JSON (e.g. a bare ack)."""
        try:
            return json.loads(self.body) if self.body.strip() else None
        except json.JSONDecodeError:
            return None


def _block_elements(block: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if block.get("type") == "actions":
        yield from (e for e in block.get("elements") or [] if isinstance(e, dict))
    for key in ("accessory", "element"):
        if isinstance(block.get(key), dict):
            yield block[key]


def _options_of(element: dict[str, Any]) -> list[dict[str, Any]]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    return options


def _resolve_option(element: dict[str, Any], option: Any) -> dict[str, Any]:
    if isinstance(option, dict):
        return copy.deepcopy(option)
    for candidate in _options_of(element):
        if candidate.get("value") == option:
            return copy.deepcopy(candidate)
    offered = [o.get("value") for o in _options_of(element)]
    raise AssertionError(f"option value {option!r} is not offered by {element.get('action_id')!r}: {offered}")


def _state_value(element: dict[str, Any], raw: Any = None, *, initial: bool = False) -> dict[str, Any]:
    """A `state.values[block_id][action_id]` object for `element` holding `raw` (or its initial value)."""
    etype = element.get("type", "")
    key, initial_key = _STATE_KEYS[etype]
    value = copy.deepcopy(element.get(initial_key)) if initial else raw
    if key == "selected_options":
        value = [_resolve_option(element, o) for o in (value or [])]
    elif key == "selected_option" and value is not None:
        value = _resolve_option(element, value)
    if value is None and key in _LIST_KEYS:
        value = []
    return {"type": etype, key: value}


def _initial_state(blocks: list[Any]) -> dict[str, dict[str, Any]]:
    values: dict[str, dict[str, Any]] = {}
    for block in blocks:
        if not isinstance(block, dict):
            continue
        for element in _block_elements(block):
            if element.get("type") in _STATE_KEYS and element.get("action_id"):
                values.setdefault(block.get("block_id", ""), {})[element["action_id"]] = _state_value(
                    element, initial=True
                )
    return values


def _find_element(blocks: list[Any], action_id: str, block_id: str | None) -> tuple[str, dict[str, Any]]:
    available: list[str] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        for element in _block_elements(block):
            found_id = element.get("action_id")
            if found_id:
                available.append(found_id)
            if found_id == action_id and (block_id is None or block.get("block_id") == block_id):
                return block.get("block_id", ""), element
    raise AssertionError(f"action_id {action_id!r} is not in these blocks; available: {available}")


def _is_view(target: dict[str, Any]) -> bool:
    return "ts" not in target and target.get("type") in ("modal", "home") and "id" in target


class Driver:
    """Sends what Slack would send for one user. `as_user()` gives a driver for another user.

    A driver remembers what its user changed in messages and modals (checkbox ticks, selections)
    so later clicks carry them in `state`; use one driver per thread.
    """

    def __init__(
        self,
        url: str,
        signing_secret: str,
        fake_slack: FakeSlack,
        team_id: str | None = None,
        user_id: str = "U0USER",
        user_name: str = "user",
        *,
        team_domain: str | None = None,
        api_app_id: str | None = None,
        verification_token: str = "legacy-verification-token",
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
        user: SlackUser | None = None,
    ) -> None:
        if user is not None:
            team_id, user_id, user_name = team_id or user.team_id, user.id, user.name
        self.url = url
        self.signing_secret = signing_secret
        self.fake = fake_slack
        self.team_id = team_id or fake_slack.team_id
        self.team_domain = team_domain or fake_slack.team_domain
        self.api_app_id = api_app_id or fake_slack.app_id
        self.verification_token = verification_token
        self.clock = clock
        self.timeout = timeout
        self.user = SlackUser(user_id, user_name, self.team_id)
        if fake_slack.user(user_id) is None:
            fake_slack.add_user(user_id, name=user_name)
        # Values the user changed in a message or view, keyed by container: survives later clicks.
        self._touched: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}

    @property
    def user_id(self) -> str:
        return self.user.id

    @property
    def dm(self) -> str:
        """The bot's DM channel with this user."""
        return self.fake.dm_channel(self.user.id)

    def as_user(self, user_id: str, user_name: str | None = None) -> Driver:
        return Driver(
            self.url,
            self.signing_secret,
            self.fake,
            self.team_id,
            user_id,
            user_name or user_id.lower(),
            team_domain=self.team_domain,
            api_app_id=self.api_app_id,
            verification_token=self.verification_token,
            clock=self.clock,
            timeout=self.timeout,
        )

    # ---- transport -------------------------------------------------------------------------------

    def post(
        self,
        body: str,
        content_type: str,
        headers: dict[str, str] | None = None,
        *,
        bad_signature: bool = False,
    ) -> Reply:
        """POST a raw body to the endpoint, signed (with a wrong secret if `bad_signature`)."""
        ts = str(int(self.clock()))
        secret = self.signing_secret + ("-not-the-secret" if bad_signature else "")
        all_headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sign(secret, body, ts),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            **(headers or {}),
        }
        request = urllib.request.Request(self.url, data=body.encode("utf-8"), headers=all_headers, method="POST")
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                return Reply(response.status, response.read().decode("utf-8"), dict(response.headers.items()))
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, exc.read().decode("utf-8", "replace"), dict(exc.headers.items()))

    def _interactive(self, payload: dict[str, Any], bad_signature: bool) -> Reply:
        body = urlencode({"payload": json.dumps(payload)})
        return self.post(body, "application/x-www-form-urlencoded", bad_signature=bad_signature)

    def _user_obj(self) -> dict[str, Any]:
        return {"id": self.user.id, "username": self.user.name, "name": self.user.name, "team_id": self.team_id}

    def _team_obj(self) -> dict[str, Any]:
        return {"id": self.team_id, "domain": self.team_domain}

    # ---- slash commands --------------------------------------------------------------------------

    def command(
        self, command: str, text: str = "", *, channel: str | None = None, bad_signature: bool = False
    ) -> Reply:
        """Send a slash command (from the user's DM with the bot unless `channel` is given)."""
        channel_id = self.fake.channel_id(channel) if channel else self.dm
        if channel_id is None:
            raise AssertionError(f"unknown channel {channel!r}; add it with FakeSlack.add_channel")
        info = self.fake.channel_info(channel_id) or {}
        fields = {
            "token": self.verification_token,
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel_id,
            "channel_name": "directmessage" if info.get("is_im") else info.get("name", channel_id),
            "user_id": self.user.id,
            "user_name": self.user.name,
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": self.fake.new_response_url(channel_id, self.user.id),
            "trigger_id": self.fake.new_trigger_id(self.user.id),
        }
        return self.post(urlencode(fields), "application/x-www-form-urlencoded", bad_signature=bad_signature)

    # ---- block actions ---------------------------------------------------------------------------

    def click(
        self,
        message_or_view: dict[str, Any],
        action_id: str,
        value: Any = None,
        selected_option: Any = None,
        selected_options: list[Any] | None = None,
        *,
        block_id: str | None = None,
        state: dict[str, dict[str, Any]] | None = None,
        bad_signature: bool = False,
    ) -> Reply:
        """The user uses the element `action_id` of a message (from FakeSlack) or a view.

        Buttons send their own `value` unless `value` is given (to forge one). Selects, radio buttons
        and overflows need `selected_option`, checkboxes and multi-selects `selected_options` (option
        dicts or just their values). `state` overrides the computed `state.values`.
        """
        target = message_or_view
        is_view = _is_view(target)
        blocks = target.get("blocks") or []
        found_block_id, element = _find_element(blocks, action_id, block_id)
        etype = element.get("type", "")
        action: dict[str, Any] = {
            "action_id": action_id,
            "block_id": found_block_id,
            "type": etype,
            "action_ts": f"{time.time():.6f}",
        }
        if etype == "button":
            action["text"] = copy.deepcopy(element.get("text"))
            button_value = value if value is not None else element.get("value")
            if button_value is not None:
                action["value"] = button_value
            if element.get("style"):
                action["style"] = element["style"]
        elif etype == "overflow":
            if selected_option is None:
                raise AssertionError(f"{action_id!r} is an overflow menu: pass selected_option")
            action["selected_option"] = _resolve_option(element, selected_option)
        elif etype in _STATE_KEYS:
            key = _STATE_KEYS[etype][0]
            raw = {"selected_option": selected_option, "selected_options": selected_options}.get(key, value)
            if raw is None and key in _OPTION_KEYS:
                raise AssertionError(f"{action_id!r} is a {etype}: pass {key}")
            action.update({k: v for k, v in _state_value(element, raw).items() if k != "type"})
            if element.get("placeholder"):
                action["placeholder"] = copy.deepcopy(element["placeholder"])
        elif value is not None:
            action["value"] = value

        container_key = ("view", target["id"]) if is_view else ("message", f"{target.get('channel')}:{target['ts']}")
        touched = self._touched.setdefault(container_key, {})
        if etype in _STATE_KEYS:
            touched.setdefault(found_block_id, {})[action_id] = _state_value(element, action.get(_STATE_KEYS[etype][0]))
        values = _initial_state(blocks)
        for bid, by_action in touched.items():
            values.setdefault(bid, {}).update(copy.deepcopy(by_action))
        if state is not None:
            values = copy.deepcopy(state)

        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user_obj(),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "trigger_id": self.fake.new_trigger_id(self.user.id),
            "team": self._team_obj(),
            "enterprise": None,
            "is_enterprise_install": False,
            "actions": [action],
        }
        if is_view:
            view = copy.deepcopy(target)
            view["state"] = {"values": values}
            payload["container"] = {"type": "view", "view_id": target["id"]}
            payload["view"] = view
        else:
            payload["state"] = {"values": values}
            channel_id = target.get("channel")
            if not channel_id:
                raise AssertionError("click() needs a message as FakeSlack returns it (with 'channel' and 'ts')")
            is_ephemeral = bool(target.get("is_ephemeral"))
            info = self.fake.channel_info(channel_id) or {}
            payload["container"] = {
                "type": "message",
                "message_ts": target["ts"],
                "channel_id": channel_id,
                "is_ephemeral": is_ephemeral,
            }
            payload["channel"] = {"id": channel_id, "name": "directmessage" if info.get("is_im") else info.get("name")}
            if not is_ephemeral:  # Slack leaves the message body out for ephemeral messages
                message = {k: copy.deepcopy(v) for k, v in target.items() if k not in ("channel", "is_ephemeral")}
                payload["message"] = message
            payload["response_url"] = self.fake.new_response_url(
                channel_id, self.user.id, message_ts=target["ts"], is_ephemeral=is_ephemeral
            )
        return self._interactive(payload, bad_signature)

    # ---- views -----------------------------------------------------------------------------------

    def submit_view(
        self,
        view: dict[str, Any],
        values: dict[str, dict[str, Any]] | None = None,
        *,
        bad_signature: bool = False,
    ) -> Reply:
        """Submit a modal. `values` maps block_id -> action_id -> a state value object, or just the raw
        value (a string for text inputs, an option value / list of values for selects and checkboxes).

        Inputs left out carry their initial values (None when empty), as Slack sends them. After a
        200 the app's answer is applied to the modal stack on FakeSlack (close, update, push, clear;
        `errors` keeps it open); the reply's `view_errors` lists what Slack would refuse.
        """
        blocks = view.get("blocks") or []
        state = _initial_state(blocks)
        for bid, by_action in self._touched.get(("view", view.get("id", "")), {}).items():
            state.setdefault(bid, {}).update(copy.deepcopy(by_action))
        for bid, by_action in (values or {}).items():
            for aid, raw in by_action.items():
                state.setdefault(bid, {})[aid] = self._submitted_value(blocks, bid, aid, raw)
        full_view = copy.deepcopy(view)
        full_view["state"] = {"values": state}
        payload: dict[str, Any] = {
            "type": "view_submission",
            "team": self._team_obj(),
            "user": self._user_obj(),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "trigger_id": self.fake.new_trigger_id(self.user.id),
            "view": full_view,
            "response_urls": [],
            "enterprise": None,
            "is_enterprise_install": False,
        }
        reply = self._interactive(payload, bad_signature)
        if reply.status == 200 and view.get("id"):
            answer = reply.json
            reply.view_errors = self.fake.apply_view_submission(
                self.user.id, view["id"], answer if isinstance(answer, dict) else None
            )
            self._touched.pop(("view", view["id"]), None)
        return reply

    def _submitted_value(self, blocks: list[Any], block_id: str, action_id: str, raw: Any) -> dict[str, Any]:
        try:
            _, element = _find_element(blocks, action_id, block_id)
        except AssertionError:
            if isinstance(raw, dict) and "type" in raw:
                return copy.deepcopy(raw)  # a forged field the view does not have
            raise
        if isinstance(raw, dict) and "type" in raw:
            return copy.deepcopy(raw)
        if isinstance(raw, dict):
            return {"type": element.get("type"), **copy.deepcopy(raw)}
        return _state_value(element, raw)

    def close_view(self, view: dict[str, Any], *, bad_signature: bool = False) -> Reply | None:
        """The user closes a modal; a `view_closed` payload is sent only if the view asked for it."""
        closed = self.fake.close_view(self.user.id, view["id"]) or view
        if not closed.get("notify_on_close"):
            return None
        payload = {
            "type": "view_closed",
            "team": self._team_obj(),
            "user": self._user_obj(),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "view": copy.deepcopy(closed),
            "is_cleared": bool(closed.get("clear_on_close")),
            "enterprise": None,
            "is_enterprise_install": False,
        }
        return self._interactive(payload, bad_signature)

    # ---- events ----------------------------------------------------------------------------------

    def event(
        self,
        event: dict[str, Any],
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        *,
        bad_signature: bool = False,
    ) -> Reply:
        """Deliver an Events API `event_callback`; `retry_num` adds Slack's retry headers."""
        now = self.clock()
        inner = copy.deepcopy(event)
        inner.setdefault("event_ts", f"{now:.6f}")
        body = {
            "token": self.verification_token,
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": inner,
            "type": "event_callback",
            "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(now),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.fake.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{secrets.token_hex(16)}",
        }
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}
        return self.post(json.dumps(body), "application/json", headers, bad_signature=bad_signature)

    def app_home_opened(self, tab: str = "home", **kwargs: Any) -> Reply:
        """The user opens the app's Home (or Messages) tab; kwargs go to `event()`."""
        event: dict[str, Any] = {"type": "app_home_opened", "user": self.user.id, "channel": self.dm, "tab": tab}
        home = self.fake.home(self.user.id)
        if tab == "home" and home is not None:
            event["view"] = home
        return self.event(event, **kwargs)
