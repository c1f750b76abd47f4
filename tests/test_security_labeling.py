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
    many = [f"a{n}" for n in range(1, 17)]  # more than the 15 shown as buttons: a menu
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
    bot.fake.wait_for(lambda: any("A lead paused your labels" in t for t in said(bot.fake)))
    bot.deps.wait_idle()
    assert item_status(bot.db, "e2") == "escalated"
    with bot.db.read() as s:  # only the Ambiguous (which does not count) was stored
        assert s.execute(select(Label.action, Label.counts)).all() == [("ambiguous", False)]


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
    assert "items 1 escalated (no majority)" in result.output
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
    # Recomputing again (after an interrupted update) changes nothing.
    result = run_cli(bot.db, "project", "rebalance", "intents")
    assert result.exit_code == 0 and "no item changed status" in result.output
    assert item_row(bot.db, "t2") == ("open", 1, 2)


# ------------------------------------------------------------------------------------------------
# Item 6: a lead's suspension is lifted only by a lead; the checks' one by a retake after the cooldown
# ------------------------------------------------------------------------------------------------

GOLD = [{"id": f"g{i}", "text": f"gold text {i}", "label": LABELS[i % 3]} for i in range(6)]


def member_row(db, user_id: str) -> tuple[str, str | None, str | None, str | None]:
    from storage.models import Member

    with db.read() as s:
        return tuple(s.execute(select(Member.state, Member.suspension, Member.suspended_by, Member.state_reason)
                               .where(Member.user_id == user_id)).one())


def attempts(db) -> list[str]:
    from storage.models import QuizAttempt

    with db.read() as s:
        return list(s.scalars(select(QuizAttempt.status).order_by(QuizAttempt.id)))


def take_quiz(bot, drv, right: bool = True) -> None:
    """Answer every quiz question (4), rightly or wrongly, from the question shown."""
    for _ in range(4):
        msg = bot.fake.wait_for(
            lambda: (m := bot.fake.last_message(drv.dm)) and "quiz question" in str(m["blocks"][0]) and m)
        correct = int(msg["blocks"][1]["text"]["text"].split()[-1]) % 3
        before = len(bot.fake.messages(drv.dm))
        drv.click(msg, f"label.choose:{correct if right else (correct + 1) % 3}")
        bot.fake.wait_for(lambda b=before: len(bot.fake.messages(drv.dm)) > b)


def test_a_member_a_lead_suspended_cannot_requalify_by_retaking_the_quiz(bot):
    seed(bot.db, make_spec(), bot.clock.now(), items=[{"id": "t1", "text": "x"}], gold=GOLD)
    spammer = bot.user("U0SPAM")
    spammer.command("/label", "quiz")
    take_quiz(bot, spammer)
    assert member_row(bot.db, "U0SPAM")[0] == "qualified"
    offer_before = bot.fake.last_message(spammer.dm)  # "Start labeling" (and older "Take quiz" buttons)

    result = run_cli(bot.db, "member", "intents", "U0SPAM", "--suspend", "--reason", "<!channel> spam *bold*",
                     "--by", "U0LEAD")
    assert result.exit_code == 0 and "suspended by U0LEAD" in result.output
    assert member_row(bot.db, "U0SPAM") == ("suspended", "lead", "U0LEAD", "<!channel> spam *bold*")

    spammer.command("/label", "quiz")  # right away...
    bot.fake.wait_for(lambda: any("quiz cannot lift that" in t for t in said(bot.fake)))
    bot.clock.advance(hours=48)  # ...or after any cooldown
    spammer.click(offer_before, "label.start")
    paused = bot.fake.wait_for(lambda: [r["payload"] for r in bot.fake.responses
                                        if "paused by a lead" in str(r["payload"].get("text"))])
    text = str(paused[0]["blocks"])
    assert "&lt;!channel&gt; spam *bold*" in text and "<!channel>" not in text  # the lead's words, escaped
    assert "quiz.start" not in text and "<@U0LEAD>" in text  # no quiz offered; who to ask
    spammer.command("/label", "quiz")
    bot.fake.wait_for(lambda: sum("quiz cannot lift that" in t for t in said(bot.fake)) == 2)
    bot.deps.wait_idle()
    assert attempts(bot.db) == ["passed"] and member_row(bot.db, "U0SPAM")[0] == "suspended"

    assert run_cli(bot.db, "member", "intents", "U0SPAM", "--reinstate").exit_code == 0
    assert member_row(bot.db, "U0SPAM")[:3] == ("qualified", None, None)
    before = len(bot.fake.messages(spammer.dm))
    spammer.command("/label")
    assert next_message(bot, spammer, before)["blocks"][1]["text"]["text"] == "x"


def test_a_lead_suspension_mid_quiz_stops_the_attempt_from_qualifying(bot):
    seed(bot.db, make_spec(), bot.clock.now(), items=[{"id": "t1", "text": "x"}], gold=GOLD)
    new = bot.user("U0NEW")
    new.command("/label", "quiz")
    question = bot.fake.wait_for(lambda: bot.fake.last_message(new.dm))
    run_cli(bot.db, "member", "intents", "U0NEW", "--suspend", "--reason", "fake account")
    new.click(question, "label.choose:0")
    bot.fake.wait_for(lambda: any("A lead paused your labels" in t for t in said(bot.fake)))
    bot.deps.wait_idle()
    with bot.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Label)) == 0
    # reinstating someone who never qualified puts them back at the quiz, not into the crowd
    run_cli(bot.db, "member", "intents", "U0NEW", "--reinstate")
    assert member_row(bot.db, "U0NEW")[0] == "new"


def test_a_pause_from_the_hidden_checks_is_lifted_by_a_retake_after_the_cooldown(bot):
    from bot.core.enums import Suspension
    from bot.services.projects import get_member, get_project, suspend_member

    seed(bot.db, make_spec(), bot.clock.now(), items=[{"id": "t1", "text": "x"}], gold=GOLD)
    qualify(bot.db, "intents", "U0SLOPPY", bot.clock.now())
    with bot.db.session() as s:  # what check_honeypots does when the accuracy falls below the floor
        member = get_member(s, get_project(s, "intents"), "U0SLOPPY")
        suspend_member(member, bot.clock.now(), source=Suspension.CHECKS, by="hidden checks",
                       reason="accuracy on the last 5 check items was 40%, below the 80% floor")
    sloppy = bot.user("U0SLOPPY")
    sloppy.command("/label")
    offer = bot.fake.wait_for(lambda: [r for r in bot.fake.responses if "paused" in str(r["payload"])])[-1]
    assert "retake the quiz from" in str(offer["payload"]) and "quiz.start" in str(offer["payload"])
    sloppy.command("/label", "quiz")
    bot.fake.wait_for(lambda: any("You can retake" in t and "in 24 h" in t for t in said(bot.fake)))
    bot.deps.wait_idle()
    assert attempts(bot.db) == []
    bot.clock.advance(hours=24, minutes=1)
    sloppy.command("/label", "quiz")
    take_quiz(bot, sloppy)
    bot.fake.wait_for(lambda: "you are qualified" in str(bot.fake.last_message(sloppy.dm)))
    assert member_row(bot.db, "U0SLOPPY")[:3] == ("qualified", None, None)


def test_a_suspended_lead_loses_lead_rights_everywhere(bot):
    seed(bot.db, make_spec(members={"leads": ["U0LEAD", "U0LEAD2"], "open_enrollment": False}), bot.clock.now(),
         items=[{"id": "t1", "text": "x"}])
    run_cli(bot.db, "member", "intents", "U0LEAD", "--suspend", "--reason", "left")
    lead = bot.user("U0LEAD")
    lead.command("/label-report", "intents")
    lead.command("/label-export", "intents")
    bot.fake.wait_for(lambda: sum("only the leads of" in t for t in said(bot.fake)) == 2)
    stranger = bot.user("U0STRANGER")  # invite-only: told to ask the leads who can act, not the paused one
    stranger.command("/label")
    reply = bot.fake.wait_for(lambda: [t for t in said(bot.fake) if "invite you" in t])[0]
    assert "<@U0LEAD2>" in reply and "<@U0LEAD>" not in reply
    bot.deps.wait_idle()
    assert bot.fake.files() == []


# ------------------------------------------------------------------------------------------------
# Item 7: a double click on "Take quiz" starts one attempt (and creates one member)
# ------------------------------------------------------------------------------------------------


def test_a_double_click_on_take_quiz_starts_one_attempt(bot):
    import threading

    from storage.models import Member, QuizAttempt

    seed(bot.db, make_spec(), bot.clock.now(), items=[{"id": "t1", "text": "x"}], gold=GOLD)
    users = [f"U0DBL{i}" for i in range(6)]
    homes = {}
    for uid in users:
        drv = bot.user(uid)
        drv.app_home_opened()
        homes[uid] = bot.fake.wait_for(lambda u=uid: bot.fake.home(u))
    barrier = threading.Barrier(len(users) * 2)

    def click(uid: str) -> None:
        drv = bot.user(uid)  # one driver per thread
        barrier.wait()
        assert drv.click(homes[uid], "quiz.start").status == 200

    threads = [threading.Thread(target=click, args=(uid,)) for uid in users for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    bot.deps.wait_idle()
    with bot.db.read() as s:
        counted = select(Member.user_id, func.count(QuizAttempt.id)).join(
            QuizAttempt, QuizAttempt.member_id == Member.id)
        per_member = dict(s.execute(counted.group_by(Member.user_id)).all())
        members = s.scalar(select(func.count()).select_from(Member).where(Member.user_id.in_(users)))
    assert per_member == dict.fromkeys(users, 1) and members == len(users)
    assert not [t for t in said(bot.fake) if "went wrong" in t]
    # Each one can answer the question in either copy: one answer, recorded once.
    for uid in users:
        drv = bot.user(uid)
        msg = bot.fake.wait_for(lambda d=drv: bot.fake.last_message(d.dm))
        drv.click(msg, "label.choose:0")
    bot.deps.wait_idle()
    with bot.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Label)) == len(users)


def test_concurrent_quiz_starts_wait_for_each_other_on_postgresql(database, clock):
    """Deterministic interleaving: A creates the member and starts the quiz but has not committed; B
    starts too and must wait for A, then continue A's attempt (not insert a second member or attempt)."""
    import threading
    import time

    import pytest
    from sqlalchemy import text

    from bot.services.labeling.quiz import start_quiz
    from bot.services.projects import get_project
    from storage.models import Member, QuizAttempt

    if not database.is_postgres:
        pytest.skip("SQLite serializes writers already (BEGIN IMMEDIATE)")
    seed(database, make_spec(), clock.now(), items=[{"id": "t1", "text": "x"}], gold=GOLD)
    a_started, a_commit = threading.Event(), threading.Event()
    found: dict[str, Any] = {}

    def first() -> None:
        with database.session() as s:
            found["a_pid"] = s.scalar(text("SELECT pg_backend_pid()"))
            found["a"] = start_quiz(s, get_project(s, "intents"), "U0TWICE", clock.now()).assignment_id
            a_started.set()
            a_commit.wait(30)

    def second() -> None:
        with database.session() as s:
            found["b"] = start_quiz(s, get_project(s, "intents"), "U0TWICE", clock.now()).assignment_id

    ta = threading.Thread(target=first)
    ta.start()
    assert a_started.wait(30)
    tb = threading.Thread(target=second)
    tb.start()
    deadline = time.monotonic() + 30
    with database.engine.connect() as conn:  # B is blocked by A (not finished, not failed)
        while not conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE :a = ANY(pg_blocking_pids(pid))"),
                               {"a": found["a_pid"]}).scalar():
            assert time.monotonic() < deadline and tb.is_alive(), found
            time.sleep(0.02)
            conn.rollback()
    a_commit.set()
    ta.join(30)
    tb.join(30)
    assert found["a"] == found["b"]
    with database.read() as s:
        assert s.scalar(select(func.count()).select_from(Member).where(Member.user_id == "U0TWICE")) == 1
        assert s.scalar(select(func.count()).select_from(QuizAttempt)) == 1


# ------------------------------------------------------------------------------------------------
# Also: the project name (lead-typed) is escaped wherever it goes into mrkdwn
# ------------------------------------------------------------------------------------------------


def test_a_hostile_project_name_never_pings_anyone(bot):
    name = "<!channel> *Support* <https://evil.example|login>"
    seed(bot.db, make_spec(name=name, quiz={"size": 10}, members={"open_enrollment": False}), bot.clock.now(),
         items=[{"id": "t1", "text": "x"}], gold=GOLD)
    bot.user("U0STRANGER").command("/label")  # invite-only
    bot.user("U0STRANGER").command("/label", "quiz")
    qualify(bot.db, "intents", "U0NEW", bot.clock.now())
    bot.user("U0NEW").command("/label", "quiz")  # already qualified
    bot.user("U0NEW").command("/label", "nosuch<!here>")
    texts = bot.fake.wait_for(lambda: len(said(bot.fake)) >= 4 and said(bot.fake))
    assert any("invite" in t for t in texts) and any("already qualified" in t for t in texts)
    for t in texts:
        assert "<!channel>" not in t and "<!here>" not in t and "<https://evil" not in t, t
    assert any("&lt;!channel&gt; *Support*" in t for t in texts)
