"""Imports: every bad-input case names the line and field and writes nothing; re-import is a no-op."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bot.cli import load_commands
from bot.services.importer import ImportError_, import_gold, import_items
from bot.services.projects import create_project, get_project
from storage.models import Gold, Item
from tests.conftest import make_spec

cli = load_commands()


def _project(db, clock, **spec):
    with db.session() as s:
        create_project(s, make_spec(**spec), "T0TEST", clock.now())


def _count(db, model=Item):
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def _write(path, lines):
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


def _run(db, fn, path, clock, **kw):
    with db.session() as s:
        return fn(s, get_project(s, "intents"), path, clock.now(), **kw)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (['{"id": 1, "text": "ok"}', '{"text": "no id"}'], "line 2: field 'id' is missing"),
        (['{"id": 1, "text": "ok"}', '{"id": 2, "text": "   "}'], "line 2: field 'text' is empty"),
        (['{"id": 1, "text": "ok"}', '{"id": 2}'], "line 2: field 'text' is missing"),
        (['{"id": 1, "text": "ok"}', '{"id": 1, "text": "again"}'], "line 2: duplicate id '1' (first at line 1)"),
        (['{"id": 1, "text": "ok"}', b'{"id": 2, "text": "caf\xe9"}'], "line 2: not UTF-8"),
        (['{"id": 1, "text": "ok"}', '{"id": 2, "text": '], "line 2: not valid JSON"),
        (['[1, 2]'], "line 1: each line must be a JSON object"),
    ],
)
def test_bad_item_rows_name_the_line_and_write_nothing(database, clock, tmp_path, lines, expected):
    _project(database, clock)
    with pytest.raises(ImportError_) as err:
        _run(database, import_items, _write(tmp_path / "items.jsonl", lines), clock)
    assert expected in str(err.value)
    assert "nothing was imported" in str(err.value)
    assert _count(database) == 0


def test_reimport_is_a_noop_and_changed_text_needs_update(database, clock, tmp_path):
    _project(database, clock)
    path = _write(tmp_path / "a.jsonl", ['{"id": 1, "text": "one", "lang": "en"}', '{"id": 2, "text": "two"}'])
    first = _run(database, import_items, path, clock)
    assert (first.inserted, first.unchanged) == (2, 0)
    again = _run(database, import_items, path, clock)
    assert (again.inserted, again.unchanged) == (0, 2)
    assert "already imported; nothing changed" in again.summary()
    changed = _write(tmp_path / "b.jsonl", ['{"id": 1, "text": "ONE"}', '{"id": 3, "text": "three"}'])
    with pytest.raises(ImportError_) as err:
        _run(database, import_items, changed, clock)
    assert "line 1: id '1' is already imported with different text; use --update" in str(err.value)
    assert _count(database) == 2  # id 3 was not written either
    updated = _run(database, import_items, changed, clock, update_existing=True)
    assert (updated.inserted, updated.updated) == (1, 1)
    with database.read() as s:
        assert s.scalar(select(Item.text).where(Item.external_id == "1")) == "ONE"
        assert s.scalar(select(Item.meta).where(Item.external_id == "2")) is None


def test_csv_and_parquet_items_with_metadata(database, clock, tmp_path):
    _project(database, clock)
    csv_path = tmp_path / "items.csv"
    csv_path.write_text('id,text,lang\n1,"Hello, world",en\n2,"multi\nline",fr\n', encoding="utf-8")
    assert _run(database, import_items, csv_path, clock).inserted == 2
    pq_path = tmp_path / "items.parquet"
    pq.write_table(pa.table({"id": [3, 4], "text": ["x", "y"], "score": [0.5, None]}), pq_path)
    assert _run(database, import_items, pq_path, clock).inserted == 2
    with database.read() as s:
        metas = dict(s.execute(select(Item.external_id, Item.meta)).all())
    assert metas["1"] == {"lang": "en"} and metas["3"] == {"score": 0.5} and metas["4"] is None
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\n1,billing\n", encoding="utf-8")
    with pytest.raises(ImportError_, match=r"(?s)1 problem.*no 'text' column .* its columns are 'id', 'label'"):
        _run(database, import_items, bad, clock)  # one error for the file, not one per row


@pytest.mark.parametrize(
    ("task", "labels", "row", "expected"),
    [
        ("classification", None, {"id": "g", "text": "t", "label": "nope"}, "field 'label': unknown label 'nope'"),
        ("classification", None, {"id": "g", "text": "t"}, "field 'label' (the gold answer) is missing"),
        ("multilabel", ["a", "b"], {"id": "g", "text": "t", "labels": ["a", "z"]}, "unknown label(s) 'z'"),
        ("spans", ["LOC"], {"id": "g", "text": "Paris", "spans": [{"start": 0, "end": 9, "label": "LOC"}]},
         "outside the text"),
        ("spans", ["LOC"], {"id": "g", "text": "Paris", "spans": [{"start": 0, "end": 5, "label": "PER"}]},
         "unknown label 'PER'"),
        ("rewrite", [], {"id": "g", "text": "t", "rewrite": ""}, "field 'rewrite' (the gold answer) is missing"),
    ],
)
def test_bad_gold_rows(database, clock, tmp_path, task, labels, row, expected):
    overrides = {"task": task}
    if labels is not None:
        overrides["labels"] = labels
    _project(database, clock, **overrides)
    good = {"id": "ok", "text": "Paris is nice", **({"label": "billing"} if task == "classification" else {})}
    if task == "multilabel":
        good["labels"] = ["a"]
    elif task == "spans":
        good["spans"] = [{"start": 0, "end": 5, "label": "LOC"}]
    elif task == "rewrite":
        good["rewrite"] = "Paris is lovely"
    path = _write(tmp_path / "gold.jsonl", [json.dumps(good), json.dumps(row)])
    with pytest.raises(ImportError_) as err:
        _run(database, import_gold, path, clock)
    assert "line 2" in str(err.value) and expected in str(err.value)
    assert _count(database) == 0 and _count(database, Gold) == 0


def test_gold_round_trip_and_short_pool_warning(database, clock, tmp_path):
    _project(database, clock)
    path = _write(tmp_path / "gold.jsonl", [
        json.dumps({"id": "g1", "text": "refund please", "label": "billing", "explanation": "money back"}),
        json.dumps({"id": "g2", "text": "it crashes", "label": "bug"}),
    ])
    result = _run(database, import_gold, path, clock)
    assert result.inserted == 2
    assert any("quiz.size is 4" in w for w in result.warnings)
    assert _run(database, import_gold, path, clock).unchanged == 2
    with database.read() as s:
        rows = s.execute(select(Item.status, Item.is_gold, Gold.value, Gold.explanation).join(Gold)).all()
    assert sorted(rows) == [("gold", True, "billing", "money back"), ("gold", True, "bug", None)]


def test_cli_round_trip_and_clean_errors(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "SLACK_TEAM_ID": "T0CLI"}
    spec = tmp_path / "spec.yml"
    spec.write_text("slug: demo\nname: Demo\ntask: classification\nlabels: [a, b]\n", encoding="utf-8")
    runner = CliRunner()
    r = runner.invoke(cli, ["project", "create", str(spec)], env=env)
    assert r.exit_code == 0 and "Created project 'demo'" in r.output and "T0CLI" in r.output
    items = _write(tmp_path / "items.jsonl", ['{"id": 1, "text": "x"}', '{"id": 1, "text": "y"}'])
    r = runner.invoke(cli, ["import", "demo", str(items)], env=env)
    assert r.exit_code == 2 and "line 2: duplicate id" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli, ["import", "nosuch", str(items)], env=env)
    assert r.exit_code == 2 and "No project 'nosuch'" in r.output
    assert f"looked in {env['DATABASE_URL']}" in r.output  # which database it searched
    bad_spec = tmp_path / "bad.yml"
    bad_spec.write_text("slug: Bad Slug\nname: x\ntask: sorting\nlabels: [a]\nredundancy: 0\ncolour: red\n")
    r = runner.invoke(cli, ["project", "create", str(bad_spec)], env=env)
    assert r.exit_code == 2
    for fragment in ("slug:", "task:", "redundancy:", "colour: unknown key"):
        assert fragment in r.output
    r = runner.invoke(cli, ["serve"], env={**env, "SLACK_BOT_TOKEN": "", "SLACK_APP_TOKEN": ""})
    assert r.exit_code == 2 and "Set SLACK_BOT_TOKEN" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli, ["project", "list"], env=env)
    header, row = r.output.splitlines()
    assert header.split() == ["project", "task", "items", "gold", "answers", "name"]
    assert row.split() == ["demo", "classification", "0", "0", "0", "Demo"]


def test_spec_validation_messages():
    from bot.core.errors import ConfigError
    from bot.spec import parse_spec

    with pytest.raises(ConfigError) as err:
        parse_spec({"slug": "x", "name": "X", "task": "classification", "labels": ["a", "a"],
                    "report": {"time": "25:00", "timezone": "Mars/Base"}, "members": {"leads": ["bob"]}})
    text = str(err.value)
    assert "report.time: must be a 24-hour time" in text
    assert "report.timezone: unknown time zone 'Mars/Base'" in text
    assert "members.leads: 'bob' is not a Slack user id" in text
    spec = parse_spec({"slug": "x", "name": "X", "task": "rewrite"})
    assert (spec.redundancy, spec.blind_every, spec.gold_rate, spec.quiz.pass_mark) == (3, 10, 0.05, 0.95)
    assert (spec.honeypot.window, spec.honeypot.floor, spec.report.time) == (20, 0.8, "09:00")
