"""PURE readers of Slack payloads: who clicked where, what a button carries, what a modal holds.

Everything here treats the payload as untrusted: a value that is not one of ours raises `Refused`
(shown to the person, nothing recorded) or `FormError` (shown next to the modal's field).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.blocks.ids import Action, Block
from bot.core.errors import LabelbotError, Refused
from bot.core.types import LabelChoice

NOT_OURS = "That button is not one of ours, so nothing was recorded."


class FormError(LabelbotError):
    """A modal submission that cannot be used; the message is shown next to the field."""


def team_of(body: dict[str, Any]) -> str:
    team = body.get("team") or {}
    return (team.get("id") if isinstance(team, dict) else None) or body.get("team_id") or (
        body.get("user", {}).get("team_id", "")
    )


def user_of(body: dict[str, Any]) -> str:
    return body.get("user", {}).get("id") or body.get("user_id", "")


def button_value(value: str | None, *, need_index: bool = False) -> tuple[int, int | None]:
    """Button values are "<assignment id>" or "<assignment id>:<label index>[:<label list version>]"."""
    head, _, tail = (value or "").partition(":")
    index = tail.partition(":")[0]
    if not head.isdigit() or (index and not index.isdigit()) or (need_index and not index):
        raise Refused(NOT_OURS)
    return int(head), int(index) if index else None


def _version_of(value: str | None) -> str | None:
    """The label list version a label button carries (None for buttons made before versions existed)."""
    parts = (value or "").split(":")
    version = parts[2] if len(parts) == 3 else ""
    return version if version and all(c in "0123456789abcdef" for c in version) else None


def answer_of(verb: str, action: dict[str, Any], body: dict[str, Any]) -> tuple[int, LabelChoice | None]:
    """What a click answers: (assignment id, the labels picked). A label button or menu option carries
    one position ("choose"); Submit carries the version of the ticked checkboxes' list ("edit")."""
    raw = chosen_value(action)
    aid, index = button_value(raw, need_index=verb == "choose")
    if verb == "choose":
        assert index is not None
        return aid, LabelChoice((index,), _version_of(raw))
    if verb == "edit":
        return aid, LabelChoice(tuple(checked_indices(body)), _version_of(raw), many=True)
    return aid, None


def chosen_value(action: dict[str, Any]) -> str:
    """The value of a clicked label button, or of the option picked in the label menu."""
    return action.get("value") or (action.get("selected_option") or {}).get("value", "")


def checked_indices(body: dict[str, Any]) -> list[int]:
    """The label indices ticked in the message's checkboxes (multi-label)."""
    state = (body.get("state") or {}).get("values", {})
    selected: list[dict[str, Any]] = []
    for block in state.values():
        if Action.CHECKS in block:
            selected = block[Action.CHECKS].get("selected_options") or []
    return [int(o["value"]) for o in selected if str(o.get("value", "")).isdigit()]


@dataclass(frozen=True)
class EditSubmission:
    assignment_id: int
    mode: str  # "edit" | "reject" | "answer"
    text: str
    channel: str | None
    ts: str | None


def edit_submission(view: dict[str, Any]) -> EditSubmission:
    """What the Edit / Reject / answer modal carries (its private metadata and the typed text)."""
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
        aid, mode = int(meta["a"]), str(meta.get("m", "edit"))
    except (ValueError, KeyError, TypeError):
        raise FormError("This form is damaged; close it and try again.") from None
    raw = (view.get("state", {}).get("values", {}).get(Block.EDIT_INPUT, {}).get("value", {}) or {}).get("value")
    return EditSubmission(aid, mode, raw or "", meta.get("c"), meta.get("t"))


def edit_metadata(assignment_id: int, mode: str, body: dict[str, Any]) -> dict[str, Any]:
    """The modal's private metadata: which assignment, which mode, and the message it came from."""
    return {"a": assignment_id, "m": mode, "c": (body.get("channel") or {}).get("id"),
            "t": (body.get("container") or {}).get("message_ts")}


def clicked_message(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(channel, ts) of the message a click came from."""
    return (body.get("channel") or {}).get("id"), (body.get("container") or {}).get("message_ts")


@dataclass(frozen=True)
class LabelCommand:
    verb: str  # "label" | "quiz" | "stats" | "help" | "reminders"
    slug: str | None = None
    setting: bool | None = None  # reminders: True (on), False (off), None (just say)


LABEL_USAGE = ("Usage: `/label [project]`, `/label quiz [project]`, `/label stats`, `/label reminders off|on` "
               "or `/label help`.")


def label_command(text: str | None) -> LabelCommand:
    """`/label [project] | quiz [project] | stats | reminders [off|on] | help`; a malformed one raises
    `Refused` with the usage."""
    words = (text or "").split()
    verb = words[0].lower() if words else ""
    if verb in ("help", "stats"):
        return LabelCommand(verb)
    if verb == "reminders":
        setting = words[1].lower() if len(words) == 2 else None
        if len(words) > 2 or (setting is not None and setting not in ("on", "off")):
            raise Refused("Usage: `/label reminders off` or `/label reminders on`.")
        return LabelCommand("reminders", setting=None if setting is None else setting == "on")
    if verb == "quiz":
        if len(words) > 2:
            raise Refused("Usage: `/label quiz [project]`")
        return LabelCommand("quiz", words[1] if len(words) > 1 else None)
    if len(words) > 1:
        raise Refused(LABEL_USAGE)
    return LabelCommand("label", words[0] if words else None)
