"""The guideline revision loop's Block Kit: valid for any input, within Slack's limits, untrusted text
(items, LLM output, lead-typed text) inert; the modal's submission read back exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.blocks import guidelines as ui
from bot.blocks.ids import Action, Block, part_id
from bot.blocks.labeling import guidelines_modal
from bot.blocks.payloads import FormError
from bot.core.guidelines import Evidence, Notice, PairEvidence, Published, QuotedItem, Recommendation, Suggestion
from bot.sandbox.fake_slack import check_message_blocks, check_view

NASTY = "<!channel> <@U0LEAD> <https://evil.example|bank> & *bold* `code` \u202eRTL\u202c 🤖"
WHEN = datetime(2026, 1, 7, 9, 30, tzinfo=UTC)


def _item(n: int, expert: str | None = None) -> QuotedItem:
    return QuotedItem(item_id=1000 + n, external_id=f"{NASTY}-{n}" * 3, text=NASTY * 40,
                      answers={NASTY: 2, "how_to": 1}, expert=expert, expert_user="UEXP" if expert else None,
                      flagged=n % 2)


def _evidence(pairs: int = 3, per_pair: int = 3) -> Evidence:
    return Evidence(
        slug="intents", name=NASTY, task="classification", version=1, scope="version 1", answers=1234, items=400,
        percent=0.61, alpha=0.52, labels=["bug", "how_to"],
        pairs=[PairEvidence(first=f"bug{p}{NASTY}", second="how_to", count=40, share=0.5, agreement=0.55, pairs=90,
                            items=[_item(p * 10 + i, expert=NASTY if i == 0 else None) for i in range(per_pair)],
                            before=0.5, before_pairs=80,
                            recommendation=Recommendation("merge", f"Merge {NASTY} " * 30))
               for p in range(pairs)],
        ambiguous=[_item(90 + i) for i in range(5)], note=NASTY * 10,
    )


def _suggestion(text: str, **kw) -> Suggestion:
    fields = dict(id=7, slug="intents", name=NASTY * 5, based_on=3, method="llm", model="gpt-4o-mini", text=text,
                  changes=[f"{NASTY} change {i}" for i in range(4)], evidence=_evidence(), current_text="old")
    fields.update(kw)
    return Suggestion(**fields)


def _values(view: dict, **override: str) -> dict:
    """The state Slack sends for the modal left as it was (initial values), with overrides by block id."""
    values: dict = {}
    for block in view["blocks"]:
        if block.get("type") != "input":
            continue
        element = block["element"]
        if element["type"] == "plain_text_input":
            value = override.get(block["block_id"], element.get("initial_value"))
            values[block["block_id"]] = {element["action_id"]: {"type": "plain_text_input", "value": value}}
        else:
            chosen = [o for o in element["options"]]
            values[block["block_id"]] = {element["action_id"]: {"type": "checkboxes", "selected_options": chosen}}
    return values


@pytest.mark.parametrize("text", ["short", "line\n" * 3000, ("x" * 7000 + "\n") * 4, NASTY * 300,
                                  ("w" * 399 + "\n") * 75])
def test_split_parts_gives_the_text_back(text: str) -> None:
    text = text.strip()[:30_000]
    parts = ui.split_parts(text)
    assert all(len(p) <= ui.INPUT_MAX for p in parts) and len(parts) <= ui.MAX_PARTS
    if max(len(line) for line in text.split("\n")) <= ui.PART_CHARS:  # longer lines are cut where they must
        assert "\n".join(parts) == text
    assert "".join(p.replace("\n", "") for p in parts) == text.replace("\n", "")  # never a character lost


def test_revision_modal_is_valid_and_inert_for_the_worst_input() -> None:
    text = ("Clarifications <!here> & <https://evil.example|click>\n" * 600)[:30_000]
    view = ui.revision_modal(_suggestion(text), annotators=1)
    assert check_view(view) == []
    assert len(json.dumps(view).encode()) < 250_000
    raw = json.dumps([b for b in view["blocks"] if b.get("type") in ("section", "context")])
    assert "<!channel>" not in raw and "<https://evil" not in raw and "&lt;!channel&gt;" in raw
    inputs = [b for b in view["blocks"] if b["type"] == "input"]
    parts = [b for b in inputs if b["block_id"].startswith(Block.REVISION_PART)]
    assert 1 < len(parts) <= ui.MAX_PARTS
    assert all(len(b["element"].get("initial_value", "")) <= 3000 for b in parts)
    promote = next(b for b in inputs if b["block_id"] == Block.REVISION_PROMOTE)
    assert len(promote["element"]["options"]) == 3  # the three expert-settled quoted items
    assert "1 qualified annotator gets one DM" in json.dumps(view)
    form = ui.revision_submission({**view, "state": {"values": _values(view)}})
    assert (form.slug, form.suggestion_id, form.based_on) == ("intents", 7, 3)
    assert form.text == text  # the parts join back into exactly the proposal
    assert form.summary == "\n".join(f"{NASTY} change {i}" for i in range(4))
    assert form.promote == [1000, 1010, 1020]


def test_modal_for_a_template_after_an_llm_failure_says_so() -> None:
    view = ui.revision_modal(_suggestion("Pick one.\n[write here: the rule]", method="template", model="m",
                                         error_kind="http_5xx", error=f"HTTP 500: {NASTY}",
                                         changes=["(The LLM could not write this revision: http_5xx: boom.)",
                                                  "Clarified bug vs how_to."]))
    assert check_view(view) == []
    who = view["blocks"][1]["elements"][0]["text"]
    assert who.startswith(":warning: The LLM could not write a proposal (http_5xx: HTTP 500: &lt;!channel&gt;")
    summary = next(b for b in view["blocks"] if b.get("block_id") == Block.REVISION_SUMMARY)
    assert summary["element"]["initial_value"] == "Clarified bug vs how_to."  # the failure note is not sent
    template = ui.revision_modal(_suggestion("x", method="template", model=None, evidence=Evidence(
        slug="s", name="n", task="classification", version=1, scope="version 1", answers=0, items=0,
        percent=None, alpha=None)))
    assert check_view(template) == []
    assert "No disagreement to show yet" in json.dumps(template)
    assert not any(b.get("block_id") == Block.REVISION_PROMOTE for b in template["blocks"])


def test_submission_edge_cases() -> None:
    view = ui.revision_modal(_suggestion("a\nb"))
    values = _values(view, **{part_id(1): "first", part_id(2): ""})
    values[part_id(3)] = {Action.REVISION_TEXT: {"type": "plain_text_input", "value": "third"}}  # forged, ignored
    values[Block.REVISION_PROMOTE] = {Action.REVISION_PROMOTE: {"selected_options": [{"value": "12"},
                                                                                      {"value": "nope"}]}}
    form = ui.revision_submission({**view, "state": {"values": values}})
    assert form.text == "first\nthird" and form.promote == [12]
    for meta in ("", "not json", json.dumps({"s": "x"}), json.dumps({"s": "x", "v": "two"})):
        with pytest.raises(FormError, match="damaged"):
            ui.revision_submission({"private_metadata": meta, "state": {"values": {}}})
    assert ui.error_block("summary") == Block.REVISION_SUMMARY and ui.error_block("base") == part_id(1)


def test_notice_message_is_short_valid_and_escaped() -> None:
    notice = Notice(id=1, team_id="T", user_id="U1", slug="intents", name=NASTY, version=4,
                    summary=[f"{NASTY} {i}" * 20 for i in range(9)], author="U0LEAD")
    text, blocks = ui.notice_message(notice)
    assert check_message_blocks(blocks) == [] and "<!channel>" not in text
    body = blocks[0]["text"]["text"]
    assert blocks[0]["block_id"] == Block.NOTICE and "<!channel>" not in body
    assert "(version 4, published by <@U0LEAD>)" in body
    assert body.count("\n•") == 6  # a few lines, not the whole list
    (button,) = blocks[2]["elements"]
    assert (button["action_id"], button["value"]) == ("label.guidelines", "intents")
    cli = ui.notice_message(Notice(1, "T", "U1", "s", "n", 2, [], "cli:<!here>"))[1][0]["text"]["text"]
    assert "<!here>" not in cli and "`cli:&lt;!here&gt;`" in cli


def test_guidelines_modal_shows_the_version_and_what_changed() -> None:
    first = guidelines_modal("P", "text", [("a", "")], version=1, published_at=WHEN)
    assert first["blocks"][1]["elements"][0]["text"] == "Version 1, published 2026-01-07"
    assert "gl.changes" not in json.dumps(first)
    later = guidelines_modal("P", "text", [("a", "")], version=3, published_at=WHEN, changes=[NASTY] * 10)
    assert check_view(later) == []
    changes = next(b for b in later["blocks"] if b.get("block_id") == "gl.changes")["text"]["text"]
    assert changes.startswith("*New in version 3:*") and "<!channel>" not in changes and changes.count("•") == 6


def test_report_lines_and_button() -> None:
    entries = [
        {"version": 1, "since": "2026-01-05T08:00:00Z", "current": False, "items": 84, "krippendorff_alpha": 0.62,
         "ci": [0.51, 0.7], "percent": 0.67, "confused_pairs": [{"first": NASTY, "second": "how_to",
                                                                  "agreement": 0.55}], "change": None},
        {"version": 2, "since": "2026-01-06T08:00:00Z", "current": True, "items": 194, "krippendorff_alpha": None,
         "ci": None, "percent": None, "reason": "n/a: <!here>", "confused_pairs": [],
         "change": {"sentence": f"Version 2 helped where it was aimed ({NASTY}).",
                    "overall_sentence": "No clear change.",
                    "pairs": [{"sentence": "bug / how_to: rose.", "verdict": "helped"},
                              {"sentence": "x", "verdict": "too_early"}]}},
    ]
    lines = ui.version_lines(entries)
    assert lines[0].startswith("v1 (since 2026-01-05): α 0.62 (95% CI 0.51 to 0.70), 67% agreement on 84 items; "
                               "most confused &lt;!channel&gt; &lt;@U0LEAD&gt;")
    assert lines[0].endswith("… / how_to (55% pair agreement)")  # a label is cut at 60 characters
    assert lines[1] == "v2 (since 2026-01-06, current): n/a agreement on 194 items (n/a: &lt;!here&gt;)"
    assert lines[2].startswith("Version 2 helped where it was aimed (&lt;!channel&gt;")
    assert lines[3:] == ["Overall: No clear change.", "Where it was aimed: bug / how_to: rose."]
    assert "<!channel>" in ui.version_lines(entries, escape=False)[0]
    blocks = ui.with_suggest_button([{"type": "divider"}] * 60, "intents")
    assert len(blocks) == 50 and blocks[-1] == ui.suggest_button("intents")
    assert check_message_blocks(blocks) == []
    assert ui.suggestion_line(None) is None and ui.suggestion_line({"made": 0}) is None
    line = ui.suggestion_line({"made": 3, "by_method": {"llm": 1, "template": 2}, "llm_failures": 1,
                               "last_failure": {"kind": "timeout", "error": "no answer within 120s"}})
    assert line == ("Guideline suggestions: 3 (1 by the LLM, 2 as templates); the LLM failed 1 time (last: timeout: "
                    "no answer within 120s) and the template was used.")


def test_published_and_waiting_modals_are_valid() -> None:
    for view in (ui.waiting_modal(NASTY), ui.failed_modal(NASTY),
                 ui.published_modal(Published("s", NASTY, 2, 9, ["x"], notices=0, promoted=2)),
                 ui.published_modal(Published("s", NASTY, 2, 9, ["x"], notices=1, promoted=0))):
        assert check_view(view) == [] and "<!channel>" not in json.dumps(view)
