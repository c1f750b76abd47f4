"""Multilabel, spans and rewrite end to end; blind control; lease expiry; hostile and huge text."""

from __future__ import annotations

import json

from sqlalchemy import select

from storage.models import Assignment, Item, Label
from tests.conftest import make_spec
from tests.helpers import add_draft, qualify, seed
from tests.test_labeling_flow import said

HOSTILE = "<!channel> pay now <https://evil.example|your bank> <@U0LEAD> &amp; \u202eevil\u202c zero\u200bwidth"


def _next(bot, drv, before):
    return bot.fake.wait_for(lambda: len(bot.fake.messages(drv.dm)) > before and bot.fake.last_message(drv.dm))


def test_multilabel_prechecked_accept_and_changed_checks(bot):
    spec = make_spec(task="multilabel", labels=["urgent", "billing", "bug"])
    seed(bot.db, spec, bot.clock.now(), items=[{"id": "a", "text": "Charged twice, urgent!"},
                                               {"id": "b", "text": "Crash when paying"}])
    add_draft(bot.db, "intents", "a", ["billing", "urgent"], bot.clock.now())
    add_draft(bot.db, "intents", "b", ["bug"], bot.clock.now())
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    drv = bot.user("U0ANN")
    drv.command("/label")
    msg = _next(bot, drv, 0)
    checks = next(e for b in msg["blocks"] for e in b.get("elements", []) if e.get("type") == "checkboxes")
    assert sorted(o["text"]["text"] for o in checks["initial_options"]) == ["billing", "urgent"]
    drv.click(msg, "label.accept")
    msg = _next(bot, drv, 1)
    # the annotator ticks "billing" too, then submits
    drv.click(msg, "label.checks", selected_options=["1", "2"])
    drv.click(msg, "label.submit")
    bot.fake.wait_for(lambda: "queue is empty" in (bot.fake.last_message(drv.dm) or {}).get("text", ""))
    with bot.db.read() as s:
        rows = s.execute(select(Label.action, Label.value).order_by(Label.id)).all()
    assert rows == [("accept", ["billing", "urgent"]), ("edit", ["billing", "bug"])]


def test_spans_edit_modal_validation_and_save(bot):
    spec = make_spec(task="spans", labels=["LOC", "PER"])
    text = "Ann flew to Paris"
    seed(bot.db, spec, bot.clock.now(), items=[{"id": "s1", "text": text}])
    add_draft(bot.db, "intents", "s1", [{"start": 12, "end": 17, "label": "LOC"}], bot.clock.now())
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    drv = bot.user("U0ANN")
    drv.command("/label")
    msg = _next(bot, drv, 0)
    assert "[Paris](LOC)" in json.dumps(msg["blocks"])
    drv.click(msg, "label.edit")
    view = bot.fake.wait_for(lambda: bot.fake.views_open("U0ANN") and bot.fake.views_open("U0ANN")[-1])
    assert view["blocks"][-1]["element"]["initial_value"] == "Ann flew to [Paris](LOC)"
    # a typo in the text outside the brackets is refused with a field error, nothing stored
    reply = drv.submit_view(view, {"lb.edit_input": {"value": "Ann flew to [Pari](LOC)"}})
    body = reply.json
    assert body["response_action"] == "errors" and "lb.edit_input" in body["errors"]
    reply = drv.submit_view(view, {"lb.edit_input": {"value": "[Ann](PERSON) flew to [Paris](LOC)"}})
    assert "PERSON" in reply.json["errors"]["lb.edit_input"]
    with bot.db.read() as s:
        assert s.scalars(select(Label)).all() == []
    reply = drv.submit_view(view, {"lb.edit_input": {"value": "[Ann](PER) flew to [Paris](LOC)"}})
    assert reply.status == 200 and not reply.body.strip().startswith('{"response_action"')
    bot.fake.wait_for(lambda: "edited the draft" in str(bot.fake.messages(drv.dm)[0]["blocks"]))
    with bot.db.read() as s:
        label = s.scalar(select(Label))
    assert label.action == "edit"
    assert label.value == [{"start": 0, "end": 3, "label": "PER"}, {"start": 12, "end": 17, "label": "LOC"}]


def test_rewrite_reject_opens_empty_modal_and_refuses_empty(bot):
    spec = make_spec(task="rewrite", labels=[])
    seed(bot.db, spec, bot.clock.now(), items=[{"id": "r1", "text": "pls fix ur app its broke"}])
    add_draft(bot.db, "intents", "r1", "Please fix your app; it is broken.", bot.clock.now())
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    drv = bot.user("U0ANN")
    drv.command("/label")
    msg = _next(bot, drv, 0)
    drv.click(msg, "label.reject")
    view = bot.fake.wait_for(lambda: bot.fake.views_open("U0ANN") and bot.fake.views_open("U0ANN")[-1])
    assert "initial_value" not in view["blocks"][-1]["element"]
    reply = drv.submit_view(view, {"lb.edit_input": {"value": "   "}})
    assert "empty" in reply.json["errors"]["lb.edit_input"]
    drv.submit_view(view, {"lb.edit_input": {"value": "Please fix the app, it is broken."}})
    bot.fake.wait_for(lambda: "rejected the draft" in str(bot.fake.messages(drv.dm)[0]["blocks"]))
    with bot.db.read() as s:
        label = s.scalar(select(Label))
    assert (label.action, label.value, label.draft_shown) == ("reject", "Please fix the app, it is broken.", True)


def test_blind_every_nth_hides_the_draft_but_links_it(bot):
    items = [{"id": f"t{i}", "text": f"text {i}"} for i in range(6)]
    seed(bot.db, make_spec(blind_every=3, redundancy=1), bot.clock.now(), items=items)
    for i in range(6):
        add_draft(bot.db, "intents", f"t{i}", "billing", bot.clock.now())
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    drv = bot.user("U0ANN")
    drv.command("/label")
    seen_blind = []
    for n in range(6):
        msg = _next(bot, drv, n)
        blind = "Label from scratch" in json.dumps(msg["blocks"])
        seen_blind.append(blind)
        assert ("label.accept" in json.dumps(msg["blocks"])) is (not blind)
        drv.click(msg, "label.choose:0")
    assert seen_blind == [False, False, True, False, False, True]
    bot.fake.wait_for(lambda: "queue is empty" in (bot.fake.last_message(drv.dm) or {}).get("text", ""))
    with bot.db.read() as s:
        rows = s.execute(select(Label.draft_shown, Label.action, Label.draft_id).order_by(Label.id)).all()
    assert [r[0] for r in rows] == [True, True, False, True, True, False]
    assert [r[1] for r in rows] == ["accept", "accept", "manual", "accept", "accept", "manual"]
    assert all(r[2] is not None for r in rows)  # the blind items' drafts are stored and linked


def test_expired_lease_returns_the_item_and_refuses_the_late_click(bot):
    from bot.services.labeling import expire_leases

    seed(bot.db, make_spec(redundancy=1, lease_minutes=30), bot.clock.now(), items=[{"id": "t1", "text": "x"}])
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    qualify(bot.db, "intents", "U0BOB", bot.clock.now())
    ann, bob = bot.user("U0ANN"), bot.user("U0BOB")
    ann.command("/label")
    msg = _next(bot, ann, 0)
    bob.command("/label")
    bot.fake.wait_for(lambda: any("with other annotators" in t for t in said(bot.fake)))
    bot.clock.advance(minutes=31)
    with bot.db.session() as s:
        assert len(expire_leases(s, bot.clock.now())) == 1
    ann.click(msg, "label.choose:0")
    bot.fake.wait_for(lambda: any("expired" in t for t in said(bot.fake)))
    before = len(bot.fake.messages(bob.dm))
    bob.command("/label")
    bot.fake.wait_for(lambda: len(bot.fake.messages(bob.dm)) > before)
    with bot.db.read() as s:
        assert s.scalars(select(Label)).all() == []
        statuses = s.scalars(select(Assignment.status).order_by(Assignment.id)).all()
    assert statuses == ["expired", "open"]


def test_hostile_and_huge_text_stays_data_and_within_limits(bot):
    huge = HOSTILE + " " + "long " * 10_000  # > 50,000 characters
    items = [{"id": "h1", "text": huge}, {"id": "h2", "text": HOSTILE}]
    seed(bot.db, make_spec(redundancy=1), bot.clock.now(), items=items)
    add_draft(bot.db, "intents", "h1", "billing", bot.clock.now())
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    drv = bot.user("U0ANN")
    drv.command("/label")
    msg = _next(bot, drv, 0)  # the fake refuses anything over Block Kit limits with invalid_blocks
    assert msg["blocks"][1]["text"]["type"] == "plain_text"
    assert "<!channel>" not in json.dumps([b for b in msg["blocks"] if b.get("text", {}).get("type") == "mrkdwn"])
    assert "<!channel>" not in msg["text"]
    drv.click(msg, "label.full_text")
    view = bot.fake.wait_for(lambda: bot.fake.views_open("U0ANN") and bot.fake.views_open("U0ANN")[-1])
    shown = "".join(b["text"]["text"] for b in view["blocks"] if b["type"] == "section")
    assert shown == huge
    drv.click(msg, "label.choose:1")
    msg2 = _next(bot, drv, 1)
    assert msg2["blocks"][1]["text"] == {"type": "plain_text", "text": HOSTILE, "emoji": False}
    record = bot.fake.message(drv.dm, msg["ts"])
    assert "&lt;!channel&gt;" in json.dumps(record["blocks"])
    assert not bot.fake.internal_errors


def test_guidelines_and_home_tab(bot):
    seed(bot.db, make_spec(instructions="Read <!here> carefully"), bot.clock.now(), items=[{"id": "t", "text": "x"}])
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    drv = bot.user("U0ANN")
    drv.app_home_opened()
    home = bot.fake.wait_for(lambda: bot.fake.home("U0ANN"))
    assert "Start labeling" in json.dumps(home["blocks"])
    drv.click(home, "label.start")
    msg = _next(bot, drv, 0)
    drv.click(msg, "label.guidelines")
    view = bot.fake.wait_for(lambda: bot.fake.views_open("U0ANN") and bot.fake.views_open("U0ANN")[-1])
    text = json.dumps(view["blocks"])
    assert "Read <!here> carefully" in text and '"plain_text"' in text
    assert "Charges, refunds, invoices" in text


def test_event_retries_are_handled_once(bot):
    seed(bot.db, make_spec(), bot.clock.now(), items=[{"id": "t", "text": "x"}])
    drv = bot.user("U0ANN")
    for retry in (None, 1, 2):
        assert drv.app_home_opened(event_id="Ev123", retry_num=retry).status == 200
    assert bot.deps.wait_idle()
    assert len(bot.fake.calls_to("views.publish")) == 1


def test_bad_signature_is_rejected(bot):
    assert bot.user("U0ANN").command("/label", bad_signature=True).status == 401
    assert bot.fake.calls_to("chat.postMessage") == []


def test_unknown_project_and_usage_errors_are_ephemeral(bot):
    seed(bot.db, make_spec(), bot.clock.now(), items=[{"id": "t", "text": "x"}])
    drv = bot.user("U0ANN")
    drv.command("/label", "nosuch")
    bot.fake.wait_for(lambda: any("No project `nosuch`" in t for t in said(bot.fake)))
    drv.command("/label", "a b c")
    bot.fake.wait_for(lambda: any("Usage" in t for t in said(bot.fake)))
    drv.command("/label", "help")
    bot.fake.wait_for(lambda: any("/label quiz" in t for t in said(bot.fake)))
    assert all(r["payload"].get("response_type") == "ephemeral" for r in bot.fake.responses)
    with bot.db.read() as s:
        assert s.scalar(select(Item.slots)) == 3


def test_last_items_held_by_others_say_so_instead_of_empty(bot):
    seed(bot.db, make_spec(redundancy=1), bot.clock.now(), items=[{"id": "t1", "text": "only one"}])
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    qualify(bot.db, "intents", "U0BOB", bot.clock.now())
    ann, bob = bot.user("U0ANN"), bot.user("U0BOB")
    ann.command("/label")
    msg = _next(bot, ann, 0)
    bob.command("/label")  # the only item is leased to Ann: Bob is told to come back, not "empty"
    bot.fake.wait_for(lambda: any("with other annotators" in t for t in said(bot.fake)))
    ann.click(msg, "label.choose:0")
    bot.fake.wait_for(lambda: "queue is empty" in (bot.fake.last_message(ann.dm) or {}).get("text", ""))
