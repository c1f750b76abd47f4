"""FakeSlack: a Slack Web API stand-in speaking HTTP on 127.0.0.1.

Hand `fake.api_url` to `slack_sdk.WebClient(base_url=...)`; the real client's requests (JSON or
form-encoded bodies, `Authorization: Bearer`) are answered the way Slack answers them, including the
errors labelbot must cope with (`invalid_blocks`, `expired_trigger_id`, `hash_conflict`, rate limits...).
The same server serves `response_url`s (`/response/<token>`) and file upload URLs (`/upload/<file_id>`).

Tests and the demo read the state through the inspection API (`messages`, `ephemerals`, `views_open`,
`home`, `files`, `responses`, `calls`) and wait for asynchronous listener effects with `wait_for`.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.sandbox.http import FakeHTTPServer, Request, Response

T = TypeVar("T")

# Limits (see /work/shared/slack-notes.md).
MAX_MESSAGE_BLOCKS = 50
MAX_SURFACE_BLOCKS = 100  # modal or Home tab
MAX_VIEW_BYTES = 250_000
MAX_MESSAGE_TEXT = 40_000
MAX_VIEW_STACK = 3  # a modal plus two pushed views
TRIGGER_TTL_SECONDS = 3.0
#: The bot scopes a fresh install has (those of app_manifest.yml); tests remove some to play a stale install.
DEFAULT_SCOPES = ("chat:write", "im:write", "commands", "files:write", "users:read", "channels:read", "groups:read")
#: Methods that take the app-level (xapp-) token, not the bot token.
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
RESPONSE_URL_MAX_USES = 5
_TS_EPOCH = 1_700_000_000

_TEXT_TYPES = ("plain_text", "mrkdwn")
_PLAIN = ("plain_text",)
_ELEMENT_TYPES = frozenset(
    {
        "button",
        "checkboxes",
        "radio_buttons",
        "overflow",
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
        "multi_static_select",
        "multi_external_select",
        "multi_users_select",
        "multi_conversations_select",
        "multi_channels_select",
        "plain_text_input",
        "number_input",
        "email_text_input",
        "url_text_input",
        "rich_text_input",
        "datepicker",
        "timepicker",
        "datetimepicker",
        "file_input",
        "image",
        "workflow_button",
    }
)
_FILE_ID_RE = re.compile(r"^F[A-Z0-9]{8,}$")
_NOT_IN_INPUT = frozenset({"button", "overflow", "image", "workflow_button"})
_ONLY_IN_INPUT = frozenset({"plain_text_input", "number_input", "email_text_input", "url_text_input", "file_input"})


class SlackError(Exception):
    """A Web API error answer: `{"ok": false, "error": error, **extra}`."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


# --------------------------------------------------------------------------------------------------
# Block Kit validation
# --------------------------------------------------------------------------------------------------


class BlockKitChecker:
    """Collects Slack-style validation messages: `[ERROR] <what> [json-pointer:<where>]`."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def _err(self, pointer: str, message: str) -> None:
        self.errors.append(f"[ERROR] {message} [json-pointer:{pointer}]")

    # -- primitives --------------------------------------------------------------------------------

    def _str(
        self,
        obj: dict[str, Any],
        key: str,
        ptr: str,
        limit: int | None,
        *,
        required: bool = False,
        allow_empty: bool = False,
    ) -> None:
        if key not in obj or obj[key] is None:
            if required:
                self._err(ptr, f"missing required field: {key}")
            return
        value = obj[key]
        where = f"{ptr}/{key}"
        if not isinstance(value, str):
            self._err(where, "must provide a string")
        elif not value and not allow_empty:
            self._err(where, "must be more than 0 characters")
        elif limit is not None and len(value) > limit:
            self._err(where, f"must be less than {limit + 1} characters")

    def _text(
        self,
        obj: dict[str, Any],
        key: str,
        ptr: str,
        limit: int,
        *,
        types: tuple[str, ...] = _TEXT_TYPES,
        required: bool = True,
    ) -> None:
        if key not in obj or obj[key] is None:
            if required:
                self._err(ptr, f"missing required field: {key}")
            return
        self.text_object(obj[key], f"{ptr}/{key}", limit, types=types)

    def text_object(self, value: Any, ptr: str, limit: int, *, types: tuple[str, ...] = _TEXT_TYPES) -> None:
        if not isinstance(value, dict):
            self._err(ptr, "must provide an object")
            return
        ttype = value.get("type")
        if ttype not in _TEXT_TYPES:
            self._err(f"{ptr}/type", "must be a valid enum value")
            return
        if ttype not in types:
            self._err(f"{ptr}/type", f"must be one of: {', '.join(types)}")
        if ttype == "mrkdwn" and "emoji" in value:
            self._err(ptr, "invalid additional property: emoji")
        if ttype == "plain_text" and "verbatim" in value:
            self._err(ptr, "invalid additional property: verbatim")
        self._str(value, "text", ptr, limit, required=True)

    def _array(self, value: Any, ptr: str, limit: int, minimum: int = 0) -> list[Any]:
        if not isinstance(value, list):
            self._err(ptr, "must provide an array")
            return []
        if len(value) > limit:
            self._err(ptr, f"no more than {limit} items allowed")
        if len(value) < minimum:
            self._err(ptr, f"must provide at least {minimum} items")
        return value

    # -- blocks ------------------------------------------------------------------------------------

    def blocks(self, blocks: Any, ptr: str, limit: int) -> None:
        seen: set[str] = set()
        for i, block in enumerate(self._array(blocks, ptr, limit)):
            bptr = f"{ptr}/{i}"
            if not isinstance(block, dict):
                self._err(bptr, "must provide an object")
                continue
            block_id = block.get("block_id")
            if block_id is not None:
                self._str(block, "block_id", bptr, 255)
                if isinstance(block_id, str):
                    if block_id in seen:
                        self._err(f"{bptr}/block_id", f"duplicate block_id: {block_id}")
                    seen.add(block_id)
            btype = block.get("type")
            check = _BLOCK_CHECKS.get(btype) if isinstance(btype, str) else None
            if check is None:
                self._err(f"{bptr}/type", f"unsupported type: {btype}")
            else:
                check(self, block, bptr)

    def _section(self, block: dict[str, Any], ptr: str) -> None:
        if "text" not in block and "fields" not in block:
            self._err(ptr, "must provide either text or fields")
        self._text(block, "text", ptr, 3000, required=False)
        if "fields" in block:
            for j, item in enumerate(self._array(block["fields"], f"{ptr}/fields", 10, 1)):
                self.text_object(item, f"{ptr}/fields/{j}", 2000)
        if "accessory" in block:
            self.element(block["accessory"], f"{ptr}/accessory", "accessory")

    def _actions(self, block: dict[str, Any], ptr: str) -> None:
        seen: set[str] = set()
        for j, element in enumerate(self._array(block.get("elements"), f"{ptr}/elements", 25, 1)):
            self.element(element, f"{ptr}/elements/{j}", "actions")
            action_id = element.get("action_id") if isinstance(element, dict) else None
            if isinstance(action_id, str):
                if action_id in seen:
                    self._err(f"{ptr}/elements/{j}/action_id", f"duplicate action_id: {action_id}")
                seen.add(action_id)

    def _context(self, block: dict[str, Any], ptr: str) -> None:
        for j, element in enumerate(self._array(block.get("elements"), f"{ptr}/elements", 10, 1)):
            eptr = f"{ptr}/elements/{j}"
            if isinstance(element, dict) and element.get("type") == "image":
                self._image_element(element, eptr)
            else:
                self.text_object(element, eptr, 3000)

    def _header(self, block: dict[str, Any], ptr: str) -> None:
        self._text(block, "text", ptr, 150, types=_PLAIN)

    def _divider(self, block: dict[str, Any], ptr: str) -> None:
        return None

    def _input(self, block: dict[str, Any], ptr: str) -> None:
        self._text(block, "label", ptr, 2000, types=_PLAIN)
        self._text(block, "hint", ptr, 2000, types=_PLAIN, required=False)
        if "element" not in block:
            self._err(ptr, "missing required field: element")
        else:
            self.element(block["element"], f"{ptr}/element", "input")

    def _image_block(self, block: dict[str, Any], ptr: str) -> None:
        self._image_source(block, ptr)
        self._str(block, "alt_text", ptr, 2000, required=True)
        self._text(block, "title", ptr, 2000, types=_PLAIN, required=False)

    def _image_source(self, obj: dict[str, Any], ptr: str) -> None:
        """An image block or element shows exactly one of `image_url` (a public URL Slack fetches) and
        `slack_file` (an uploaded file, by `id` or by `url`, exactly one of them)."""
        has_url, has_file = "image_url" in obj, "slack_file" in obj
        if has_url == has_file:
            self._err(ptr, "must provide either image_url or slack_file" if not has_url
                      else "must provide only one of image_url or slack_file")
            return
        if has_url:
            self._str(obj, "image_url", ptr, 3000, required=True)
            url = obj.get("image_url")
            if isinstance(url, str) and url and not re.match(r"^https?://[^\s/]+", url):
                self._err(f"{ptr}/image_url", "must be a valid URL")
            return
        ref, fptr = obj["slack_file"], f"{ptr}/slack_file"
        if not isinstance(ref, dict):
            self._err(fptr, "must provide an object")
            return
        if ("id" in ref) == ("url" in ref):
            both = "id" in ref
            self._err(fptr, "must provide only one of id or url" if both else "must provide either id or url")
            return
        unknown = sorted(set(ref) - {"id", "url"})
        if unknown:
            self._err(fptr, f"invalid additional property: {unknown[0]}")
        if "id" in ref:
            if not isinstance(ref["id"], str) or not _FILE_ID_RE.match(ref["id"]):
                self._err(f"{fptr}/id", "input must match regex pattern: ^[F][A-Z0-9]{8,}$")
        else:
            self._str(ref, "url", fptr, 3000, required=True)

    def _markdown(self, block: dict[str, Any], ptr: str) -> None:
        self._str(block, "text", ptr, 12000, required=True)

    def _opaque(self, block: dict[str, Any], ptr: str) -> None:
        return None  # rich_text, file, video, table: not checked here

    # -- elements ----------------------------------------------------------------------------------

    def element(self, element: Any, ptr: str, where: str) -> None:
        if not isinstance(element, dict):
            self._err(ptr, "must provide an object")
            return
        etype = element.get("type")
        if etype not in _ELEMENT_TYPES:
            self._err(f"{ptr}/type", f"unsupported type: {etype}")
            return
        if (where == "input" and etype in _NOT_IN_INPUT) or (where != "input" and etype in _ONLY_IN_INPUT):
            self._err(f"{ptr}/type", f"{etype} is not allowed here")
        if etype == "image":
            self._image_element(element, ptr)
            return
        self._str(element, "action_id", ptr, 255)
        self._text(element, "placeholder", ptr, 150, types=_PLAIN, required=False)
        if "confirm" in element:
            self._confirm(element["confirm"], f"{ptr}/confirm")
        if etype == "button":
            self._text(element, "text", ptr, 75, types=_PLAIN)
            self._str(element, "value", ptr, 2000)
            self._str(element, "url", ptr, 3000)
            if "style" in element and element["style"] not in ("primary", "danger"):
                self._err(f"{ptr}/style", "must be a valid enum value")
        elif etype in ("static_select", "multi_static_select"):
            self._select_options(element, ptr)
        elif etype in ("checkboxes", "radio_buttons"):
            options = self._array(element.get("options"), f"{ptr}/options", 10, 1)
            for j, option in enumerate(options):
                self.option(option, f"{ptr}/options/{j}", _TEXT_TYPES)
            self._initial(element, ptr, options)
        elif etype == "overflow":
            options = self._array(element.get("options"), f"{ptr}/options", 5, 1)
            for j, option in enumerate(options):
                self.option(option, f"{ptr}/options/{j}", _PLAIN)
        elif etype == "plain_text_input":
            for key in ("max_length", "min_length"):
                value = element.get(key)
                if value is not None and (not isinstance(value, int) or not 0 <= value <= 3000):
                    self._err(f"{ptr}/{key}", "must be an integer between 0 and 3000")
            if "initial_value" in element:
                self._str(element, "initial_value", ptr, 3000, allow_empty=True)

    def _image_element(self, element: dict[str, Any], ptr: str) -> None:
        self._image_source(element, ptr)
        self._str(element, "alt_text", ptr, 2000, required=True)

    def _confirm(self, confirm: Any, ptr: str) -> None:
        if not isinstance(confirm, dict):
            self._err(ptr, "must provide an object")
            return
        self._text(confirm, "title", ptr, 100, types=_PLAIN)
        self._text(confirm, "text", ptr, 300)
        self._text(confirm, "confirm", ptr, 30, types=_PLAIN)
        self._text(confirm, "deny", ptr, 30, types=_PLAIN)

    def option(self, option: Any, ptr: str, text_types: tuple[str, ...]) -> None:
        if not isinstance(option, dict):
            self._err(ptr, "must provide an object")
            return
        self._text(option, "text", ptr, 75, types=text_types)
        self._str(option, "value", ptr, 150, required=True)
        self._text(option, "description", ptr, 75, types=text_types, required=False)
        self._str(option, "url", ptr, 3000)

    def _select_options(self, element: dict[str, Any], ptr: str) -> None:
        options: list[Any] = []
        if "options" in element:
            options = self._array(element["options"], f"{ptr}/options", 100, 1)
            for j, option in enumerate(options):
                self.option(option, f"{ptr}/options/{j}", _PLAIN)
        elif "option_groups" in element:
            for g, group in enumerate(self._array(element["option_groups"], f"{ptr}/option_groups", 100, 1)):
                gptr = f"{ptr}/option_groups/{g}"
                if not isinstance(group, dict):
                    self._err(gptr, "must provide an object")
                    continue
                self._text(group, "label", gptr, 75, types=_PLAIN)
                group_options = self._array(group.get("options"), f"{gptr}/options", 100, 1)
                for j, option in enumerate(group_options):
                    self.option(option, f"{gptr}/options/{j}", _PLAIN)
                options.extend(group_options)
        else:
            self._err(ptr, "must provide either options or option_groups")
        self._initial(element, ptr, options)

    def _initial(self, element: dict[str, Any], ptr: str, options: list[Any]) -> None:
        values = {o.get("value") for o in options if isinstance(o, dict)}
        chosen: list[tuple[str, Any]] = []
        if "initial_option" in element:
            chosen.append(("initial_option", element["initial_option"]))
        for j, option in enumerate(element.get("initial_options") or []):
            chosen.append((f"initial_options/{j}", option))
        for key, option in chosen:
            if not isinstance(option, dict) or option.get("value") not in values:
                self._err(f"{ptr}/{key}", "must match one of the provided options")

    # -- surfaces ----------------------------------------------------------------------------------

    def message(self, blocks: Any, ptr: str = "/blocks") -> list[str]:
        self.blocks(blocks, ptr, MAX_MESSAGE_BLOCKS)
        return self.errors

    def view(self, view: Any, allowed_types: tuple[str, ...], ptr: str = "/view") -> list[str]:
        if not isinstance(view, dict):
            self._err(ptr, "must provide an object")
            return self.errors
        vtype = view.get("type")
        if vtype not in allowed_types:
            self._err(f"{ptr}/type", f"must be one of: {', '.join(allowed_types)}")
        if vtype == "modal":
            self._text(view, "title", ptr, 24, types=_PLAIN)
            self._text(view, "submit", ptr, 24, types=_PLAIN, required=False)
            self._text(view, "close", ptr, 24, types=_PLAIN, required=False)
            has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in view.get("blocks") or [])
            if has_input and not view.get("submit"):
                self._err(ptr, "must provide submit when input blocks are present")
        if "blocks" not in view:
            self._err(ptr, "missing required field: blocks")
        else:
            self.blocks(view["blocks"], f"{ptr}/blocks", MAX_SURFACE_BLOCKS)
        self._str(view, "private_metadata", ptr, 3000, allow_empty=True)
        self._str(view, "callback_id", ptr, 255, allow_empty=True)
        self._str(view, "external_id", ptr, 255, allow_empty=True)
        return self.errors


_BLOCK_CHECKS: dict[str, Callable[[BlockKitChecker, dict[str, Any], str], None]] = {
    "section": BlockKitChecker._section,
    "actions": BlockKitChecker._actions,
    "context": BlockKitChecker._context,
    "header": BlockKitChecker._header,
    "divider": BlockKitChecker._divider,
    "input": BlockKitChecker._input,
    "image": BlockKitChecker._image_block,
    "markdown": BlockKitChecker._markdown,
    "rich_text": BlockKitChecker._opaque,
    "file": BlockKitChecker._opaque,
    "video": BlockKitChecker._opaque,
    "table": BlockKitChecker._opaque,
}


def check_message_blocks(blocks: Any) -> list[str]:
    """Slack's `invalid_blocks` messages for a message's `blocks` (empty list = valid)."""
    return BlockKitChecker().message(blocks)


def check_view(view: Any, allowed_types: tuple[str, ...] = ("modal", "home")) -> list[str]:
    """Slack's `invalid_arguments` messages for a view (empty list = valid)."""
    return BlockKitChecker().view(view, allowed_types)


_ID_ALPHABET = string.ascii_letters + string.digits


def _slack_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(5))


def _with_generated_ids(blocks: list[Any]) -> list[Any]:
    """Copy of `blocks` where, as Slack does, missing block_ids and action_ids are generated."""
    out = copy.deepcopy(blocks)
    for block in out:
        if not isinstance(block, dict):
            continue
        block.setdefault("block_id", _slack_id())
        elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                elements.append(block[key])
        for element in elements:
            if isinstance(element, dict) and element.get("type") != "image":
                element.setdefault("action_id", _slack_id())
    return out


# --------------------------------------------------------------------------------------------------
# State records
# --------------------------------------------------------------------------------------------------


@dataclass
class _Channel:
    id: str
    name: str
    is_im: bool = False
    is_mpim: bool = False
    is_private: bool = False
    user: str | None = None  # the other party of a DM
    members: set[str] | None = None  # None: everyone in the workspace
    bot_member: bool = True

    def has_member(self, user_id: str) -> bool:
        return self.members is None or user_id in self.members


@dataclass
class _Message:
    channel: str
    ts: str
    user: str
    text: str
    blocks: list[Any]
    attachments: list[Any] | None = None
    thread_ts: str | None = None
    subtype: str | None = None
    files: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None
    edited: dict[str, str] | None = None
    ephemeral_user: str | None = None
    deleted: bool = False


@dataclass
class _Trigger:
    user: str
    minted_at: float
    used: bool = False


@dataclass
class _ResponseUrl:
    channel: str
    user: str
    message_ts: str | None
    is_ephemeral: bool
    uses: int = 0


@dataclass
class _Fault:
    error: str
    status: int
    retry_after: float | None
    remaining: int


@dataclass
class _Upload:
    file_id: str
    filename: str
    length: int
    alt_txt: str | None
    snippet_type: str | None
    data: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_FORM_JSON_KEYS = ("blocks", "attachments", "view", "files", "metadata")
_ID_RE = re.compile(r"^[CGD][A-Z0-9]{2,}$")


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


class FakeSlack(FakeHTTPServer):
    """A Slack Web API stand-in. See the module docstring; all state is guarded by one lock."""

    def __init__(
        self,
        bot_token: str = "xoxb-test",
        team_id: str = "T0TEST",
        team_name: str = "Test Team",
        bot_user_id: str = "U0BOT",
        *,
        team_domain: str = "test-team",
        bot_id: str = "B0BOT",
        bot_name: str = "labelbot",
        app_id: str = "A0TEST",
        clock: Callable[[], float] = time.monotonic,
        trigger_ttl: float = TRIGGER_TTL_SECONDS,
        app_token: str = "xapp-test",
        scopes: tuple[str, ...] | list[str] = DEFAULT_SCOPES,
    ) -> None:
        super().__init__()
        self.bot_token = bot_token
        self.app_token = app_token
        #: The bot token's granted scopes: sent as `x-oauth-scopes` on every answer; conversations.info
        #: and conversations.list answer `missing_scope` without channels:read / groups:read.
        self.scopes: list[str] = list(scopes)
        self.team_id = team_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.bot_name = bot_name
        self.app_id = app_id
        self.clock = clock
        self.trigger_ttl = trigger_ttl
        self._cond = threading.Condition(threading.RLock())
        self._users: dict[str, dict[str, Any]] = {}
        self._channels: dict[str, _Channel] = {}
        self._dms: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._init_state()
        self.add_user(bot_user_id, name=bot_name, is_bot=True)

    def _init_state(self) -> None:
        self._ts_counter = itertools.count(1)
        self._calls: list[tuple[str, dict[str, Any]]] = []
        self._history: dict[str, list[_Message]] = {}
        self._ephemerals: dict[str, list[_Message]] = {}
        self._stacks: dict[str, list[dict[str, Any]]] = {}
        self._homes: dict[str, dict[str, Any]] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._responses: list[dict[str, Any]] = []
        self._uploads: dict[str, _Upload] = {}
        self._files: list[dict[str, Any]] = []
        self._unfetchable: set[str] = set()
        self._upload_posts: list[dict[str, Any]] = []
        self._faults: dict[str, deque[_Fault]] = {}
        self.internal_errors.clear()

    def reset(self) -> None:
        """Forget messages, views, files, calls and pending faults; keep users and channels."""
        with self._cond:
            self._init_state()
            self._cond.notify_all()

    @property
    def api_url(self) -> str:
        """`http://127.0.0.1:PORT/api/`, for `WebClient(base_url=...)`."""
        return f"{self.base_url}/api/"

    # ---- registries ------------------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        name: str | None = None,
        *,
        real_name: str | None = None,
        tz: str = "UTC",
        is_admin: bool = False,
        is_owner: bool = False,
        is_bot: bool = False,
        deleted: bool = False,
        email: str | None = None,
    ) -> dict[str, Any]:
        """Register (or replace) a workspace member; returns the `users.info` user object."""
        name = name or user_id.lower()
        offset, label = 0, tz
        try:
            now = datetime.now(ZoneInfo(tz))
            delta = now.utcoffset()
            offset, label = int(delta.total_seconds()) if delta else 0, now.tzname() or tz
        except (ZoneInfoNotFoundError, ValueError):
            pass
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": deleted,
            "real_name": real_name or name,
            "tz": tz,
            "tz_label": label,
            "tz_offset": offset,
            "is_admin": is_admin,
            "is_owner": is_owner,
            "is_bot": is_bot,
            "is_app_user": False,
            "profile": {
                "real_name": real_name or name,
                "display_name": name,
                "email": email or f"{name}@example.com",
                "team": self.team_id,
            },
        }
        with self._cond:
            self._users[user_id] = user
        return copy.deepcopy(user)

    def user(self, user_id: str) -> dict[str, Any] | None:
        with self._cond:
            found = self._users.get(user_id)
            return copy.deepcopy(found) if found else None

    def add_channel(
        self,
        name_or_id: str,
        *,
        members: list[str] | set[str] | None = None,
        bot_member: bool = True,
        is_private: bool = False,
    ) -> str:
        """Register a channel by name (`"labeling"`, `"#labeling"`) or id (`"C0LABEL"`); returns its id.

        `members=None` means every workspace member is in it; `bot_member=False` makes the bot an
        outsider, so posting there answers `not_in_channel`.
        """
        with self._cond:
            if _ID_RE.match(name_or_id):
                channel_id, name = name_or_id, name_or_id.lower()
            else:
                name = name_or_id.lstrip("#")
                existing = self._find_channel_by_name(name)
                if existing:
                    return existing.id
                channel_id = f"{'G' if is_private else 'C'}{next(self._ids):08d}"
            self._channels[channel_id] = _Channel(
                id=channel_id,
                name=name,
                is_private=is_private,
                members=set(members) if members is not None else None,
                bot_member=bot_member,
            )
            return channel_id

    def _find_channel_by_name(self, name: str) -> _Channel | None:
        return next((c for c in self._channels.values() if c.name == name and not c.is_im), None)

    def dm_channel(self, user_id: str) -> str:
        """The id of the bot's DM with `user_id` (stable per user; created on first use)."""
        with self._cond:
            channel_id = self._dms.get(user_id)
            if channel_id is None:
                channel_id = f"D{next(self._ids):08d}"
                self._dms[user_id] = channel_id
                self._channels[channel_id] = _Channel(
                    id=channel_id,
                    name=channel_id.lower(),
                    is_im=True,
                    user=user_id,
                    members={user_id, self.bot_user_id},
                )
            return channel_id

    def channel_info(self, ref: str) -> dict[str, Any] | None:
        """{id, name, is_im, is_mpim, is_private, user, members, bot_member} of a channel, or None."""
        with self._cond:
            channel_id = self.channel_id(ref)
            if channel_id is None:
                return None
            c = self._channels[channel_id]
            return {
                "id": c.id,
                "name": c.name,
                "is_im": c.is_im,
                "is_mpim": c.is_mpim,
                "is_private": c.is_private,
                "user": c.user,
                "members": sorted(c.members) if c.members is not None else None,
                "bot_member": c.bot_member,
            }

    def channel_id(self, ref: str) -> str | None:
        """Resolve a channel id, `name` or `#name` to an id (None if unknown)."""
        with self._cond:
            if ref in self._channels:
                return ref
            found = self._find_channel_by_name(ref.lstrip("#"))
            return found.id if found else None

    # ---- minting for the driver ------------------------------------------------------------------

    def new_trigger_id(self, user_id: str) -> str:
        """Mint and register a trigger id for `user_id` (usable once, within `trigger_ttl` seconds)."""
        trigger_id = f"{next(self._ids)}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"
        with self._cond:
            self._triggers[trigger_id] = _Trigger(user=user_id, minted_at=self.clock())
        return trigger_id

    def new_response_url(
        self, channel: str, user: str, message_ts: str | None = None, is_ephemeral: bool = False
    ) -> str:
        """Mint a response_url for `user` in `channel`; `message_ts` is the message it came from."""
        token = secrets.token_hex(12)
        with self._cond:
            self._response_urls[token] = _ResponseUrl(channel, user, message_ts, is_ephemeral)
        return f"{self.base_url}/response/{token}"

    # ---- fault injection -------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        error: str | None = None,
        status: int = 200,
        retry_after: float | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls of `method` (`"*"`: any method) fail.

        status 429 answers `ratelimited` with a `Retry-After` header (default 1 s), status 500 an
        `internal_error`; with status 200 the given `error` string is answered as Slack would.
        `method="upload"` fails the POST of a file's bytes to its upload URL (between
        `files.getUploadURLExternal` and `files.completeUploadExternal`) with `status`.
        """
        if error is None:
            error = {429: "ratelimited", 500: "internal_error"}.get(status, "fatal_error")
        with self._cond:
            self._faults.setdefault(method, deque()).append(_Fault(error, status, retry_after, times))

    def _take_fault(self, method: str) -> _Fault | None:
        for key in (method, "*"):
            queue = self._faults.get(key)
            if queue:
                fault = queue[0]
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue.popleft()
                return fault
        return None

    # ---- inspection ------------------------------------------------------------------------------

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """Every Web API call received, in order: (method, params without the token)."""
        with self._cond:
            return copy.deepcopy(self._calls)

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """The channel's history (oldest first) with edits applied and deletions removed."""
        with self._cond:
            channel_id = self.channel_id(channel) or self._dms.get(channel) or channel
            return [self._public(m) for m in self._history.get(channel_id, []) if not m.deleted]

    def last_message(self, channel: str) -> dict[str, Any] | None:
        history = self.messages(channel)
        return history[-1] if history else None

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        with self._cond:
            found = self._lookup(channel, ts)
            return self._public(found) if found and not found.deleted else None

    def ephemerals(self, user_id: str, channel: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages shown to `user_id` (oldest first), replacements applied."""
        with self._cond:
            return [
                self._public(m)
                for m in self._ephemerals.get(user_id, [])
                if not m.deleted and (channel is None or m.channel == channel)
            ]

    def views_open(self, user_id: str) -> list[dict[str, Any]]:
        """The user's modal stack, bottom first (the last item is the visible view)."""
        with self._cond:
            return copy.deepcopy(self._stacks.get(user_id, []))

    def view(self, view_id: str) -> dict[str, Any] | None:
        with self._cond:
            found = self._find_view(view_id=view_id)
            return copy.deepcopy(found[2]) if found else None

    def home(self, user_id: str) -> dict[str, Any] | None:
        with self._cond:
            found = self._homes.get(user_id)
            return copy.deepcopy(found) if found else None

    def files(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Shared files (dicts with id, name, title, content bytes, channels, initial_comment...)."""
        with self._cond:
            channel_id = self.channel_id(channel) if channel else None
            return [copy.deepcopy(f) for f in self._files if channel is None or channel_id in f["channels"]]

    @property
    def upload_posts(self) -> list[dict[str, Any]]:
        """Every POST to an upload URL (answered or failed): {file_id, length}."""
        with self._cond:
            return copy.deepcopy(self._upload_posts)

    def file(self, file_id: str) -> dict[str, Any] | None:
        """A file uploaded and completed (shared or not), with its `content`; None if unknown."""
        with self._cond:
            found = next((f for f in self._files if f["id"] == file_id), None)
            return copy.deepcopy(found) if found else None

    def delete_file(self, file_id: str) -> None:
        """A workspace admin deletes the file: image blocks that show it become invalid."""
        with self._cond:
            for f in self._files:
                if f["id"] == file_id:
                    f["deleted"] = True

    def fail_image_url(self, url: str) -> None:
        """Slack cannot download this image_url (not public, gone): messages showing it are refused."""
        with self._cond:
            self._unfetchable.add(url)

    @property
    def responses(self) -> list[dict[str, Any]]:
        """Every POST to a response_url: {channel, user, message_ts, payload, status, error}."""
        with self._cond:
            return copy.deepcopy(self._responses)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Wait until `predicate()` is truthy (re-checked after every request served); return it.

        The predicate runs with the fake's lock held: let it read this fake's state only (no HTTP
        calls into it). Raises AssertionError after `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"FakeSlack.wait_for: condition not met within {timeout}s")
                self._cond.wait(min(remaining, 0.1))

    # ---- view stack changes caused by the user (used by the driver) ------------------------------

    def apply_view_submission(self, user_id: str, view_id: str, response: dict[str, Any] | None) -> list[str]:
        """Apply an app's answer to a view_submission the way Slack's client does.

        No `response_action`: the submitted view closes; `errors`: nothing changes; `update`: the view
        is replaced in place; `push`: a view is pushed; `clear`: the whole stack closes. Returns the
        problems Slack would show instead (invalid view, push limit), empty if none.
        """
        with self._cond:
            try:
                stack = self._stacks.get(user_id, [])
                index = next((i for i, v in enumerate(stack) if v["id"] == view_id), None)
                action = (response or {}).get("response_action")
                if index is None or action == "errors":
                    return []
                if action is None:
                    del stack[index:]
                elif action == "clear":
                    stack.clear()
                elif action == "update":
                    old = stack[index]
                    spec = self._checked_view(
                        response.get("view") if response else None, ("modal",), replacing=old["id"]
                    )
                    spec.setdefault("external_id", old.get("external_id", ""))
                    stack[index] = self._make_view(
                        spec,
                        view_id=old["id"],
                        root_view_id=old["root_view_id"],
                        previous_view_id=old["previous_view_id"],
                    )
                elif action == "push":
                    spec = self._checked_view(response.get("view") if response else None, ("modal",))
                    if len(stack) >= MAX_VIEW_STACK:
                        raise SlackError("push_limit_reached")
                    stack.append(self._make_view(spec, root_view_id=stack[0]["id"], previous_view_id=stack[-1]["id"]))
                else:
                    return [f"unknown response_action: {action}"]
                return []
            except SlackError as exc:
                return [exc.error, *exc.extra.get("response_metadata", {}).get("messages", [])]
            finally:
                self._cond.notify_all()

    def close_view(self, user_id: str, view_id: str) -> dict[str, Any] | None:
        """The user closes a view (clear_on_close closes the whole stack); returns the closed view."""
        with self._cond:
            stack = self._stacks.get(user_id, [])
            index = next((i for i, v in enumerate(stack) if v["id"] == view_id), None)
            if index is None:
                return None
            closed = stack[index]
            del stack[0 if closed.get("clear_on_close") else index :]
            self._cond.notify_all()
            return copy.deepcopy(closed)

    # ---- HTTP ------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/api/"):
            return self._api(request, path.removeprefix("/api/"))
        if path.startswith("/upload/"):
            return self._upload(request, path.removeprefix("/upload/"))
        if path.startswith("/response/"):
            return self._response_url(request, path.removeprefix("/response/"))
        return Response(404, "Not Found")

    def _params(self, request: Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            body = request.json() or {}
            if not isinstance(body, dict):
                raise SlackError("invalid_json")
            params.update(body)
        elif request.content_type == "multipart/form-data":
            for part in request.multipart():
                params[part.name] = part.data if part.filename else part.data.decode("utf-8")
        elif request.body:
            params.update(request.form())
            for key in _FORM_JSON_KEYS:
                if isinstance(params.get(key), str):
                    try:
                        params[key] = json.loads(params[key])
                    except json.JSONDecodeError:
                        raise SlackError("invalid_blocks_format" if key == "blocks" else "invalid_arguments") from None
        return params

    def _api(self, request: Request, method: str) -> Response:
        auth = request.headers.get("authorization", "")
        token: str | None = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        with self._cond:
            try:
                try:
                    params = self._params(request)
                except (ValueError, UnicodeDecodeError):
                    raise SlackError("invalid_form_data") from None
                token = token or params.pop("token", None)
                params.pop("token", None)
                self._calls.append((method, copy.deepcopy(params)))
                fault = self._take_fault(method)
                if fault is not None:
                    headers = {}
                    if fault.status == 429 or fault.retry_after is not None:
                        headers["Retry-After"] = str(int(fault.retry_after if fault.retry_after else 1))
                    return Response(fault.status, {"ok": False, "error": fault.error}, headers)
                handler = _METHODS.get(method)
                if handler is None:
                    raise SlackError("unknown_method", req_method=method)
                if not token:
                    raise SlackError("not_authed")
                if token not in (self.bot_token, self.app_token):
                    raise SlackError("invalid_auth")
                if (method in _APP_TOKEN_METHODS) != (token == self.app_token):
                    raise SlackError("not_allowed_token_type")
                scope_headers = {"x-oauth-scopes": ",".join(self.scopes)} if token == self.bot_token else {}
                try:
                    return Response(200, {"ok": True, **handler(self, params)}, scope_headers)
                except SlackError as exc:
                    return Response(200, {"ok": False, "error": exc.error, **exc.extra}, scope_headers)
            except SlackError as exc:
                return Response(200, {"ok": False, "error": exc.error, **exc.extra})
            finally:
                self._cond.notify_all()

    # ---- helpers ---------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        micros = next(self._ts_counter) * 100
        return f"{_TS_EPOCH + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _public(self, m: _Message) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            "channel": m.channel,
            "ts": m.ts,
            "user": m.user,
            "text": m.text,
            "blocks": copy.deepcopy(m.blocks),
            "team": self.team_id,
        }
        if m.user == self.bot_user_id:
            out["bot_id"] = self.bot_id
            out["app_id"] = self.app_id
        for key in ("attachments", "thread_ts", "subtype", "files", "metadata", "edited"):
            value = getattr(m, key)
            if value is not None:
                out[key] = copy.deepcopy(value)
        if m.ephemeral_user is not None:
            out["is_ephemeral"] = True
        return out

    def _slack_message(self, m: _Message) -> dict[str, Any]:
        """The message object as Slack puts it in a method response (no channel key)."""
        out = self._public(m)
        out.pop("channel", None)
        out.pop("is_ephemeral", None)
        return out

    def _resolve_channel(self, ref: Any) -> _Channel:
        if not isinstance(ref, str) or not ref:
            raise SlackError("channel_not_found")
        if ref in self._users and ref not in self._channels:  # Slack accepts a user id: the bot's DM
            return self._channels[self.dm_channel(ref)]
        channel_id = self.channel_id(ref)
        if channel_id is None:
            raise SlackError("channel_not_found")
        return self._channels[channel_id]

    def _lookup(self, channel: str, ts: str) -> _Message | None:
        return next((m for m in self._history.get(channel, []) if m.ts == ts), None)

    def _lookup_ephemeral(self, channel: str, ts: str) -> _Message | None:
        for messages in self._ephemerals.values():
            for m in messages:
                if m.channel == channel and m.ts == ts:
                    return m
        return None

    def _content(self, params: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
        """Validated text/blocks/attachments of a message-producing call (only keys given)."""
        out: dict[str, Any] = {}
        if params.get("text") is not None:
            text = params["text"] if isinstance(params["text"], str) else str(params["text"])
            out["text"] = text[:MAX_MESSAGE_TEXT]
        if params.get("blocks") is not None:
            blocks = params["blocks"]
            if not isinstance(blocks, list):
                raise SlackError("invalid_blocks_format")
            errors = check_message_blocks(blocks) or self._image_errors(blocks, "/blocks")
            if errors:
                raise SlackError(
                    "invalid_blocks",
                    errors=[e.removeprefix("[ERROR] ") for e in errors],
                    response_metadata={"messages": errors},
                )
            out["blocks"] = _with_generated_ids(blocks)
        if params.get("attachments") is not None:
            out["attachments"] = copy.deepcopy(params["attachments"])
        if required and not (out.get("text") or out.get("blocks") or out.get("attachments")):
            raise SlackError("no_text")
        return out

    def _checked_view(
        self, spec: Any, allowed_types: tuple[str, ...], *, replacing: str | None = None
    ) -> dict[str, Any]:
        """Validate a view spec; `replacing` is the id of the view it replaces (its external_id may stay)."""
        if isinstance(spec, str):
            try:
                spec = json.loads(spec)
            except json.JSONDecodeError:
                raise SlackError("invalid_arguments") from None
        if not isinstance(spec, dict):
            raise SlackError("invalid_arguments", response_metadata={"messages": ["[ERROR] missing view"]})
        if len(json.dumps(spec, separators=(",", ":")).encode("utf-8")) > MAX_VIEW_BYTES:
            raise SlackError("view_too_large")
        errors = check_view(spec, allowed_types) or self._image_errors(spec.get("blocks") or [], "/view/blocks")
        if errors:
            raise SlackError("invalid_arguments", response_metadata={"messages": errors})
        external_id = spec.get("external_id")
        if external_id:
            for _, _, existing in self._all_views():
                if existing.get("external_id") == external_id and existing["id"] != replacing:
                    raise SlackError("duplicate_external_id")
        return dict(spec)

    def _image_errors(self, blocks: list[Any], ptr: str) -> list[str]:
        """What Slack says about images it cannot show: a `slack_file` that is unknown, deleted, not an
        image it shows (PNG, JPEG, GIF) or not visible to the bot; an `image_url` it cannot download."""
        errors: list[str] = []
        for i, block in enumerate(blocks):
            if not isinstance(block, dict):
                continue
            found = [(block, f"{ptr}/{i}")] if block.get("type") == "image" else []
            if isinstance(block.get("accessory"), dict) and block["accessory"].get("type") == "image":
                found.append((block["accessory"], f"{ptr}/{i}/accessory"))
            if block.get("type") == "context":
                found += [(e, f"{ptr}/{i}/elements/{j}") for j, e in enumerate(block.get("elements") or [])
                          if isinstance(e, dict) and e.get("type") == "image"]
            for image, where in found:
                ref = image.get("slack_file")
                if isinstance(ref, dict):
                    record = next((f for f in self._files if not f["deleted"] and (
                        f["id"] == ref.get("id") or ref.get("url") in (f["url_private"], f["permalink"]))), None)
                    content = (record or {}).get("content") or b""
                    shown = content.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF8"))
                    if record is None or not shown:
                        errors.append(f"[ERROR] invalid slack file [json-pointer:{where}/slack_file]")
                elif image.get("image_url") in self._unfetchable:
                    errors.append(f"[ERROR] downloading image failed [json-pointer:{where}/image_url]")
        return errors

    def _all_views(self) -> list[tuple[str, list[dict[str, Any]] | None, dict[str, Any]]]:
        out: list[tuple[str, list[dict[str, Any]] | None, dict[str, Any]]] = []
        for user, stack in self._stacks.items():
            out.extend((user, stack, v) for v in stack)
        out.extend((user, None, v) for user, v in self._homes.items())
        return out

    def _find_view(
        self, view_id: str | None = None, external_id: str | None = None
    ) -> tuple[str, list[dict[str, Any]] | None, dict[str, Any]] | None:
        for user, stack, view in self._all_views():
            if (view_id and view["id"] == view_id) or (external_id and view.get("external_id") == external_id):
                return user, stack, view
        return None

    def _make_view(
        self,
        spec: dict[str, Any],
        *,
        view_id: str | None = None,
        root_view_id: str | None = None,
        previous_view_id: str | None = None,
    ) -> dict[str, Any]:
        view_id = view_id or f"V{next(self._ids):08d}"
        view = {
            "id": view_id,
            "team_id": self.team_id,
            "type": spec["type"],
            "blocks": _with_generated_ids(spec.get("blocks", [])),
            "private_metadata": spec.get("private_metadata", ""),
            "callback_id": spec.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{_TS_EPOCH + next(self._ids)}.{secrets.token_hex(4)}",
            "title": copy.deepcopy(spec.get("title")),
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "close": copy.deepcopy(spec.get("close")),
            "submit": copy.deepcopy(spec.get("submit")),
            "previous_view_id": previous_view_id,
            "root_view_id": root_view_id or view_id,
            "app_id": self.app_id,
            "external_id": spec.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        if spec["type"] == "modal":
            view["submit_disabled"] = bool(spec.get("submit_disabled", False))
        return view

    def _use_trigger(self, params: dict[str, Any]) -> _Trigger:
        trigger_id = params.get("trigger_id")
        if not trigger_id:
            raise SlackError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] missing required field: trigger_id"]},
            )
        trigger = self._triggers.get(trigger_id)
        if trigger is None or trigger.used or self.clock() - trigger.minted_at > self.trigger_ttl:
            raise SlackError("expired_trigger_id")
        return trigger

    def _post(self, channel: _Channel, content: dict[str, Any], params: dict[str, Any], **kw: Any) -> _Message:
        message = _Message(
            channel=channel.id,
            ts=self._next_ts(),
            user=kw.pop("user", self.bot_user_id),
            text=content.get("text", ""),
            blocks=content.get("blocks", []),
            attachments=content.get("attachments"),
            thread_ts=params.get("thread_ts") or None,
            metadata=params.get("metadata") if isinstance(params.get("metadata"), dict) else None,
            **kw,
        )
        if message.ephemeral_user is not None:
            self._ephemerals.setdefault(message.ephemeral_user, []).append(message)
        else:
            self._history.setdefault(channel.id, []).append(message)
        return message

    # ---- Web API methods -------------------------------------------------------------------------

    def _api_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"args": {k: v for k, v in params.items() if isinstance(v, str)}}

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _need_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            raise SlackError("missing_scope", needed=scope, provided=",".join(self.scopes))

    def _conversation(self, c: _Channel) -> dict[str, Any]:
        return {
            "id": c.id,
            "name": c.name,
            "is_channel": not (c.is_im or c.is_mpim or c.is_private),
            "is_group": c.is_private and not c.is_mpim,
            "is_im": c.is_im,
            "is_mpim": c.is_mpim,
            "is_private": c.is_private or c.is_im or c.is_mpim,
            "is_archived": False,
            "is_member": c.bot_member,
            "user": c.user,
        }

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        ref = params.get("channel")
        channel_id = ref if isinstance(ref, str) and ref in self._channels else None
        if channel_id is None:  # Slack wants an id here; a name is not found
            raise SlackError("channel_not_found")
        channel = self._channels[channel_id]
        if channel.is_im or channel.is_mpim:
            self._need_scope("im:read" if channel.is_im else "mpim:read")
        else:
            self._need_scope("groups:read" if channel.is_private else "channels:read")
        if channel.is_private and not channel.bot_member and not channel.is_im:
            raise SlackError("channel_not_found")  # a private channel the bot is not in is invisible
        return {"channel": self._conversation(channel)}

    def _conversations_list(self, params: dict[str, Any]) -> dict[str, Any]:
        types = {t.strip() for t in str(params.get("types") or "public_channel").split(",") if t.strip()}
        if "public_channel" in types:
            self._need_scope("channels:read")
        if "private_channel" in types:
            self._need_scope("groups:read")
        found = [
            c for c in sorted(self._channels.values(), key=lambda c: c.id)
            if not c.is_im and not c.is_mpim
            and (("private_channel" in types and c.is_private and c.bot_member)
                 or ("public_channel" in types and not c.is_private))
        ]
        limit = max(1, min(1000, int(params.get("limit") or 100)))
        cursor = str(params.get("cursor") or "")
        start = int(cursor.removeprefix("offset:")) if cursor.startswith("offset:") else 0
        page = found[start : start + limit]
        more = start + limit < len(found)
        return {"channels": [self._conversation(c) for c in page],
                "response_metadata": {"next_cursor": f"offset:{start + limit}" if more else ""}}

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"wss://127.0.0.1/link/?ticket={secrets.token_hex(8)}&app_id={self.app_id}"}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(params.get("user") or "")
        if user is None:
            raise SlackError("user_not_found")
        return {"user": copy.deepcopy(user)}

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("channel"):
            channel = self._resolve_channel(params["channel"])
            return {"no_op": True, "already_open": True, "channel": {"id": channel.id}}
        users = params.get("users")
        if isinstance(users, list):
            users = ",".join(users)
        ids = [u.strip() for u in (users or "").split(",") if u.strip()]
        if not ids:
            raise SlackError("users_list_not_supplied")
        for user_id in ids:
            if user_id not in self._users:
                raise SlackError("user_not_found")
        if len(ids) == 1:
            existed = ids[0] in self._dms
            return {"no_op": existed, "already_open": existed, "channel": {"id": self.dm_channel(ids[0])}}
        members = {*ids, self.bot_user_id}
        for channel in self._channels.values():
            if channel.is_mpim and channel.members == members:
                return {"no_op": True, "already_open": True, "channel": {"id": channel.id}}
        channel_id = f"G{next(self._ids):08d}"
        self._channels[channel_id] = _Channel(
            id=channel_id, name=f"mpdm-{'--'.join(sorted(ids))}", is_mpim=True, is_private=True, members=members
        )
        return {"no_op": False, "already_open": False, "channel": {"id": channel_id}}

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        if not channel.bot_member:
            raise SlackError("not_in_channel")
        limit = int(params.get("limit") or 100)
        history = [self._slack_message(m) for m in self._history.get(channel.id, []) if not m.deleted]
        history.reverse()
        return {"messages": history[:limit], "has_more": len(history) > limit}

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        if not channel.bot_member:
            raise SlackError("not_in_channel")
        content = self._content(params)
        message = self._post(channel, content, params)
        out: dict[str, Any] = {"channel": channel.id, "ts": message.ts, "message": self._slack_message(message)}
        if not content.get("text") and content.get("blocks"):
            out["warning"] = "missing_text_or_fallback_or_attachments"
            out["response_metadata"] = {"warnings": ["missing_text_or_fallback_or_attachments"]}
        return out

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        user = params.get("user")
        if not user or user not in self._users:
            raise SlackError("user_not_found")
        if not channel.bot_member:
            raise SlackError("not_in_channel")
        if not channel.has_member(user):
            raise SlackError("user_not_in_channel")
        message = self._post(channel, self._content(params), params, ephemeral_user=user)
        return {"message_ts": message.ts}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        message = self._lookup(channel.id, str(params.get("ts") or ""))
        if message is None or message.deleted:
            raise SlackError("message_not_found")
        if message.user != self.bot_user_id:
            raise SlackError("cant_update_message")
        content = self._content(params, required=False)
        if not content:
            raise SlackError("no_text")
        for key, value in content.items():
            setattr(message, key, value)
        message.edited = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "channel": channel.id,
            "ts": message.ts,
            "text": message.text,
            "message": self._slack_message(message),
        }

    def _chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        message = self._lookup(channel.id, str(params.get("ts") or ""))
        if message is None or message.deleted:
            raise SlackError("message_not_found")
        if message.user != self.bot_user_id:
            raise SlackError("cant_delete_message")
        message.deleted = True
        return {"channel": channel.id, "ts": message.ts}

    def _chat_get_permalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        message = self._lookup(channel.id, str(params.get("message_ts") or ""))
        if message is None or message.deleted:
            raise SlackError("message_not_found")
        link = f"https://{self.team_domain}.slack.com/archives/{channel.id}/p{message.ts.replace('.', '')}"
        return {"channel": channel.id, "permalink": link}

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        trigger = self._use_trigger(params)
        spec = self._checked_view(params.get("view"), ("modal",))
        view = self._make_view(spec)
        trigger.used = True
        self._stacks[trigger.user] = [view]
        return {"view": copy.deepcopy(view)}

    def _views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        trigger = self._use_trigger(params)
        spec = self._checked_view(params.get("view"), ("modal",))
        stack = self._stacks.get(trigger.user) or []
        if not stack:
            raise SlackError("not_found")
        if len(stack) >= MAX_VIEW_STACK:
            raise SlackError("push_limit_reached")
        view = self._make_view(spec, root_view_id=stack[0]["id"], previous_view_id=stack[-1]["id"])
        trigger.used = True
        stack.append(view)
        return {"view": copy.deepcopy(view)}

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view_id, external_id = params.get("view_id"), params.get("external_id")
        if not view_id and not external_id:
            raise SlackError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] must provide either view_id or external_id"]},
            )
        found = self._find_view(view_id=view_id, external_id=external_id)
        if found is None:
            raise SlackError("not_found")
        user, stack, old = found
        expected = params.get("hash")
        if expected and expected != old["hash"]:
            raise SlackError("hash_conflict")
        spec = self._checked_view(params.get("view"), (old["type"],), replacing=old["id"])
        spec.setdefault("external_id", old.get("external_id", ""))
        view = self._make_view(
            spec,
            view_id=old["id"],
            root_view_id=old["root_view_id"],
            previous_view_id=old["previous_view_id"],
        )
        if stack is None:
            self._homes[user] = view
        else:
            stack[stack.index(old)] = view
        return {"view": copy.deepcopy(view)}

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user = params.get("user_id")
        if not user or user not in self._users:
            raise SlackError("user_not_found")
        old = self._homes.get(user)
        expected = params.get("hash")
        if expected and old is not None and expected != old["hash"]:
            raise SlackError("hash_conflict")
        spec = self._checked_view(params.get("view"), ("home",), replacing=old["id"] if old else None)
        if old is not None:
            spec.setdefault("external_id", old.get("external_id", ""))
        view = self._make_view(spec, view_id=old["id"] if old else None)
        self._homes[user] = view
        return {"view": copy.deepcopy(view)}

    def _files_get_upload_url_external(self, params: dict[str, Any]) -> dict[str, Any]:
        filename, length = params.get("filename"), params.get("length")
        if not filename or length in (None, ""):
            raise SlackError("invalid_arguments")
        try:
            size = int(length)
        except (TypeError, ValueError):
            raise SlackError("invalid_arguments") from None
        file_id = f"F{next(self._ids):08d}"
        self._uploads[file_id] = _Upload(
            file_id=file_id,
            filename=str(filename),
            length=size,
            alt_txt=params.get("alt_txt"),
            snippet_type=params.get("snippet_type"),
        )
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload_external(self, params: dict[str, Any]) -> dict[str, Any]:
        entries = params.get("files")
        if not isinstance(entries, list) or not entries:
            raise SlackError("invalid_arguments")
        uploads: list[tuple[_Upload, str]] = []
        for entry in entries:
            upload = self._uploads.get(entry.get("id", "")) if isinstance(entry, dict) else None
            if upload is None or upload.data is None:
                raise SlackError("file_not_found")
            uploads.append((upload, entry.get("title") or upload.filename))
        channel_ref = params.get("channel_id") or (params.get("channels") or "").split(",")[0] or None
        channel = self._resolve_channel(channel_ref) if channel_ref else None
        if channel is not None and not channel.bot_member:
            raise SlackError("not_in_channel")
        shared: list[dict[str, Any]] = []
        for upload, title in uploads:
            record = {
                "id": upload.file_id,
                "name": upload.filename,
                "title": title,
                "filetype": upload.filename.rsplit(".", 1)[-1] if "." in upload.filename else "binary",
                "size": len(upload.data or b""),
                "user": self.bot_user_id,
                "channels": [channel.id] if channel else [],
                "initial_comment": params.get("initial_comment"),
                "thread_ts": params.get("thread_ts"),
                "alt_txt": upload.alt_txt,
                "content": upload.data,
                "url_private": f"https://files.slack.com/files-pri/{self.team_id}-{upload.file_id}/{upload.filename}",
                "permalink": f"https://{self.team_domain}.slack.com/files/{self.bot_user_id}/{upload.file_id}/"
                             f"{upload.filename}",
                "deleted": False,
            }
            self._files.append(record)
            del self._uploads[upload.file_id]
            shared.append({k: v for k, v in record.items() if k != "content"})
        if channel is not None:
            self._post(
                channel,
                {"text": params.get("initial_comment") or ""},
                params,
                subtype="file_share",
                files=copy.deepcopy(shared),
            )
        return {"files": [{"id": f["id"], "title": f["title"], "name": f["name"]} for f in shared]}

    # ---- non-API endpoints -----------------------------------------------------------------------

    def _upload(self, request: Request, file_id: str) -> Response:
        with self._cond:
            self._upload_posts.append({"file_id": file_id, "length": len(request.body)})
            queue = self._faults.get("upload")
            if queue:  # only faults aimed at the upload POST ("*" is for Web API methods)
                fault = queue[0]
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue.popleft()
                wait = fault.retry_after if fault.retry_after is not None else 1
                headers = {"Retry-After": f"{wait:g}"} if fault.status == 429 else {}
                self._cond.notify_all()
                return Response(fault.status if fault.status != 200 else 500, fault.error, headers)
            upload = self._uploads.get(file_id)
            if upload is None or request.method != "POST":
                return Response(404, "Not Found")
            data = request.body
            if request.content_type == "multipart/form-data":
                data = next((p.data for p in request.multipart() if p.filename), data)
            upload.data = data
            self._cond.notify_all()
            return Response(200, f"OK - {len(data)}")

    def _response_url(self, request: Request, token: str) -> Response:
        with self._cond:
            try:
                record = self._response_urls.get(token)
                if record is None:
                    return Response(404, "invalid_token")
                if record.uses >= RESPONSE_URL_MAX_USES:
                    return Response(404, "used_url")
                try:
                    if request.content_type == "application/json":
                        payload = request.json()
                    else:
                        payload = json.loads(request.form().get("payload", "null"))
                except (ValueError, UnicodeDecodeError):
                    payload = None
                entry: dict[str, Any] = {
                    "channel": record.channel,
                    "user": record.user,
                    "message_ts": record.message_ts,
                    "payload": payload,
                }
                self._responses.append(entry)
                if not isinstance(payload, dict):
                    entry.update(status=400, error="invalid_payload")
                    return Response(400, "invalid_payload")
                try:
                    self._apply_response(record, payload)
                except SlackError as exc:
                    entry.update(status=404 if exc.error == "message_not_found" else 400, error=exc.error)
                    return Response(entry["status"], exc.error)
                record.uses += 1
                entry.update(status=200, error=None)
                return Response(200, "ok")
            finally:
                self._cond.notify_all()

    def _apply_response(self, record: _ResponseUrl, payload: dict[str, Any]) -> None:
        original: _Message | None = None
        if record.message_ts is not None:
            if record.is_ephemeral:
                original = self._lookup_ephemeral(record.channel, record.message_ts)
            else:
                original = self._lookup(record.channel, record.message_ts)
            if original is not None and original.deleted:
                original = None
        if _as_bool(payload.get("delete_original")):
            if original is None:
                raise SlackError("message_not_found")
            original.deleted = True
            return
        content = self._content(payload)
        channel = self._channels.get(record.channel) or _Channel(id=record.channel, name=record.channel)
        if _as_bool(payload.get("replace_original")) and original is not None:
            original.text = content.get("text", "")
            original.blocks = content.get("blocks", [])
            original.attachments = content.get("attachments")
            if original.ephemeral_user is None:
                original.edited = {"user": self.bot_user_id, "ts": self._next_ts()}
            return
        if payload.get("response_type") == "in_channel":
            self._post(channel, content, payload)
        else:
            self._post(channel, content, payload, ephemeral_user=record.user)


_METHODS: dict[str, Callable[[FakeSlack, dict[str, Any]], dict[str, Any]]] = {
    "api.test": FakeSlack._api_test,
    "auth.test": FakeSlack._auth_test,
    "apps.connections.open": FakeSlack._apps_connections_open,
    "conversations.info": FakeSlack._conversations_info,
    "conversations.list": FakeSlack._conversations_list,
    "users.info": FakeSlack._users_info,
    "conversations.open": FakeSlack._conversations_open,
    "conversations.history": FakeSlack._conversations_history,
    "chat.postMessage": FakeSlack._chat_post_message,
    "chat.postEphemeral": FakeSlack._chat_post_ephemeral,
    "chat.update": FakeSlack._chat_update,
    "chat.delete": FakeSlack._chat_delete,
    "chat.getPermalink": FakeSlack._chat_get_permalink,
    "views.open": FakeSlack._views_open,
    "views.push": FakeSlack._views_push,
    "views.update": FakeSlack._views_update,
    "views.publish": FakeSlack._views_publish,
    "files.getUploadURLExternal": FakeSlack._files_get_upload_url_external,
    "files.completeUploadExternal": FakeSlack._files_complete_upload_external,
}
