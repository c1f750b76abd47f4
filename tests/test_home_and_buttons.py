"""The Home tab's streak and week next to the team's, and up to 15 labels as buttons, over the real wire."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.sandbox.fake_slack import check_message_blocks, check_view
from storage.models import Label
from tests.conftest import TEAM, make_spec
from tests.helpers import qualify, seed
from tests.test_frames import T0, Seeder


def _text(view: dict[str, Any]) -> str:
    return "\n".join(b["text"]["text"] for b in view["blocks"] if b.get("type") == "section")


def test_home_shows_the_streak_and_the_week_next_to_the_team(bot: Any) -> None:
    """T0 is Monday Jan 5, 08:00 UTC. U0ME labeled today (2), Sunday, Saturday, skipped on Friday (a skip
    is not labeling) and labeled Thursday: a 3-day streak, 5 in all. U0YOU labeled 3 today."""
    sd = Seeder(bot.db, now=T0 - timedelta(days=5), team=TEAM)
    with sd.batch():
        items = [sd.item() for _ in range(8)]
        at = T0 - timedelta(hours=1)
        sd.label(items[0], "U0ME", "bug", at=at)
        sd.label(items[1], "U0ME", "bug", at=at)
        for n, days in enumerate((1, 2, 4)):  # Sunday, Saturday, Thursday
            sd.label(items[2 + n], "U0ME", "bug", at=at - timedelta(days=days))
        sd.label(items[5], "U0ME", None, action="skip", at=at - timedelta(days=3))  # Friday: only a skip
        for n in range(3):
            sd.label(items[n], "U0YOU", "billing", at=at + timedelta(minutes=n))
    me = bot.user("U0ME")
    me.app_home_opened()
    view = bot.fake.wait_for(lambda: bot.fake.home("U0ME"))
    assert check_view(view) == []
    text = _text(view)
    assert "Today 2 · This week: you 2 · the team 5 (2 people)" in text
    assert ":fire: 3-day streak · total 5" in text

    you = bot.user("U0YOU")
    you.app_home_opened()
    view = bot.fake.wait_for(lambda: bot.fake.home("U0YOU"))
    assert ":seedling: 1-day streak: come back tomorrow to keep it · total 3" in _text(view)

    bot.clock.advance(days=1)  # Tuesday, nothing yet: the streak lives until the day is over
    me.app_home_opened()
    bot.fake.wait_for(lambda: "Today 0 · This week: you 2" in _text(bot.fake.home("U0ME")))
    assert ":fire: 3-day streak" in _text(bot.fake.home("U0ME"))
    bot.clock.advance(days=1)  # Wednesday: Tuesday passed without a label
    me.app_home_opened()
    bot.fake.wait_for(lambda: "no streak yet" in _text(bot.fake.home("U0ME")))

    me.command("/label", "stats")
    bot.fake.wait_for(lambda: any("0 today · 5 total · no checks yet · 2 this week (team 5)"
                                  in json.dumps(r["payload"], ensure_ascii=False) for r in bot.fake.responses))


def test_fifteen_labels_are_buttons_in_rows(bot: Any) -> None:
    names = [f"intent_{n:02d}" for n in range(15)]
    seed(bot.db, make_spec(labels=names), bot.clock.now(), items=[{"id": "t1", "text": "Which one?"}])
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")
    ann.command("/label")
    message = bot.fake.wait_for(lambda: bot.fake.last_message(ann.dm))
    assert check_message_blocks(message["blocks"]) == []  # the fake checked it when it was posted, too
    rows = [b for b in message["blocks"] if str(b.get("block_id", "")).startswith("lb.choices")]
    assert [[e["text"]["text"] for e in b["elements"]] for b in rows] == [names[0:5], names[5:10], names[10:15]]
    assert "label.select" not in json.dumps(message["blocks"])
    ann.click(message, "label.choose:14")
    assert bot.deps.wait_idle()
    with bot.db.read() as s:
        assert s.scalar(select(Label.value)) == "intent_14"
    seed_more = make_spec(slug="wide", name="Wide", labels=[*names, "intent_15"])
    seed(bot.db, seed_more, bot.clock.now(), items=[{"id": "w1", "text": "And this one?"}])
    qualify(bot.db, "wide", "U0ANN", bot.clock.now())
    ann.command("/label", "wide")
    wide = bot.fake.wait_for(lambda: (m := bot.fake.last_message(ann.dm)) and "And this one" in json.dumps(m) and m)
    assert "label.select" in json.dumps(wide["blocks"])  # 16 labels: a menu
