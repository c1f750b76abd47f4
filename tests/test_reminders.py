"""Daily reminders end to end: the scheduled job of two app instances on one database, the fake Slack over
HTTP, an injected clock; Stop reminders and `/label reminders off|on` over the real Bolt endpoint."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from bot.blocks.reminders import reminder_message
from bot.core.types import Waiting
from bot.jobs import JOBS, send_reminders
from bot.sandbox.fake_slack import check_message_blocks
from bot.services.reminders import due_day, set_reminders
from bot.spec import RemindersSpec
from storage.models import Item
from tests.conftest import TEAM, start_bot
from tests.test_frames import Seeder

MONDAY_9_PARIS = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # 09:00 in Europe/Paris (UTC+1 in January)
REMINDERS = {"time": "09:00", "timezone": "Europe/Paris", "days": ["mon", "tue", "wed", "thu", "fri"]}


def _project(db: Any, *, slug: str = "intents", name: str = "Support intents", items: int = 12) -> Seeder:
    sd = Seeder(db, now=MONDAY_9_PARIS - timedelta(days=3), team=TEAM, slug=slug, name=name, reminders=REMINDERS)
    with sd.batch():
        for _ in range(items):
            sd.item()
        sd.item(gold="bug")
    with db.session() as s:
        s.execute(update(Item).where(Item.project_id == sd.project_id, Item.is_gold.is_(False)).values(slots=3))
    return sd


def reminders_in(fake: Any, user: str) -> list[dict[str, Any]]:
    return [m for m in fake.messages(fake.dm_channel(user))
            if any(b.get("block_id") in ("rm.text", "rm.changed") for b in m.get("blocks") or [])]


def _run_on(*bots: Any) -> None:
    """The job of every instance at once (as replicas would), then wait for their work to drain."""
    threads = [threading.Thread(target=send_reminders, args=(b.deps,)) for b in bots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for b in bots:
        assert b.deps.wait_idle()


@pytest.fixture
def two(database: Any, fake_slack: Any, clock: Any) -> Any:
    with start_bot(database, fake_slack, clock) as one, start_bot(database, fake_slack, clock) as other:
        yield one, other


def test_due_day_time_days_and_grace() -> None:
    spec = RemindersSpec(**REMINDERS)
    assert due_day(spec, MONDAY_9_PARIS - timedelta(minutes=1)) is None  # 08:59 in Paris
    assert due_day(spec, MONDAY_9_PARIS) == date(2026, 1, 5)
    assert due_day(spec, MONDAY_9_PARIS + timedelta(hours=2, minutes=59)) == date(2026, 1, 5)
    assert due_day(spec, MONDAY_9_PARIS + timedelta(hours=3)) is None  # no nudges hours late
    assert due_day(spec, MONDAY_9_PARIS + timedelta(days=5)) is None  # Saturday is not one of its days
    assert RemindersSpec().days == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]  # default: every day
    assert "reminders" in {job.id for job in JOBS}


def test_once_per_person_and_day_across_two_instances_and_a_restart(two: Any, database: Any, fake_slack: Any,
                                                                    clock: Any) -> None:
    one, other = two
    sd = _project(database)
    gold = sd.item(gold="billing")
    for user in ("U0IDLE", "U0BUSY", "U0QUIZ", "U0OFF", "U0BOTH", "U0NEW", "U0GONE"):
        fake_slack.add_user(user)
    for user in ("U0IDLE", "U0BUSY", "U0QUIZ", "U0OFF", "U0BOTH"):
        sd.member(user)
    sd.member("U0NEW", state="new")
    sd.member("U0GONE", state="suspended")
    item = sd.item()
    sd.label(item, "U0BUSY", "bug", at=MONDAY_9_PARIS - timedelta(minutes=30))  # labeled today (08:30 in Paris)
    sd.label(gold, "U0QUIZ", "billing", kind="quiz", counts=False, at=MONDAY_9_PARIS - timedelta(minutes=30))
    sd.label(item, "U0IDLE", "bug", at=MONDAY_9_PARIS - timedelta(hours=10))  # 23:00 yesterday in Paris
    set_reminders(database, TEAM, "U0OFF", False, clock.now())
    second = _project(database, slug="tickets", name="Tickets", items=3)
    second.member("U0BOTH")

    clock.set(MONDAY_9_PARIS - timedelta(minutes=1))
    _run_on(one, other)
    assert fake_slack.calls_to("chat.postMessage") == []  # 08:59: not yet

    clock.set(MONDAY_9_PARIS)
    _run_on(one, other)
    reminded = {u for u in ("U0IDLE", "U0BUSY", "U0QUIZ", "U0OFF", "U0BOTH", "U0NEW", "U0GONE")
                if reminders_in(fake_slack, u)}
    assert reminded == {"U0IDLE", "U0QUIZ", "U0BOTH"}  # quiz answers are not labeling
    for user in reminded:
        assert len(reminders_in(fake_slack, user)) == 1  # exactly once, though both instances ran
    (idle,) = reminders_in(fake_slack, "U0IDLE")
    assert idle["text"] == "12 examples are waiting in Support intents"
    assert check_message_blocks(idle["blocks"]) == []
    buttons = [e for b in idle["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [(e["text"]["text"], e["action_id"], e.get("value")) for e in buttons] == [
        ("Start labeling", "label.start", "intents"), ("Stop reminders", "reminders.off", "off")]
    (both,) = reminders_in(fake_slack, "U0BOTH")  # one DM for both projects
    assert both["text"] == "12 examples are waiting in Support intents and 1 more project"
    rows = [(b["text"]["text"], b["accessory"]["value"]) for b in both["blocks"] if "accessory" in b]
    assert rows == [("12 examples in *Support intents*", "intents"), ("3 examples in *Tickets*", "tickets")]
    assert check_message_blocks(both["blocks"]) == []

    clock.advance(minutes=1)
    _run_on(one, other)
    with start_bot(database, fake_slack, clock) as restarted:  # a restart later the same morning
        clock.advance(minutes=30)
        _run_on(restarted)
    assert sum(len(reminders_in(fake_slack, u)) for u in reminded) == 3  # still one each

    clock.set(MONDAY_9_PARIS + timedelta(days=1))  # Tuesday: a new day
    _run_on(one, other)
    assert {u: len(reminders_in(fake_slack, u)) for u in reminded} == {"U0IDLE": 2, "U0QUIZ": 2, "U0BOTH": 2}
    assert reminders_in(fake_slack, "U0BUSY")  # did not label on Tuesday
    clock.set(MONDAY_9_PARIS + timedelta(days=5))  # Saturday: not one of the days
    before = len(fake_slack.calls_to("chat.postMessage"))
    _run_on(one, other)
    assert len(fake_slack.calls_to("chat.postMessage")) == before


def test_stop_reminders_is_remembered_and_label_reminders_on_brings_them_back(bot: Any) -> None:
    sd = _project(bot.db)
    sd.member("U0ANN")
    ann = bot.user("U0ANN")
    bot.clock.set(MONDAY_9_PARIS)
    send_reminders(bot.deps)
    (reminder,) = reminders_in(bot.fake, "U0ANN")

    assert ann.click(reminder, "reminders.off").status == 200
    assert bot.deps.wait_idle()
    changed = bot.fake.wait_for(lambda: bot.fake.message(ann.dm, reminder["ts"])["text"] == "Reminders are off"
                                and bot.fake.message(ann.dm, reminder["ts"]))
    assert "`/label reminders on`" in changed["blocks"][0]["text"]["text"]
    bot.clock.advance(days=1)
    send_reminders(bot.deps)
    assert len(reminders_in(bot.fake, "U0ANN")) == 1  # the replaced one: nothing new on Tuesday

    ann.command("/label", "reminders")
    bot.fake.wait_for(lambda: any("Your reminders are off" in str(r["payload"].get("text"))
                                  for r in bot.fake.responses))
    ann.command("/label", "reminders on")
    bot.fake.wait_for(lambda: any(r["payload"].get("text") == "Reminders are on" for r in bot.fake.responses))
    ann.command("/label", "reminders sometimes")
    bot.fake.wait_for(lambda: any("Usage: `/label reminders off`" in str(r["payload"].get("text"))
                                  for r in bot.fake.responses))
    bot.clock.advance(days=1)
    send_reminders(bot.deps)
    assert len(reminders_in(bot.fake, "U0ANN")) == 2  # Wednesday: on again

    # "Start labeling" in the reminder serves an example
    latest = reminders_in(bot.fake, "U0ANN")[-1]
    ann.click(latest, "label.start")
    example = bot.fake.wait_for(lambda: next((m for m in bot.fake.messages(ann.dm)
                                              if any(b.get("block_id") == "lb.controls" for b in m["blocks"])), None))
    assert example["text"].startswith("New example")


def test_reminder_message_stays_within_limits() -> None:
    many = [Waiting(f"p{i}", "<!channel> " + "x" * 300, 1000, True) for i in range(30)]
    text, blocks = reminder_message(many)
    assert check_message_blocks(blocks) == [] and "<!channel>" not in str(blocks)
    assert text.startswith("1000+ examples are waiting") or text.startswith("1,000+ examples are waiting")
    assert reminder_message([Waiting("a", "A", 1)])[1][0]["text"]["text"].startswith(":wave: 1 example is waiting")
