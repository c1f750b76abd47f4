"""Imports: checked before any write lock and staged/published in short transactions (the running bot
keeps answering; all or nothing survives errors, Ctrl-C and crashes); spans texts that Slack's edit box
cannot hold are refused by line; CRLF survives the edit box; odd types become line-numbered errors or
exact, documented conversions -- on SQLite and PostgreSQL."""

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
from bot.services.importer import ImportError_, import_gold, import_items, import_items_staged
from bot.services.projects import create_project, get_project
from storage.db import Database
from storage.locks import instance_name
from storage.models import ImportRow, ImportRun, Item
from tests.conftest import make_spec
from tests.helpers import add_draft, qualify, seed
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
# Item 9: the import does not block the running bot on SQLite
# ------------------------------------------------------------------------------------------------


def test_labelbot_import_on_sqlite_leaves_the_bot_answering(sqlite_bot, tmp_path):
    bot = sqlite_bot
    seed(bot.db, make_spec(redundancy=1), bot.clock.now(),
         items=[{"id": f"t{i}", "text": f"existing ticket {i}"} for i in range(400)])
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")
    big = write_jsonl(tmp_path / "big.jsonl", 60_000)
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
    assert "60000 new" in out
    during = [b - a for a, b in clicks if a > started and b < ended]
    assert len(during) >= 5, (len(clicks), ended - started)
    assert max(during) < 1.5, sorted(during)[-5:]  # never stuck behind the import's write lock
    bot.deps.wait_idle()
    with bot.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Item).where(Item.external_id.like("n%"))) == 60_000
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
    import_items_staged(database, "intents", write_jsonl(tmp_path / "a.jsonl", [{"id": "dup", "text": "one"}]),
                        clock.now())
    rows = [{"id": f"x{i}", "text": f"row {i}"} for i in range(10)] + [{"id": "dup", "text": "changed"}]
    with pytest.raises(ImportError_) as err:
        import_items_staged(database, "intents", write_jsonl(tmp_path / "b.jsonl", rows), clock.now(), chunk=3)
    assert "line 11: id 'dup' is already imported with different text" in str(err.value)
    assert set(items(database)) == {"dup"} and staged(database) == 0
    assert runs(database) == ["done", "abandoned"]
    updated = import_items_staged(database, "intents", tmp_path / "b.jsonl", clock.now(), update_existing=True)
    assert (updated.inserted, updated.updated) == (10, 1)
    with database.read() as s:
        assert s.scalar(select(Item.text).where(Item.external_id == "dup")) == "changed"


def test_an_interrupted_import_leaves_nothing_and_frees_the_project(database, clock, tmp_path):
    project(database, clock)

    def interrupt(n: int) -> None:
        if staged(database):
            raise KeyboardInterrupt  # Ctrl-C while staging

    with pytest.raises(KeyboardInterrupt):
        import_items_staged(database, "intents", write_jsonl(tmp_path / "a.jsonl", 10), clock.now(), chunk=2,
                            progress=interrupt)
    assert items(database) == {} and staged(database) == 0 and runs(database) == ["abandoned"]
    assert import_items_staged(database, "intents", tmp_path / "a.jsonl", clock.now()).inserted == 10


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
    result = import_items_staged(database, "intents", write_jsonl(tmp_path / "a.jsonl", 3), clock.now())
    assert "cleared an interrupted import of dead.jsonl" in " ".join(result.warnings)
    assert set(items(database)) == {"n0", "n1", "n2"}

    # A crash after the commit point: the run was publishing; its rows are published by the next import.
    with database.session() as s:
        run = ImportRun(project_id=pid, path="half.jsonl", state="publishing", owner="elsewhere:1", rows=2,
                        inserted=0, updated=0, unchanged=0, created_at=now, heartbeat_at=datetime.now(UTC))
        s.add(run)
        s.flush()
        s.execute(insert(ImportRow), [{"run_id": run.id, "line": i + 1, "external_id": f"half{i}",
                                       "text": f"half {i}", "meta": {"k": i}} for i in range(2)])
    with pytest.raises(Conflict, match="is running"):  # another host, fresh heartbeat: alive as far as we know
        import_items_staged(database, "intents", write_jsonl(tmp_path / "b.jsonl", 1, 10), clock.now())
    with database.session() as s:
        s.execute(update(ImportRun).where(ImportRun.state == "publishing")
                  .values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=11)))
    result = import_items_staged(database, "intents", tmp_path / "b.jsonl", clock.now())
    assert "finished an interrupted import of half.jsonl first" in " ".join(result.warnings)
    assert {"half0", "half1", "n10"} <= set(items(database)) and staged(database) == 0
    with database.read() as s:
        assert s.execute(select(Item.meta, Item.slots).where(Item.external_id == "half1")).one() == ({"k": 1}, 2)


# ------------------------------------------------------------------------------------------------
# Item 10: spans texts must fit Slack's edit box; CRLF survives the round trip
# ------------------------------------------------------------------------------------------------


def test_spans_texts_too_long_for_the_edit_box_are_refused_by_line(database, clock, tmp_path):
    project(database, clock, task="spans", labels=["LOC", "PER"])
    long_text = "word " * 420  # 2,100 characters
    rows = [{"id": "ok", "text": "Ann flew to Paris"}, {"id": "long", "text": long_text}]
    with pytest.raises(ImportError_) as err:
        import_items_staged(database, "intents", write_jsonl(tmp_path / "a.jsonl", rows), clock.now())
    assert "line 2: field 'text' is 2,100 characters" in str(err.value) and "at most 2,000" in str(err.value)
    gold = [{"id": "g", "text": "[" * 1500, "spans": []}]  # brackets are escaped in the box: 3,000 characters
    with pytest.raises(ImportError_) as err, database.session() as s:
        import_gold(s, get_project(s, "intents"), write_jsonl(tmp_path / "g.jsonl", gold), clock.now())
    assert "line 1: field 'text' is 3,000 characters (with escapes)" in str(err.value)
    assert items(database) == {}


def test_crlf_spans_text_survives_slacks_input_box(bot):
    text = "Ann flew\r\nto Paris\r\non Monday"
    seed(bot.db, make_spec(task="spans", labels=["LOC", "PER"]), bot.clock.now(), items=[{"id": "s1", "text": text}])
    paris = text.index("Paris")
    add_draft(bot.db, "intents", "s1", [{"start": paris, "end": paris + 5, "label": "LOC"}], bot.clock.now())
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")
    ann.command("/label")
    msg = bot.fake.wait_for(lambda: bot.fake.last_message(ann.dm))
    ann.click(msg, "label.edit")
    view = bot.fake.wait_for(lambda: bot.fake.views_open("U0ANN") and bot.fake.views_open("U0ANN")[-1])
    initial = view["blocks"][-1]["element"]["initial_value"]
    assert initial == "Ann flew\nto [Paris](LOC)\non Monday"  # LF, as the box gives it back
    typed = "[Ann](PER) flew\nto [Paris](LOC)\non Monday"  # what Slack submits: LF line breaks
    reply = ann.submit_view(view, {"lb.edit_input": {"value": typed}})
    assert reply.status == 200 and "errors" not in reply.body, reply.body
    bot.deps.wait_idle()
    from storage.models import Label

    with bot.db.read() as s:
        value = s.scalar(select(Label.value))
    assert value == [{"start": 0, "end": 3, "label": "PER"}, {"start": paris, "end": paris + 5, "label": "LOC"}]
    assert [text[v["start"]:v["end"]] for v in value] == ["Ann", "Paris"]


def test_an_example_too_long_for_the_box_is_never_offered_a_cut_copy(bot):
    seed(bot.db, make_spec(task="spans", labels=["LOC"]), bot.clock.now())
    with bot.db.session() as s:  # imported before the limit existed
        s.add(Item(project_id=get_project(s, "intents").id, external_id="old", text="x " * 2000, status="open",
                   slots=3, labels_done=0, is_gold=False, created_at=bot.clock.now(), updated_at=bot.clock.now()))
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")
    ann.command("/label")
    msg = bot.fake.wait_for(lambda: bot.fake.last_message(ann.dm))
    ann.click(msg, "label.edit")
    bot.fake.wait_for(lambda: any("too long to mark in Slack's edit box" in t for t in said(bot.fake)))
    bot.deps.wait_idle()
    assert bot.fake.views_open("U0ANN") == []


def test_a_rewrite_draft_longer_than_the_box_is_not_prefilled_cut(bot):
    seed(bot.db, make_spec(task="rewrite", labels=[]), bot.clock.now(), items=[{"id": "r1", "text": "short"}])
    add_draft(bot.db, "intents", "r1", "y" * 3500, bot.clock.now())
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")
    ann.command("/label")
    msg = bot.fake.wait_for(lambda: bot.fake.last_message(ann.dm))
    ann.click(msg, "label.edit")
    view = bot.fake.wait_for(lambda: bot.fake.views_open("U0ANN") and bot.fake.views_open("U0ANN")[-1])
    assert "initial_value" not in view["blocks"][-1]["element"]
    assert "longer than Slack's edit box" in json.dumps(view["blocks"])


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
        import_items_staged(database, "intents", path, clock.now())
    assert expected in str(err.value)
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
    assert import_items_staged(database, "intents", tmp_path / "ok.parquet", clock.now()).inserted == 2
    with database.read() as s:
        metas = dict(s.execute(select(Item.external_id, Item.meta)).all())
    assert metas == {"7": {"when": "2026-01-05", "price": "12.50", "tags": ["2026-02-01"]},
                     "8": {"price": "-0.01", "tags": []}}

    bad = pa.table({"id": ["b1", "b2"], "text": ["t1", "t2"], "blob": pa.array([None, b"\x00\x01"], pa.binary())})
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(ImportError_) as err:
        import_items_staged(database, "intents", tmp_path / "bad.parquet", clock.now())
    assert "row 2: field 'blob' is binary data" in str(err.value)
    pq.write_table(pa.table({"id": pa.array([b"x"], pa.binary()), "text": ["t"]}), tmp_path / "bid.parquet")
    with pytest.raises(ImportError_, match="row 1: field 'id' must be text or a whole number, not bytes"):
        import_items_staged(database, "intents", tmp_path / "bid.parquet", clock.now())
    assert set(items(database)) == {"7", "8"}


def test_the_in_session_import_checks_the_same(database, clock, tmp_path):
    project(database, clock)
    path = tmp_path / "odd.jsonl"
    path.write_text('{"id": "a", "text": "t", "x": NaN}\n', encoding="utf-8")
    with pytest.raises(ImportError_, match="NaN is not JSON"), database.session() as s:
        import_items(s, get_project(s, "intents"), path, clock.now())
