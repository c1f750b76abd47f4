"""Imports (the importer half of the security issue): odd types become line-numbered errors or exact,
documented conversions (item 11); spans texts that Slack's edit box cannot hold are refused by line
(item 10) -- on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from bot.services.importer import ImportError_, import_gold, import_items, import_predictions, read_column
from bot.services.projects import create_project, get_project
from storage.models import Item
from tests.conftest import make_spec

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
    with db.session() as s:
        return import_items(s, get_project(s, "intents"), path, now, **kw)


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
    from bot.services.importer import Columns

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
    from bot.services.importer import Columns

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
