r"""Inline span markup for the Edit modal: ``I flew to [Paris](LOC) with [Ann](PER)``.

Syntax: ``[span text](LABEL)`` marks a span; everything else is the item text, unchanged.
Escaping: a backslash makes the next ``\ [ ] ( )`` literal. `render` writes ``\\``, ``\[`` and
``\]`` for those characters of the item text (parentheses need no escape there) and ``\\``,
``\[``, ``\]``, ``\(``, ``\)`` inside labels. `parse` also reads ``\(`` and ``\)`` as literal
parentheses and keeps a backslash before any other character as a backslash.
Spans can't nest or overlap. Offsets are Python string indices (code points), end exclusive.
Positions in error messages are 1-based characters.

Line breaks: Slack's input box hands back every line break as LF. `render_for_input` writes the text
that way (CRLF and a lone CR become LF), and `parse` accepts it for an item whose text has CRLF or CR,
mapping the spans back to offsets in the item's own text.
"""

from __future__ import annotations

import difflib
import itertools
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.core.errors import LabelbotError

__all__ = ["EDIT_BOX_MAX", "MarkupError", "describe", "parse", "render", "render_for_input"]

EDIT_BOX_MAX = 3000  # Slack's plain_text_input holds at most 3,000 characters

_ESCAPABLE = "\\[]()"
_TEXT_SPECIAL = "\\[]"
_LABEL_SPECIAL = "\\[]()"
_MAX_MESSAGE = 150


class MarkupError(LabelbotError, ValueError):
    """Markup that can't be read; the message is shown to the person who typed it."""

    def __init__(self, message: str, position: int | None = None) -> None:
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 1] + "…"
        super().__init__(message)
        self.message = message
        self.position = position


def _escape(text: str, special: str) -> str:
    if not any(ch in special for ch in text):
        return text
    return "".join("\\" + ch if ch in special else ch for ch in text)


def _checked(text: str, spans: Iterable[Mapping[str, Any]]) -> list[tuple[int, int, str]]:
    out = sorted((int(s["start"]), int(s["end"]), str(s["label"])) for s in spans)
    for start, end, _ in out:
        if not 0 <= start < end <= len(text):
            raise ValueError(f"span {start}..{end} is empty or outside the text ({len(text)} characters)")
    for (s1, e1, _), (s2, e2, _) in itertools.pairwise(out):
        if s2 < e1:
            raise ValueError(f"spans {s1}..{e1} and {s2}..{e2} overlap; markup can't show overlapping spans")
    return out


def render(text: str, spans: Iterable[Mapping[str, Any]]) -> str:
    """Item text with each span written as ``[text](LABEL)``; ValueError on overlapping,
    empty or out-of-range spans."""
    parts: list[str] = []
    position = 0
    for start, end, label in _checked(text, spans):
        parts.append(_escape(text[position:start], _TEXT_SPECIAL))
        parts.append(f"[{_escape(text[start:end], _TEXT_SPECIAL)}]({_escape(label, _LABEL_SPECIAL)})")
        position = end
    parts.append(_escape(text[position:], _TEXT_SPECIAL))
    return "".join(parts)


def _lf(text: str) -> tuple[str, list[int]]:
    """`text` with CRLF and lone CR as LF, and for each of its positions (and its end) the position in
    `text`."""
    out: list[str] = []
    back: list[int] = []
    i, n = 0, len(text)
    while i < n:
        back.append(i)
        if text[i] == "\r":
            out.append("\n")
            i += 2 if i + 1 < n and text[i + 1] == "\n" else 1
            continue
        out.append(text[i])
        i += 1
    back.append(n)
    return "".join(out), back


def render_for_input(text: str, spans: Iterable[Mapping[str, Any]]) -> str:
    """`render` for Slack's input box: line breaks as LF (what the box gives back), spans moved along."""
    if "\r" not in text:
        return render(text, spans)
    lf, back = _lf(text)
    forward = {original: j for j, original in enumerate(back)}
    moved = []
    for start, end, label in _checked(text, spans):
        s, e = forward.get(start), forward.get(end)
        if s is not None and e is not None and s < e:  # a span boundary inside a CRLF pair is dropped
            moved.append({"start": s, "end": e, "label": label})
    return render(lf, moved)


def _show(ch: str | None, end_name: str) -> str:
    """A character as a person can read it in an error message."""
    if ch is None:
        return end_name
    if ch == "\n":
        return "a line break"
    if ch == " ":
        return "a space"
    category = unicodedata.category(ch)
    if category[0] in "CZ" or category in ("Mn", "Me"):
        name = unicodedata.name(ch, "")
        return f"U+{ord(ch):04X}" + (f" ({name.lower()})" if name and len(name) < 30 else "")
    return f"'{ch}'"


def _context(markup: str, position: int) -> str:
    snippet = markup[position : position + 16].replace("\n", " ")
    return snippet + ("…" if len(markup) > position + 16 else "")


def _label_list(allowed: Sequence[str]) -> str:
    shown = ", ".join(allowed)
    return shown if len(shown) <= 60 else shown[:59] + "…"


def _check_label(label: str, allowed: Sequence[str], position: int) -> None:
    if label in allowed:
        return
    close = difflib.get_close_matches(label, allowed, n=1, cutoff=0.5)
    folded = [a for a in allowed if a.casefold() == label.casefold()]
    hint = f", did you mean '{(folded or close)[0]}'?" if folded or close else ""
    raise MarkupError(f"unknown label '{label}'{hint} (allowed: {_label_list(allowed)})", position)


def _text_mismatch(found: str, expected: str) -> MarkupError:
    index = 0
    limit = min(len(found), len(expected))
    while index < limit and found[index] == expected[index]:
        index += 1
    want = expected[index] if index < len(expected) else None
    got = found[index] if index < len(found) else None
    return MarkupError(
        "the text outside the brackets must match the item text; first difference at character "
        f"{index + 1}: expected {_show(want, 'the end of the text')}, found {_show(got, 'the end of your text')}",
        index,
    )


def parse(markup: str, text: str, allowed_labels: Iterable[str]) -> list[dict[str, Any]]:
    """Spans ``[{"start", "end", "label"}]`` (sorted) read from `markup`, whose text outside the
    markup must equal `text`; MarkupError with a short, human message otherwise."""
    allowed = list(dict.fromkeys(allowed_labels))
    plain: list[str] = []
    spans: list[dict[str, Any]] = []
    open_at: int | None = None  # markup index of the current '['
    span_start = 0
    i, n = 0, len(markup)
    while i < n:
        ch = markup[i]
        if ch == "\\":
            if i + 1 < n and markup[i + 1] in _ESCAPABLE:
                plain.append(markup[i + 1])
                i += 2
            else:
                plain.append(ch)
                i += 1
            continue
        if ch == "[":
            if open_at is not None:
                raise MarkupError(
                    f"'[' at character {i + 1} is inside another span; spans can't nest (write \\[ for a literal '[')",
                    i,
                )
            open_at, span_start = i, len(plain)
            i += 1
            continue
        if ch == "]":
            if open_at is None:
                raise MarkupError(
                    f"unmatched ']' at character {i + 1} (write \\] for a literal ']')",
                    i,
                )
            if span_start == len(plain):
                raise MarkupError(
                    f"empty span at character {open_at + 1}: put the marked text between '[' and ']'",
                    open_at,
                )
            label, i = _read_label(markup, i, open_at)
            _check_label(label, allowed, open_at)
            spans.append({"start": span_start, "end": len(plain), "label": label})
            open_at = None
            continue
        plain.append(ch)
        i += 1
    if open_at is not None:
        raise MarkupError(
            f"unclosed '[' at character {open_at + 1} ('{_context(markup, open_at)}'): end the span with ](LABEL)",
            open_at,
        )
    found = "".join(plain)
    if found == text:
        return spans
    if "\r" in text:  # the box turned the item's CRLF (or CR) into LF: map the spans back
        lf, back = _lf(text)
        if found == lf:
            return [{"start": back[sp["start"]], "end": back[sp["end"]], "label": sp["label"]} for sp in spans]
        raise _text_mismatch(found, lf)
    raise _text_mismatch(found, text)


def _read_label(markup: str, close: int, open_at: int) -> tuple[str, int]:
    """Read ``(LABEL)`` right after the ']' at `close`; return the label and the next index."""
    n = len(markup)
    if close + 1 >= n or markup[close + 1] != "(":
        raise MarkupError(
            f"the span '{_context(markup, open_at)}' at character {open_at + 1} needs a label: write [text](LABEL)",
            open_at,
        )
    chars: list[str] = []
    j = close + 2
    while j < n:
        ch = markup[j]
        if ch == "\\" and j + 1 < n and markup[j + 1] in _ESCAPABLE:
            chars.append(markup[j + 1])
            j += 2
            continue
        if ch == ")":
            label = "".join(chars).strip()
            if not label:
                raise MarkupError(f"missing label in '()' at character {close + 2}", close + 1)
            return label, j + 1
        if ch in "[]\n":
            break
        chars.append(ch)
        j += 1
    raise MarkupError(f"unclosed '(' at character {close + 2}: end the label with ')'", close + 1)


def describe(text: str, spans: Iterable[Mapping[str, Any]], *, max_chars: int = 40) -> list[str]:
    """One display line per span, e.g. ``Paris — LOC (10–15)`` (plain text; the caller escapes)."""
    lines = []
    for start, end, label in sorted((int(s["start"]), int(s["end"]), str(s["label"])) for s in spans):
        surface = " ".join(text[start:end].split()) or text[start:end]
        if len(surface) > max_chars:
            surface = surface[: max_chars - 1] + "…"
        lines.append(f"{surface} — {label} ({start}–{end})")
    return lines
