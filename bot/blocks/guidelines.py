"""PURE Block Kit for the guideline revision loop: the report's suggest button, the modal where a lead
edits and publishes a revision, the DM that tells annotators, the version lines of the Guidelines modal
and of the report, and the reader of the modal's submission.

Everything from data (item texts, answers, LLM output, lead-typed text, user ids) is shown as
plain_text or escaped mrkdwn and cut to Slack's limits; the proposed text goes into plain_text_input
values, which Slack never renders.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.blocks.access import LeadCommand
from bot.blocks.ids import Action, Block, View, part_id
from bot.blocks.payloads import FormError
from bot.blocks.text import (
    SECTION_TEXT_MAX,
    VIEW_BLOCKS_MAX,
    button,
    context_md,
    cut,
    fallback_text,
    header,
    mention,
    plain,
    safe_mrkdwn,
    section_md,
)
from bot.core.guidelines import Evidence, Notice, PairEvidence, Published, QuotedItem, Suggestion

INPUT_MAX = 3000
PART_CHARS = 2900  # per input, leaving room for edits
MAX_PARTS = 12  # 12 x 2900 holds the longest guidelines (30,000 characters) cut at line ends
SUMMARY_MAX = 1200
PROMOTE_MAX = 10  # checkboxes hold 10 options
QUOTE_MD = 280

# --- the report's button ------------------------------------------------------------------------------


def suggest_button(slug: str) -> dict[str, Any]:
    """The actions block under a report: "Suggest a guideline revision" (leads only; checked on click)."""
    return {"type": "actions", "block_id": Block.SUGGEST,
            "elements": [button("Suggest a guideline revision", Action.SUGGEST_REVISION, slug)]}


def with_suggest_button(blocks: list[dict[str, Any]], slug: str, limit: int = 50) -> list[dict[str, Any]]:
    """A report's blocks with the suggest button last (within the message's block limit)."""
    return [*blocks[: limit - 1], suggest_button(slug)]


# --- the modal ------------------------------------------------------------------------------------------


def waiting_modal(project_name: str) -> dict[str, Any]:
    """Shown at once on a click (the trigger is valid for 3 s) while the proposal is written."""
    return {
        "type": "modal", "callback_id": View.REVISION_WAIT, "title": plain("Revise guidelines", 24),
        "close": plain("Close", 24),
        "blocks": [section_md(f":hourglass_flowing_sand: Reading where people disagree on "
                              f"*{safe_mrkdwn(project_name, 200)}* and writing a proposal…")],
    }


def split_parts(text: str, size: int = PART_CHARS, limit: int = MAX_PARTS) -> list[str]:
    """The text cut at line ends into parts of at most `size` characters; joined with newlines they
    give the text back. A line longer than a part is cut where it must (the join then adds a line
    break there), and past `limit` parts the rest is packed into the last ones at the input's limit."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > size:
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:size])
            line = line[size:]
        candidate = line if not current else f"{current}\n{line}"
        if len(candidate) > size:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current or not parts:
        parts.append(current)
    if len(parts) > limit:  # very long lines: pack the tail at the input's own limit
        tail = "\n".join(parts[limit - 1:])
        parts = parts[: limit - 1] + [tail[i : i + INPUT_MAX] for i in range(0, len(tail), INPUT_MAX)]
    return parts[:limit]


def _quote(item: QuotedItem) -> str:
    answers = ", ".join(f"{safe_mrkdwn(k, 80)} {v}" for k, v in sorted(item.answers.items(), key=lambda kv: -kv[1]))
    bits = [f"`{safe_mrkdwn(cut(item.external_id, 60), 120)}`"]
    if answers:
        bits.append(answers)
    if item.flagged:
        bits.append(f"flagged Ambiguous {item.flagged}×")
    if item.expert is not None:
        bits.append(f"expert: *{safe_mrkdwn(item.expert, 120)}*")
    return f"> {safe_mrkdwn(item.text, QUOTE_MD)}\n{' · '.join(bits)}"


def _pair_title(pair: PairEvidence) -> str:
    agreement = f"{pair.agreement:.0%}" if pair.agreement is not None else "n/a"
    text = (f"*{safe_mrkdwn(pair.first, 100)}* / *{safe_mrkdwn(pair.second, 100)}*: {pair.count} split, "
            f"agreement {agreement} over {pair.pairs} rater pairs")
    if pair.before is not None:
        text += f" (previous version: {pair.before:.0%})"
    return text


def _sections(title: str, pieces: Sequence[str]) -> dict[str, Any]:
    text = title
    for piece in pieces:
        if len(text) + 2 + len(piece) > SECTION_TEXT_MAX - 20:
            text += "\n…"
            break
        text += "\n" + piece
    return section_md(cut(text, SECTION_TEXT_MAX))


def evidence_blocks(evidence: Evidence) -> list[dict[str, Any]]:
    """What the proposal is built from, for the lead's eyes (escaped, within limits)."""
    head = (f"*Where people disagree* under {safe_mrkdwn(evidence.scope, 40)}: {evidence.answers:,} answers on "
            f"{evidence.items:,} items with two or more")
    if evidence.percent is not None:
        head += f"; agreement {evidence.percent:.0%}"
    if evidence.alpha is not None:
        head += f", α {evidence.alpha:.2f}"
    blocks = [section_md(head + ".")]
    if evidence.note:
        blocks.append(context_md(safe_mrkdwn(evidence.note, 500)))
    for pair in evidence.pairs:
        blocks.append(_sections(_pair_title(pair), [_quote(i) for i in pair.items]))
        if pair.recommendation is not None:
            blocks.append(context_md(":bulb: " + safe_mrkdwn(pair.recommendation.text, 1500)))
    if evidence.split:
        blocks.append(_sections("*Answered differently*", [_quote(i) for i in evidence.split]))
    if evidence.ambiguous:
        blocks.append(_sections("*Flagged Ambiguous*", [_quote(i) for i in evidence.ambiguous]))
    if evidence.empty:
        blocks.append(context_md("No disagreement to show yet: nobody split on an item or flagged one Ambiguous."))
    return blocks


def _who_wrote(suggestion: Suggestion) -> str:
    if suggestion.error_kind:
        return (f":warning: The LLM could not write a proposal ({safe_mrkdwn(suggestion.error_kind, 40)}: "
                f"{safe_mrkdwn(suggestion.error or '', 300)}), so this is a template with the evidence: write in "
                "the `[write here: …]` places.")
    if suggestion.method == "llm":
        return (f":robot_face: Proposed by {safe_mrkdwn(suggestion.model or 'the LLM', 100)} from the evidence "
                "below. Read it, and every quoted item, before publishing: it becomes the drafting prompt too.")
    if suggestion.method == "simulated":
        return ":robot_face: Proposed by the simulated writer (demo), not a real model."
    return ("A template with the evidence (no LLM is configured for this project): write in the "
            "`[write here: …]` places, delete what you do not need.")


def revision_modal(suggestion: Suggestion, *, annotators: int | None = None) -> dict[str, Any]:
    """The proposal, pre-filled and editable, with the evidence; "Publish" makes it the next version."""
    next_version = suggestion.based_on + 1
    blocks: list[dict[str, Any]] = [header(f"{suggestion.name}: version {next_version}")]
    blocks.append(context_md(_who_wrote(suggestion)))
    blocks += evidence_blocks(suggestion.evidence)
    blocks.append({"type": "divider"})
    parts = split_parts(suggestion.text)
    count = min(MAX_PARTS, len(parts) + 1)  # one more (empty) part: room to write
    for n in range(1, count + 1):
        element: dict[str, Any] = {"type": "plain_text_input", "action_id": Action.REVISION_TEXT, "multiline": True,
                                   "max_length": INPUT_MAX}
        if n <= len(parts) and parts[n - 1]:
            element["initial_value"] = parts[n - 1]
        label = "Guidelines" if count == 1 else f"Guidelines (part {n} of {count})"
        blocks.append({"type": "input", "block_id": part_id(n), "optional": True, "label": plain(label, 2000),
                       "element": element,
                       **({"hint": plain("The parts are joined with line breaks. Empty parts are dropped.", 2000)}
                          if n == count and count > 1 else {})})
    summary: dict[str, Any] = {"type": "plain_text_input", "action_id": Action.REVISION_SUMMARY, "multiline": True,
                               "max_length": SUMMARY_MAX}
    changes = "\n".join(c for c in suggestion.changes if not c.startswith("(The LLM"))
    if changes:
        summary["initial_value"] = cut(changes, SUMMARY_MAX)
    blocks.append({"type": "input", "block_id": Block.REVISION_SUMMARY, "optional": True,
                   "label": plain("What changed (one line each, sent to the annotators)", 2000), "element": summary,
                   "hint": plain("Left empty: a summary of the lines added and removed.", 2000)})
    experts = suggestion.evidence.expert_items[:PROMOTE_MAX]
    if experts:
        options = [
            {"text": plain(f"{item.external_id}: {item.expert}", 75),
             "description": plain(item.text, 75), "value": str(item.item_id)}
            for item in experts
        ]
        blocks.append({"type": "input", "block_id": Block.REVISION_PROMOTE, "optional": True,
                       "label": plain("Promote the quoted expert decisions to gold", 2000),
                       "element": {"type": "checkboxes", "action_id": Action.REVISION_PROMOTE, "options": options}})
    told = f"{annotators} qualified annotator{'s' if annotators != 1 else ''}" if annotators is not None else \
        "every qualified annotator"
    blocks.append(context_md(f"Publishing makes this version {next_version}: the drafting prompt follows it, and "
                             f"{told} get{'s' if annotators == 1 else ''} one DM with what changed."))
    meta = {"s": suggestion.slug, "g": suggestion.id, "v": suggestion.based_on}
    return {
        "type": "modal", "callback_id": View.REVISION, "title": plain("Revise guidelines", 24),
        "submit": plain("Publish", 24), "close": plain("Cancel", 24),
        "private_metadata": json.dumps(meta), "blocks": blocks[:VIEW_BLOCKS_MAX],
    }


@dataclass(frozen=True)
class RevisionForm:
    slug: str
    suggestion_id: int | None
    based_on: int
    text: str
    summary: str
    promote: list[int]


def revision_submission(view: dict[str, Any]) -> RevisionForm:
    """What the revision modal carries; `FormError` when it is not one of ours."""
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
        slug, based_on = str(meta["s"]), int(meta["v"])
        suggestion = int(meta["g"]) if meta.get("g") is not None else None
    except (ValueError, KeyError, TypeError):
        raise FormError("This form is damaged; close it and suggest a revision again.") from None
    values = (view.get("state") or {}).get("values") or {}
    parts = []
    for n in range(1, MAX_PARTS + 1):
        entry = (values.get(part_id(n)) or {}).get(Action.REVISION_TEXT) or {}
        if entry.get("value"):
            parts.append(str(entry["value"]))
    summary = ((values.get(Block.REVISION_SUMMARY) or {}).get(Action.REVISION_SUMMARY) or {}).get("value") or ""
    chosen = ((values.get(Block.REVISION_PROMOTE) or {}).get(Action.REVISION_PROMOTE) or {}).get(
        "selected_options") or []
    promote = [int(o["value"]) for o in chosen if str(o.get("value", "")).isdigit()]
    return RevisionForm(slug, suggestion, based_on, "\n".join(parts), str(summary), promote)


def error_block(field: str) -> str:
    """The modal block a problem with `field` ("text", "summary", "base") is shown under."""
    return Block.REVISION_SUMMARY if field == "summary" else part_id(1)


def published_modal(published: Published) -> dict[str, Any]:
    lines = [f":white_check_mark: *Version {published.version}* of the guidelines of "
             f"*{safe_mrkdwn(published.name, 200)}* is published."]
    if published.notices:
        lines.append(f"{published.notices} qualified annotator{'s' if published.notices != 1 else ''} get one DM "
                     "each with what changed.")
    else:
        lines.append("No qualified annotator yet: nobody is told.")
    if published.promoted:
        lines.append(f"{published.promoted} expert decision{'s' if published.promoted != 1 else ''} became gold.")
    lines.append("The report shows agreement per guideline version, and whether this one helped.")
    return {"type": "modal", "callback_id": View.REVISION_DONE, "title": plain("Guidelines published", 24),
            "close": plain("Close", 24), "blocks": [section_md("\n".join(lines))]}


# --- the annotators' DM ---------------------------------------------------------------------------------


def notice_message(notice: Notice) -> tuple[str, list[dict[str, Any]]]:
    """One DM: the project's guidelines changed, what changed in a few lines, and a Guidelines button."""
    name = safe_mrkdwn(notice.name, 200)
    lines = [f":books: *The guidelines of {name} changed* (version {notice.version}, published by "
             f"{mention(notice.author)})."]
    lines += [f"• {safe_mrkdwn(line, 300)}" for line in notice.summary[:6]]
    blocks = [
        section_md(cut("\n".join(lines), SECTION_TEXT_MAX), Block.NOTICE),
        context_md("Your next answers follow the new version. Read it all with the Guidelines button."),
        {"type": "actions", "block_id": "gl.notice_actions",
         "elements": [button("Guidelines", Action.GUIDELINES, notice.slug, "primary")]},
    ]
    return fallback_text(f"The guidelines of {notice.name} changed (version {notice.version})", 200), blocks


# --- the Guidelines modal's version -----------------------------------------------------------------------


def version_blocks(version: int, published_at: datetime | None, changes: Sequence[str]) -> list[dict[str, Any]]:
    """The version line (and, from version 2, what changed) at the top of the Guidelines modal."""
    when = f", published {published_at:%Y-%m-%d}" if published_at is not None else ""
    blocks = [context_md(f"Version {version}{when}")]
    if version > 1 and changes:
        lines = [f"*New in version {version}:*"] + [f"• {safe_mrkdwn(c, 300)}" for c in list(changes)[:6]]
        blocks.append(section_md(cut("\n".join(lines), SECTION_TEXT_MAX), "gl.changes"))
    return blocks


# --- the report's section -----------------------------------------------------------------------------------


def _ci(ci: Any, digits: int = 2) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f" (95% CI {ci[0]:.{digits}f} to {ci[1]:.{digits}f})"


def version_lines(entries: Sequence[dict[str, Any]], *, escape: bool = True) -> list[str]:
    """One line per guideline version (the report's `agreement_by_guidelines`), then the verdict of the
    last revision. Escaped for mrkdwn unless `escape` is False (terminal text)."""
    e = (lambda t, n: safe_mrkdwn(str(t), n)) if escape else (lambda t, n: cut(str(t), n))
    lines = []
    for entry in entries:
        since = str(entry.get("since") or "")[:10]
        alpha = entry.get("krippendorff_alpha")
        percent = entry.get("percent")
        head = f"v{entry.get('version')} (since {since}{', current' if entry.get('current') else ''}): "
        if alpha is not None:
            head += f"α {alpha:.2f}{_ci(entry.get('ci'))}, "
        head += f"{'n/a' if percent is None else format(percent, '.0%')} agreement on {entry.get('items', 0):,} items"
        if alpha is None and percent is None and entry.get("reason"):
            head += f" ({e(entry['reason'], 200)})"
        pairs = entry.get("confused_pairs") or []
        if pairs:
            top = pairs[0]
            agreement = top.get("agreement")
            head += (f"; most confused {e(top['first'], 60)} / {e(top['second'], 60)}"
                     + (f" ({agreement:.0%} pair agreement)" if agreement is not None else ""))
        lines.append(head)
    changes = [x["change"] for x in entries if x.get("change")]
    if changes:
        last = changes[-1]
        lines.append(e(last["sentence"], 600))
        if last.get("overall_sentence") and last["overall_sentence"] != last["sentence"]:
            lines.append(f"Overall: {e(last['overall_sentence'], 600)}")
        aimed = [p for p in last.get("pairs") or [] if p.get("verdict") != "too_early"][:2]
        lines += [f"Where it was aimed: {e(p['sentence'], 400)}" for p in aimed]
    return lines


# --- refusals -----------------------------------------------------------------------------------------------

REVISE = LeadCommand(
    usage="Leads suggest a guideline revision from a report (`/label-report`) or with "
          "`labelbot guidelines SLUG suggest`.",
    act_on="revise the guidelines of", can="revise its guidelines", ask="Ask {who}.",
    nothing="there are no guidelines you can revise", example="/label-report {slug}",
)


def failed_modal(project_name: str) -> dict[str, Any]:
    return {"type": "modal", "callback_id": View.REVISION_WAIT, "title": plain("Revise guidelines", 24),
            "close": plain("Close", 24),
            "blocks": [section_md(f":warning: The proposal for *{safe_mrkdwn(project_name, 200)}* failed on our side; "
                                  "nothing was changed. Please try again, or run `labelbot guidelines SLUG suggest`.")]}


def suggestion_line(stats: dict[str, Any] | None) -> str | None:
    """How guideline suggestions were written, LLM failures counted (None when there was none)."""
    if not stats or not stats.get("made"):
        return None
    by = stats.get("by_method") or {}
    parts = [f"{by[k]} {what}" for k, what in (("llm", "by the LLM"), ("simulated", "by the simulated writer"),
                                               ("template", "as templates")) if by.get(k)]
    line = f"Guideline suggestions: {stats['made']} ({', '.join(parts)})"
    failures = int(stats.get("llm_failures") or 0)
    if failures:
        last = stats.get("last_failure") or {}
        line += (f"; the LLM failed {failures} time{'s' if failures != 1 else ''} (last: "
                 f"{cut(str(last.get('kind') or '?'), 40)}: {cut(str(last.get('error') or ''), 160)}) and the "
                 "template was used")
    return line + "."
