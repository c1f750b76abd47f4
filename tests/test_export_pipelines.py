"""Exports for ML pipelines: validation splits, path checks, CSV/Parquet round trips, Hugging Face, CoNLL."""

from __future__ import annotations

import csv
import json
from collections import Counter

import click
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bot.services.export import (
    ExportOptions,
    ExportProblem,
    bio_tags,
    check_out,
    export_project,
    format_for_path,
    split_rows,
    tokenize,
)
from bot.services.importer import import_items
from bot.services.projects import create_project, get_project
from storage.models import Item
from tests.conftest import make_spec
from tests.helpers import seed
from tests.test_export import build, classification_project, put_label, read_jsonl, set_status

# --------------------------------------------------------------------------------------------
# validation split
# --------------------------------------------------------------------------------------------


def test_split_sizes_are_stratified_and_seeded():
    rows = [{"id": f"r{i}", "label": "billing" if i < 60 else "bug"} for i in range(100)]
    train, valid = split_rows(rows, 0.1, 7, make_spec().task)
    assert (len(train), len(valid)) == (90, 10)
    assert Counter(r["label"] for r in valid) == {"billing": 6, "bug": 4}  # each label keeps its 60/40 share
    assert {r["id"] for r in train} | {r["id"] for r in valid} == {r["id"] for r in rows}
    assert not {r["id"] for r in train} & {r["id"] for r in valid}
    assert split_rows(rows, 0.1, 7, make_spec().task) == (train, valid)  # the same seed, the same split
    assert split_rows(rows, 0.1, 8, make_spec().task)[1] != valid
    # 7 + 3 rows at 0.25: 2.5 held out rounds to 2 (banker's), shared 1.75 -> 2 and 0.75 -> 0 + remainder
    small = [{"id": f"s{i}", "label": "a" if i < 7 else "b"} for i in range(10)]
    _, held = split_rows(small, 0.25, 0, make_spec().task)
    assert len(held) == 2 and Counter(r["label"] for r in held) == {"a": 1, "b": 1}
    # never everything nor nothing once there are two rows
    assert [len(x) for x in split_rows(small[:2], 0.01, 0, make_spec().task)] == [1, 1]


def labeled_project(db, clock, n_billing: int, n_bug: int, **spec) -> None:
    plan = {}
    for i in range(n_billing + n_bug):
        value = "billing" if i < n_billing else "bug"
        plan[f"i{i:03d}"] = ("complete", [("U0A", value), ("U0B", value)])
    build(db, make_spec(redundancy=2, **spec), clock.now(), plan)


def test_openai_validation_files_and_the_minimum_warning(sqlite_db, clock, tmp_path):
    labeled_project(sqlite_db, clock, 20, 10)
    out = tmp_path / "ft.jsonl"
    result = export_project(sqlite_db, "intents", out, ExportOptions(fmt="openai", validation=0.1, seed=3),
                            now=clock.now())
    train, valid = read_jsonl(tmp_path / "ft-train.jsonl"), read_jsonl(tmp_path / "ft-validation.jsonl")
    assert (len(train), len(valid)) == (27, 3) and result.rows == 30 and not out.exists()
    assert Counter(r["messages"][2]["content"] for r in valid) == {"billing": 2, "bug": 1}
    assert result.summary().startswith(f"Wrote 30 rows: 27 to {tmp_path / 'ft-train.jsonl'} and 3 to "
                                       f"{tmp_path / 'ft-validation.jsonl'} (fine-tuning set, openai")
    assert result.warnings == []

    seed(sqlite_db, make_spec(slug="empty"), clock.now(), items=[{"id": "x", "text": "unlabeled"}],
         gold=[{"id": f"g{i}", "text": f"gold {i}", "label": "bug"} for i in range(6)])
    result = export_project(sqlite_db, "empty", tmp_path / "e.jsonl", ExportOptions(fmt="openai"), now=clock.now())
    assert result.rows == 0 and read_jsonl(tmp_path / "e.jsonl") == []  # the 6 gold items stay out
    assert result.warnings == ["Only 0 training example(s) were written; OpenAI fine-tuning needs at least 10."]
    assert "Left out: 1 open (still being labeled), 6 gold (add them with --include-gold)." in result.summary()


# --------------------------------------------------------------------------------------------
# output paths
# --------------------------------------------------------------------------------------------


def test_the_extension_must_match_the_format(tmp_path):
    assert format_for_path("a.CSV") == "csv" and format_for_path("a.jsonl") == "jsonl" and format_for_path("a") is None
    check_out(tmp_path / "a.jsonl", "openai")
    check_out(tmp_path / "dataset", "hf")
    for path, fmt, words in [
        ("a.csv", "jsonl", "a.csv ends in .csv, but the jsonl format writes .jsonl files: name it a.jsonl or use "
                           "--format csv."),
        ("a.jsonl", "parquet", "name it a.parquet"),
        ("a", "csv", "a has no extension"),
        ("a.jsonl", "hf", "the hf format writes a directory"),
    ]:
        with pytest.raises(ExportProblem) as err:
            check_out(tmp_path / path, fmt)
        assert words in str(err.value)


@pytest.fixture
def cli(sqlite_db, clock, monkeypatch):
    from bot.cli.export import COMMANDS

    classification_project(sqlite_db, clock)
    monkeypatch.setenv("DATABASE_URL", sqlite_db.url)
    group = click.Group("labelbot", commands={c.name: c for c in COMMANDS})
    return lambda *args: CliRunner().invoke(group, list(args), catch_exceptions=False)


def test_cli_refuses_a_mismatch_and_follows_the_extension(cli, tmp_path):
    res = cli("export", "intents", "--out", str(tmp_path / "a.csv"), "--format", "jsonl")
    assert res.exit_code == 2 and "a.csv ends in .csv" in res.output and not (tmp_path / "a.csv").exists()
    res = cli("export", "intents", "--out", str(tmp_path / "a.csv"), "--no-escalate")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "a.csv").read_text(encoding="utf-8").startswith("id,text,label,")
    res = cli("export", "intents", "--out", str(tmp_path / "a.data"))
    assert res.exit_code == 2 and "does not name a format" in res.output
    res = cli("export", "intents", "--format", "openai", "--out", str(tmp_path / "ft.jsonl"), "--no-escalate")
    assert res.exit_code == 0
    lines = res.output.strip().splitlines()
    assert lines[0].startswith("Warning: Only 3 training example(s)") and lines[-1].startswith("Wrote 3 rows")
    res = cli("export", "intents", "--validation", "1.5", "--out", str(tmp_path / "b.jsonl"))
    assert res.exit_code == 2 and "between 0 and 1" in res.output
    res = cli("export", "intents", "--format", "conll", "--out", str(tmp_path / "c.conll"))
    assert res.exit_code == 2 and "span tags; this is a classification project" in res.output


# --------------------------------------------------------------------------------------------
# CSV and Parquet imports of an export
# --------------------------------------------------------------------------------------------


def test_csv_and_parquet_exports_import_again_as_they_are(database, clock, tmp_path):
    source = tmp_path / "items.csv"
    items = [
        {"id": "a1", "text": "=HYPERLINK(\"http://x\") my invoice", "lang": "en", "channel": "-chat"},
        {"id": "a2", "text": "the app crashes, again", "lang": "de", "channel": ""},
        {"id": "a3", "text": "'+quoted on purpose", "lang": "fr", "channel": "mail"},
    ]
    with open(source, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["id", "text", "lang", "channel"])
        writer.writeheader()
        writer.writerows(items)
    spec = make_spec(redundancy=1)
    with database.session() as s:
        import_items(s, create_project(s, spec, "T0TEST", clock.now()), source, clock.now())
        for ext, value in (("a1", "billing"), ("a2", "bug"), ("a3", "feature")):
            put_label(s, "intents", ext, "U0A", value, clock.now())
            set_status(s, "intents", ext, "complete")

    def stored(slug: str) -> dict[str, tuple]:
        with database.read() as s:
            project = get_project(s, slug)
            rows = s.execute(select(Item.external_id, Item.text, Item.meta).where(Item.project_id == project.id))
            return {ext: (text, meta) for ext, text, meta in rows}

    original = stored("intents")
    for fmt in ("csv", "parquet"):
        out = tmp_path / f"export.{fmt}"
        export_project(database, "intents", out, ExportOptions(fmt=fmt), now=clock.now())
        if fmt == "csv":  # no cell a spreadsheet would run
            cells = [c for row in csv.reader(out.open(encoding="utf-8", newline="")) for c in row]
            assert not any(c.startswith(("=", "+", "-", "@")) for c in cells)
        copy = make_spec(slug=f"copy-{fmt}", redundancy=1)
        with database.session() as s:
            result = import_items(s, create_project(s, copy, "T0TEST", clock.now()), out, clock.now())
        assert result.inserted == 3
        again = stored(f"copy-{fmt}")
        for ext, (text, meta) in original.items():
            got_text, got_meta = again[ext]
            assert got_text == text
            # the original metadata comes back as it was; the answer columns come along as metadata
            assert {k: got_meta[k] for k in meta} == meta
            assert set(got_meta) - set(meta) == {"label", "confidence", "method", "n_labels", "agreement", "source"}
    table = pq.read_table(tmp_path / "export.parquet")
    assert table.column_names[:2] == ["id", "text"] and {"lang", "channel"} <= set(table.column_names)


def test_a_metadata_key_named_like_an_export_column_keeps_its_value(sqlite_db, clock, tmp_path):
    build(sqlite_db, make_spec(), clock.now(), {"c1": ("complete", [("U0A", "bug"), ("U0B", "bug")])},
          meta={"c1": {"label": "from the source system", "score": 0.5}})
    export_project(sqlite_db, "intents", tmp_path / "x.parquet", ExportOptions(fmt="parquet"), now=clock.now())
    (rec,) = pq.read_table(tmp_path / "x.parquet").to_pylist()
    assert rec["label"] == "bug"
    assert rec["meta.label"] == "from the source system" and rec["score"] == 0.5


# --------------------------------------------------------------------------------------------
# Hugging Face datasets
# --------------------------------------------------------------------------------------------


def test_hf_export_loads_with_the_right_features(sqlite_db, clock, tmp_path):
    datasets = pytest.importorskip("datasets", reason="the hf export needs `pip install 'labelbot[hf]'`")
    labeled_project(sqlite_db, clock, 8, 4)
    out = tmp_path / "ds"
    result = export_project(sqlite_db, "intents", out, ExportOptions(fmt="hf", validation=0.25), now=clock.now())
    assert result.files == [(out / "train", 9), (out / "validation", 3)]
    loaded = datasets.load_from_disk(str(out))
    assert set(loaded) == {"train", "validation"} and loaded["train"].num_rows == 9
    feature = loaded["train"].features["label"]
    assert isinstance(feature, datasets.ClassLabel) and feature.names == ["billing", "bug", "feature"]
    assert Counter(feature.int2str(v) for v in loaded["validation"]["label"]) == {"billing": 2, "bug": 1}
    first = loaded["train"][0]
    assert first["id"] == "i000" and first["text"] == "text of i000 with Paris inside" and first["source"] == "crowd"

    ml = make_spec(slug="ml", task="multilabel", labels=["billing", "bug", "feature"], redundancy=2)
    build(sqlite_db, ml, clock.now(), {"m1": ("complete", [("U0A", ["bug", "feature"]), ("U0B", ["bug", "feature"])])},
          meta={"m1": {"lang": "fr"}})
    sp = make_spec(slug="sp", task="spans", labels=["LOC", "ORG"], redundancy=2)
    paris = {"start": 16, "end": 21, "label": "LOC"}
    build(sqlite_db, sp, clock.now(), {"s1": ("complete", [("U0A", [paris]), ("U0B", [paris])])})
    export_project(sqlite_db, "ml", tmp_path / "ml", ExportOptions(fmt="hf"), now=clock.now())
    export_project(sqlite_db, "sp", tmp_path / "sp", ExportOptions(fmt="hf"), now=clock.now())
    ml_ds = datasets.load_from_disk(str(tmp_path / "ml"))["train"]
    inner = ml_ds.features["labels"]
    inner = getattr(inner, "feature", None) or inner
    assert isinstance(inner, datasets.ClassLabel) and inner.names == ["billing", "bug", "feature"]
    assert ml_ds[0]["labels"] == [1, 2] and json.loads(ml_ds[0]["meta"]) == {"lang": "fr"}
    sp_ds = datasets.load_from_disk(str(tmp_path / "sp"))["train"]
    assert sp_ds[0]["spans"] == [{"start": 16, "end": 21, "label": 0}]
    assert sp_ds[0]["text"][16:21] == "Paris"


def test_hf_needs_a_directory_and_says_what_to_install(sqlite_db, clock, tmp_path, monkeypatch):
    classification_project(sqlite_db, clock)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportProblem, match="is a file"):
        export_project(sqlite_db, "intents", tmp_path / "file", ExportOptions(fmt="hf"), now=clock.now())
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)  # as if it were not installed
    with pytest.raises(ExportProblem, match=r"pip install 'labelbot\[hf\]'"):
        export_project(sqlite_db, "intents", tmp_path / "ds", ExportOptions(fmt="hf"), now=clock.now())
    assert not (tmp_path / "ds").exists()


# --------------------------------------------------------------------------------------------
# CoNLL
# --------------------------------------------------------------------------------------------


def test_tokenizer_and_bio_tags_of_a_known_example():
    text = "Ada Lovelace met Babbage in London, 1833."
    assert [text[a:b] for a, b in tokenize(text)] == ["Ada", "Lovelace", "met", "Babbage", "in", "London", ",",
                                                      "1833", "."]
    spans = [{"start": 0, "end": 12, "label": "PER"}, {"start": 17, "end": 24, "label": "PER"},
             {"start": 28, "end": 34, "label": "LOC"}]
    pairs, problems = bio_tags(text, spans)
    assert pairs == [("Ada", "B-PER"), ("Lovelace", "I-PER"), ("met", "O"), ("Babbage", "B-PER"), ("in", "O"),
                     ("London", "B-LOC"), (",", "O"), ("1833", "O"), (".", "O")]
    assert problems == []
    pairs, problems = bio_tags(text, [{"start": 30, "end": 34, "label": "LOC"}])  # "ndon": cuts "London"
    assert ("London", "B-LOC") in pairs
    assert problems == ["span 30-34 LOC 'ndon' cuts the token(s) 'London': tagged on the whole token(s)"]


def test_conll_export(sqlite_db, clock, tmp_path):
    sp = make_spec(slug="sp", task="spans", labels=["LOC", "ORG"], redundancy=2)
    paris = {"start": 16, "end": 21, "label": "LOC"}
    cut = {"start": 0, "end": 3, "label": "ORG"}  # "tex" of "text"
    build(sqlite_db, sp, clock.now(), {
        "s1": ("complete", [("U0A", [paris]), ("U0B", [paris])]),
        "s2": ("complete", [("U0A", [cut]), ("U0B", [cut])]),
    })
    result = export_project(sqlite_db, "sp", tmp_path / "sp.conll", ExportOptions(fmt="conll"), now=clock.now())
    assert result.rows == 2
    assert (tmp_path / "sp.conll").read_text(encoding="utf-8") == (
        "# id = s1\ntext\tO\nof\tO\ns1\tO\nwith\tO\nParis\tB-LOC\ninside\tO\n\n"
        "# id = s2\ntext\tB-ORG\nof\tO\ns2\tO\nwith\tO\nParis\tO\ninside\tO\n\n"
    )
    assert result.warnings == ["item s2: span 0-3 ORG 'tex' cuts the token(s) 'text': tagged on the whole token(s)"]


def test_raw_refuses_the_final_only_options():
    for options in (ExportOptions(raw=True, fmt="hf"), ExportOptions(raw=True, include_gold=True),
                    ExportOptions(raw=True, validation=0.1), ExportOptions(fmt="xml")):
        with pytest.raises(ExportProblem):
            options.check()
