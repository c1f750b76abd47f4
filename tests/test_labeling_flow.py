"""The labeling loop end to end: signed requests to the real Bolt endpoint, the fake Slack, a real DB."""

from __future__ import annotations

from sqlalchemy import func, select

from storage.models import Assignment, Item, Label
from tests.conftest import make_spec
from tests.helpers import add_draft, qualify, seed

ITEMS = [
    {"id": "t1", "text": "I was charged twice this month"},
    {"id": "t2", "text": "The app crashes when I log in"},
    {"id": "t3", "text": "Please add a dark mode"},
]


def said(fake):
    """Texts the bot sent through response_url (ephemeral replies to commands and clicks)."""
    return [str(r["payload"].get("text", "")) + str(r["payload"].get("blocks", "")) for r in fake.responses]


def _buttons(message):
    out = {}
    for block in message["blocks"]:
        for el in block.get("elements", []):
            if el.get("type") == "button":
                out[el["text"]["text"]] = el
    return out


def test_classification_accept_next_and_empty_queue(bot):
    spec = make_spec()
    seed(bot.db, spec, bot.clock.now(), items=ITEMS)
    for ext, label in [("t1", "billing"), ("t2", "bug"), ("t3", "feature")]:
        add_draft(bot.db, "intents", ext, label, bot.clock.now())
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")

    reply = ann.command("/label")
    assert reply.status == 200
    msg = bot.fake.wait_for(lambda: bot.fake.last_message(ann.dm))
    buttons = _buttons(msg)
    assert {"✓ billing", "bug", "feature", "Accept", "Skip", "Ambiguous", "Guidelines"} <= set(buttons)
    assert buttons["✓ billing"].get("style") == "primary"
    # the ephemeral reply to the command
    bot.fake.wait_for(lambda: any("DM" in t for t in said(bot.fake)))

    bot.clock.advance(seconds=4)
    assert ann.click(msg, "label.accept").status == 200
    # the message is replaced by a record, and the next example is posted
    bot.fake.wait_for(lambda: len(bot.fake.messages(ann.dm)) == 2)
    first = bot.fake.message(ann.dm, msg["ts"])
    assert "accepted the draft" in first["blocks"][0]["text"]["text"]
    assert not any(b["type"] == "actions" for b in first["blocks"])
    second = bot.fake.last_message(ann.dm)
    assert "crashes" in second["blocks"][1]["text"]["text"]

    # choose a different label than the draft: stored as a rejection with the chosen value
    ann.click(second, "label.choose:2")
    bot.fake.wait_for(lambda: len(bot.fake.messages(ann.dm)) == 3)
    third = bot.fake.last_message(ann.dm)
    ann.click(third, "label.skip")
    bot.fake.wait_for(lambda: "queue is empty" in (bot.fake.last_message(ann.dm) or {}).get("text", ""))

    with bot.db.read() as s:
        rows = s.execute(select(Label.action, Label.value, Label.seconds, Label.counts, Label.draft_shown)
                         .order_by(Label.id)).all()
    assert rows[0] == ("accept", "billing", 4.0, True, True)
    assert rows[1][:2] == ("reject", "feature")
    assert rows[2][:2] == ("skip", None)
    assert rows[2][3] is False


def test_double_click_and_replay_store_one_label(bot):
    seed(bot.db, make_spec(), bot.clock.now(), items=ITEMS)
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")
    ann.command("/label")
    msg = bot.fake.wait_for(lambda: bot.fake.last_message(ann.dm))
    for _ in range(3):
        assert ann.click(msg, "label.choose:0").status == 200
    bot.fake.wait_for(lambda: len(bot.fake.messages(ann.dm)) >= 2)
    assert bot.deps.wait_idle()  # every listener run has finished: count now
    with bot.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Label)) == 1
    assert len(bot.fake.messages(ann.dm)) == 2  # exactly one next example


def test_forged_click_from_another_user_is_refused(bot):
    seed(bot.db, make_spec(), bot.clock.now(), items=ITEMS)
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    qualify(bot.db, "intents", "U0EVE", bot.clock.now())
    ann, eve = bot.user("U0ANN"), bot.user("U0EVE")
    ann.command("/label")
    msg = bot.fake.wait_for(lambda: bot.fake.last_message(ann.dm))
    eve.click(msg, "label.choose:1")
    bot.fake.wait_for(lambda: any("not yours" in t for t in said(bot.fake)))
    with bot.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Label)) == 0


def test_unqualified_user_is_offered_the_quiz(bot):
    seed(bot.db, make_spec(), bot.clock.now(), items=ITEMS)
    new = bot.user("U0NEW")
    new.command("/label")
    reply = bot.fake.wait_for(lambda: said(bot.fake))
    assert "Take quiz" in reply[-1]
    with bot.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Assignment)) == 0


def test_redundancy_and_no_majority_escalates_to_expert(bot):
    seed(bot.db, make_spec(), bot.clock.now(), items=ITEMS[:1])
    users = ["U0A", "U0B", "U0C"]
    for i, uid in enumerate(users):
        qualify(bot.db, "intents", uid, bot.clock.now())
        drv = bot.user(uid)
        drv.command("/label")
        msg = bot.fake.wait_for(lambda d=drv: bot.fake.last_message(d.dm))
        drv.click(msg, f"label.choose:{i}")  # three different answers: no majority
        bot.fake.wait_for(lambda d=drv: len(bot.fake.messages(d.dm)) == 2)
    with bot.db.read() as s:
        assert s.scalar(select(Item.status)) == "escalated"
    # a fourth annotator gets nothing: the item has its labels
    qualify(bot.db, "intents", "U0D", bot.clock.now())
    d = bot.user("U0D")
    d.command("/label")
    bot.fake.wait_for(lambda: any("empty" in t for t in said(bot.fake)))
    # the expert sees it with the crowd's answers, and their answer is final
    expert = bot.user("U0EXPERT")
    expert.command("/label")
    msg = bot.fake.wait_for(lambda: bot.fake.last_message(expert.dm))
    assert "Crowd answers" in str(msg["blocks"])
    expert.click(msg, "label.choose:0")
    bot.fake.wait_for(lambda: len(bot.fake.messages(expert.dm)) == 2)
    with bot.db.read() as s:
        assert s.scalar(select(Item.status)) == "resolved"
        kinds = s.scalars(select(Label.kind).order_by(Label.id)).all()
    assert kinds == ["production", "production", "production", "expert"]


def test_forged_button_values_are_refused(bot):
    seed(bot.db, make_spec(), bot.clock.now(), items=ITEMS)
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")
    ann.command("/label")
    msg = bot.fake.wait_for(lambda: bot.fake.last_message(ann.dm))
    aid, _, version = msg["blocks"][3]["elements"][0]["value"].split(":")
    forged = [("label.ambiguous", "DROP TABLE"), ("label.choose:0", aid), ("label.choose:0", f"{aid}:99:{version}"),
              ("label.skip", "999999")]
    for action_id, value in forged:
        assert ann.click(msg, action_id, value=value).status == 200
    bot.fake.wait_for(lambda: sum("nothing was recorded" in t for t in said(bot.fake)) == 4)
    assert any("not part of this project" in t for t in said(bot.fake))
    with bot.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Label)) == 0
