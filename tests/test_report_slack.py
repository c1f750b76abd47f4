"""Reports end to end: the real Bolt app over HTTP against the fake Slack (tests/conftest.py).

`/label-report` for a lead (ephemeral blocks, chart in the DM through files.getUploadURLExternal and
files.completeUploadExternal) and its refusals; the daily summary posted once at the configured time
by two app instances sharing one database; a missed summary caught up once at start-up.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED

from bot.runtime.scheduler import build_scheduler
from bot.sandbox.fake_slack import check_message_blocks
from bot.services.reports import run_due_reports
from storage.db import Database
from tests.conftest import TEAM, start_bot
from tests.test_frames import T0, Seeder
from tests.test_reports import _seed

PNG = b"\x89PNG\r\n\x1a\n"


def said(fake: Any) -> list[dict[str, Any]]:
    """Payloads posted to response_urls, in order."""
    return [r["payload"] for r in fake.responses]


def texts(fake: Any) -> list[str]:
    return [str(p.get("text", "")) for p in said(fake)]


def summaries(fake: Any, channel: str) -> list[dict[str, Any]]:
    return [m for m in fake.messages(channel) if m.get("subtype") != "file_share"]


def test_lead_gets_the_report_and_the_chart_in_their_dm(bot: Any) -> None:
    _seed(bot.db, team=TEAM)
    bot.clock.set(T0 + timedelta(days=1))
    lead = bot.user("ULEAD")
    assert lead.command("/label-report", "intents 7").status == 200
    (report,) = bot.fake.wait_for(lambda: [p for p in said(bot.fake) if p.get("blocks")], timeout=20)
    assert report["response_type"] == "ephemeral"
    assert check_message_blocks(report["blocks"]) == []
    assert report["blocks"][0]["text"]["text"] == "Quality report: Support intents"
    assert "Progress" in report["blocks"][2]["text"]["text"]  # progress first, right after the header
    assert "alert" in report["blocks"][3]["text"]["text"]  # then the alerts
    assert "Building the report" in texts(bot.fake)[0]
    assert all(p.get("response_type") == "ephemeral" for p in said(bot.fake))

    (shared,) = bot.fake.wait_for(lambda: bot.fake.files(lead.dm), timeout=20)
    assert shared["content"].startswith(PNG) and shared["name"] == "intents-last-7-days.png"
    assert len(bot.fake.calls_to("files.getUploadURLExternal")) == 1
    (complete,) = bot.fake.calls_to("files.completeUploadExternal")
    assert complete["channel_id"] == lead.dm
    assert bot.fake.calls_to("conversations.open")[0]["users"] == "ULEAD"


def test_non_lead_is_refused_politely(sqlite_bot: Any) -> None:
    bot = sqlite_bot
    _seed(bot.db, team=TEAM)
    annotator = bot.user("UA")
    annotator.command("/label-report", "intents")
    (reply,) = bot.fake.wait_for(lambda: texts(bot.fake))
    assert "only the leads of *Support intents* can see its report" in reply and "<@ULEAD>" in reply
    annotator.command("/label-report")
    bot.fake.wait_for(lambda: len(texts(bot.fake)) == 2)
    assert "You lead no project" in texts(bot.fake)[1]
    assert all(p.get("response_type") == "ephemeral" for p in said(bot.fake))
    assert bot.deps.wait_idle()  # every listener and the work it started has finished
    assert bot.fake.files() == [] and not bot.fake.calls_to("files.getUploadURLExternal")


BAD_ARGUMENTS = [
    ("nope", "no project 'nope'"),
    ("elsewhere", "no project 'elsewhere'"),  # it exists, in another workspace
    ("intents 0", "Days must be between 1 and 365"),
    ("intents 7 8", "Give the number of days once"),
    ("intents extra words", "Usage: `/label-report [project] [days]`"),
]


def test_bad_arguments_get_an_ephemeral_error(sqlite_bot: Any) -> None:
    bot = sqlite_bot
    Seeder(bot.db, team=TEAM)
    Seeder(bot.db, team="T0OTHER", slug="elsewhere")
    lead = bot.user("ULEAD")
    for n, (text, words) in enumerate(BAD_ARGUMENTS, start=1):
        lead.command("/label-report", text)
        replies = bot.fake.wait_for(lambda n=n: len(texts(bot.fake)) >= n and texts(bot.fake))
        assert words in replies[n - 1], (text, replies[n - 1])
    assert all(p["response_type"] == "ephemeral" for p in said(bot.fake)) and bot.fake.files() == []


def test_default_project_is_the_one_the_user_leads(sqlite_bot: Any) -> None:
    bot = sqlite_bot
    Seeder(bot.db, team=TEAM)
    lead = bot.user("ULEAD")
    lead.command("/label-report")
    bot.fake.wait_for(lambda: [p for p in said(bot.fake) if p.get("blocks")], timeout=20)
    bot.fake.wait_for(lambda: bot.fake.files(lead.dm), timeout=20)
    Seeder(bot.db, team=TEAM, slug="second")
    lead.command("/label-report", "30")
    reply = bot.fake.wait_for(lambda: [t for t in texts(bot.fake) if "several projects" in t])
    assert "`intents`" in reply[0] and "`second`" in reply[0]


def test_daily_summary_is_posted_once_by_two_app_instances(bot: Any) -> None:
    bot.fake.add_channel("CREPORTS")
    _seed(bot.db, team=TEAM)
    second_db = Database(bot.db.url)  # the other replica: its own engine and pool, the same database
    try:
        with start_bot(second_db, bot.fake, bot.clock) as second:
            replicas = [bot.deps, second.deps]
            bot.clock.set(datetime(2026, 1, 6, 8, 59, tzinfo=UTC))  # report time is 09:00 UTC
            assert [run_due_reports(d) for d in replicas] == [[], []]
            bot.clock.set(datetime(2026, 1, 6, 9, 0, tzinfo=UTC))
            outcomes: list[Any] = []
            barrier = threading.Barrier(2)

            def run(deps: Any) -> None:
                barrier.wait()
                outcomes.extend(run_due_reports(deps))

            threads = [threading.Thread(target=run, args=(d,)) for d in replicas]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert [(o.project, o.status) for o in outcomes] == [("intents", "posted")], outcomes
            bot.clock.advance(hours=3)
            assert [run_due_reports(d) for d in replicas] == [[], []]
    finally:
        second_db.dispose()
    (summary,) = summaries(bot.fake, "CREPORTS")
    assert summary["blocks"][0]["text"]["text"] == "Daily summary: Support intents"
    assert check_message_blocks(summary["blocks"]) == []
    (shared,) = bot.fake.files("CREPORTS")
    assert shared["content"].startswith(PNG) and shared["name"] == "intents-2026-01-06.png"
    assert shared["thread_ts"] == summary["ts"]  # the chart sits in the summary's thread
    assert len(bot.fake.calls_to("files.getUploadURLExternal")) == 1
    assert len(bot.fake.calls_to("files.completeUploadExternal")) == 1


def _run_scheduler_until_daily_run(deps: Any) -> None:
    """Start the app's scheduler, wait until the daily-report job's start-up run has finished, stop."""
    done = threading.Event()
    scheduler = build_scheduler(deps)

    def on_event(event: Any) -> None:
        if event.job_id == "reports.daily":
            done.set()

    scheduler.add_listener(on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.start()
    try:
        assert done.wait(20), "the daily-report job did not run at start-up"
    finally:
        scheduler.shutdown(wait=True)


def test_missed_summary_is_caught_up_once_at_start(sqlite_bot: Any) -> None:
    bot = sqlite_bot
    bot.fake.add_channel("CREPORTS")
    _seed(bot.db, team=TEAM)
    bot.clock.set(datetime(2026, 1, 6, 15, 0, tzinfo=UTC))  # the bot was down at 09:00
    _run_scheduler_until_daily_run(bot.deps)  # the job's first run is at start-up
    bot.fake.wait_for(lambda: bot.fake.files("CREPORTS"), timeout=20)
    _run_scheduler_until_daily_run(bot.deps)  # a restart later that day: its start-up run has finished
    assert len(summaries(bot.fake, "CREPORTS")) == 1 and len(bot.fake.files("CREPORTS")) == 1
