"""Your own model's predictions as drafts: imported, served over the real HTTP wire, measured per model."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bot.blocks.report import report_text
from bot.services.drafting import SimulatedDrafter, draft_items
from bot.services.importer import ImportError_, import_items, import_predictions
from bot.services.labeling.tasks import usable_draft
from bot.services.projects import create_project, get_project
from bot.services.reports import report_for
from storage.models import Draft, Item, Label
from tests.conftest import make_spec
from tests.helpers import _jsonl, add_draft, qualify

ITEMS = [
    {"id": "t1", "text": "I was charged twice this month", "draft": "billing", "draft_confidence": 0.93,
     "draft_model": "my-bert"},
    {"id": "t2", "text": "The app crashes when I log in", "draft": "bug", "draft_model": "my-bert"},
    {"id": "t3", "text": "Please add a dark mode"},
]


def _create(db, now, spec, rows):
    with db.session() as s:
        project = create_project(s, spec, "T0TEST", now)
        return import_items(s, project, _jsonl(rows), now)


def _drafts(db):
    with db.read() as s:
        return s.execute(select(Item.external_id, Draft.model, Draft.value, Draft.confidence, Draft.prompt_version)
                         .join(Item, Item.id == Draft.item_id).order_by(Draft.id)).all()


def test_import_stores_predictions_as_drafts_and_is_idempotent(database, clock):
    result = _create(database, clock.now(), make_spec(), ITEMS)
    assert result.inserted == 3 and (result.predictions.added, result.predictions.replaced) == (2, 0)
    assert "Predictions: 2 new." in result.summary()
    rows = _drafts(database)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [("t1", "my-bert", "billing", 0.93),
                                                       ("t2", "my-bert", "bug", None)]
    assert all(r[4].startswith("import:") for r in rows)
    with database.read() as s:
        meta = s.scalar(select(Item.meta).where(Item.external_id == "t1"))
    assert meta is None  # the prediction fields are not metadata
    with database.session() as s:
        again = import_items(s, get_project(s, "intents"), _jsonl(ITEMS), clock.now())
    assert again.predictions.unchanged == 2 and len(_drafts(database)) == 2
    assert again.summary().endswith("nothing changed.")


def test_bad_predictions_are_refused_by_line(database, clock):
    bad = [
        {"id": "a", "text": "one", "draft": "nonsense"},
        {"id": "b", "text": "two", "draft": "bug", "draft_confidence": 1.5},
        {"id": "c", "text": "three", "draft_model": "m"},
        {"id": "d", "text": "four", "draft": "bug", "draft_confidence": "high"},
    ]
    with pytest.raises(ImportError_) as err, database.session() as s:
        import_items(s, create_project(s, make_spec(), "T0TEST", clock.now()), _jsonl(bad), clock.now())
    text = str(err.value)
    assert "line 1: field 'draft': " in text and "nonsense" in text
    assert "line 2: field 'draft_confidence' must be between 0 and 1, not 1.5" in text
    assert "line 3: field 'draft_model' is given without a 'draft'" in text
    assert "line 4: field 'draft_confidence' must be a number between 0 and 1" in text
    with database.read() as s:
        assert s.scalar(select(func.count()).select_from(Item)) == 0


def test_spans_and_multilabel_predictions_are_checked_against_the_text(sqlite_db, clock):
    sp = make_spec(slug="sp", task="spans", labels=["LOC"])
    rows = [{"id": "s1", "text": "off to Paris", "draft": json.dumps([{"start": 7, "end": 12, "label": "LOC"}])},
            {"id": "s2", "text": "short", "draft": [{"start": 2, "end": 40, "label": "LOC"}]}]
    with pytest.raises(ImportError_, match="line 2: field 'draft': "):
        _create(sqlite_db, clock.now(), sp, rows)
    ml = make_spec(slug="ml", task="multilabel", labels=["a", "b", "c"])
    result = _create(sqlite_db, clock.now(), ml, [{"id": "m1", "text": "x", "draft": ["c", "a"]}])
    assert result.predictions.added == 1 and _drafts(sqlite_db)[0][2] == ["a", "c"]


def test_draft_from_file_adds_and_replaces_predictions(sqlite_db, clock, tmp_path, monkeypatch):
    _create(sqlite_db, clock.now(), make_spec(), ITEMS)
    monkeypatch.setenv("DATABASE_URL", sqlite_db.url)
    from bot.cli.drafting import COMMANDS

    group = click.Group("labelbot", commands={c.name: c for c in COMMANDS})
    path = tmp_path / "preds.csv"
    path.write_text("id,draft,draft_confidence,draft_model\nt1,bug,0.6,my-bert\nt3,feature,,my-bert\n"
                    "t2,bug,,my-bert\n", encoding="utf-8")
    res = CliRunner().invoke(group, ["draft", "intents", "--from", str(path)])
    assert res.exit_code == 0, res.output
    assert "3 prediction(s) read; 1 new, 1 replaced, 1 unchanged." in res.output
    with sqlite_db.read() as s:
        t1 = s.scalar(select(Item.id).where(Item.external_id == "t1"))
        assert usable_draft(s, t1, llm=False).value == "bug"  # the newest prediction of t1 wins
    assert len(_drafts(sqlite_db)) == 4  # the first prediction of t1 is kept: labels may point at it

    path.write_text("id,draft\nt1,bug\nnope,bug\nt2,sideways\n", encoding="utf-8")
    res = CliRunner().invoke(group, ["draft", "intents", "--from", str(path)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "line 3: no item 'nope' in project intents" in res.output
    assert "line 4: field 'draft': " in res.output and len(_drafts(sqlite_db)) == 4  # all or nothing
    with sqlite_db.session() as s, pytest.raises(ImportError_, match="the file has no rows"):
        empty = tmp_path / "empty.jsonl"
        empty.write_text("", encoding="utf-8")
        import_predictions(s, get_project(s, "intents"), empty, clock.now())


def test_imported_prediction_wins_and_the_llm_skips_its_items(sqlite_db, clock):
    _create(sqlite_db, clock.now(), make_spec(gold_rate=0), [{"id": "t1", "text": "charged twice"},
                                                             {"id": "t2", "text": "crash"}])
    add_draft(sqlite_db, "intents", "t1", "bug", clock.now(), model="gpt-x")
    with sqlite_db.session() as s:
        path = _jsonl([{"id": "t1", "draft": "billing", "draft_model": "my-bert"}])
        import_predictions(s, get_project(s, "intents"), path, clock.now())
        t1 = s.scalar(select(Item.id).where(Item.external_id == "t1"))
        assert usable_draft(s, t1).model == "my-bert"
    stats = draft_items(sqlite_db, "intents", drafter=SimulatedDrafter(), now=clock.now())
    assert stats.ok == 1  # only t2: t1 has a prediction of your own model
    with sqlite_db.read() as s:
        simulated = s.scalars(select(Item.external_id).join(Draft, Draft.item_id == Item.id)
                              .where(Draft.model == "simulated")).all()
    assert simulated == ["t2"]


def _draft_text(message) -> str:
    return " ".join(str(b.get("text", {}).get("text", "")) for b in message["blocks"]
                    if b.get("block_id") == "lb.draft")


def test_predictions_are_served_and_measured_as_drafts_over_http(bot):
    spec = make_spec(llm={"enabled": False}, blind_every=2, redundancy=1)
    rows = [{"id": f"t{i}", "text": f"text number {i}", "draft": "billing", "draft_confidence": 0.8,
             "draft_model": "my-bert"} for i in range(4)]
    _create(bot.db, bot.clock.now(), spec, rows)
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")

    ann.command("/label")
    first = bot.fake.wait_for(lambda: bot.fake.last_message(ann.dm))
    assert "Draft (model my-bert): *billing* · confidence 80%" in _draft_text(first)
    ann.click(first, "label.accept")
    second = bot.fake.wait_for(lambda: len(bot.fake.messages(ann.dm)) == 2 and bot.fake.last_message(ann.dm))
    assert "blind control" in json.dumps(second["blocks"]) and _draft_text(second) == ""
    ann.click(second, "label.choose:1")  # bug, from scratch
    third = bot.fake.wait_for(lambda: len(bot.fake.messages(ann.dm)) == 3 and bot.fake.last_message(ann.dm))
    assert "model my-bert" in _draft_text(third)
    ann.click(third, "label.choose:1")  # bug instead of the drafted billing: a rejection
    fourth = bot.fake.wait_for(lambda: len(bot.fake.messages(ann.dm)) == 4 and bot.fake.last_message(ann.dm))
    ann.click(fourth, "label.choose:0")  # blind again; billing
    bot.fake.wait_for(lambda: "queue is empty" in (bot.fake.last_message(ann.dm) or {}).get("text", ""))
    bot.deps.wait_idle()

    with bot.db.read() as s:
        labels = s.execute(select(Label.action, Label.value, Label.draft_shown, Draft.model)
                           .outerjoin(Draft, Draft.id == Label.draft_id).order_by(Label.id)).all()
    # blind answers are linked to the withheld prediction too (drift and anchoring compare with it)
    assert labels == [("accept", "billing", True, "my-bert"), ("manual", "bug", False, "my-bert"),
                      ("reject", "bug", True, "my-bert"), ("manual", "billing", False, "my-bert")]
    bot.clock.advance(seconds=60)
    report = report_for(bot.db, "intents", 7, bot.clock.now()).to_json()
    model = report["llm"]["by_model"]["my-bert"]
    assert (model["shown"], model["accept_rate"], model["reject_rate"]) == (2, 0.5, 0.5)
    # one rater per item: no consensus to compare the model with, and the report says so
    assert model["accuracy_vs_consensus"] is None and model["reasons"]["accuracy_vs_consensus"]
    assert model["items"] == 4
    assert "Model my-bert: shown 2 times, accepted 50%, rejected 50%" in report_text(report)  # no "edited" for labels
    assert report["drafts"]["accept_rate"] == 0.5 and report["drafts"]["shown"] == 2
    assert report["drift"]["anchoring_shown"] == 0.5 and report["drift"]["anchoring_blind"] == 0.5
