"""Imports (the importer half of the security issue): checked before any write lock and staged/published in
short transactions, carrying images, predictions and column mapping through (item 9: the running bot keeps
answering; all or nothing survives errors, Ctrl-C and crashes); spans texts that Slack's edit box cannot
hold are refused by line (item 10); odd types become line-numbered errors or exact, documented conversions
(item 11) -- on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, insert, select, update

from bot.core.errors import Conflict
from bot.sandbox.pictures import shape_image
from bot.services.importer import (
    Columns,
    ImportError_,
    import_gold,
    import_items,
    import_items_staged,
    import_predictions,
    read_column,
)
from bot.services.projects import create_project, get_project
from storage.db import Database
from storage.locks import instance_name
from storage.models import Draft, Image, ImageUpload, ImportRow, ImportRun, Item
from tests.conftest import make_spec
from tests.helpers import qualify, seed
from tests.test_labeling_flow import said
from tests.test_replicas import ROOT

# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict[str, Any]] | int, start: int = 0) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        if isinstance(rows, int):
            for i in range(start, start + rows):
                fh.write(json.dumps({"id": f"n{i}", "text": f"imported ticket number {i}", "src": "bulk"}) + "\n")
        else:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
    return path


def project(db, clock, **spec: Any) -> None:
    with db.session() as s:
        create_project(s, make_spec(**spec), "T0TEST", clock.now())


def items(db) -> dict[str, str]:
    with db.read() as s:
        return dict(s.execute(select(Item.external_id, Item.status)).all())


def run_import(db, path: Path, now, **kw: Any):
    """`labelbot import`'s way: staged and published in short transactions."""
    return import_items_staged(db, "intents", path, now, **kw)


def staged(db) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(ImportRow)) or 0


def runs(db) -> list[str]:
    with db.read() as s:
        return list(s.scalars(select(ImportRun.state).order_by(ImportRun.id)))


def dead_owner() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{instance_name().rpartition(':')[0]}:{proc.pid}"


# ------------------------------------------------------------------------------------------------
# Item 11: odd types are line-numbered errors or exact, documented conversions
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [
    ('{"id": "a", "text": "t", "score": NaN}', "line 2: not valid JSON (NaN is not JSON"),
    ('{"id": "a", "text": "t", "score": Infinity}', "line 2: not valid JSON (Infinity is not JSON"),
    ('{"id": "a", "text": "t", "score": [1, -Infinity]}', "line 2: not valid JSON (-Infinity is not JSON"),
    ('{"id": true, "text": "t"}', "line 2: field 'id' must be text or a whole number, not true"),
    ('{"id": {}, "text": "t"}', "line 2: field 'id' must be text or a whole number, not {}"),
    ('{"id": [1], "text": "t"}', "line 2: field 'id' must be text or a whole number, not [1]"),
    ('{"id": 1.5, "text": "t"}', "line 2: field 'id' must be text or a whole number, not 1.5"),
    ('{"id": "a\\u0000b", "text": "t"}', "line 2: field 'id' contains a NUL character"),
])
def test_jsonl_values_json_cannot_hold_are_refused_by_line(database, clock, tmp_path, line, expected):
    project(database, clock)
    path = tmp_path / "odd.jsonl"
    path.write_text('{"id": "fine", "text": "ok"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ImportError_) as err:
        run_import(database, path, clock.now())
    assert expected in str(err.value)
    assert items(database) == {}


def test_a_mapped_id_column_names_itself_in_the_error(database, clock, tmp_path):
    project(database, clock)
    path = tmp_path / "odd.jsonl"
    path.write_text('{"ticket": "fine", "body": "ok"}\n{"ticket": false, "body": "t"}\n', encoding="utf-8")
    with pytest.raises(ImportError_, match="line 2: field 'ticket' must be text or a whole number, not false"):
        run_import(database, path, clock.now(), columns=Columns("ticket", "body"))
    with pytest.raises(ImportError_, match="line 2: field 'ticket' must be text or a whole number, not false"):
        read_column(path, "ticket")
    assert items(database) == {}


def test_a_json_array_with_nan_is_refused_by_line(database, clock, tmp_path):
    project(database, clock)
    path = tmp_path / "odd.json"
    path.write_text('[\n{"id": "a", "text": "t"},\n{"id": "b", "text": "t", "x": NaN}\n]\n', encoding="utf-8")
    with pytest.raises(ImportError_, match="line 3: not valid JSON \\(NaN is not JSON"):
        run_import(database, path, clock.now())
    assert items(database) == {}


def test_gold_explanations_must_be_text(database, clock, tmp_path):
    project(database, clock)
    path = write_jsonl(tmp_path / "g.jsonl", [{"id": "g", "text": "t", "label": "bug", "explanation": {"a": 1}}])
    with pytest.raises(ImportError_, match="line 1: field 'explanation' must be text"), database.session() as s:
        import_gold(s, get_project(s, "intents"), path, clock.now())


def test_parquet_dates_and_decimals_convert_exactly_and_bytes_are_refused(database, clock, tmp_path):
    project(database, clock)
    table = pa.table({
        "id": pa.array([7, 8], pa.int64()),
        "text": ["first", "second"],
        "when": pa.array([date(2026, 1, 5), None], pa.date32()),
        "price": pa.array([Decimal("12.50"), Decimal("-0.01")], pa.decimal128(5, 2)),
        "tags": pa.array([[date(2026, 2, 1)], []], pa.list_(pa.date32())),
    })
    pq.write_table(table, tmp_path / "ok.parquet")
    assert run_import(database, tmp_path / "ok.parquet", clock.now()).inserted == 2
    with database.read() as s:
        metas = dict(s.execute(select(Item.external_id, Item.meta)).all())
    assert metas == {"7": {"when": "2026-01-05", "price": "12.50", "tags": ["2026-02-01"]},
                     "8": {"price": "-0.01", "tags": []}}

    bad = pa.table({"id": ["b1", "b2"], "text": ["t1", "t2"], "blob": pa.array([None, b"\x00\x01"], pa.binary())})
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(ImportError_) as err:
        run_import(database, tmp_path / "bad.parquet", clock.now())
    assert "row 2: field 'blob' is binary data" in str(err.value)
    pq.write_table(pa.table({"id": pa.array([b"x"], pa.binary()), "text": ["t"]}), tmp_path / "bid.parquet")
    with pytest.raises(ImportError_, match="row 1: field 'id' must be text or a whole number, not bytes"):
        run_import(database, tmp_path / "bid.parquet", clock.now())
    assert set(items(database)) == {"7", "8"}


def test_parquet_non_finite_numbers_and_durations_in_metadata_are_refused(database, clock, tmp_path):
    project(database, clock)
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["t1", "t2"],
                             "score": pa.array([1.0, float("inf")], pa.float64())}), tmp_path / "inf.parquet")
    with pytest.raises(ImportError_, match="row 2: field 'score' is infinite, which JSON cannot hold"):
        run_import(database, tmp_path / "inf.parquet", clock.now())
    pq.write_table(pa.table({"id": ["a"], "text": ["t1"],
                             "took": pa.array([timedelta(seconds=5)], pa.duration("s"))}), tmp_path / "dur.parquet")
    with pytest.raises(ImportError_, match="row 1: field 'took' has the type timedelta"):
        run_import(database, tmp_path / "dur.parquet", clock.now())
    assert items(database) == {}


def test_prediction_files_refuse_odd_ids_by_line(database, clock, tmp_path):
    project(database, clock)
    run_import(database, write_jsonl(tmp_path / "a.jsonl", [{"id": "a", "text": "t"}]), clock.now())
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "draft": "bug"}, {"id": [1], "draft": "bug"}])
    with pytest.raises(ImportError_, match="line 2: field 'id' must be text or a whole number, not \\[1\\]"), \
            database.session() as s:
        import_predictions(s, get_project(s, "intents"), path, clock.now())


def test_the_in_session_import_checks_the_same(database, clock, tmp_path):
    project(database, clock)
    path = tmp_path / "odd.jsonl"
    path.write_text('{"id": "a", "text": "t", "x": NaN}\n', encoding="utf-8")
    with pytest.raises(ImportError_, match="NaN is not JSON"), database.session() as s:
        import_items(s, get_project(s, "intents"), path, clock.now())


# ------------------------------------------------------------------------------------------------
# Item 10: spans texts must fit Slack's edit box
# ------------------------------------------------------------------------------------------------


def test_spans_texts_too_long_for_the_edit_box_are_refused_by_line(database, clock, tmp_path):
    project(database, clock, task="spans", labels=["LOC", "PER"])
    long_text = "word " * 420  # 2,100 characters
    rows = [{"id": "ok", "text": "Ann flew to Paris"}, {"id": "long", "text": long_text}]
    with pytest.raises(ImportError_) as err:
        run_import(database, write_jsonl(tmp_path / "a.jsonl", rows), clock.now())
    assert "line 2: field 'text' is 2,100 characters" in str(err.value)
    assert "at most 2,000" in str(err.value) and "3,000-character edit box" in str(err.value)
    gold = [{"id": "g", "text": "[" * 1500, "spans": []}]  # brackets are escaped in the box: 3,000 characters
    with pytest.raises(ImportError_) as err, database.session() as s:
        import_gold(s, get_project(s, "intents"), write_jsonl(tmp_path / "g.jsonl", gold), clock.now())
    assert "line 1: field 'text' is 3,000 characters (with escapes)" in str(err.value)
    assert items(database) == {}


def test_crlf_counts_as_one_character_and_the_limit_holds_in_a_mapped_column(database, clock, tmp_path):
    project(database, clock, task="spans", labels=["LOC"])
    fits = "a\r\n" * 1000  # 3,000 characters in the file, 2,000 in the box (LF line breaks)
    path = write_jsonl(tmp_path / "a.jsonl", [{"id": "crlf", "body": fits}, {"id": "long", "body": "b" * 2001}])
    with pytest.raises(ImportError_) as err:
        run_import(database, path, clock.now(), columns=Columns("id", "body"))
    assert "line 2: field 'body' is 2,001 characters" in str(err.value) and "line 1" not in str(err.value)
    write_jsonl(path, [{"id": "crlf", "body": fits}])
    assert run_import(database, path, clock.now(), columns=Columns("id", "body")).inserted == 1
    assert items(database) == {"crlf": "open"}


def test_texts_of_other_tasks_are_not_held_to_the_edit_box(database, clock, tmp_path):
    project(database, clock)
    assert run_import(database, write_jsonl(tmp_path / "a.jsonl", [{"id": "long", "text": "w" * 5000}]),
                      clock.now()).inserted == 1


# ------------------------------------------------------------------------------------------------
# Item 9: the import does not block the running bot on SQLite; all or nothing; one at a time
# ------------------------------------------------------------------------------------------------


def test_labelbot_import_on_sqlite_leaves_the_bot_answering(sqlite_bot, tmp_path):
    bot = sqlite_bot
    seed(bot.db, make_spec(redundancy=1), bot.clock.now(),
         items=[{"id": f"t{i}", "text": f"existing ticket {i}"} for i in range(400)])
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")
    big = write_jsonl(tmp_path / "big.jsonl", 40_000)
    env = {**os.environ, "DATABASE_URL": bot.db.url, "PYTHONPATH": str(ROOT)}
    ann.command("/label")
    msg = bot.fake.wait_for(lambda: bot.fake.last_message(ann.dm))
    importer = subprocess.Popen([sys.executable, "-m", "bot.cli", "import", "intents", str(big)], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    clicks: list[tuple[float, float]] = []
    while importer.poll() is None:
        t0 = time.monotonic()
        before = len(bot.fake.messages(ann.dm))
        assert ann.click(msg, "label.choose:0").status == 200  # acked once the answer is stored
        clicks.append((t0, time.monotonic()))
        msg = bot.fake.wait_for(lambda b=before: len(bot.fake.messages(ann.dm)) > b and bot.fake.last_message(ann.dm),
                                timeout=30)
    out, err = importer.communicate()
    ended = time.monotonic()
    assert importer.returncode == 0, err
    assert "40000 new" in out
    during = [b - a for a, b in clicks if a > started and b < ended]
    assert len(during) >= 5, (len(clicks), ended - started)
    assert max(during) < 1.5, sorted(during)[-5:]  # never stuck behind the import's write lock
    bot.deps.wait_idle()
    with bot.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Item).where(Item.external_id.like("n%"))) == 40_000
    assert runs(bot.db) == ["done"] and staged(bot.db) == 0


def test_nothing_staged_is_visible_and_everything_appears_at_the_end(bot, tmp_path):
    seed(bot.db, make_spec(redundancy=1), bot.clock.now())
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    path = write_jsonl(tmp_path / "few.jsonl", 12)
    paused, resume, calls = threading.Event(), threading.Event(), []

    def progress(n: int) -> None:
        calls.append(n)
        if len(calls) == 3:  # after the first staged chunks: the import is half written
            paused.set()
            assert resume.wait(30)

    importer_db = Database(bot.db.url)  # as another process would: its own connections
    done: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: done.setdefault("result", import_items_staged(
        importer_db, "intents", path, bot.clock.now(), progress=progress, chunk=4)))
    thread.start()
    try:
        assert paused.wait(30)
        assert staged(bot.db) == 8 and items(bot.db) == {}
        ann = bot.user("U0ANN")
        ann.command("/label")  # the half-written import is invisible to the bot
        bot.fake.wait_for(lambda: any("queue is empty" in t for t in said(bot.fake)))
        with pytest.raises(Conflict, match="Another import into 'intents' is running"):
            import_items_staged(bot.db, "intents", write_jsonl(tmp_path / "other.jsonl", 2, 100), bot.clock.now())
        with pytest.raises(Conflict, match="is running; import the gold when it is done"), bot.db.session() as s:
            import_gold(s, get_project(s, "intents"), write_jsonl(tmp_path / "gold.jsonl", [
                {"id": "g1", "text": "gold", "label": "bug"}]), bot.clock.now())
    finally:
        resume.set()
        thread.join(30)
        importer_db.dispose()
    assert done["result"].inserted == 12
    assert len(items(bot.db)) == 12 and staged(bot.db) == 0 and runs(bot.db) == ["done"]
    before = len(bot.fake.messages(ann.dm))
    ann.command("/label")
    assert "imported ticket" in str(bot.fake.wait_for(lambda: len(bot.fake.messages(ann.dm)) > before
                                                      and bot.fake.last_message(ann.dm))["blocks"][1])


def test_a_conflict_found_while_staging_rejects_the_whole_file(database, clock, tmp_path):
    project(database, clock)
    run_import(database, write_jsonl(tmp_path / "a.jsonl", [{"id": "dup", "text": "one"}]), clock.now())
    rows = [{"id": f"x{i}", "text": f"row {i}"} for i in range(10)] + [{"id": "dup", "text": "changed"}]
    with pytest.raises(ImportError_) as err:
        run_import(database, write_jsonl(tmp_path / "b.jsonl", rows), clock.now(), chunk=3)
    assert "line 11: id 'dup' is already imported with different text" in str(err.value)
    assert set(items(database)) == {"dup"} and staged(database) == 0
    assert runs(database) == ["done", "abandoned"]
    updated = run_import(database, tmp_path / "b.jsonl", clock.now(), update_existing=True)
    assert (updated.inserted, updated.updated) == (10, 1)
    with database.read() as s:
        assert s.scalar(select(Item.text).where(Item.external_id == "dup")) == "changed"


def test_an_interrupted_import_leaves_nothing_and_frees_the_project(database, clock, tmp_path):
    project(database, clock)

    def interrupt(n: int) -> None:
        if staged(database):
            raise KeyboardInterrupt  # Ctrl-C while staging

    with pytest.raises(KeyboardInterrupt):
        run_import(database, write_jsonl(tmp_path / "a.jsonl", 10), clock.now(), chunk=2, progress=interrupt)
    assert items(database) == {} and staged(database) == 0 and runs(database) == ["abandoned"]
    assert run_import(database, tmp_path / "a.jsonl", clock.now()).inserted == 10


def test_the_next_import_clears_or_finishes_what_a_crashed_one_left(database, clock, tmp_path):
    project(database, clock, redundancy=2)
    now = clock.now()
    with database.session() as s:
        pid = get_project(s, "intents").id
        for state, prefix in (("abandoned", "old"), ("staging", "dead")):
            run = ImportRun(project_id=pid, path=f"{prefix}.jsonl", state=state, owner=dead_owner(), rows=2,
                            inserted=0, updated=0, unchanged=0, created_at=now, heartbeat_at=now)
            s.add(run)
            s.flush()
            s.execute(insert(ImportRow), [{"run_id": run.id, "line": i + 1, "external_id": f"{prefix}{i}",
                                           "text": "never shown", "meta": None} for i in range(2)])
    result = run_import(database, write_jsonl(tmp_path / "a.jsonl", 3), clock.now())
    assert "cleared an interrupted import of dead.jsonl" in " ".join(result.warnings)
    assert set(items(database)) == {"n0", "n1", "n2"}

    # A crash after the commit point: the run was publishing; its rows are published by the next import,
    # with the image and the prediction they carried.
    with database.session() as s:
        run = ImportRun(project_id=pid, path="half.jsonl", state="publishing", owner="elsewhere:1", rows=2,
                        inserted=0, updated=0, unchanged=0, created_at=now, heartbeat_at=datetime.now(UTC))
        s.add(run)
        s.flush()
        s.execute(insert(ImportRow), [{"run_id": run.id, "line": i + 1, "external_id": f"half{i}",
                                       "text": f"half {i}", "meta": {"k": i}, "image": "https://x.test/a.png",
                                       "prediction": {"value": "bug", "key": "bug", "confidence": 0.5,
                                                      "model": "m1"}} for i in range(2)])
    with pytest.raises(Conflict, match="is running"):  # another host, fresh heartbeat: alive as far as we know
        run_import(database, write_jsonl(tmp_path / "b.jsonl", 1, 10), clock.now())
    with database.session() as s:
        s.execute(update(ImportRun).where(ImportRun.state == "publishing")
                  .values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=11)))
    result = run_import(database, tmp_path / "b.jsonl", clock.now())
    assert "finished an interrupted import of half.jsonl first" in " ".join(result.warnings)
    assert {"half0", "half1", "n10"} <= set(items(database)) and staged(database) == 0
    with database.read() as s:
        assert s.execute(select(Item.meta, Item.slots, Item.image).where(Item.external_id == "half1")).one() == (
            {"k": 1}, 2, "https://x.test/a.png")
        assert s.execute(select(Draft.value, Draft.confidence, Draft.model)).all() == [("bug", 0.5, "m1")] * 2


def test_staged_imports_carry_images_predictions_and_mapped_columns(database, clock, tmp_path):
    project(database, clock)
    (tmp_path / "a.png").write_bytes(shape_image("circle", 1))
    rows = [
        {"ticket": "i1", "image": "a.png", "draft": "bug", "draft_confidence": 0.9, "draft_model": "bert"},
        {"ticket": "i2", "body": "a caption", "image": "a.png", "shop": "north"},
        {"ticket": "t1", "body": "a plain text item", "draft": "billing"},
    ]
    path = write_jsonl(tmp_path / "items.jsonl", rows)
    result = run_import(database, path, clock.now(), columns=Columns("ticket", "body"), chunk=2)
    assert (result.inserted, result.predictions.added) == (3, 2)
    assert any("1 image(s) will be uploaded to Slack" in w for w in result.warnings)
    with database.read() as s:
        got = {i.external_id: i for i in s.scalars(select(Item))}
        image = s.scalars(select(Image)).one()
        uploads = s.execute(select(ImageUpload.image_id, ImageUpload.team_id, ImageUpload.status)).all()
        drafts = dict(s.execute(select(Item.external_id, Draft.value).join(Draft, Draft.item_id == Item.id)).all())
    assert got["i1"].image_id == got["i2"].image_id == image.id and got["i1"].text == ""
    assert got["i2"].meta == {"shop": "north"} and got["t1"].image is None
    assert uploads == [(image.id, "T0TEST", "pending")]
    assert drafts == {"i1": "bug", "t1": "billing"}
    again = run_import(database, path, clock.now(), columns=Columns("ticket", "body"))
    assert (again.inserted, again.unchanged) == (0, 3)
    assert again.predictions.unchanged == 2 and again.summary().endswith("nothing changed.")
    with database.read() as s:
        assert s.scalar(select(func.count()).select_from(ImageUpload)) == 1
        assert s.scalar(select(func.count()).select_from(Draft)) == 2
    assert runs(database) == ["done", "done"] and staged(database) == 0


def test_the_in_session_import_and_gold_check_the_same_files(database, clock, tmp_path):
    project(database, clock)
    path = write_jsonl(tmp_path / "a.jsonl", [{"id": "a", "text": "t", "when": "x"}, {"id": True, "text": "t"}])
    with pytest.raises(ImportError_, match="line 2: field 'id' must be text"), database.session() as s:
        import_items(s, get_project(s, "intents"), path, clock.now())
    assert runs(database) == [] and items(database) == {}
