"""Pure Block Kit builders stay within Slack's limits and keep untrusted text inert, for any input."""

from __future__ import annotations

import json
import random

import pytest

from bot.blocks import labeling as ui
from bot.blocks.text import escape_mrkdwn, safe_mrkdwn
from bot.core.enums import TaskType
from bot.core.types import Answer, Feedback, Progress, Task
from bot.sandbox.fake_slack import check_message_blocks, check_view
from bot.services.labeling import MemberStats

NASTY = "<!channel> <@U0LEAD> <https://evil.example|bank> & *bold* `code` \u202eRTL\u202c zero\u200bwidth 🤖"


def _task(task=TaskType.CLASSIFICATION, labels=3, text="hello", draft=None, **kw):
    names = [(f"label-{i:02d}-" + "x" * 36)[:48] for i in range(labels)] if labels else []
    return Task(
        assignment_id=123456789, project_slug="p", project_name=NASTY, task=task,
        labels=[(n, NASTY * 20) for n in names], item_external_id=NASTY * 10, text=text,
        kind=kw.pop("kind", "production"), draft_value=draft, progress=Progress(10_000, 1_000_000), **kw,
    )


def _ok(text_and_blocks):
    text, blocks = text_and_blocks
    assert check_message_blocks(blocks) == []
    assert len(text) <= 40_000 and "<!channel>" not in text
    return blocks


@pytest.mark.parametrize(("labels", "rows"), [(2, [2]), (5, [5]), (6, [3, 3]), (7, [4, 3]), (11, [4, 4, 3]),
                                              (15, [5, 5, 5]), (16, None), (100, None)])
def test_classification_buttons_or_select(labels, rows):
    t = _task(labels=labels, text=NASTY * 2000, draft=None)
    t.draft_value = t.labels[-1][0]
    blocks = _ok(ui.example_message(t))  # checked by the fake Slack's Block Kit validator
    dumped = json.dumps(blocks)
    if labels <= ui.MAX_BUTTON_LABELS:
        assert dumped.count('"label.choose:') == labels
        assert "label.select" not in dumped
        choice_rows = [b for b in blocks if str(b.get("block_id", "")).startswith("lb.choices")]
        assert [len(b["elements"]) for b in choice_rows] == rows  # rows of at most 5, as even as possible
        assert [b["block_id"] for b in choice_rows] == ["lb.choices", "lb.choices.2", "lb.choices.3"][: len(rows)]
        ids = [e["action_id"] for b in choice_rows for e in b["elements"]]
        assert ids == [f"label.choose:{i}" for i in range(labels)]  # every label, in the spec's order
        drafted = choice_rows[-1]["elements"][-1]
        assert drafted["style"] == "primary" and drafted["text"]["text"].startswith("✓ ")
    else:
        select = next(e for b in blocks for e in b.get("elements", []) if e.get("type") == "static_select")
        assert len(select["options"]) == labels and select["initial_option"]["text"]["text"] == t.labels[-1][0]
    assert blocks[1]["text"]["type"] == "plain_text" and blocks[1]["text"]["emoji"] is False
    assert "label.full_text" in dumped  # the long text is cut with a "Show full text" button


def test_every_task_type_blind_quiz_expert_and_no_draft():
    spans = [{"start": i * 10, "end": i * 10 + 5, "label": "label-00-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"[:48]}
             for i in range(300)]
    text = ("[word] (x) \\ " * 400)[:3000]
    cases = [
        _task(TaskType.MULTILABEL, labels=10, draft=[f"label-0{i}-" + "x" * 36 for i in range(3)]),
        _task(TaskType.SPANS, labels=1, text=text, draft=spans),
        _task(TaskType.REWRITE, labels=0, text=NASTY * 300, draft=NASTY * 300),
        _task(TaskType.CLASSIFICATION, blind=True),
        _task(TaskType.CLASSIFICATION, no_draft=True),
        _task(TaskType.CLASSIFICATION, kind="expert", crowd_answers=[(f"U{i}", NASTY) for i in range(200)]),
        _task(TaskType.SPANS, labels=2, quiz_position=(3, 20)),
    ]
    for t in cases:
        t.labels = t.labels or []
        blocks = _ok(ui.example_message(t))
        md = [b["text"]["text"] for b in blocks if b.get("text", {}).get("type") == "mrkdwn"]
        md += [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
        assert not any("<!channel>" in m or "<https://evil" in m for m in md)
    assert "Label from scratch" in json.dumps(ui.example_message(cases[3])[1])
    assert "No draft is available" in json.dumps(ui.example_message(cases[4])[1])
    quiz = json.dumps(ui.example_message(cases[6])[1])
    assert "label.skip" not in quiz and "quiz question 3 of 20" in quiz


def test_record_feedback_and_modals_within_limits():
    answer = Answer(assignment_id=1, project_slug="p", task=TaskType.REWRITE, action="edit", value=NASTY * 500,
                    text=NASTY * 500, kind="production", seconds=12.3)
    blocks = _ok(ui.record_message(answer))
    assert "edited the draft" in blocks[0]["text"]["text"] and not any(b["type"] == "actions" for b in blocks)
    fb = Feedback(correct=False, score=0, gold_display=NASTY * 100, explanation=NASTY * 100, position=(2, 20))
    assert check_message_blocks(ui.feedback_blocks(fb)) == []
    t = _task(TaskType.SPANS, labels=3, text=NASTY * 1000)
    modal = ui.edit_modal(t, "edit", "x" * 5000, {"a": 1, "c": "D1", "t": "1.2", "m": "edit"})
    assert check_view(modal) == []
    assert check_view(ui.full_text_modal("y" * 400_000)) == []
    assert check_view(ui.guidelines_modal(NASTY * 10, NASTY * 3000, [(f"l{i}", NASTY * 90) for i in range(100)])) == []
    stats = [MemberStats("p", NASTY, "qualified", "crowd", 1, 2, 0.5, 3, None)] * 60
    assert check_view(ui.home_view(stats)) == []
    assert check_message_blocks(ui.stats_blocks(stats)) == []


def test_escaping_never_leaves_control_sequences():
    rng = random.Random(7)
    alphabet = "<>&!@#|:/ abc\u200b\u202e"
    for _ in range(500):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        for out in (escape_mrkdwn(s), safe_mrkdwn(s, 40)):
            assert "<" not in out and ">" not in out
            assert len(safe_mrkdwn(s, 40)) <= 40
