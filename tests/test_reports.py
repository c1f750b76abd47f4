"""bot.reports (build_report, alerts, the daily job), bot.blocks.report and bot.charts.

The scenario in `_seed` is small enough to compute by hand; the expected numbers are derived in the
comments next to each assertion.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.blocks.report import report_text, summary_blocks, summary_text
from bot.blocks.text import FIELD_TEXT_MAX, HEADER_MAX, MESSAGE_BLOCKS_MAX, SECTION_TEXT_MAX
from bot.config import Settings
from bot.core.clock import FakeClock
from bot.deps import Deps
from bot.sandbox.fake_slack import check_message_blocks
from bot.services.reports import ReportError, build_report, parse_report_args, run_due_reports
from bot.services.reports.chart import report_chart, report_figure
from storage.db import Database
from storage.models import Project, ReportRun
from tests.test_frames import BACKENDS, T0, Seeder, backend, emptied

WINDOW = (T0, T0 + timedelta(days=1))
HONEYPOT = {"min_checks": 1, "floor": 0.8, "window": 20}


@pytest.fixture(scope="module", params=BACKENDS)
def module_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    yield from backend(request.param, tmp_path_factory)


@pytest.fixture
def db(module_db: Database) -> Iterator[Database]:
    """Both backends: for what depends on the database (frames, windows, claims)."""
    with emptied(module_db) as d:
        yield d


@pytest.fixture(scope="module")
def module_lite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    yield from backend("sqlite", tmp_path_factory)


@pytest.fixture
def lite(module_lite: Database) -> Iterator[Database]:
    """SQLite only: for what does not depend on the backend (statistics, rendering, alerts)."""
    with emptied(module_lite) as d:
        yield d


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The `_seed` report's JSON, built once for the rendering tests."""
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('seeded')}/labelbot.db")
    db.upgrade()
    try:
        return _report(db, _seed(db)).to_json()
    finally:
        db.dispose()


def _seed(db: Database, **spec: Any) -> Seeder:
    """Three annotators on four production items, two gold items, one suspension.

    production (draft shown unless said):
      i1 draft bug:     UA bug (accept)   UB bug (accept)    UC bug (accept)
      i2 draft billing: UA billing (acc.) UB billing (acc.)  UC bug (edit)
      i3 draft other:   UA other (accept) UB bug (BLIND, manual)
      i4 no draft:      UA bug (manual)   UC skip
      i5 (before the window): UB bug
    gold: g1 = bug (hidden check, draft bug): UA bug, UB billing
          g2 = billing (quiz, no draft):      UC billing, UA other
    """
    sd = Seeder(db, honeypot=HONEYPOT, **spec)
    with sd.batch():
        _seed_rows(sd)
    return sd


def _seed_rows(sd: Seeder) -> None:
    at = iter(T0 + timedelta(minutes=m) for m in range(1, 100))
    i1, i2, i3, i4, i5 = (sd.item() for _ in range(5))
    d1, d2, d3 = sd.draft(i1, "bug"), sd.draft(i2, "billing"), sd.draft(i3, "other")
    for user in ("UA", "UB", "UC"):
        sd.label(i1, user, "bug", draft_id=d1, action="accept", at=next(at))
    sd.label(i2, "UA", "billing", draft_id=d2, action="accept", at=next(at))
    sd.label(i2, "UB", "billing", draft_id=d2, action="accept", at=next(at))
    sd.label(i2, "UC", "bug", draft_id=d2, action="edit", at=next(at))
    sd.label(i3, "UA", "other", draft_id=d3, action="accept", at=next(at))
    sd.label(i3, "UB", "bug", draft_id=d3, shown=False, at=next(at))
    sd.label(i4, "UA", "bug", at=next(at))
    sd.label(i4, "UC", None, action="skip", at=next(at))
    sd.label(i5, "UB", "bug", at=T0 - timedelta(hours=1))
    g1, g2 = sd.item(gold="bug"), sd.item(gold="billing")
    dg = sd.draft(g1, "bug")
    sd.label(g1, "UA", "bug", kind="honeypot", draft_id=dg, shown=False, at=next(at))
    sd.label(g1, "UB", "billing", kind="honeypot", draft_id=dg, shown=False, at=next(at))
    sd.label(g2, "UC", "billing", kind="quiz", counts=False, at=next(at))
    sd.label(g2, "UA", "other", kind="quiz", counts=False, at=next(at))
    sd.member("UX", state="suspended", reason="hidden checks below 80%", suspended_at=T0 + timedelta(hours=2))
    sd.member("UY", state="suspended", reason="old news", suspended_at=T0 - timedelta(days=3))


def _report(db: Database, sd: Seeder) -> Any:
    return build_report(db, sd.slug, since=WINDOW[0], until=WINDOW[1], now=WINDOW[1])


def test_report_numbers_match_hand_computation(db: Database) -> None:
    sd = _seed(db)
    data = _report(db, sd).to_json()
    json.dumps(data, allow_nan=False)  # plain JSON, no NaN anywhere

    assert data["project"] == "intents" and data["since"] == "2026-01-05T08:00:00Z"
    assert data["labels"] == 14 and data["answered"] == 13  # i5 is outside the window; one skip
    assert data["annotators"] == 3
    assert data["throughput"]["per_day"] == [{"day": "2026-01-05", "labels": 14}, {"day": "2026-01-06", "labels": 0}]
    assert data["throughput"]["per_annotator"] == {"UA": 6, "UB": 4, "UC": 4}

    agree = data["agreement"]
    # i1 3/3 pairs agree, i2 1/3, i3 0/1 -> (1 + 1/3 + 0) / 3
    assert agree["percent"] == pytest.approx(4 / 9)
    # nominal alpha: n=8 pairable values, n_c = (billing 2, bug 5, other 1), coincidence diagonal
    # 3 + 1 + 0 = 4 -> 1 - 7 * (8 - 4) / (64 - 30) = 6/34
    assert agree["krippendorff_alpha"] == pytest.approx(6 / 34)
    # Fleiss over the two 3-rater items: P-bar = (1 + 1/3) / 2, Pe = (1/3)^2 + (2/3)^2 -> 0.25
    assert agree["fleiss_kappa"] == pytest.approx(0.25)
    pairs = {(p["a"], p["b"]): p for p in agree["cohen_kappa"]}
    # UA-UB on i1..i3: po 2/3, pe 1/3 -> 0.5; UA-UC and UB-UC on i1, i2: po 1/2, pe 1/2 -> 0
    assert pairs[("UA", "UB")]["kappa"] == pytest.approx(0.5) and pairs[("UA", "UB")]["n"] == 3
    assert pairs[("UA", "UC")]["kappa"] == pytest.approx(0.0) and pairs[("UA", "UC")]["n"] == 2
    assert pairs[("UB", "UC")]["kappa"] == pytest.approx(0.0)
    assert data["accuracy_cap"]["value"] == pytest.approx((1 + 4 / 9) / 2)

    # gold: hidden UA 1/1, UB 0/1; quiz UC 1/1, UA 0/1; pooled UA 1/2
    assert data["gold_accuracy"] == {"UA": 0.5, "UB": 0.0, "UC": 1.0}
    assert data["gold"]["hidden"]["UB"]["value"] == 0.0 and data["gold"]["hidden"]["UB"]["n"] == 1
    assert data["gold"]["quiz"]["UC"]["value"] == 1.0 and "UB" not in data["gold"]["quiz"]

    drafts = data["drafts"]
    # shown: 3 on i1, 3 on i2, UA on i3 = 7 (6 accepted, 1 edit); blind: UB on i3; i4 had no draft
    assert (drafts["shown"], drafts["blind"], drafts["without_draft"]) == (7, 1, 1)
    assert drafts["accept_rate"] == pytest.approx(6 / 7)
    assert drafts["edit_rate"] == pytest.approx(1 / 7) and drafts["reject_rate"] == 0.0
    assert drafts["drafts_made"] == 4 and drafts["tokens"] == 4 * 110

    drift = data["drift"]
    # answers equal to the draft: 6 of 7 shown, 0 of 1 blind -> +0.857
    assert drift["anchoring"] == pytest.approx(6 / 7)
    # blind [bug 1] vs drafted [billing 2, bug 4, other 1]: chi2 = 0.6857, V = sqrt(chi2 / 8)
    assert drift["chi2"] == pytest.approx(0.6857143, abs=1e-6)
    assert drift["cramers_v"] == pytest.approx(math.sqrt(0.6857143 / 8), abs=1e-6)
    assert drift["js_distance"] == pytest.approx(0.50693, abs=1e-4)
    assert data["distribution"] == {"labels": ["bug", "billing", "other"], "blind": [1, 0, 0],
                                    "drafted": [4, 2, 1], "more": 0}  # fmt: skip

    llm = data["llm"]
    assert llm["accuracy_vs_gold"] == 1.0  # g1's draft is right
    assert llm["accuracy_vs_consensus"] == 1.0  # i1 bug, i2 billing (i3 has no majority)
    assert llm["kappa_vs_humans"] == pytest.approx(1.0)
    assert llm["accuracy_vs_blind_consensus"] is None
    assert llm["reasons"]["accuracy_vs_blind_consensus"].startswith("n/a")

    assert data["suspensions"] == [{"user": "UX", "reason": "hidden checks below 80%", "at": "2026-01-05T10:00:00Z"}]
    rows = {r["user"]: r for r in data["per_annotator"]}
    assert rows["UA"]["labels"] == 6 and rows["UC"]["skipped"] == 1 and rows["UB"]["gold_hidden"] == 0.0


def test_alerts_come_first_and_in_order(lite: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.services.drafting

    sd = _seed(lite)
    real = bot.services.drafting.drafter_health

    def paused(*args: Any, **kwargs: Any) -> dict:
        health = real(*args, **kwargs)
        return {**health, "paused": True, "consecutive_failures": 5, "last_error": "<!channel> 503"}

    monkeypatch.setattr(bot.services.drafting, "drafter_health", paused)
    data = _report(lite, sd).to_json()
    kinds = [a["kind"] for a in data["alerts"]]
    assert kinds == ["drafting_paused", "suspension", "low_gold_accuracy", "anchoring"]
    assert list(data)[:8] == ["project", "name", "task", "since", "until", "generated_at", "timezone", "alerts"]
    assert data["alerts"][2]["subject"] == "UB"  # hidden checks 0% < 80% with min_checks 1
    text = report_text(data)
    assert text.index("PROGRESS") < text.index("ALERTS") < text.index("Agreement")
    blocks = summary_blocks(data)
    alert_block = next(i for i, b in enumerate(blocks) if "alert" in json.dumps(b))
    assert alert_block == 3  # right after the header, its context line and the progress
    markdown = "\n".join(_texts(blocks, "mrkdwn"))
    assert "&lt;!channel&gt; 503" in markdown and "<!channel>" not in markdown


def test_empty_window_gives_reasons_not_nan(db: Database) -> None:
    sd = Seeder(db)
    report = _report(db, sd)
    data = report.to_json()
    json.dumps(data, allow_nan=False)
    assert data["labels"] == 0 and data["alerts"] == []
    for key in ("percent", "fleiss_kappa", "krippendorff_alpha"):
        assert data["agreement"][key] is None
        assert data["agreement"]["reasons"][key].startswith("n/a")
    assert data["agreement"]["cohen_kappa"] == [] and data["agreement"]["reasons"]["cohen_kappa"]
    assert data["drafts"]["accept_rate"] is None and data["drafts"]["reasons"]["accept_rate"].startswith("n/a")
    for key in ("chi2", "p_value", "cramers_v", "js_distance", "anchoring"):
        assert data["drift"][key] is None and key in data["drift"]["reasons"]
    for key in ("accuracy_vs_gold", "accuracy_vs_consensus", "kappa_vs_humans"):
        assert data["llm"][key] is None and key in data["llm"]["reasons"]
    assert data["gold_accuracy"] == {} and data["gold"]["reasons"]["all"].startswith("n/a")
    assert "Not available" in report.to_text()
    assert check_message_blocks(summary_blocks(data)) == []
    png = report_chart(data)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    texts = [t.get_text() for ax in report_figure(data).axes for t in ax.texts]
    assert texts.count("no data yet") == 6  # every panel says so (no items, no answers)


@pytest.mark.parametrize(
    ("task", "labels", "values", "present", "absent"),
    [
        ("multilabel", ["a", "b", "c"], [["a"], ["a", "b"], ["a"]], "per_label_alpha", "span_f1"),
        ("spans", ["LOC"], [[{"start": 0, "end": 4, "label": "LOC"}]] * 3, "span_f1", "rewrite_similarity"),
        ("rewrite", [], ["Hello there.", "Hello there!", "Hi there."], "rewrite_similarity", "span_f1"),
    ],
)
def test_other_task_types(lite: Database, task: str, labels: list, values: list, present: str, absent: str) -> None:
    sd = Seeder(lite, task=task, labels=labels)
    for n in range(2):
        item = sd.item()
        for user, value in zip(("UA", "UB", "UC"), values, strict=True):
            sd.label(item, user, value, at=T0 + timedelta(minutes=n))
    data = _report(lite, sd).to_json()
    json.dumps(data, allow_nan=False)
    agree = data["agreement"]
    assert present in agree and absent not in agree
    assert agree["fleiss_kappa"] is None and "classification" in agree["reasons"]["fleiss_kappa"]
    if task == "spans":
        assert agree["span_f1"] == 1.0
    if task == "multilabel":
        assert agree["per_label_alpha"]["a"] is None  # everyone said "a": only one category
        assert agree["per_label_alpha"]["b"] is not None
    if task == "rewrite":
        assert 0 < agree["rewrite_similarity"] < 1
        assert data["drift"]["chi2"] is None and "not categories" in data["drift"]["reasons"]["chi2"]


# --- blocks ---------------------------------------------------------------------------------------


def _texts(node: Any, kind: str | None = None) -> list[str]:
    """Every text object's text (of one `kind`: "mrkdwn" or "plain_text", when given)."""
    if isinstance(node, dict):
        found = isinstance(node.get("text"), str) and (kind is None or node.get("type") == kind)
        out = [node["text"]] if found else []
        return out + [t for v in node.values() for t in _texts(v, kind)]
    if isinstance(node, list):
        return [t for v in node for t in _texts(v, kind)]
    return []


def _assert_within_limits(blocks: list[dict]) -> None:
    assert len(blocks) <= MESSAGE_BLOCKS_MAX
    assert check_message_blocks(blocks) == []
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= HEADER_MAX
        for f in block.get("fields", []):
            assert len(f["text"]) <= FIELD_TEXT_MAX
        assert len(block.get("fields", [])) <= 10
    assert all(len(t) <= SECTION_TEXT_MAX for t in _texts(blocks))


def test_blocks_with_hostile_names_and_many_annotators(lite: Database) -> None:
    hostile = "<!channel> & <@U0LEAD>"
    sd = Seeder(lite, name=f"{hostile} " + "x" * 150)  # the header allows 150
    item = sd.item()
    for user in ("<!channel>", "<!here|x>", "U`code`"):
        sd.label(item, user, "bug")
    data = _report(lite, sd).to_json()
    # 200 annotators and 40 alerts, all hostile
    data["per_annotator"] = [
        {**data["per_annotator"][0], "user": f"<!channel>{n:03d}*_~`", "labels": 1000 - n} for n in range(200)
    ]
    data["alerts"] = [{"kind": "suspension", "text": f"<!here> {n} " + "&" * 40, "subject": "x"} for n in range(40)]
    data["agreement"]["per_label_alpha"] = {f"<!channel>{n}": 0.1 for n in range(100)}
    data["agreement"]["cohen_kappa"] = [{"a": "<@U1>", "b": "<!here>", "kappa": 0.2, "n": 5}] * 500
    blocks = summary_blocks(data)
    _assert_within_limits(blocks)
    markdown = "\n".join(_texts(blocks, "mrkdwn"))  # plain_text is never parsed, so only mrkdwn matters
    for raw in ("<!channel>", "<!here", "<@U"):
        assert raw not in markdown
    assert "&lt;!channel&gt;" in markdown
    assert blocks[0]["type"] == "header" and blocks[0]["text"]["type"] == "plain_text"
    assert "and 28 more" in markdown  # alerts: 12 shown of 40
    data["alerts"] = [{"kind": "suspension", "text": "&" * 2000, "subject": None}] * 40  # each cut to 600 escaped
    alerts = summary_blocks(data)[3]["text"]["text"]
    assert len(alerts) <= SECTION_TEXT_MAX and alerts.endswith("and 36 more")  # 4 fit
    table = next(t for t in _texts(blocks) if t.startswith("*Per annotator*"))
    assert "more" in table.splitlines()[-1] and "`code`" not in table
    assert len(summary_text(data)) <= 300 and "<!channel>" not in summary_text(data)


def test_chart_has_six_panels_sized_for_slack(seeded: dict) -> None:
    data = {**seeded, "names": {"UA": "Amara <b>$x$</b>"}}
    fig = report_figure(data)
    assert len(fig.axes) == 6
    assert [ax.get_title(loc="left") for ax in fig.axes] == [
        "Answers per day", "Items", "Agreement per day", "Anchoring per day", "Gold accuracy (% right)",
        "Labels: blind vs drafted"]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["answers", "gold checks", "quiz answers",
                                                                           "skips and flags"]
    # gold accuracy per annotator, by display name (mathtext disarmed)
    assert [t.get_text() for t in fig.axes[4].get_yticklabels()] == [r"Amara <b>\$x\$</b>", "UB", "UC"]
    # UA: quiz 0%, hidden 100%
    assert fig.axes[4].patches[0].get_width() == 0.0 and fig.axes[4].patches[3].get_width() == 100.0
    # the items of the progress: 5 open of 5
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["open (5)"]
    # a near-square picture with large type: readable when Slack scales it to the conversation's width
    width, height = fig.get_size_inches() * fig.dpi
    assert (width, height) == (1000, 1100)
    assert min(t.get_fontsize() for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels()) >= 11
    png = report_chart(data)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


# --- arguments ----------------------------------------------------------------------------------------


def test_parse_report_args() -> None:
    assert parse_report_args("") == (None, None)
    assert parse_report_args("intents") == ("intents", None)
    assert parse_report_args("14") == (None, 14)
    assert parse_report_args("intents 14") == ("intents", 14)
    assert parse_report_args("30 Intents") == ("intents", 30)
    for bad in ("intents 0", "intents 9999", "a b", "1 2", "intents -3"):
        with pytest.raises(ReportError):
            parse_report_args(bad)


def test_window_must_not_be_empty(lite: Database) -> None:
    sd = Seeder(lite)
    with pytest.raises(ReportError):
        build_report(lite, sd.slug, since=T0, until=T0, now=T0)


# --- the daily job ---------------------------------------------------------------------------------


class RecordingClient:
    """Stands in for slack_sdk.WebClient in unit tests: records calls, can fail on demand."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.fail = fail

    def chat_postMessage(self, **kwargs: Any) -> dict:
        self.calls.append(("chat_postMessage", kwargs))
        if self.fail == "post":
            raise RuntimeError("channel_not_found")
        return {"ok": True, "channel": kwargs["channel"], "ts": f"1700000000.{len(self.calls):06d}"}

    def files_upload_v2(self, **kwargs: Any) -> dict:
        self.calls.append(("files_upload_v2", kwargs))
        if self.fail == "upload":
            raise RuntimeError("upload failed")
        return {"ok": True}


def _Deps(db: Database, clock: FakeClock, client: Any) -> Deps:
    return Deps(settings=Settings(database_url=db.url), db=db, clock=clock, client=client)


def _runs(db: Database) -> list[ReportRun]:
    with db.read() as s:
        return list(s.scalars(select(ReportRun).order_by(ReportRun.id)))


def test_daily_report_posts_once_per_local_day_across_replicas(db: Database) -> None:
    _seed(db, report={"channel": "CREPORTS", "time": "09:30", "timezone": "Europe/Paris"})
    clock = FakeClock(datetime(2026, 1, 6, 8, 0, tzinfo=UTC))  # 09:00 in Paris: not yet
    first, second = RecordingClient(), RecordingClient()
    other_db = Database(db.url)  # a second replica: its own engine, the same database
    try:
        replicas = [_Deps(db, clock, first), _Deps(other_db, clock, second)]
        assert [run_due_reports(d) for d in replicas] == [[], []]
        clock.set(datetime(2026, 1, 6, 8, 31, tzinfo=UTC))  # 09:31 in Paris
        outcomes = [o for d in replicas for o in run_due_reports(d)]
        assert [o.status for o in outcomes] == ["posted"]
        clock.advance(hours=5)
        assert [run_due_reports(d) for d in replicas] == [[], []]  # the same local day: nothing more
    finally:
        other_db.dispose()
    calls = first.calls + second.calls
    assert [name for name, _ in calls] == ["chat_postMessage", "files_upload_v2"]
    post, upload = calls[0][1], calls[1][1]
    assert post["channel"] == "CREPORTS" and len(post["blocks"]) <= 50 and post["text"]
    assert upload["file"].startswith(b"\x89PNG") and upload["filename"] == "intents-2026-01-06.png"
    (run,) = _runs(db)
    assert (run.status, run.channel, str(run.day), run.error) == ("posted", "CREPORTS", "2026-01-06", None)
    assert run.ts == "1700000000.000001" and run.posted_at is not None


def test_failed_post_marks_the_run_failed(lite: Database) -> None:
    _seed(lite)
    clock = FakeClock(datetime(2026, 1, 6, 9, 5, tzinfo=UTC))
    deps = _Deps(lite, clock, RecordingClient(fail="post"))
    (outcome,) = run_due_reports(deps)
    assert outcome.status == "failed" and "channel_not_found" in outcome.error
    (run,) = _runs(lite)
    assert run.status == "failed" and "channel_not_found" in run.error
    clock.advance(minutes=1)
    assert run_due_reports(deps) == []  # never a second attempt (or post) that day


def test_failed_chart_upload_keeps_the_post(lite: Database) -> None:
    _seed(lite)
    deps = _Deps(lite, FakeClock(datetime(2026, 1, 6, 9, 5, tzinfo=UTC)), RecordingClient(fail="upload"))
    (outcome,) = run_due_reports(deps)
    assert outcome.status == "posted" and "chart upload failed" in outcome.error
    assert _runs(lite)[0].status == "posted"


def test_projects_without_a_report_channel_are_skipped(lite: Database) -> None:
    Seeder(lite, report={"time": "00:00"})
    deps = _Deps(lite, FakeClock(datetime(2026, 1, 6, 9, 5, tzinfo=UTC)), RecordingClient())
    assert run_due_reports(deps) == [] and _runs(lite) == []


def test_a_suspended_member_gets_no_second_alert(lite: Database) -> None:
    from bot.services.projects import get_project, set_member

    sd = _seed(lite)
    with lite.session() as s:  # UB (0% on hidden checks) is suspended during the window
        set_member(s, get_project(s, sd.slug), "UB", T0 + timedelta(hours=3), suspend=True, reason="checks failed.")
    alerts = _report(lite, sd).to_json()["alerts"]
    assert [(a["kind"], a["subject"]) for a in alerts if a["subject"] == "UB"] == [("suspension", "UB")]
    assert "UB was suspended: checks failed." in [a["text"] for a in alerts]


def test_week_on_week_anchoring_change(db: Database) -> None:
    """Previous week: shown 1 of 2 equal the draft, blind 1 of 2 -> 0. This week: shown 2 of 2, blind
    0 of 2 -> +1. The change is +1 and raises the "rose" alert; last week's labels are counted in SQL."""
    sd = Seeder(db)
    with sd.batch():
        for week, answers in ((-7, ["bug", "other", "bug", "other"]), (0, ["bug", "bug", "other", "other"])):
            at = T0 + timedelta(days=week, hours=1)
            for n, answer in enumerate(answers):
                item = sd.item()
                draft = sd.draft(item, "bug")
                sd.label(item, "UA", answer, draft_id=draft, shown=n < 2, action="accept" if n < 2 else None, at=at)
    data = _report(db, sd).to_json()
    drift = data["drift"]
    assert drift["anchoring"] == pytest.approx(1.0)
    assert drift["anchoring_previous"] == pytest.approx(0.0) and drift["anchoring_change"] == pytest.approx(1.0)
    assert any(a["kind"] == "anchoring" and "rose" in a["text"] for a in data["alerts"])
    # a 14-day window holds both weeks: measured on the loaded rows, with the same result
    wide = build_report(db, sd.slug, since=WINDOW[1] - timedelta(days=14), until=WINDOW[1], now=WINDOW[1])
    assert wide.drift["anchoring_previous"] == pytest.approx(0.0)
    assert wide.drift["anchoring_change"] == pytest.approx(1.0)



def test_simulated_drafts_are_labelled_as_such(db: Database) -> None:
    from sqlalchemy import update

    from storage.models import Draft

    sd = _seed(db)
    assert "simulated" not in _report(db, sd).to_text()
    with db.session() as s:
        s.execute(update(Draft).values(simulated=True, model="simulated"))
    report = _report(db, sd)
    assert report.to_json()["drafts"]["simulated"] is True
    assert "simulated drafter (demo), not a real model" in report.to_text()


def test_a_claim_left_by_a_dead_replica_is_taken_over_once(db: Database) -> None:
    _seed(db, report={"channel": "CREPORTS", "time": "09:00", "timezone": "UTC"})
    clock = FakeClock(datetime(2026, 1, 6, 9, 5, tzinfo=UTC))
    with db.session() as s:  # a replica claimed today's report, then died before posting
        project_id = s.scalar(select(Project.id))
        s.add(ReportRun(project_id=project_id, day=date(2026, 1, 6), status="claimed", claimed_by="dead:1",
                        created_at=clock.now()))
    client = RecordingClient()
    deps = _Deps(db, clock, client)
    assert run_due_reports(deps) == []  # a fresh claim belongs to a replica that may still be posting
    clock.advance(minutes=31)
    other = Database(db.url)
    try:
        outcomes = [o for d in (deps, _Deps(other, clock, client)) for o in run_due_reports(d)]
    finally:
        other.dispose()
    assert [o.status for o in outcomes] == ["posted"]
    assert [name for name, _ in client.calls] == ["chat_postMessage", "files_upload_v2"]
    (run,) = _runs(db)
    assert run.status == "posted" and run.claimed_by != "dead:1"
