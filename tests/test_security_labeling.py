"""The labeling loop under attack and under careless leads, over the real wire on SQLite and PostgreSQL:
stale label buttons after a label list change, experts and escalated items, redundancy changes,
suspensions and quiz retakes, untrusted names and reasons in mrkdwn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import func, select

from bot.cli import load_commands
from storage.models import Label
from tests.conftest import make_spec
from tests.helpers import add_draft, qualify, seed
from tests.test_labeling_flow import said

cli = load_commands()
LABELS = ["billing", "bug", "feature"]


def run_cli(db, *args: str) -> Any:
    """A lead's `labelbot ...` against the test database (as on the server)."""
    result = CliRunner().invoke(cli, list(args), env={"DATABASE_URL": db.url}, catch_exceptions=False)
    return result


def update_spec(db, tmp_path: Path, **overrides: Any) -> Any:
    path = tmp_path / f"spec-{len(list(tmp_path.glob('spec-*')))}.yml"
    path.write_text(make_spec(**overrides).to_yaml(), encoding="utf-8")
    result = run_cli(db, "project", "update", str(path))
    assert result.exit_code == 0, result.output
    return result


def labels_stored(db) -> list[tuple[str, Any]]:
    with db.read() as s:
        return [tuple(r) for r in s.execute(select(Label.action, Label.value).order_by(Label.id)).all()]


def next_message(bot, drv, before: int) -> dict[str, Any]:
    return bot.fake.wait_for(lambda: len(bot.fake.messages(drv.dm)) > before and bot.fake.last_message(drv.dm))


# ------------------------------------------------------------------------------------------------
# Item 4: a click after the label list changed is refused, never stored as another label
# ------------------------------------------------------------------------------------------------


def test_a_click_made_before_the_labels_changed_is_refused_not_misfiled(bot, tmp_path):
    seed(bot.db, make_spec(), bot.clock.now(), items=[{"id": "t1", "text": "I was charged twice"}])
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")
    ann.command("/label")
    old = next_message(bot, ann, 0)

    # The lead inserts "refund" before "billing": position 0 now means refund.
    update_spec(bot.db, tmp_path, labels=["refund", *LABELS])
    assert ann.click(old, "label.choose:0").status == 200  # the "billing" button of the old message
    bot.fake.wait_for(lambda: any("labels changed" in t for t in said(bot.fake)))
    bot.deps.wait_idle()
    assert labels_stored(bot.db) == []

    ann.command("/label")  # the same example again, with today's buttons
    fresh = next_message(bot, ann, 1)
    buttons = [e["text"]["text"] for b in fresh["blocks"] for e in b.get("elements", []) if "choose" in
               e.get("action_id", "")]
    assert buttons == ["refund", *LABELS]
    ann.click(fresh, "label.choose:1")
    bot.fake.wait_for(lambda: "billing" in str(bot.fake.messages(ann.dm)[1]["blocks"]))
    bot.deps.wait_idle()
    assert labels_stored(bot.db) == [("manual", "billing")]


def test_a_stale_menu_choice_is_refused(bot, tmp_path):
    many = ["a1", "a2", "a3", "a4", "a5", "a6"]
    seed(bot.db, make_spec(labels=many), bot.clock.now(), items=[{"id": "t1", "text": "x"}])
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")
    ann.command("/label")
    old = next_message(bot, ann, 0)
    update_spec(bot.db, tmp_path, labels=list(reversed(many)))  # a reorder
    menu = next(e for b in old["blocks"] for e in b.get("elements", []) if e.get("type") == "static_select")
    option = menu["options"][0]["value"]
    ann.click(old, "label.select", selected_option=option)
    bot.fake.wait_for(lambda: any("labels changed" in t for t in said(bot.fake)))
    bot.deps.wait_idle()
    assert labels_stored(bot.db) == []


def test_stale_multilabel_submit_is_refused(bot, tmp_path):
    seed(bot.db, make_spec(task="multilabel", labels=LABELS), bot.clock.now(), items=[{"id": "t1", "text": "x"}])
    add_draft(bot.db, "intents", "t1", ["bug"], bot.clock.now())
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")
    ann.command("/label")
    old = next_message(bot, ann, 0)
    update_spec(bot.db, tmp_path, task="multilabel", labels=["feature", "bug", "billing"])
    ann.click(old, "label.checks", selected_options=["0"])  # "billing" when the message was built
    ann.click(old, "label.submit")
    bot.fake.wait_for(lambda: any("labels changed" in t for t in said(bot.fake)))
    bot.deps.wait_idle()
    assert labels_stored(bot.db) == []
    with bot.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Label)) == 0


# ------------------------------------------------------------------------------------------------
# Item 2: experts are never locked out, and an item is resolved only by a counting expert answer
# ------------------------------------------------------------------------------------------------


def escalate(db, *external_ids: str) -> None:
    from sqlalchemy import update

    from storage.models import Item

    with db.session() as s:
        s.execute(update(Item).where(Item.external_id.in_(external_ids))
                  .values(status="escalated", escalation_reason="no majority among the crowd's labels", slots=0))


def item_status(db, external_id: str) -> str:
    from storage.models import Item

    with db.read() as s:
        return s.scalar(select(Item.status).where(Item.external_id == external_id))


def errors_said(fake) -> list[str]:
    return [t for t in said(fake) if "went wrong" in t]


def test_an_expert_gets_an_item_back_after_their_lease_ran_out_and_keeps_working(bot):
    from bot.jobs import expire_old_leases

    seed(bot.db, make_spec(), bot.clock.now(), items=[{"id": "e1", "text": "charged, or a bug?"}])
    escalate(bot.db, "e1")
    expert = bot.user("U0EXPERT")
    expert.command("/label")
    first = next_message(bot, expert, 0)
    assert "expert review" in str(first["blocks"][0])
    bot.clock.advance(minutes=31)  # the 30-minute lease runs out...
    expire_old_leases(bot.deps)  # ...and the sweeper returns it
    expert.command("/label")
    again = next_message(bot, expert, 1)
    assert again["blocks"][1] == first["blocks"][1]  # the same item, served again
    expert.click(again, "label.choose:0")
    bot.fake.wait_for(lambda: "queue is empty" in str(bot.fake.last_message(expert.dm)))
    expert.command("/label")  # and /label keeps working afterwards
    bot.fake.wait_for(lambda: sum("queue is empty" in t for t in said(bot.fake)) >= 1)
    bot.deps.wait_idle()
    assert item_status(bot.db, "e1") == "resolved"
    assert errors_said(bot.fake) == []


def test_an_expert_skip_on_the_last_escalated_item_is_kept_and_they_are_not_served_it_again(bot):
    seed(bot.db, make_spec(), bot.clock.now(), items=[{"id": "e1", "text": "charged, or a bug?"}])
    escalate(bot.db, "e1")
    expert = bot.user("U0EXPERT")
    expert.command("/label")
    msg = next_message(bot, expert, 0)
    expert.click(msg, "label.skip")
    bot.fake.wait_for(lambda: "queue is empty" in str(bot.fake.last_message(expert.dm)))
    expert.command("/label")
    bot.fake.wait_for(lambda: any("queue is empty" in t for t in said(bot.fake)))
    bot.deps.wait_idle()
    assert labels_stored(bot.db) == [("skip", None)]
    assert item_status(bot.db, "e1") == "escalated" and errors_said(bot.fake) == []
    # another expert picks it up
    run_cli(bot.db, "member", "intents", "U0EXPERT2", "--tier", "expert")
    other = bot.user("U0EXPERT2")
    other.command("/label")
    assert "charged, or a bug?" in str(next_message(bot, other, 0)["blocks"][1])


def test_an_expert_ambiguous_or_a_suspended_expert_does_not_resolve_the_item(bot):
    seed(bot.db, make_spec(), bot.clock.now(), items=[{"id": "e1", "text": "first"}, {"id": "e2", "text": "second"}])
    escalate(bot.db, "e1")
    expert = bot.user("U0EXPERT")
    expert.command("/label")
    msg = next_message(bot, expert, 0)
    expert.click(msg, "label.ambiguous")
    bot.fake.wait_for(lambda: len(bot.fake.messages(expert.dm)) == 2)
    bot.deps.wait_idle()
    assert item_status(bot.db, "e1") == "escalated"

    escalate(bot.db, "e2")
    expert.command("/label")
    msg = next_message(bot, expert, 2)
    assert "second" in str(msg["blocks"][1])  # not e1 again: they already answered it
    assert run_cli(bot.db, "member", "intents", "U0EXPERT", "--suspend", "--reason", "left the team").exit_code == 0
    expert.click(msg, "label.choose:0")  # a click on the example served before the suspension
    bot.deps.wait_idle()
    assert item_status(bot.db, "e2") == "escalated"
    with bot.db.read() as s:
        assert s.scalars(select(Label.counts).order_by(Label.id)).all() == [False, False]


# ------------------------------------------------------------------------------------------------
# Item 8: lowering redundancy recomputes slots from labels and leases, and settles ties properly
# ------------------------------------------------------------------------------------------------


def item_row(db, external_id: str) -> tuple[str, int, int]:
    from storage.models import Item

    with db.read() as s:
        return tuple(s.execute(select(Item.status, Item.slots, Item.labels_done)
                               .where(Item.external_id == external_id)).one())


def test_lowering_redundancy_escalates_ties_and_remembers_leases(bot, tmp_path):
    from bot.jobs import expire_old_leases

    seed(bot.db, make_spec(redundancy=3), bot.clock.now(),
         items=[{"id": "t1", "text": "first ticket"}, {"id": "t2", "text": "second ticket"}])
    for uid in ("U0A", "U0B", "U0C"):
        qualify(bot.db, "intents", uid, bot.clock.now())
    a, b, c = bot.user("U0A"), bot.user("U0B"), bot.user("U0C")
    a.command("/label")
    a.click(next_message(bot, a, 0), "label.choose:0")  # t1: billing; A is then served t2 (a lease)
    next_message(bot, a, 1)
    b.command("/label")
    b.click(next_message(bot, b, 0), "label.choose:1")  # t1: bug -- a 1:1 tie; B is then served t2
    b.click(next_message(bot, b, 1), "label.choose:0")  # t2: billing; A still holds t2's other lease
    next_message(bot, b, 2)
    bot.deps.wait_idle()
    assert item_row(bot.db, "t1") == ("open", 1, 2)
    assert item_row(bot.db, "t2") == ("open", 1, 1)

    result = update_spec(bot.db, tmp_path, redundancy=2)
    assert "1 escalated (no majority)" in result.output
    assert item_row(bot.db, "t1") == ("escalated", 0, 2)  # a tie is not a final answer
    assert item_row(bot.db, "t2") == ("open", 0, 1)  # one label + A's lease: nothing to hand out, not done

    c.command("/label")
    bot.fake.wait_for(lambda: any("with other annotators" in t for t in said(bot.fake)))
    bot.clock.advance(minutes=31)
    expire_old_leases(bot.deps)  # A's lease runs out: its slot comes back
    assert item_row(bot.db, "t2") == ("open", 1, 1)
    c.command("/label")
    c.click(next_message(bot, c, 0), "label.choose:0")
    bot.fake.wait_for(lambda: "queue is empty" in str(bot.fake.last_message(c.dm)))
    bot.deps.wait_idle()
    assert item_row(bot.db, "t2") == ("complete", 0, 2)

    # Raising it again reopens complete items with what they still need.
    update_spec(bot.db, tmp_path, redundancy=3)
    assert item_row(bot.db, "t2") == ("open", 1, 2)
    assert item_row(bot.db, "t1") == ("escalated", 0, 2)
