"""`/label-export` end to end: signed command -> real Bolt app -> export -> file in the lead's DM."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest

from bot.services.export import parse_export_args as parse_args
from tests.test_export import classification_project


def said(fake) -> list[str]:
    return [str(r["payload"].get("text", "")) for r in fake.responses]


def ephemeral(fake) -> list[bool]:
    return [r["payload"].get("response_type") == "ephemeral" for r in fake.responses]


def test_lead_gets_the_export_in_their_dm(bot):
    classification_project(bot.db, bot.clock)
    lead = bot.user("U0LEAD")
    assert lead.command("/label-export", "intents csv").status == 200
    (shared,) = bot.fake.wait_for(lambda: bot.fake.files(lead.dm))
    assert shared["name"] == "intents-final-20260105.csv"
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(shared["content"].decode("utf-8")))}
    assert set(rows) == {"c1", "c4", "c5"} and rows["c1"]["label"] == "billing"  # the gold item stays out
    assert "3 rows" in shared["initial_comment"] and "1 tied" in shared["initial_comment"]
    assert "1 gold" in shared["initial_comment"]
    bot.fake.wait_for(lambda: any("to your DM" in t and "3 rows" in t for t in said(bot.fake)))
    assert all(ephemeral(bot.fake))


def test_default_project_raw_and_parquet(bot):
    classification_project(bot.db, bot.clock)
    lead = bot.user("U0LEAD")
    lead.command("/label-export", "raw")  # the only project this user leads
    (shared,) = bot.fake.wait_for(lambda: bot.fake.files(lead.dm))
    lines = [json.loads(x) for x in shared["content"].decode("utf-8").splitlines()]
    assert len(lines) == 19 and shared["name"] == "intents-raw-20260105.jsonl"
    lead.command("/label-export", "parquet intents")
    files = bot.fake.wait_for(lambda: len(bot.fake.files(lead.dm)) == 2 and bot.fake.files(lead.dm))
    table = pq.read_table(io.BytesIO(files[1]["content"]))
    assert table.num_rows == 3 and "label" in table.column_names


def test_non_lead_is_refused_and_nothing_is_uploaded(bot):
    classification_project(bot.db, bot.clock)
    other = bot.user("U0A")
    other.command("/label-export", "intents")
    reply = bot.fake.wait_for(lambda: said(bot.fake))
    assert "only the leads of *Support intents*" in reply[0] and "<@U0LEAD>" in reply[0]
    assert all(ephemeral(bot.fake))
    other.command("/label-export")
    bot.fake.wait_for(lambda: len(said(bot.fake)) == 2)
    assert "You lead no project" in said(bot.fake)[1]
    assert bot.deps.wait_idle()  # every listener and the work it started has finished
    assert bot.fake.files() == [] and not bot.fake.calls_to("files.getUploadURLExternal")


@pytest.mark.parametrize("text, words", [
    ("intents xml", "I do not understand 'xml'"),
    ("intents csv parquet", "Choose one format"),
    ("intents openai raw", "cannot be combined with raw"),
    ("nope", "no project 'nope'"),
])
def test_bad_arguments_get_the_usage(sqlite_bot, text, words):
    bot = sqlite_bot
    classification_project(bot.db, bot.clock)
    bot.user("U0LEAD").command("/label-export", text)
    (reply,) = bot.fake.wait_for(lambda: said(bot.fake))
    assert words in reply and "Usage: `/label-export" in reply
    assert all(ephemeral(bot.fake)) and bot.fake.files() == []


def test_parse_args():
    assert parse_args("") == (None, parse_args("jsonl")[1])
    slug, options = parse_args("Raw intents CSV")
    assert slug == "intents" and options.raw and options.fmt == "csv"
    assert parse_args("openai intents")[1].what == "fine-tuning set"
