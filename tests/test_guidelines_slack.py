"""The guideline revision loop over the real HTTP wire: signed requests to the real Bolt app, the fake
Slack, the fake OpenAI through the real `openai` client, a real database.

Three annotators label in their DMs and confuse bug with how_to; the lead opens the report, clicks
"Suggest a guideline revision", reads the evidence in the modal, edits and publishes; every qualified
annotator gets exactly one DM; later answers carry the new version; the report shows both versions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.blocks.ids import Action, Block, View, part_id
from bot.core.guidelines import PLACEHOLDER
from bot.sandbox.fake_openai import FakeOpenAI
from bot.sandbox.fake_slack import check_message_blocks, check_view
from bot.services.importer import import_items
from bot.services.projects import get_project
from bot.services.reports import build_report, run_due_reports
from storage.models import GuidelineSuggestion, Label
from tests.conftest import TEAM, make_spec, start_bot
from tests.helpers import _jsonl, qualify, seed

SLUG = "intents"
LABELS = ["billing", "bug", "how_to"]
PEOPLE = ("UA", "UB", "UC")


def spec() -> Any:
    return make_spec(labels=[{"name": n, "description": f"About {n}."} for n in LABELS],
                     members={"leads": ["ULEAD"], "experts": []}, redundancy=3)


def items(first: int, n: int) -> list[dict[str, Any]]:
    truths = ["bug", "how_to", "billing"]
    return [{"id": f"t{k}", "text": f"Ticket {k} <!channel>: {truths[k % 3]} matter, the export does nothing"}
            for k in range(first, first + n)]


def truth(text: str) -> str:
    return next(t for t in LABELS if f": {t} matter" in text)


def confused(text: str) -> str:
    """How UC reads under the first guidelines: bug and how_to swapped."""
    right = truth(text)
    return {"bug": "how_to", "how_to": "bug"}.get(right, right)


def newest(bot: Any, channel: str, after: str | None) -> dict[str, Any]:
    return bot.fake.wait_for(
        lambda: (m := bot.fake.last_message(channel)) is not None and m["ts"] != after and m, timeout=20)


def label_everything(bot: Any, user: str, read: Callable[[str], str]) -> int:
    """`user` types /label and answers every example they are served, the way `read` reads it."""
    ann = bot.user(user)
    before = (bot.fake.last_message(ann.dm) or {}).get("ts")
    ann.command("/label", SLUG)
    message = newest(bot, ann.dm, before)
    answered = 0
    while any(b.get("block_id") == "lb.controls" for b in message["blocks"]):
        text = next(b["text"]["text"] for b in message["blocks"] if b.get("block_id") == "lb.text")
        assert ann.click(message, f"label.choose:{LABELS.index(read(text))}").status == 200
        answered += 1
        message = newest(bot, ann.dm, message["ts"])
    return answered


def first_round(bot: Any) -> None:
    seed(bot.db, spec(), bot.clock.now(), items=items(0, 12))
    for user in PEOPLE:
        qualify(bot.db, SLUG, user, bot.clock.now())
    for user in PEOPLE:
        assert label_everything(bot, user, confused if user == "UC" else truth) == 12


def ephemeral_report(bot: Any, lead: Any) -> dict[str, Any]:
    """`/label-report` by the lead; the new report (ephemeral, with the suggest button)."""

    def reports() -> list[dict[str, Any]]:
        return [m for m in bot.fake.ephemerals(lead.user_id)
                if any(b.get("block_id") == Block.SUGGEST for b in m.get("blocks") or [])]

    seen = len(reports())
    lead.command("/label-report", f"{SLUG} 7")
    return bot.fake.wait_for(lambda: len(found := reports()) > seen and found[-1], timeout=30)


def revision_modal(bot: Any, lead: Any) -> dict[str, Any]:
    return bot.fake.wait_for(lambda: next(
        (v for v in bot.fake.views_open(lead.user_id) if v.get("callback_id") == View.REVISION), None), timeout=30)


def notices(bot: Any, user: str) -> list[dict[str, Any]]:
    dm = bot.fake.dm_channel(user)
    return [m for m in bot.fake.messages(dm) if any(b.get("block_id") == Block.NOTICE for b in m.get("blocks") or [])]


def mrkdwn(blocks: list[dict[str, Any]]) -> list[str]:
    """Every mrkdwn text of sections and contexts."""
    out = []
    for b in blocks:
        if b.get("type") not in ("section", "context"):
            continue
        texts = [b.get("text") or {}, *(b.get("elements") or [])]
        out += [t["text"] for t in texts if isinstance(t, dict) and t.get("type") == "mrkdwn"]
    return out


def part(view: dict[str, Any], n: int = 1) -> str:
    block = next(b for b in view["blocks"] if b.get("block_id") == part_id(n))
    return str(block["element"].get("initial_value", ""))


def test_confused_pair_suggested_edited_published_told_and_measured(bot: Any) -> None:
    first_round(bot)
    lead = bot.user("ULEAD")
    report = ephemeral_report(bot, lead)
    assert check_message_blocks(report["blocks"]) == []
    assert report["blocks"][-1] == {"type": "actions", "block_id": Block.SUGGEST, "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Suggest a guideline revision", "emoji": False},
         "action_id": Action.SUGGEST_REVISION, "value": SLUG}]}
    bot.clock.advance(minutes=5)
    assert lead.click(report, Action.SUGGEST_REVISION).status == 200
    modal = revision_modal(bot, lead)
    assert check_view(modal) == []
    shown = json.dumps(modal["blocks"])
    # the pair people confused, with the items where they split, quoted as inert text
    assert "*bug* / *how_to*: 16 split, agreement 33% over 24 rater pairs" in shown
    rendered = " ".join(mrkdwn(modal["blocks"]))  # what Slack renders as markup: escaped
    assert "Ticket 0 &lt;!channel&gt;: bug matter" in rendered and "<!channel>" not in rendered
    assert "A template with the evidence (no LLM is configured" in shown
    proposal = part(modal)
    assert proposal.startswith("Pick the customer's main intent.") and "bug or how_to?" in proposal
    assert PLACEHOLDER in proposal

    # published as proposed: the placeholders are refused next to the text, nothing is published
    reply = lead.submit_view(modal)
    assert reply.status == 200 and reply.json["response_action"] == "errors"
    assert "Replace the [write here: ...] places" in reply.json["errors"][part_id(1)]
    with bot.db.read() as s:
        assert get_project(s, SLUG).guideline_version == 1

    edited = "\n".join(line for line in proposal.split("\n") if PLACEHOLDER not in line)
    edited = edited.replace("bug or how_to?", "bug or how_to? Broken is bug; works but they ask how is how_to.")
    reply = lead.submit_view(revision_modal(bot, lead), {
        part_id(1): {Action.REVISION_TEXT: edited},
        Block.REVISION_SUMMARY: {Action.REVISION_SUMMARY: "bug vs how_to: broken or asking how <!here>"},
    })
    assert reply.status == 200 and reply.json["response_action"] == "update" and reply.view_errors == []
    done = bot.fake.views_open(lead.user_id)[-1]
    assert done["callback_id"] == View.REVISION_DONE
    assert "3 qualified annotators get one DM each" in json.dumps(done["blocks"])
    assert bot.deps.wait_idle(20)

    # every qualified annotator: exactly one DM; the lead (not an annotator) none
    for user in PEOPLE:
        (notice,) = notices(bot, user)
        assert check_message_blocks(notice["blocks"]) == []
        body = notice["blocks"][0]["text"]["text"]
        assert "version 2" in body and "bug vs how_to: broken or asking how &lt;!here&gt;" in body
    assert notices(bot, "ULEAD") == []
    bot.clock.advance(minutes=5)
    from bot.jobs import send_guideline_notices

    assert send_guideline_notices(bot.deps) == 0  # the job finds nothing left: still one each
    assert all(len(notices(bot, user)) == 1 for user in PEOPLE)

    # the Guidelines button in the DM: version 2 and what changed
    ua = bot.user("UA")
    ua.click(notices(bot, "UA")[0], Action.GUIDELINES)
    guide = bot.fake.wait_for(lambda: next((v for v in bot.fake.views_open("UA")
                                            if v.get("callback_id") == View.GUIDELINES), None))
    text = json.dumps(guide["blocks"])
    assert "Version 2, published" in text and "New in version 2" in text and "Broken is bug" in text

    # later answers carry version 2; UC has read the new guidelines and no longer confuses the pair
    with bot.db.session() as s:
        import_items(s, get_project(s, SLUG), _jsonl(items(12, 12)), bot.clock.now())
    for user in PEOPLE:
        assert label_everything(bot, user, truth) == 12
    with bot.db.read() as s:
        by_version = dict(s.execute(
            select(Label.guideline_version, func.count()).group_by(Label.guideline_version)).all())
    assert by_version == {1: 36, 2: 36}

    data = build_report(bot.db, SLUG, since=bot.clock.now().replace(year=2025), until=bot.clock.now(),
                        now=bot.clock.now()).to_json()
    v1, v2 = data["agreement_by_guidelines"]
    assert (v1["version"], v1["items"], v2["version"], v2["items"], v2["current"]) == (1, 12, 2, 12, True)
    assert v1["percent"] == pytest.approx((4 + 8 / 3) / 12) and v2["percent"] == pytest.approx(1.0)
    assert v1["confused_pairs"][0]["first"] == "bug" and v2["confused_pairs"] == []
    assert v2["change"]["pairs"][0]["after"] == pytest.approx(1.0)
    # and in Slack: the report's blocks have a section per version
    report = ephemeral_report(bot, lead)
    section = next(text for text in mrkdwn(report["blocks"]) if "Agreement by guideline version" in text)
    assert "v1 (since" in section and "v2 (since" in section


def _written(body: dict[str, Any]) -> dict[str, Any]:
    user = body["messages"][1]["content"]
    quoted = user.split("«", 1)[1].split("»", 1)[0]
    return {"guidelines": f"Pick one label.\nbug or how_to? Broken is bug. Example: «{quoted}» -> bug.",
            "changes": ["A rule for bug vs how_to <!here>", "A worked example"]}


def test_with_the_llm_the_proposal_is_written_and_published_as_is(sqlite_db: Any, fake_slack: Any,
                                                                  clock: Any) -> None:
    with FakeOpenAI(responder=_written) as llm, start_bot(sqlite_db, fake_slack, clock, openai_api_key="sk-test",
                                                          openai_base_url=llm.base_url) as bot:
        first_round(bot)
        lead = bot.user("ULEAD")
        lead.click(ephemeral_report(bot, lead), Action.SUGGEST_REVISION)
        modal = revision_modal(bot, lead)
        assert check_view(modal) == []
        assert part(modal).startswith("Pick one label.\nbug or how_to? Broken is bug. Example: «Ticket")
        assert "<!channel>" in part(modal)  # the quote, in a plain_text input: Slack never renders it
        assert "Proposed by test-model from the evidence" in json.dumps(modal["blocks"])
        summary = next(b for b in modal["blocks"] if b.get("block_id") == Block.REVISION_SUMMARY)
        assert summary["element"]["initial_value"] == "A rule for bug vs how_to <!here>\nA worked example"
        (request,) = [r for r in llm.chat_requests() if "annotation guidelines" in r["messages"][0]["content"]]
        assert "bug / how_to" in request["messages"][1]["content"]
        reply = lead.submit_view(modal)
        assert reply.json["response_action"] == "update"
        assert bot.deps.wait_idle(20)
        for user in PEOPLE:
            (notice,) = notices(bot, user)
            assert "A rule for bug vs how_to &lt;!here&gt;" in notice["blocks"][0]["text"]["text"]
        with bot.db.read() as s:
            assert get_project(s, SLUG).spec["instructions"].startswith("Pick one label.")


def test_with_the_llm_failing_the_modal_holds_the_template_and_the_failure_counts(sqlite_db: Any, fake_slack: Any,
                                                                                  clock: Any) -> None:
    with FakeOpenAI(responder=_written) as llm, start_bot(sqlite_db, fake_slack, clock, openai_api_key="sk-test",
                                                          openai_base_url=llm.base_url) as bot:
        first_round(bot)
        llm.fail_next(500, times=2)
        lead = bot.user("ULEAD")
        lead.click(ephemeral_report(bot, lead), Action.SUGGEST_REVISION)
        modal = revision_modal(bot, lead)
        warning = modal["blocks"][1]["elements"][0]["text"]
        assert warning.startswith(":warning: The LLM could not write a proposal (http_5xx: HTTP 500")
        assert PLACEHOLDER in part(modal) and "bug or how_to?" in part(modal)
        with bot.db.read() as s:
            (row,) = s.scalars(select(GuidelineSuggestion))
            assert (row.method, row.error_kind) == ("template", "http_5xx")
        text = build_report(bot.db, SLUG, since=bot.clock.now().replace(year=2025), until=bot.clock.now(),
                            now=bot.clock.now()).to_text()
        assert "the LLM failed 1 time (last: http_5xx" in text


def test_only_leads_can_revise_and_the_daily_report_has_the_button(sqlite_bot: Any) -> None:
    bot = sqlite_bot
    bot.fake.add_channel("CREPORTS")
    seed(bot.db, make_spec(labels=LABELS, members={"leads": ["ULEAD"]}, report={"channel": "CREPORTS"}),
         bot.clock.now(), items=items(0, 3))
    bot.clock.set(bot.clock.now().replace(hour=9, minute=30))
    assert [o.status for o in run_due_reports(bot.deps)] == ["posted"]
    (summary,) = [m for m in bot.fake.messages("CREPORTS") if m.get("subtype") != "file_share"]
    assert summary["blocks"][-1]["block_id"] == Block.SUGGEST and check_message_blocks(summary["blocks"]) == []
    someone = bot.user("UA")
    assert someone.click(summary, Action.SUGGEST_REVISION).status == 200
    said = bot.fake.wait_for(lambda: [r["payload"]["text"] for r in bot.fake.responses])
    assert "only the leads of *Support intents* can revise its guidelines. Ask <@ULEAD>." in said[0]
    assert bot.deps.wait_idle(10)
    assert bot.fake.views_open("UA") == [] and not bot.fake.calls_to("views.open")
    lead = bot.user("ULEAD")
    lead.click(summary, Action.SUGGEST_REVISION)
    modal = revision_modal(bot, lead)
    assert "No disagreement to show yet" in json.dumps(modal["blocks"])


def test_a_stale_or_forged_submission_changes_nothing(sqlite_bot: Any) -> None:
    bot = sqlite_bot
    first_round(bot)
    lead = bot.user("ULEAD")
    lead.click(ephemeral_report(bot, lead), Action.SUGGEST_REVISION)
    modal = revision_modal(bot, lead)
    from bot.services import guidelines

    guidelines.publish(bot.db, SLUG, "Someone else's version.", author="cli:other", source="cli",
                       now=bot.clock.now())
    reply = lead.submit_view(modal, {part_id(1): {Action.REVISION_TEXT: "My version."}})
    assert reply.json["response_action"] == "errors"
    assert "Version 2 was published while you were editing" in reply.json["errors"][part_id(1)]
    forged = dict(modal, private_metadata="{not json")
    reply = lead.submit_view(forged, {part_id(1): {Action.REVISION_TEXT: "Mine."}})
    assert "This form is damaged" in reply.json["errors"][part_id(1)]
    other = bot.user("UA")  # not a lead: a submission in their name is refused
    meta = json.loads(modal["private_metadata"])
    meta["v"] = 2
    reply = other.submit_view(dict(modal, private_metadata=json.dumps(meta)), {part_id(1): {Action.REVISION_TEXT: "x"}})
    assert "Only the leads of Support intents" in reply.json["errors"][part_id(1)]
    with bot.db.read() as s:
        assert get_project(s, SLUG).guideline_version == 2
    assert bot.deps.wait_idle(10)
    assert TEAM and all(notices(bot, user) == [] for user in PEOPLE)  # the CLI's version waits for the job
