"""Qualification quiz, cooldown, hidden gold checks and suspension, experts, gold promotion — end to end."""

from __future__ import annotations

from sqlalchemy import select

from storage.models import Gold, Label, Member, QuizAttempt
from tests.conftest import make_spec
from tests.helpers import qualify, seed
from tests.test_labeling_flow import said

LABELS = ["billing", "bug", "feature"]
GOLD = [
    {"id": f"g{i}", "text": f"gold text {i}", "label": LABELS[i % 3], "explanation": f"because {i}"}
    for i in range(6)
]
ITEMS = [{"id": f"t{i}", "text": f"item text {i}"} for i in range(8)]


def _gold_answer(text: str) -> int:
    return int(text.split()[-1]) % 3


def _answer_quiz(bot, drv, right: int) -> None:
    """Answer the 4 quiz questions, the first `right` correctly."""
    for n in range(4):
        msg = bot.fake.wait_for(
            lambda: (m := bot.fake.last_message(drv.dm)) and "quiz question" in str(m["blocks"][0]) and m
        )
        text = msg["blocks"][1]["text"]["text"]
        correct = _gold_answer(text)
        choice = correct if n < right else (correct + 1) % 3
        before = len(bot.fake.messages(drv.dm))
        drv.click(msg, f"label.choose:{choice}")
        bot.fake.wait_for(lambda b=before: len(bot.fake.messages(drv.dm)) > b)


def test_fail_cooldown_pass_then_label(bot):
    seed(bot.db, make_spec(), bot.clock.now(), items=ITEMS, gold=GOLD)
    drv = bot.user("U0NEW")
    drv.command("/label", "quiz")
    _answer_quiz(bot, drv, right=2)  # 50% < 75%
    end = bot.fake.wait_for(lambda: "Quiz finished" in str(bot.fake.last_message(drv.dm)["blocks"]) and
                            bot.fake.last_message(drv.dm))
    assert "50%" in str(end["blocks"]) and "retake" in str(end["blocks"])
    # feedback after a wrong answer shows the gold answer and its explanation
    assert any("Not quite" in str(m["blocks"]) and "because" in str(m["blocks"]) for m in bot.fake.messages(drv.dm))

    drv.command("/label", "quiz")
    bot.fake.wait_for(lambda: any("retake" in t and "in 2" in t for t in said(bot.fake)))
    bot.clock.advance(hours=25)
    drv.command("/label", "quiz")
    _answer_quiz(bot, drv, right=4)
    end = bot.fake.wait_for(lambda: "qualified" in str(bot.fake.last_message(drv.dm)["blocks"]) and
                            bot.fake.last_message(drv.dm))
    with bot.db.read() as s:
        member = s.scalar(select(Member).where(Member.user_id == "U0NEW"))
        attempts = s.scalars(select(QuizAttempt.status).order_by(QuizAttempt.id)).all()
        quiz_counts = s.scalars(select(Label.counts).where(Label.kind == "quiz")).all()
    assert member.state == "qualified"
    assert attempts == ["failed", "passed"]
    assert quiz_counts and not any(quiz_counts)
    # now production labeling works
    before = len(bot.fake.messages(drv.dm))
    drv.click(end, "label.start")
    msg = bot.fake.wait_for(lambda: len(bot.fake.messages(drv.dm)) > before and bot.fake.last_message(drv.dm))
    assert "item text" in msg["blocks"][1]["text"]["text"]


def test_quiz_refusals(bot):
    seed(bot.db, make_spec(quiz={"size": 10}), bot.clock.now(), items=ITEMS, gold=GOLD)
    drv = bot.user("U0NEW")
    drv.command("/label", "quiz")
    bot.fake.wait_for(lambda: any("needs 10 gold items" in t for t in said(bot.fake)))
    drv.command("/label", "quiz nosuch")
    bot.fake.wait_for(lambda: any("No project `nosuch`" in t for t in said(bot.fake)))
    bot.user("U0EXPERT").command("/label", "quiz")
    bot.fake.wait_for(lambda: any("Experts skip the quiz" in t for t in said(bot.fake)))


def test_quiz_twice_continues_the_same_attempt_and_replay_does_not_double_count(bot):
    seed(bot.db, make_spec(), bot.clock.now(), items=ITEMS, gold=GOLD)
    drv = bot.user("U0NEW")
    drv.command("/label", "quiz")
    first = bot.fake.wait_for(lambda: bot.fake.last_message(drv.dm))
    drv.command("/label", "quiz")
    bot.fake.wait_for(lambda: len(bot.fake.messages(drv.dm)) == 2)
    again = bot.fake.last_message(drv.dm)
    assert again["blocks"][1] == first["blocks"][1]  # the same question, not a new attempt
    drv.click(again, "label.choose:0")
    drv.click(again, "label.choose:0")
    drv.click(first, "label.choose:1")
    bot.fake.wait_for(lambda: len(bot.fake.messages(drv.dm)) == 3)
    assert bot.deps.wait_idle()
    with bot.db.read() as s:
        attempts = s.scalars(select(QuizAttempt)).all()
        assert len(attempts) == 1 and attempts[0].answered == 1
        assert len(s.scalars(select(Label)).all()) == 1


def test_honeypots_suspend_a_member_whose_accuracy_drops(bot):
    spec = make_spec(gold_rate=0.5, honeypot={"window": 4, "floor": 0.75, "min_checks": 3}, redundancy=1,
                     llm={"few_shot": 0})
    items = [{"id": f"t{i}", "text": f"item text {i}"} for i in range(40)]
    seed(bot.db, spec, bot.clock.now(), items=items, gold=GOLD)
    qualify(bot.db, "intents", "U0SLOPPY", bot.clock.now())
    drv = bot.user("U0SLOPPY")
    drv.command("/label")
    for _ in range(30):
        msg = bot.fake.wait_for(lambda: bot.fake.last_message(drv.dm))
        if "paused" in str(msg.get("text", "")) + str(msg["blocks"]):
            break
        text = msg["blocks"][1]["text"]["text"]
        # wrong on every gold item, anything on production
        choice = (_gold_answer(text) + 1) % 3 if text.startswith("gold") else 0
        before = len(bot.fake.messages(drv.dm))
        drv.click(msg, f"label.choose:{choice}")
        bot.fake.wait_for(lambda b=before: len(bot.fake.messages(drv.dm)) > b)
    last = bot.fake.last_message(drv.dm)
    assert "paused" in last["text"] and "Take quiz" in str(last["blocks"])
    with bot.db.read() as s:
        member = s.scalar(select(Member).where(Member.user_id == "U0SLOPPY"))
        assert member.state == "suspended" and "below" in member.state_reason
        honeypots = s.scalars(select(Label.correct).where(Label.kind == "honeypot")).all()
        assert len(honeypots) >= 3 and not any(honeypots)
    # suspended: /label offers the quiz instead of work, and later production labels would not count
    drv.command("/label")
    bot.fake.wait_for(lambda: any("paused" in t for t in said(bot.fake)))


def test_gold_promotion_from_experts(bot):
    from click.testing import CliRunner

    from bot.cli import load_commands

    cli = load_commands()

    seed(bot.db, make_spec(redundancy=2), bot.clock.now(), items=ITEMS[:1], gold=GOLD)
    for uid, choice in [("U0A", 0), ("U0B", 1)]:
        qualify(bot.db, "intents", uid, bot.clock.now())
        d = bot.user(uid)
        d.command("/label")
        msg = bot.fake.wait_for(lambda d=d: bot.fake.last_message(d.dm))
        d.click(msg, f"label.choose:{choice}")
        bot.fake.wait_for(lambda d=d: len(bot.fake.messages(d.dm)) == 2)
    expert = bot.user("U0EXPERT")
    expert.command("/label")
    msg = bot.fake.wait_for(lambda: bot.fake.last_message(expert.dm))
    expert.click(msg, "label.choose:1")
    bot.fake.wait_for(lambda: len(bot.fake.messages(expert.dm)) == 2)
    result = CliRunner().invoke(cli, ["gold", "promote", "intents", "--from-experts"],
                                env={"DATABASE_URL": bot.db.url})
    assert result.exit_code == 0, result.output
    assert "Promoted 1" in result.output
    again = CliRunner().invoke(cli, ["gold", "promote", "intents", "--from-experts"],
                               env={"DATABASE_URL": bot.db.url})
    assert "Promoted 0" in again.output
    with bot.db.read() as s:
        promoted = s.scalars(select(Gold).where(Gold.source == "promoted")).all()
    assert [g.value for g in promoted] == ["bug"]


def test_invite_only_projects_need_a_lead_invitation(bot):
    from click.testing import CliRunner

    from bot.cli import load_commands

    cli = load_commands()

    seed(bot.db, make_spec(members={"open_enrollment": False}), bot.clock.now(), items=ITEMS, gold=GOLD)
    drv = bot.user("U0NEW")
    drv.command("/label", "quiz")
    bot.fake.wait_for(lambda: any("invite-only" in t and "<@U0LEAD>" in t for t in said(bot.fake)))
    result = CliRunner().invoke(cli, ["member", "intents", "U0NEW", "--tier", "crowd"],
                                env={"DATABASE_URL": bot.db.url})
    assert result.exit_code == 0, result.output
    drv.command("/label", "quiz")
    msg = bot.fake.wait_for(lambda: bot.fake.last_message(drv.dm))
    assert "quiz question 1 of 4" in str(msg["blocks"])


def test_stats_show_the_members_numbers(bot):
    seed(bot.db, make_spec(redundancy=1), bot.clock.now(), items=ITEMS[:2], gold=GOLD)
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    drv = bot.user("U0ANN")
    drv.command("/label")
    msg = bot.fake.wait_for(lambda: bot.fake.last_message(drv.dm))
    drv.click(msg, "label.choose:0")
    bot.fake.wait_for(lambda: len(bot.fake.messages(drv.dm)) == 2)
    drv.command("/label", "stats")
    bot.fake.wait_for(lambda: any("1 today · 1 total" in t for t in said(bot.fake)))


def test_few_shot_examples_are_never_hidden_checks(database, clock):
    from bot.services.labeling import next_task
    from bot.services.projects import ensure_member, get_project

    spec = make_spec(gold_rate=0.5, redundancy=1, llm={"few_shot": 5})
    items = [{"id": f"t{i}", "text": f"item text {i}"} for i in range(40)]
    seed(database, spec, clock.now(), items=items, gold=GOLD)
    qualify(database, "intents", "U0ANN", clock.now())
    served = []
    with database.session() as s:
        project = get_project(s, "intents")
        member = ensure_member(s, project, "U0ANN", clock.now())
        for _ in range(30):
            task = next_task(s, project, member, clock.now(), database.dialect)
            served.append(task.item_external_id)
            from storage.models import Assignment

            s.get(Assignment, task.assignment_id).status = "done"
    gold_served = {x for x in served if x.startswith("g")}
    # 6 gold items, 5 of them in the drafting prompt: only the sixth may be a hidden check
    assert gold_served == {"g5"}
