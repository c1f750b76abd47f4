"""Alerts as they happen: posted to the report channel once per alert, by the scheduled job of two app
instances on one database, through the fake Slack over HTTP, with an injected clock."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from bot.jobs import JOBS, post_alerts
from bot.sandbox.fake_slack import check_message_blocks
from bot.services.projects import get_project, set_member
from bot.services.reports.live import alert_key
from bot.services.reports.model import Alert
from storage.models import Label, PostedAlert
from tests.conftest import TEAM, start_bot
from tests.test_frames import T0
from tests.test_reports import _seed

CHANNEL = "CREPORTS"  # the report channel of tests.test_frames.spec_dict


def posted(fake: Any) -> list[dict[str, Any]]:
    return [m for m in fake.messages(CHANNEL) if m.get("blocks") and m["blocks"][0].get("block_id") == "alert.text"]


def _run_on(*bots: Any) -> None:
    threads = [threading.Thread(target=post_alerts, args=(b.deps,)) for b in bots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.fixture
def two(database: Any, fake_slack: Any, clock: Any) -> Any:
    fake_slack.add_channel(CHANNEL)
    with start_bot(database, fake_slack, clock) as one, start_bot(database, fake_slack, clock) as other:
        yield one, other


def test_alert_key_ignores_the_numbers() -> None:
    a = Alert("anchoring", "Anchoring for U0ANN006 is +0.49, above 0.15 (95% CI +0.24 to +0.66, n=149).")
    b = Alert("anchoring", "Anchoring for U0ANN006 is +0.52, above 0.15 (95% CI +0.30 to +0.70, n=171).")
    c = Alert("anchoring", "Anchoring is +0.20, above 0.15: answers match the draft 20 percentage points more often.")
    assert alert_key(a) == alert_key(b) != alert_key(c)
    assert {job.id for job in JOBS} >= {"alerts", "reminders"}


def test_each_alert_posted_once_across_replicas_and_again_only_after_it_cleared(two: Any, database: Any,
                                                                               fake_slack: Any, clock: Any) -> None:
    one, other = two
    fake_slack.add_user("UB", name="Bruno")
    _seed(database, team=TEAM)  # UX suspended at T0+2h; UB 0% on hidden checks; anchoring +0.86
    clock.set(T0 + timedelta(days=1))
    _run_on(one, other)
    messages = posted(fake_slack)
    texts = sorted(m["blocks"][0]["text"]["text"] for m in messages)
    assert len(messages) == 3, texts  # once each, though both instances ran the job
    assert any("UX was suspended: hidden checks below 80%." in t for t in texts)
    assert any("Bruno scores 0% on hidden checks (n=1), below the 80% floor." in t for t in texts)  # display name
    assert any(t.startswith(":rotating_light: *Support intents*: Anchoring is +0.86") for t in texts)
    assert all(check_message_blocks(m["blocks"]) == [] for m in messages)

    clock.advance(minutes=1)
    _run_on(one, other)  # suspensions are looked at every minute: nothing new
    clock.advance(minutes=15)
    _run_on(one, other)  # the statistics again: the same alerts (numbers may move), not posted again
    assert len(posted(fake_slack)) == 3

    # UB's hidden check goes: the low-accuracy alert clears; back within a day it is not said again...
    with database.session() as s:
        check = s.scalar(select(Label).where(Label.user_id == "UB", Label.kind == "honeypot"))
        saved = {c.name: getattr(check, c.name) for c in Label.__table__.columns if c.name != "id"}
        s.execute(delete(Label).where(Label.id == check.id))
    clock.advance(minutes=15)
    _run_on(one, other)
    with database.read() as s:
        cleared = s.scalars(select(PostedAlert).where(PostedAlert.kind == "low_gold_accuracy")).one()
        assert cleared.cleared_at is not None and cleared.status == "posted"
    with database.session() as s:
        s.add(Label(**saved))
    clock.advance(minutes=15)
    _run_on(one, other)
    assert len(posted(fake_slack)) == 3
    # ...but when it clears and trips again more than a day after it was posted, it is posted again
    with database.session() as s:
        s.execute(delete(Label).where(Label.user_id == "UB", Label.kind == "honeypot"))
    clock.advance(minutes=15)
    _run_on(one, other)
    with database.session() as s:
        s.add(Label(**saved))
    clock.advance(days=1)
    _run_on(one, other)
    assert [m["blocks"][0]["text"]["text"] for m in posted(fake_slack)[3:]] == [
        ":rotating_light: *Support intents*: Bruno scores 0% on hidden checks (n=1), below the 80% floor."]


def test_a_suspension_is_posted_within_a_minute(two: Any, database: Any, fake_slack: Any, clock: Any) -> None:
    one, other = two
    _seed(database, team=TEAM)
    clock.set(T0 + timedelta(days=1))
    _run_on(one, other)
    before = len(posted(fake_slack))
    clock.advance(minutes=1)  # the statistics wait for their quarter of an hour; a suspension does not
    with database.session() as s:
        set_member(s, get_project(s, "intents"), "U0CAROL", clock.now(), suspend=True, reason="spamming Accept")
    _run_on(one, other)
    new = posted(fake_slack)[before:]
    assert [m["blocks"][0]["text"]["text"] for m in new] == [
        ":rotating_light: *Support intents*: U0CAROL was suspended: spamming Accept."]
    _run_on(one, other)
    assert len(posted(fake_slack)) == before + 1


def test_no_channel_no_post_and_a_failed_post_is_retried(database: Any, fake_slack: Any, clock: Any) -> None:
    with start_bot(database, fake_slack, clock) as bot:
        _seed(database, team=TEAM)
        clock.set(T0 + timedelta(days=1))
        fake_slack.add_channel(CHANNEL, bot_member=False)  # the bot was not invited: not_in_channel
        post_alerts(bot.deps)
        with database.read() as s:
            rows = s.scalars(select(PostedAlert)).all()
        assert rows and all(r.status == "failed" and "not_in_channel" in (r.error or "") for r in rows)
        fake_slack.add_channel(CHANNEL)  # invited now
        clock.advance(minutes=16)  # past the stale claim, in the statistics' next quarter of an hour
        post_alerts(bot.deps)
        assert len(posted(fake_slack)) == len(rows)
