"""Safe text objects: untrusted text never becomes mrkdwn control sequences or breaks limits."""

from __future__ import annotations

from typing import Any

SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
HEADER_MAX = 150
BUTTON_TEXT_MAX = 75
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
MODAL_TITLE_MAX = 24
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
ELLIPSIS = "…"


def cut(text: str, limit: int) -> str:
    """Shorten to at most `limit` characters, marking the cut with an ellipsis."""
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: max(0, limit - 1)] + ELLIPSIS


def escape_mrkdwn(text: str) -> str:
    """Escape &, <, > (in that order) so that `<!channel>`, `<@U…>` and `<url|x>` stay literal."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def safe_mrkdwn(text: str, limit: int = SECTION_TEXT_MAX) -> str:
    """Escape then cut, never cutting an escape sequence in half."""
    escaped = escape_mrkdwn(text)
    if len(escaped) <= limit:
        return escaped
    out, size = [], 0
    for ch in str(text):
        piece = escape_mrkdwn(ch)
        if size + len(piece) > limit - 1:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out) + ELLIPSIS


def plain(text: str, limit: int = SECTION_TEXT_MAX, *, emoji: bool = False) -> dict[str, Any]:
    """A plain_text object (never rendered as mrkdwn), emoji off by default. Empty becomes a space-free dash."""
    value = cut(text, limit) if text else "—"
    return {"type": "plain_text", "text": value, "emoji": emoji}


def mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn object for text we wrote ourselves (callers escape any untrusted part)."""
    return {"type": "mrkdwn", "text": cut(text, SECTION_TEXT_MAX)}


def section_plain(text: str, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": plain(text)}
    if block_id:
        block["block_id"] = block_id
    return block


def section_md(text: str, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": mrkdwn(text)}
    if block_id:
        block["block_id"] = block_id
    return block


def context_md(*texts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [mrkdwn(t) for t in texts[:CONTEXT_ELEMENTS_MAX]]}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": plain(text, HEADER_MAX)}


def button(text: str, action_id: str, value: str | None = None, style: str | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {"type": "button", "text": plain(text, BUTTON_TEXT_MAX), "action_id": action_id}
    if value is not None:
        b["value"] = value[:2000]
    if style in ("primary", "danger"):
        b["style"] = style
    return b


def option(text: str, value: str) -> dict[str, Any]:
    return {"text": plain(text, OPTION_TEXT_MAX), "value": value[:OPTION_VALUE_MAX]}


def fallback_text(text: str, limit: int = 300) -> str:
    """Notification text (message `text`) built from untrusted input: escaped and short."""
    return safe_mrkdwn(" ".join(str(text).split()), limit)


def mention(user_id: str) -> str:
    """`<@U…>` for a real Slack user id; anything else is shown escaped."""
    uid = str(user_id)
    if uid[:1] in ("U", "W") and uid[1:].isalnum() and uid.isupper() and len(uid) <= 32:
        return f"<@{uid}>"
    return f"`{safe_mrkdwn(uid, 40)}`"
