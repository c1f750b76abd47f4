"""`labelbot demo`: the shipped example project, the simulated people, and a small end-to-end run."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bot.cli import load_commands
from bot.cli.demo import demo
from bot.core.activity import Activity
from bot.sandbox.annotators import AnswerKey, Persona, Shown, classify, make_personas, read_example
from bot.sandbox.demo import DB_NAME, DEMO_DATA
from bot.services.importer import import_gold, import_items
from bot.services.projects import create_project
from bot.spec import load_spec
from storage.db import Database
from storage.models import Draft, Gold, Item, Label

FINAL_KEYS = {"id", "input", "label", "confidence", "method", "n_labels", "agreement", "source", "meta"}
RAW_KEYS = {"id", "input", "annotator", "kind", "action", "value", "draft_shown", "blind", "seconds", "counts"}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------ the data


def test_demo_data_is_complete_and_imports(sqlite_db: Database) -> None:
    spec = load_spec(DEMO_DATA / "project.yml")
    items, gold, answers = (_rows(DEMO_DATA / f"{n}.jsonl") for n in ("items", "gold", "answers"))
    assert len(items) == 300 and len(gold) == 40
    assert len({r["id"] for r in items}) == 300
    assert [a["id"] for a in answers] == [r["id"] for r in items]
    labels = set(spec.label_names)
    assert {a["label"] for a in answers} == labels and all(a.get("alt", a["label"]) in labels for a in answers)
    per_label = Counter(g["label"] for g in gold)
    assert set(per_label) == labels and max(per_label.values()) - min(per_label.values()) <= 1
    assert all(g["explanation"].strip() for g in gold)
    texts = " ".join(r["text"] for r in items)
    for hostile in ("<!channel>", "<https://evil.example|bank>", "Ignore all previous instructions"):
        assert hostile in texts
    assert {"ar", "he"} <= {r["lang"] for r in items}  # right-to-left scripts
    assert max(len(r["text"]) for r in items) > 3000  # shown cut, with "Show full text"
    assert not {g["text"] for g in gold} & {r["text"] for r in items}

    with sqlite_db.session() as s:
        project = create_project(s, spec, "T0TEST", _now())
        assert import_items(s, project, DEMO_DATA / "items.jsonl", _now()).inserted == 300
        result = import_gold(s, project, DEMO_DATA / "gold.jsonl", _now())
        assert result.inserted == 40 and not result.warnings


def test_every_demo_text_is_in_the_answer_key() -> None:
    key = AnswerKey.from_files(DEMO_DATA / "items.jsonl", DEMO_DATA / "answers.jsonl", DEMO_DATA / "gold.jsonl")
    for row in _rows(DEMO_DATA / "items.jsonl") + _rows(DEMO_DATA / "gold.jsonl"):
        assert key.lookup(row["text"]) is not None, row["id"]
    long_text = max((r["text"] for r in _rows(DEMO_DATA / "items.jsonl")), key=len)
    assert key.lookup(long_text[:2899] + "…") is not None  # what the message shows of a long text


# ------------------------------------------------------------------------------------------ the people


def _example(draft: str | None, blind: bool = False) -> dict:
    options = [{"text": {"type": "plain_text", "text": n}, "value": f"7:{i}"}
               for i, n in enumerate(["billing", "bug", "how_to"])]
    select_el: dict = {"type": "static_select", "action_id": "label.select", "options": options}
    blocks: list[dict] = [
        {"type": "context", "block_id": "lb.0", "elements": [{"type": "mrkdwn", "text": "*Intents*"}]},
        {"type": "section", "block_id": "lb.text", "text": {"type": "plain_text", "text": "I was charged twice"}},
    ]
    if blind:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "no draft (blind control)."}]})
    if draft:
        blocks.append({"type": "section", "block_id": "lb.draft", "text": {"type": "mrkdwn", "text": draft}})
        select_el["initial_option"] = next(o for o in options if o["text"]["text"] == draft)
    blocks.append({"type": "actions", "block_id": "lb.choices", "elements": [select_el]})
    controls = [{"type": "button", "action_id": a, "text": {"type": "plain_text", "text": a}, "value": "7"}
                for a in (["label.accept"] if draft else []) + ["label.skip", "label.ambiguous"]]
    blocks.append({"type": "actions", "block_id": "lb.controls", "elements": controls})
    return {"ts": "1700000000.000100", "text": "New example", "blocks": blocks}


def test_read_example_sees_the_draft_and_the_choices() -> None:
    shown = read_example(_example("bug"))
    assert classify(_example("bug")) == "example"
    assert (shown.kind, shown.text, shown.draft, shown.has_accept) == ("label", "I was charged twice", "bug", True)
    assert shown.choose["how_to"] == ("label.select", "7:2")
    blind = read_example(_example(None, blind=True))
    assert blind.draft is None and blind.blind and not blind.has_accept


def test_anchored_people_accept_wrong_drafts_careful_ones_correct_them() -> None:
    import random

    from bot.sandbox.annotators import Mind

    key = AnswerKey.from_files(DEMO_DATA / "items.jsonl", DEMO_DATA / "answers.jsonl", DEMO_DATA / "gold.jsonl")
    shown = Shown(ts="1.1", kind="label", text="I was charged $49 twice on the same day for one Pro subscription. "
                  "Please refund one of them.", labels=["billing", "bug", "how_to"],
                  choose={}, draft="bug", has_accept=True)

    def decisions(accept_bias: float) -> Counter:
        person = Persona("U1", "p", accuracy=1.0, accept_bias=accept_bias, skip_rate=0.0, doubt=0.0)
        mind = Mind(person, key, random.Random(1))
        return Counter((d.action, d.label) for d in (mind.decide(shown) for _ in range(400)))

    assert decisions(1.0)[("accept", "bug")] == 400
    careful = decisions(0.0)
    assert careful[("choose", "billing")] == 400


def test_people_confuse_bug_and_how_to_less_under_the_revised_guidelines() -> None:
    import random

    from bot.sandbox.annotators import PAIR_CONFUSION, PAIR_CONFUSION_REVISED, Mind

    key = AnswerKey.from_files(DEMO_DATA / "items.jsonl", DEMO_DATA / "answers.jsonl", DEMO_DATA / "gold.jsonl")
    bug = next(r["text"] for r, a in zip(_rows(DEMO_DATA / "items.jsonl"), _rows(DEMO_DATA / "answers.jsonl"),
                                          strict=True)
               if a["label"] == "bug" and not a.get("ambiguous") and r.get("lang", "en") == "en")
    labels = ["billing", "bug", "how_to"]

    def how_to_share(version: int, kind: str = "label") -> float:
        person = Persona("U1", "p", accuracy=1.0, accept_bias=0.0, skip_rate=0.0, doubt=0.0)
        mind = Mind(person, key, random.Random(3))
        mind.guideline_version = version
        shown = Shown(ts="1.1", kind=kind, text=bug, labels=labels, choose={})
        return sum(mind.decide(shown).label == "how_to" for _ in range(2000)) / 2000

    assert how_to_share(1) == pytest.approx(PAIR_CONFUSION[1], abs=0.04)
    assert how_to_share(2) == pytest.approx(PAIR_CONFUSION_REVISED, abs=0.02)
    assert how_to_share(1, kind="quiz") == 0.0  # the quiz has feedback; the confusion is in production


def test_personas_spread_around_the_accuracy_with_one_expert() -> None:
    people = make_personas(6, 0.85, 0.6, seed=7)
    assert [p.expert for p in people] == [False] * 6 + [True]
    crowd = [p.accuracy for p in people[:-1]]
    assert min(crowd) < 0.7 < 0.9 < max(crowd)  # one clearly weaker, some strong
    assert people == make_personas(6, 0.85, 0.6, seed=7)


# ------------------------------------------------------------------------------------------ the run


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime(2026, 1, 5, 9, tzinfo=UTC)


def test_small_demo_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # offline: the simulated drafter
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "report.txt").write_text("stale")
    result = CliRunner().invoke(demo, ["--small", "--dir", str(folder)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    out = result.output

    assert "the quiz and was told" in out
    assert "Quality report: Support ticket intents" in out
    assert "simulated drafter (demo)" in out
    assert "[plain text] <!channel> URGENT" in out  # the example message: hostile markup stays text
    assert "Draft (simulated drafter (demo): not a real model)" in out
    assert "Next steps" in out and "app_manifest.yml" in out
    # one guideline revision after day 1, published in Slack from the suggestion, measured per version
    assert "The guideline revision after day 1" in out and "Proposed by the simulated writer (demo)" in out
    assert "of the guidelines of Support ticket intents is published" in out
    assert "read the new guidelines (version 2)" in out

    report = (folder / "report.txt").read_text(encoding="utf-8")
    assert report.startswith("NOTE: Drafts in this demo come from the simulated drafter (demo)")
    assert "Agreement" in report and "Per annotator" in report
    data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert data["project"] == "support-intents"
    assert [v["version"] for v in data["agreement_by_guidelines"]] == [1, 2]
    assert data["agreement_by_guidelines"][1]["current"] and data["agreement_by_guidelines"][1]["change"]
    assert "Agreement by guideline version" in report

    # The demo and the report agree on every count: each day's line is the report's day, word for word.
    per_day = {d["day"]: Activity.from_dict(d) for d in data["activity"]["per_day"]}
    day_lines = [line.strip() for line in out.splitlines() if line.strip().startswith("Day ")]
    assert len(day_lines) == 2
    for line in day_lines:
        label, words = line.split(": ", 1)
        when = datetime.strptime(label.split("(")[1].rstrip(")") + f" {data['until'][:4]}", "%a %d %b %Y").date()
        assert words.split("; ")[0] == per_day[when.isoformat()].words()
        assert f"{when:%a %b %d}: {per_day[when.isoformat()].words()}" in report  # the report's "Per day"
    window = Activity.from_dict(data["activity"]["window"])
    assert window.total == data["labels"] and window.answers > 0 and window.quiz_answers >= 30
    shown = CliRunner().invoke(load_commands(), ["project", "show", "support-intents"],
                               env={"DATABASE_URL": f"sqlite:///{folder / DB_NAME}"})
    assert f"done: {window.words(zeros=True)}" in shown.output  # `project show`: the same numbers
    # People by display name in what leads read, member ids in the JSON.
    assert data["names"]["U0ANN001"] == "Amara" and "Amara" in report
    assert {r["user"] for r in data["per_annotator"]} >= {"U0ANN001"}
    # The morning's reminder, and one annotator stopping them.
    assert "labelbot reminded" in out and "examples are waiting in Support ticket intents" in out
    assert "clicked Stop reminders and was told: \"" in out and "Reminders are off" in out

    png = (folder / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000

    final = _rows(folder / "labels.jsonl")
    assert len(final) >= 15
    spec = load_spec(DEMO_DATA / "project.yml")
    for row in final:
        assert set(row) >= FINAL_KEYS
        assert row["label"] in spec.label_names
    sources = {r["source"] for r in final}
    assert "crowd" in sources and "gold" not in sources  # the gold set stays out of the training file
    raw = _rows(folder / "labels-raw.jsonl")
    assert raw and all(set(r) >= RAW_KEYS for r in raw)
    assert {r["kind"] for r in raw} >= {"quiz", "production"}

    db = Database(f"sqlite:///{folder / DB_NAME}")
    try:
        with db.read() as s:
            promoted = s.scalar(select(func.count()).select_from(Gold).where(Gold.source == "promoted"))
            # the 30 items imported; expert decisions quoted by the revision may have become gold
            assert s.scalar(select(func.count()).select_from(Item).where(Item.is_gold.is_(False))) + promoted == 30
            kinds = Counter(s.scalars(select(Label.kind)))
            assert kinds["quiz"] >= 30 and kinds["production"] >= 60
            assert s.scalar(select(func.count()).select_from(Draft).where(Draft.simulated.is_(False))) == 0
            actions = Counter(s.scalars(select(Label.action).where(Label.kind == "production")))
            assert actions["accept"] and (actions["reject"] or actions["manual"])
            versions = Counter(s.scalars(select(Label.guideline_version).where(Label.kind == "production")))
            assert versions[1] and versions[2]  # day 1 under version 1, day 2 under version 2
    finally:
        db.dispose()
