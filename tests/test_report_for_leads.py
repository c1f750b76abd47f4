"""The report written for leads: progress first, one vocabulary everywhere (report, CLI), plain readings,
what is not available in one line, display names. Numbers are pinned to hand-computed values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from slack_sdk import WebClient
from sqlalchemy import update

from bot.blocks import readings
from bot.blocks.report import not_available, progress_lines, report_text, summary_blocks
from bot.cli import load_commands
from bot.core.activity import Activity, category
from bot.sandbox.fake_slack import check_message_blocks
from bot.services.people import NameBook, display_name
from bot.services.reports import build_report
from bot.services.reports.names import name_people
from storage.db import Database
from storage.models import Item
from tests.conftest import TEAM
from tests.test_frames import T0, Seeder, backend, emptied
from tests.test_reports import WINDOW, _report, _seed, _texts


@pytest.fixture(scope="module")
def module_lite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    yield from backend("sqlite", tmp_path_factory)


@pytest.fixture
def lite(module_lite: Database) -> Iterator[Database]:
    """SQLite only: what is checked here does not depend on the backend (test_reports checks both)."""
    with emptied(module_lite) as d:
        yield d


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('seeded')}/labelbot.db")
    db.upgrade()
    try:
        return _report(db, _seed(db)).to_json()
    finally:
        db.dispose()

# --- the vocabulary -----------------------------------------------------------------------------------


def test_every_label_row_has_one_name() -> None:
    assert [category(k, a) for k, a in [("production", "accept"), ("production", "manual"), ("production", "skip"),
                                        ("production", "ambiguous"), ("quiz", "manual"), ("honeypot", "reject"),
                                        ("honeypot", "skip"), ("expert", "manual")]] == [
        "answers", "answers", "skips", "ambiguous", "quiz_answers", "gold_checks", "skips", "expert_decisions"]
    a = Activity.from_rows([("production", "accept", True, 900), ("production", "reject", False, 104),
                            ("production", "skip", False, 67), ("honeypot", "accept", False, 1)])
    assert a.words() == "1,004 answers (900 counting), 67 skips, 1 gold check"
    assert a.total == 1072 and Activity.from_dict(a.to_dict()) == a
    assert Activity().words() == "0 answers"


# --- progress -------------------------------------------------------------------------------------------

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # a Thursday; its week began on Monday Jan 12


def _progress_project(db: Database) -> Seeder:
    """redundancy 3. Items: open with 0, 1 and 2 counting answers, 2 complete, 1 escalated, 1 settled by an
    expert, 1 gold. Counting answers: 6 on Fri Jan 9 (the first ever), 6 on Wed Jan 14; today a skip and
    a quiz answer."""
    sd = Seeder(db, now=datetime(2026, 1, 9, tzinfo=UTC))
    with sd.batch():
        items = [sd.item() for _ in range(7)]
        gold = sd.item(gold="bug")
        for d, day in enumerate((datetime(2026, 1, 9, 12, tzinfo=UTC), datetime(2026, 1, 14, 12, tzinfo=UTC))):
            for i in range(6):
                sd.label(items[3 + i % 4], f"U{d}{i}", "bug", at=day + timedelta(minutes=i))
        sd.label(items[0], "U9", None, action="skip", counts=False, at=NOW - timedelta(hours=2))
        sd.label(gold, "U8", "bug", kind="quiz", counts=False, at=NOW - timedelta(hours=1))
    statuses = {0: ("open", 0), 1: ("open", 1), 2: ("open", 2), 3: ("complete", 3), 4: ("complete", 3),
                5: ("escalated", 3), 6: ("resolved", 3)}
    with db.session() as s:
        for n, (status, done) in statuses.items():
            s.execute(update(Item).where(Item.id == items[n]).values(status=status, labels_done=done))
    return sd


def test_progress_section_pinned(lite: Database) -> None:
    sd = _progress_project(lite)
    data = build_report(lite, sd.slug, since=NOW - timedelta(days=7), until=NOW, now=NOW).to_json()
    progress = data["progress"]
    assert progress["items"] == {"total": 7, "open": 3, "complete": 2, "escalated": 2, "in_expert_queue": 1,
                                 "resolved": 1, "gold": 1}
    assert progress["answers_needed"] == 3 + 2 + 1  # redundancy 3 minus the counting answers of each open item
    assert {k: progress["today"][k] for k in ("day", "answers", "skips", "quiz_answers")} == \
        {"day": "2026-01-15", "answers": 0, "skips": 1, "quiz_answers": 1}
    assert {k: progress["this_week"][k] for k in ("since", "answers", "skips", "quiz_answers")} == \
        {"since": "2026-01-12", "answers": 6, "skips": 1, "quiz_answers": 1}
    # Pace: 12 counting answers in the last 7 days, over the 6 days since the first one: 2 a day.
    # 6 still needed / 2 a day = 3 days: done around Sunday Jan 18.
    assert (progress["pace_per_day"], progress["pace_days"], progress["days_left"], progress["finish"]) == \
        (2.0, 6.0, 3, "2026-01-18")
    lines = progress_lines(data)
    assert lines[0] == ("7 items (and 1 gold item): 3 open, 2 complete, 2 escalated (1 in the expert queue, "
                        "1 settled by an expert)")
    assert lines[1] == "Today (Thu Jan 15): 0 answers, 1 skip, 1 quiz answer"
    assert lines[2] == "This week (since Mon Jan 12): 6 answers, 1 skip, 1 quiz answer"
    assert lines[3] == ("6 answers still needed; at the current pace (2 counting answers a day over the last 6 days) "
                        "the items are done around Sun Jan 18 (in 3 days)")
    # progress comes first, in the blocks and in the text
    blocks = summary_blocks(data)
    assert blocks[2]["text"]["text"].startswith(":bar_chart: *Progress*\n7 items")
    text = report_text(data)
    assert text.index("PROGRESS") < text.index("ALERTS")


def test_progress_without_a_pace_says_why(lite: Database) -> None:
    sd = Seeder(lite)
    sd.item()
    data = build_report(lite, sd.slug, since=T0, until=T0 + timedelta(days=1), now=T0 + timedelta(days=1)).to_json()
    assert data["progress"]["finish"] is None
    assert progress_lines(data)[-1] == ("3 answers still needed; no finish date: no counting answers in the last 7 "
                                        "days, so no pace to go by")


# --- one vocabulary: report, CLI ---------------------------------------------------------------------------


def _cli(db: Database, *args: str) -> str:
    result = CliRunner().invoke(load_commands(), list(args), env={"DATABASE_URL": db.url})
    assert result.exit_code == 0, result.output
    return result.output


def test_report_and_cli_count_alike(lite: Database) -> None:
    """`_seed`: in the window, production answers i1 x3, i2 x3, i3 x2, i4 x1 = 9, one skip, two quiz answers,
    two hidden gold checks; i5's answer is an hour before the window (10 answers in all)."""
    sd = _seed(lite)
    data = _report(lite, sd).to_json()
    window = data["activity"]["window"]
    assert {k: window[k] for k in ("answers", "skips", "ambiguous", "quiz_answers", "gold_checks",
                                   "expert_decisions", "counting", "total")} == \
        {"answers": 9, "skips": 1, "ambiguous": 0, "quiz_answers": 2, "gold_checks": 2, "expert_decisions": 0,
         "counting": 9, "total": 14}
    assert window["total"] == data["labels"]  # every label row, named
    (day,) = [d for d in data["activity"]["per_day"] if d["total"]]
    assert day["day"] == "2026-01-05" and day["answers"] == 9 and day["quiz_answers"] == 2
    assert data["activity"]["per_annotator"]["UA"]["answers"] == 4
    assert data["activity"]["per_annotator"]["UA"]["quiz_answers"] == 1
    assert data["activity"]["per_annotator"]["UA"]["gold_checks"] == 1
    text = report_text(data)
    assert "9 answers, 1 skip, 2 quiz answers, 2 gold checks on 6 items by 3 people" in text
    assert "Mon Jan 05: 9 answers, 1 skip, 2 quiz answers, 2 gold checks" in text

    # all time: the report of a window holding everything, `project show` and `project list` agree
    everything = build_report(lite, sd.slug, since=T0 - timedelta(days=2), until=WINDOW[1], now=WINDOW[1]).to_json()
    words = Activity.from_dict(everything["activity"]["window"]).words(zeros=True)
    assert words == "10 answers, 1 skip, 0 ambiguous flags, 2 quiz answers, 2 gold checks, 0 expert decisions"
    show = _cli(lite, "project", "show", sd.slug)
    assert f"done: {words}" in show
    assert "items: 5 (5 open, 0 complete, 0 escalated: 0 in the expert queue, 0 settled by an expert); " \
           "gold items: 2" in show
    assert everything["progress"]["items"]["total"] == 5 and everything["progress"]["items"]["gold"] == 2
    listed = _cli(lite, "project", "list").splitlines()[1].split()
    assert listed[:5] == [sd.slug, "classification", "5", "2", "10"]  # items, gold apart, answers


# --- plain readings, what is not available -----------------------------------------------------------------


def test_plain_readings() -> None:
    assert readings.agreement(0.72, 0.66, 0.77) == "annotators agree substantially: α 0.72, CI 0.66-0.77"
    assert readings.agreement(0.35, -0.05, 0.6, symbol="κ") == "annotators agree fairly: κ 0.35, CI -0.05 to 0.60"
    assert readings.agreement(-0.1) == "annotators agree less than chance would: α -0.10"
    assert readings.agreement(0.9).startswith("annotators agree almost perfectly")
    assert readings.agreement(None) == "not available yet"
    assert readings.anchoring(0.13, 0.05, 0.23) == ("drafts pull answers toward them noticeably: anchoring +0.13, "
                                                     "CI 0.05-0.23")
    assert readings.anchoring(0.3, -0.02, 0.6).startswith("no clear sign that drafts pull answers")
    assert readings.label_drift(0.02, 0.6).startswith("labels look the same with and without drafts")
    assert readings.label_drift(0.15, 0.03) == "labels are different with a draft shown: JS distance 0.15, p 0.03"
    assert readings.model_accuracy(0.92, 38) == "the model is right on 92% of gold items, 38 items"
    assert readings.model_accuracy(1.0, 1) == "the model is right on 100% of gold items, 1 item"
    assert readings.speedup(1.51, 7.8, 11.8) == "a draft makes answering 1.5× faster: 7.8 s against 11.8 s"
    assert readings.gold_accuracy(None) == "not available yet (no answers on gold items)"


def test_readings_sit_next_to_each_statistic_and_na_is_one_plain_line(seeded: dict) -> None:
    data = seeded
    blocks = summary_blocks(data)
    assert check_message_blocks(blocks) == []
    fields = next(b for b in blocks if "fields" in b)["fields"]
    titles = [f["text"].split("\n")[0] for f in fields]
    assert titles == ["*In this window*", "*Agreement*", "*Same answer*", "*Gold accuracy*", "*Drafts*",
                      "*Draft influence*", "*Labels with and without drafts*", "*The model*", "*Speed*"]
    agreement = fields[1]["text"].split("\n")[1]
    assert agreement.startswith("annotators agree slightly: α 0.18")  # α of `_seed`, the jargon after the words
    # what is not available: one line, each thing once, in plain words
    missing = [t for t in _texts(blocks) if "Not available" in t]
    assert len(missing) == 1 and missing[0].count("\n") == 0
    assert not_available(data) == [
        ("week-on-week anchoring", "needs anchoring in both 7-day windows"),
        ("anchoring in the week before", "no answers on drafted items from Dec 23 to Dec 30"),
        ("the model against blind answers", "no items with a draft and a consensus"),
    ]
    # the window had 7 answers with the draft shown: nothing may claim there were none
    assert data["drafts"]["shown"] == 7
    assert "no answers with the draft shown" not in json.dumps(blocks) + report_text(data)
    text = report_text(data)
    assert sum(line.startswith("Not available") for line in text.splitlines()) == 1


def test_edited_is_not_shown_for_classification(seeded: dict, lite: Database) -> None:
    assert "edited" not in report_text(seeded) and "edited" not in json.dumps(summary_blocks(seeded))
    sd = Seeder(lite, task="spans", labels=["LOC"])
    item = sd.item(text_="Paris is nice")
    draft = sd.draft(item, [{"start": 0, "end": 5, "label": "LOC"}])
    sd.label(item, "UA", [{"start": 0, "end": 5, "label": "LOC"}], draft_id=draft)
    assert "edited 0%" in report_text(_report(lite, sd).to_json())


# --- display names --------------------------------------------------------------------------------------


def test_display_name_choice() -> None:
    assert display_name({"name": "amara", "profile": {"display_name": "", "real_name": "Amara Okafor"}}) == \
        "Amara Okafor"
    assert display_name({"name": "amara", "profile": {"display_name": "Ama"}}) == "Ama"
    assert display_name({"name": "bo", "deleted": True, "profile": {}}) == "bo (deactivated)"
    assert display_name({"profile": {}}) is None


def test_people_by_display_name_cached_ids_in_the_json(lite: Database, fake_slack: Any) -> None:
    fake_slack.add_user("UA", name="amara", real_name="Amara <!channel>")
    fake_slack.add_user("UB", name="bruno")
    client = WebClient(token="xoxb-test", base_url=fake_slack.api_url)
    book = NameBook()
    sd = _seed(lite)
    report = name_people(_report(lite, sd), book, client, TEAM)
    data = report.to_json()
    assert data["names"] == {"UA": "amara", "UB": "bruno"}  # UC, UX: unknown to Slack, shown by member id
    assert {r["user"] for r in data["per_annotator"]} == {"UA", "UB", "UC"}  # the JSON keeps member ids
    text = report_text(data)
    assert "UX was suspended" in text and "bruno scores 0% on hidden checks" in text
    table = text[text.index("Per annotator ("):]
    assert "amara" in table and "UA " not in table
    markdown = "\n".join(_texts(summary_blocks(data), "mrkdwn"))
    assert "Lowest Cohen's κ: amara–UC 0.00 (n=2), bruno–UC 0.00 (n=2), amara–bruno 0.50 (n=3)" in markdown
    calls = len(fake_slack.calls_to("users.info"))
    assert calls == 4  # UA, UB, UC, UX: each person once
    name_people(_report(lite, sd), book, client, TEAM)
    assert len(fake_slack.calls_to("users.info")) == calls  # cached (failures too, for a few minutes)
    data = {**data, "names": {"UA": "<!channel> & co"}}
    assert "&lt;!channel&gt; &amp; co" in json.dumps(summary_blocks(data))  # names are escaped like any text


def test_lead_sees_display_names_over_the_wire(bot: Any) -> None:
    _seed(bot.db, team=TEAM)
    bot.fake.add_user("UB", name="Bruno")
    bot.clock.set(T0 + timedelta(days=1))
    bot.user("ULEAD").command("/label-report", "intents 7")
    (report,) = bot.fake.wait_for(lambda: [r["payload"] for r in bot.fake.responses if r["payload"].get("blocks")],
                                  timeout=20)
    markdown = "\n".join(_texts(report["blocks"], "mrkdwn"))
    assert "Bruno scores 0% on hidden checks" in markdown and "UB scores" not in markdown
    assert check_message_blocks(report["blocks"]) == []



def test_daily_anchoring_and_counts_match_the_row_by_row_definition(seeded: dict) -> None:
    """`_seed` on Jan 5: 7 answers with the draft shown, 6 of them equal to it; 1 blind answer, not equal to
    its hidden draft: anchoring 6/7 - 0/1 for that day, resting on 8 answers; no other day has any."""
    days = {d["day"]: d for d in seeded["daily"]}
    assert days["2026-01-05"]["anchoring"] == pytest.approx(6 / 7) and days["2026-01-05"]["anchoring_n"] == 8
    assert all(d["anchoring"] is None and d["anchoring_n"] == 0 for k, d in days.items() if k != "2026-01-05")

    import numpy as np
    import pandas as pd

    from bot.services.reports.progress import activity_section

    rng = np.random.default_rng(3)
    n = 2000
    kinds = rng.choice(["production", "quiz", "honeypot", "expert"], n, p=[0.7, 0.1, 0.1, 0.1])
    actions = rng.choice(["accept", "reject", "manual", "skip", "ambiguous"], n)
    frame = pd.DataFrame({
        "kind": pd.Categorical(kinds), "action": pd.Categorical(actions), "counts": rng.random(n) < 0.8,
        "annotator": pd.Categorical(rng.choice(["UA", "UB", "UC"], n)),
        "created_at": pd.to_datetime(T0) + pd.to_timedelta(rng.integers(0, 3 * 86400, n), unit="s"),
    })
    out = activity_section(frame, [T0.date() + timedelta(days=k) for k in range(3)], "America/New_York")
    for entry in out["per_day"]:
        rows = frame.loc[frame["created_at"].dt.tz_convert("America/New_York").dt.date == entry["day"]]
        expected = Activity.from_rows((k, a, c, 1) for k, a, c in zip(rows["kind"], rows["action"], rows["counts"],
                                                                     strict=True))
        assert Activity.from_dict(entry) == expected
    assert sum(Activity.from_dict(v).total for v in out["per_annotator"].values()) == n
