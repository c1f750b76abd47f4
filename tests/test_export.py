"""Aggregation through export, every format read back, raw labels, low-confidence escalation, CLI."""

from __future__ import annotations

import csv
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bot.core.enums import MemberState
from bot.core.values import canonical_key
from bot.quality.aggregation import aggregate
from bot.services.adjudication import (
    ProjectAggregator,
    escalate_low_confidence,
    escalated_items,
    low_confidence_reason,
    queue_summary,
)
from bot.services.export import ExportOptions, ExportProblem, export_project, system_prompt
from bot.services.projects import ensure_member, get_project
from storage.frames import labels_frame
from storage.models import Assignment, Item, Label
from tests.conftest import make_spec
from tests.helpers import seed

# --------------------------------------------------------------------------------------------
# seeding by direct model inserts
# --------------------------------------------------------------------------------------------


def put_label(s, slug: str, ext: str, user: str, value: Any, now, *, kind: str = "production",
              action: str = "manual", counts: bool = True, correct: float | None = None,
              qualified: bool = True) -> None:
    project = get_project(s, slug)
    item = s.scalar(select(Item).where(Item.project_id == project.id, Item.external_id == ext))
    member = ensure_member(s, project, user, now)
    if qualified and member.state != MemberState.QUALIFIED:
        member.state = MemberState.QUALIFIED
        member.qualified_at = now
    a = Assignment(
        project_id=project.id, item_id=item.id, member_id=member.id, team_id=project.team_id, user_id=user,
        kind=kind, round=0, status="done", leased_at=now, expires_at=now + timedelta(hours=1), shown_at=now,
        closed_at=now,
    )
    s.add(a)
    s.flush()
    s.add(Label(
        assignment_id=a.id, project_id=project.id, item_id=item.id, member_id=member.id, user_id=user, kind=kind,
        action=action, value=value, value_key=None if value is None else canonical_key(value), draft_shown=False,
        seconds=3.5, counts=counts, correct=correct, created_at=now,
    ))
    s.flush()


def set_status(s, slug: str, ext: str, status: str, reason: str | None = None) -> None:
    project = get_project(s, slug)
    item = s.scalar(select(Item).where(Item.project_id == project.id, Item.external_id == ext))
    item.status = status
    item.escalation_reason = reason


def build(db, spec, now, plan: dict[str, tuple[str, list[tuple]]], gold: list[dict] | None = None,
          meta: dict[str, dict] | None = None) -> None:
    """plan: external id -> (status, [(user, value, options), ...])."""
    items = [{"id": ext, "text": f"text of {ext} with Paris inside", **(meta or {}).get(ext, {})} for ext in plan]
    seed(db, spec, now, items=items, gold=gold)
    with db.session() as s:
        for ext, (status, labels) in plan.items():
            for user, value, *opts in labels:
                put_label(s, spec.slug, ext, user, value, now, **(opts[0] if opts else {}))
            set_status(s, spec.slug, ext, status)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in rows}


CLASSIFICATION = {
    "c1": ("complete", [("U0A", "billing"), ("U0B", "billing"), ("U0C", "bug")]),
    "c2": ("complete", [("U0A", "billing"), ("U0B", "bug"), ("U0C", "feature")]),  # a tie
    "c4": ("resolved", [("U0A", "bug"), ("U0B", "feature"), ("U0C", "billing"),
                        ("U0EXPERT", "feature", {"kind": "expert"})]),
    "c5": ("complete", [("U0A", "bug"), ("U0B", "bug"),
                        ("U0NEW", "feature", {"counts": False, "qualified": False}),
                        ("U0C", None, {"action": "skip", "counts": False})]),
    "e1": ("escalated", [("U0A", "bug"), ("U0B", "billing"), ("U0C", "feature")]),
    "o1": ("open", [("U0A", "bug")]),
}
CLASSIFICATION_GOLD = [{"id": "g1", "text": "a gold text", "label": "billing", "explanation": "charged"}]


def classification_project(db, clock, **spec_overrides):
    spec = make_spec(**spec_overrides)
    build(db, spec, clock.now(), CLASSIFICATION, gold=CLASSIFICATION_GOLD, meta={"c1": {"lang": "en"}})
    with db.session() as s:
        put_label(s, "intents", "g1", "U0A", "bug", clock.now(), kind="honeypot", counts=False, correct=0.0)
    return spec


# --------------------------------------------------------------------------------------------
# final dataset per task, on SQLite and PostgreSQL
# --------------------------------------------------------------------------------------------


def test_classification_final_export(database, clock, tmp_path):
    classification_project(database, clock)
    out = tmp_path / "final.jsonl"
    result = export_project(database, "intents", out, ExportOptions(), now=clock.now(), chunk_items=2)
    rows = by_id(read_jsonl(out))
    # c2 tied; e1 escalated and o1 open are not settled; the gold item g1 is left out by default
    assert set(rows) == {"c1", "c4", "c5"}
    assert result.rows == 3 and result.stats.ties == 1 and not result.escalated
    assert (result.stats.gold, result.stats.open, result.stats.escalated) == (1, 1, 1)
    assert result.summary() == (
        f"Wrote 3 rows to {out} (final dataset, jsonl, majority vote). Left out: 1 open (still being labeled), "
        "1 escalated (waiting for an expert), 1 tied, 1 gold (add them with --include-gold)."
    )
    result = export_project(database, "intents", out, ExportOptions(include_gold=True), now=clock.now(),
                            chunk_items=2)
    rows = by_id(read_jsonl(out))
    assert set(rows) == {"c1", "c4", "c5", "g1"} and result.rows == 4 and result.stats.gold == 0
    assert "gold" not in result.left_out()
    assert rows["c1"] == {
        "id": "c1", "input": "text of c1 with Paris inside", "label": "billing", "confidence": 0.666667,
        "method": "majority", "n_labels": 3, "agreement": 0.666667, "source": "crowd", "meta": {"lang": "en"},
    }
    assert rows["c4"]["label"] == "feature" and rows["c4"]["source"] == "expert" and rows["c4"]["confidence"] == 1.0
    assert rows["c4"]["n_labels"] == 3 and rows["c4"]["agreement"] == pytest.approx(1 / 3, abs=1e-6)
    # the unqualified annotator's "feature" and the skip do not count
    assert (rows["c5"]["label"], rows["c5"]["n_labels"], rows["c5"]["confidence"]) == ("bug", 2, 1.0)
    assert rows["g1"] == {
        "id": "g1", "input": "a gold text", "label": "billing", "confidence": 1.0, "method": "gold", "n_labels": 0,
        "agreement": None, "source": "gold", "meta": None,
    }
    assert "1 tied" in result.summary() and str(out) in result.summary()
    assert not (tmp_path / "final.jsonl.part").exists()


def test_min_confidence_filters_and_dawid_skene_matches_whole_project_aggregate(database, clock, tmp_path):
    classification_project(database, clock)
    out = tmp_path / "x.jsonl"
    result = export_project(database, "intents", out, ExportOptions(min_confidence=0.9, include_gold=True),
                            now=clock.now())
    assert set(by_id(read_jsonl(out))) == {"c4", "c5", "g1"} and result.stats.below == 1
    assert "1 below confidence 0.9" in result.summary()

    result = export_project(database, "intents", out, ExportOptions(method="dawid_skene", include_gold=True),
                            now=clock.now(), chunk_items=1)
    rows = by_id(read_jsonl(out))
    with database.read() as s:
        project = get_project(s, "intents")
        frame = labels_frame(s, project.id)
        gold = {int(s.scalar(select(Item.id).where(Item.external_id == "g1"))): "billing"}
        ext = dict(s.execute(select(Item.id, Item.external_id)).all())
    expected = aggregate("classification", frame, gold=gold, method="dawid_skene")
    for r in expected.itertuples():
        if ext[r.item_id] in rows:
            got = rows[ext[r.item_id]]
            assert got["label"] == r.value and got["source"] == r.source
            assert got["confidence"] == pytest.approx(r.confidence, abs=1e-5)
            assert got["agreement"] == pytest.approx(r.agreement, abs=1e-5, nan_ok=True)
    assert rows["c1"]["method"] == "dawid_skene" and rows["c4"]["method"] == "expert"
    assert rows["g1"]["source"] == "gold"


def test_multilabel_spans_rewrite_final_exports(database, clock, tmp_path):
    labels = ["billing", "bug", "feature"]
    ml = make_spec(slug="ml", task="multilabel", labels=labels)
    build(database, ml, clock.now(), {
        "m1": ("complete", [("U0A", ["billing", "bug"]), ("U0B", ["billing"]), ("U0C", ["billing", "bug"])]),
        "m2": ("complete", [("U0A", ["bug"]), ("U0B", [])]),  # bug: 1 of 2 -> tie
    }, gold=[{"id": "mg", "text": "gold", "labels": ["feature", "bug"]}])
    sp = make_spec(slug="sp", task="spans", labels=["LOC", "ORG"])
    paris = {"start": 20, "end": 25, "label": "LOC"}
    build(database, sp, clock.now(), {
        "s1": ("complete", [("U0A", [paris]), ("U0B", [paris]), ("U0C", [])]),
    })
    rw = make_spec(slug="rw", task="rewrite", labels=[])
    build(database, rw, clock.now(), {
        "r1": ("complete", [("U0A", "Hello world."), ("U0B", "Hello world."), ("U0C", "Hi")]),
        "r2": ("resolved", [("U0A", "a"), ("U0B", "b"), ("U0EXPERT", "Expert text", {"kind": "expert"})]),
    })

    out = tmp_path / "out.jsonl"
    export_project(database, "ml", out, ExportOptions(include_gold=True), now=clock.now())
    rows = by_id(read_jsonl(out))
    assert set(rows) == {"m1", "mg"}
    assert rows["m1"]["label"] == ["billing", "bug"] and rows["m1"]["confidence"] == pytest.approx(2 / 3, abs=1e-6)
    assert rows["m1"]["agreement"] == pytest.approx(2 / 3, abs=1e-6)
    assert rows["mg"]["label"] == ["bug", "feature"] and rows["mg"]["source"] == "gold"

    export_project(database, "sp", out, ExportOptions(), now=clock.now())
    (row,) = read_jsonl(out)
    assert row["label"] == [paris] and row["source"] == "crowd" and row["n_labels"] == 3

    export_project(database, "rw", out, ExportOptions(), now=clock.now())
    rows = by_id(read_jsonl(out))
    assert rows["r1"]["label"] == "Hello world." and rows["r1"]["confidence"] == pytest.approx(2 / 3, abs=1e-6)
    assert rows["r2"]["label"] == "Expert text" and rows["r2"]["source"] == "expert"
    with pytest.raises(ExportProblem, match="classification"):
        export_project(database, "rw", out, ExportOptions(method="dawid_skene"), now=clock.now())


# --------------------------------------------------------------------------------------------
# formats read back, raw
# --------------------------------------------------------------------------------------------


def test_csv_parquet_openai_read_back(sqlite_db, clock, tmp_path):
    classification_project(sqlite_db, clock)
    ml = make_spec(slug="ml", task="multilabel", labels=["billing", "bug", "feature"])
    build(sqlite_db, ml, clock.now(), {"m1": ("complete", [("U0A", ["billing", "bug"]), ("U0B", ["billing", "bug"])])},
          meta={"m1": {"lang": "fr", "n": 3}})

    export_project(sqlite_db, "intents", tmp_path / "f.csv", ExportOptions(fmt="csv", include_gold=True),
                   now=clock.now())
    with open(tmp_path / "f.csv", newline="", encoding="utf-8") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"c1", "c4", "c5", "g1"}
    assert rows["c1"]["label"] == "billing" and float(rows["c1"]["confidence"]) == pytest.approx(2 / 3, abs=1e-6)
    assert rows["c1"]["text"] == "text of c1 with Paris inside"
    assert rows["c1"]["lang"] == "en" and rows["c4"]["lang"] == "" and rows["g1"]["agreement"] == ""
    assert rows["g1"]["source"] == "gold"
    export_project(sqlite_db, "ml", tmp_path / "m.csv", ExportOptions(fmt="csv"), now=clock.now())
    with open(tmp_path / "m.csv", newline="", encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert json.loads(row["label"]) == ["billing", "bug"] and (row["lang"], row["n"]) == ("fr", "3")

    export_project(sqlite_db, "ml", tmp_path / "m.parquet", ExportOptions(fmt="parquet"), now=clock.now())
    table = pq.read_table(tmp_path / "m.parquet")
    assert table.column_names == ["id", "text", "label", "confidence", "method", "n_labels", "agreement",
                                  "source", "lang", "n"]
    assert str(table.schema.field("n").type) == "int64"
    (rec,) = table.to_pylist()
    assert json.loads(rec["label"]) == ["billing", "bug"] and rec["n_labels"] == 2 and rec["confidence"] == 1.0
    assert (rec["lang"], rec["n"]) == ("fr", 3)

    export_project(sqlite_db, "intents", tmp_path / "raw.parquet", ExportOptions(fmt="parquet", raw=True),
                   now=clock.now())
    raw = pq.read_table(tmp_path / "raw.parquet")
    assert raw.num_rows == 19 and str(raw.schema.field("created_at").type) == "timestamp[us, tz=UTC]"

    result = export_project(sqlite_db, "intents", tmp_path / "ft.jsonl", ExportOptions(fmt="openai",
                            include_gold=True), now=clock.now())
    lines = read_jsonl(tmp_path / "ft.jsonl")
    assert len(lines) == result.rows == 4
    for line in lines:
        assert [m["role"] for m in line["messages"]] == ["system", "user", "assistant"]
    assert lines[0]["messages"][0]["content"] == system_prompt(make_spec())
    assert "- billing: Charges, refunds, invoices" in lines[0]["messages"][0]["content"]
    assert {m["messages"][2]["content"] for m in lines} <= {"billing", "bug", "feature"}
    export_project(sqlite_db, "ml", tmp_path / "ml.jsonl", ExportOptions(fmt="openai"), now=clock.now())
    (line,) = read_jsonl(tmp_path / "ml.jsonl")
    assert json.loads(line["messages"][2]["content"]) == ["billing", "bug"]


def test_raw_has_every_label(database, clock, tmp_path):
    classification_project(database, clock)
    out = tmp_path / "raw.jsonl"
    result = export_project(database, "intents", out, ExportOptions(raw=True), now=clock.now(), chunk_items=3)
    rows = read_jsonl(out)
    with database.read() as s:
        n = s.scalar(select(func.count()).select_from(Label))
    assert len(rows) == result.rows == n == 19
    assert set(rows[0]) == {"id", "input", "annotator", "tier", "kind", "action", "value", "draft_shown", "draft",
                            "blind", "seconds", "counts", "correct", "guideline_version", "created_at"}
    assert {r["guideline_version"] for r in rows} == {1}
    honeypot = next(r for r in rows if r["kind"] == "honeypot")
    assert (honeypot["id"], honeypot["value"], honeypot["correct"], honeypot["counts"]) == ("g1", "bug", 0.0, False)
    skip = next(r for r in rows if r["action"] == "skip")
    assert skip["value"] is None and skip["annotator"] == "U0C" and skip["tier"] == "crowd"
    assert rows[0]["created_at"].startswith("2026-01-05T08:00:00")
    expert = next(r for r in rows if r["kind"] == "expert")
    assert expert["tier"] == "expert" and expert["value"] == "feature"


def test_options_are_checked():
    for bad, words in [
        (ExportOptions(fmt="xml"), "Unknown format"),
        (ExportOptions(fmt="openai", raw=True), "raw"),
        (ExportOptions(raw=True, min_confidence=0.5), "raw"),
        (ExportOptions(min_confidence=1.5), "between 0 and 1"),
        (ExportOptions(method="vote"), "Unknown method"),
    ]:
        with pytest.raises(ExportProblem, match=words):
            bad.check()


# --------------------------------------------------------------------------------------------
# low confidence -> expert queue
# --------------------------------------------------------------------------------------------


def test_low_confidence_items_are_escalated(database, clock, tmp_path):
    spec = make_spec(slug="ml", task="multilabel", labels=["billing", "bug", "feature"],
                     escalation={"min_confidence": 0.7})
    build(database, spec, clock.now(), {
        "sure": ("complete", [("U0A", ["bug"]), ("U0B", ["bug"]), ("U0C", ["bug"])]),
        "unsure": ("complete", [("U0A", ["bug"]), ("U0B", ["billing", "bug"]), ("U0C", ["bug"])]),
        "open": ("open", [("U0A", ["billing"])]),
    })
    with database.session() as s:
        moved = escalate_low_confidence(s, get_project(s, "ml"), clock.now())
    assert moved == 1
    with database.read() as s:
        status = dict(s.execute(select(Item.external_id, Item.status)).all())
        reason = s.scalar(select(Item.escalation_reason).where(Item.external_id == "unsure"))
        assert queue_summary(s, get_project(s, "ml")) == {
            "open": 1, "complete": 1, "escalated": 1, "resolved": 0, "gold": 0
        }
        listing = escalated_items(s, get_project(s, "ml"), clock.now() + timedelta(hours=2))
    assert status == {"sure": "complete", "unsure": "escalated", "open": "open"}
    assert reason == "low confidence 0.66 < 0.7"
    assert listing.total == 1 and listing.items[0].external_id == "unsure"
    assert listing.items[0].waiting == timedelta(hours=2)
    assert ("U0B", "billing, bug") in listing.items[0].crowd
    with database.session() as s:  # idempotent
        assert escalate_low_confidence(s, get_project(s, "ml"), clock.now()) == 0


def test_classification_escalation_uses_dawid_skene_and_runs_before_export(database, clock, tmp_path):
    # On this tiny project Dawid-Skene is sure of nearly everything (it even settles the c2 "tie"
    # by annotator reliability), hence the high threshold.
    classification_project(database, clock, escalation={"min_confidence": 0.999, "on_no_majority": False})
    with database.read() as s:
        project = get_project(s, "intents")
        fitted = ProjectAggregator(s, project, "dawid_skene")
        ids = dict(s.execute(select(Item.external_id, Item.id)).all())
        settled = fitted.settle(sorted(ids[e] for e in ("c1", "c2", "c5")))
    low = {e for e in ("c1", "c2", "c5") if settled.loc[ids[e], "confidence"] < 0.999}
    assert low and (settled["method"] == "dawid_skene").sum() == 3
    result = export_project(database, "intents", tmp_path / "f.jsonl", ExportOptions(), now=clock.now())
    assert result.escalated == len(low)
    with database.read() as s:
        reasons = dict(s.execute(select(Item.external_id, Item.escalation_reason)
                                 .where(Item.status == "escalated")).all())
    assert {e for e, r in reasons.items() if r and r.startswith("low confidence")} == low
    assert all(re.fullmatch(r"low confidence 0\.\d\d < 0\.999", reasons[e]) for e in low)
    assert not low & set(by_id(read_jsonl(tmp_path / "f.jsonl")))


def test_low_confidence_reason_never_rounds_up_to_the_threshold():
    assert low_confidence_reason(0.52, 0.7) == "low confidence 0.52 < 0.7"
    assert low_confidence_reason(0.6999, 0.7) == "low confidence 0.69 < 0.7"


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


@pytest.fixture
def cli(sqlite_db, clock, monkeypatch):
    from bot.cli.export import COMMANDS

    classification_project(sqlite_db, clock, escalation={"min_confidence": 0.999})
    monkeypatch.setenv("DATABASE_URL", sqlite_db.url)
    group = click.Group("labelbot", commands={c.name: c for c in COMMANDS})

    def run(*args: str):
        return CliRunner().invoke(group, list(args), catch_exceptions=False)

    return run


def test_cli_export_and_errors(cli, tmp_path):
    out = tmp_path / "f.parquet"
    res = cli("export", "intents", "--out", str(out), "--no-escalate")
    assert res.exit_code == 0, res.output
    assert "Wrote 3 rows" in res.output and "parquet" in res.output
    assert res.output.strip().splitlines()[-1].endswith("1 gold (add them with --include-gold).")
    assert pq.read_table(out).num_rows == 3
    res = cli("export", "intents", "--out", str(out))  # c1 and c5 go to the expert queue first
    assert "Wrote 1 row to" in res.output and "2 low-confidence items went to the expert queue" in res.output
    assert "3 escalated" in res.output
    res = cli("export", "intents", "--raw", "--format", "csv", "--out", str(tmp_path / "raw.csv"))
    assert res.exit_code == 0 and "Wrote 19 rows" in res.output

    for args, words in [
        (("export", "nope", "--out", str(out)), "No project 'nope'"),
        (("export", "intents", "--format", "xml", "--out", str(out)), "Unknown format 'xml'"),
        (("export", "intents", "--raw", "--format", "openai"), "cannot be combined with raw"),
        (("queue", "nope"), "No project 'nope'"),
    ]:
        res = cli(*args)
        assert res.exit_code == 2, res.output
        assert words in res.output and "Traceback" not in res.output
        assert len(res.output.strip().splitlines()) == 1


def test_cli_queue(cli):
    res = cli("queue", "intents")
    assert res.exit_code == 0
    assert "intents: 7 items: open 1, complete 3, escalated 1, resolved 1, gold 1." in res.output
    res = cli("queue", "intents", "--escalated", "--refresh")
    assert res.exit_code == 0, res.output
    # Dawid-Skene on this tiny project: c1 0.998 and c5 0.9997 are below 0.999 (see the test above)
    assert "Sent 2 complete item(s) with confidence below 0.999" in res.output
    assert "3 item(s) waiting for an expert" in res.output
    assert "- c1  waiting" in res.output and "low confidence 0.99 < 0.999" in res.output
    assert "U0A: bug; U0B: billing; U0C: feature" in res.output
