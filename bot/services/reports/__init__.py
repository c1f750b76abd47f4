"""Quality reports: `build_report` assembles a `Report` from the labels frame and the statistics in
`bot.quality`; `run_due_reports` posts the daily summary once per project and local day.

Nothing here computes a statistic itself: agreement, gold accuracy, draft effects, drift, anchoring
and the LLM-as-annotator numbers come from `bot.quality.{agreement,drift,llm}`; token counts and cost
from `bot.drafting.draft_stats` when that module offers it. This module chooses the rows, calls them,
turns their `Measure`s into JSON (a value, or null plus a reason) and derives the alerts.

Rows used:
- agreement, drift, anchoring, draft actions, speed: production answers (`kind == "production"`);
  agreement only those that count (qualified members), drift/anchoring/speed every production answer;
- gold accuracy: quiz and honeypot (hidden check) answers on gold items, per annotator;
- LLM as annotator: drafts against gold items, and against the strict-majority consensus of the
  counting production answers (all items, and blind answers only: shown drafts anchor humans).
"""

from __future__ import annotations

import functools
import importlib
import itertools
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from bot.core.enums import TaskType, Tier
from bot.core.errors import LabelbotError
from bot.quality import agreement as agreement_stats
from bot.quality import drift as drift_stats
from bot.quality import llm as llm_stats
from bot.quality import scoring
from bot.quality.common import (
    ANSWER_ACTIONS,
    Measure,
    answered,
    blind,
    counting,
    latest_per_rater,
    of_kind,
    same_key,
)
from bot.services.projects import get_project, list_projects, spec_of
from bot.spec import ProjectSpec
from storage.db import Database
from storage.frames import anchoring_counts, draft_totals, labels_frame, local_days, members_frame
from storage.locks import instance_name
from storage.models import Member, Project, ReportRun

log = logging.getLogger("labelbot.reports")

__all__ = [
    "DAILY_WINDOW_DAYS",
    "Alert",
    "Chosen",
    "Report",
    "ReportError",
    "RunOutcome",
    "build_report",
    "choose_for_lead",
    "lead_projects",
    "parse_report_args",
    "report_for",
    "report_window",
    "run_due_reports",
    "schedule",
    "to_json_text",
]

#: The daily summary covers the last 7 days (agreement needs more than a day of overlap).
STALE_CLAIM = timedelta(minutes=30)  # a claim this old without a post: its replica died
DAILY_WINDOW_DAYS = 7
#: Anchoring is compared with the previous window of this many days.
CHANGE_DAYS = 7
#: Cohen's kappa is computed for at most this many annotator pairs (those sharing the most items).
MAX_KAPPA_PAIRS = 100
#: Days shown in the trend panels at most.
MAX_TREND_DAYS = 92
MAX_DAYS = 365


class ReportError(LabelbotError, ValueError):
    """A report request that cannot be served; the message is shown to a person."""


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """Something a lead should look at. `kind`: drafting_paused | suspension | low_gold_accuracy |
    rubber_stamp | anchoring | drift; `subject`: the annotator concerned, if any."""

    kind: str
    text: str
    subject: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "subject": self.subject}


@dataclass
class Report:
    """One project's quality report for [since, until). Sections are JSON-ready dicts: each statistic
    is a number or null, and every null has its reason under the section's "reasons"."""

    project: str
    name: str
    task: str
    timezone: str
    since: datetime
    until: datetime
    generated_at: datetime
    labels: int
    answered: int
    items: int
    annotators: int
    alerts: list[Alert] = field(default_factory=list)
    throughput: dict[str, Any] = field(default_factory=dict)
    agreement: dict[str, Any] = field(default_factory=dict)
    accuracy_cap: dict[str, Any] = field(default_factory=dict)
    gold: dict[str, Any] = field(default_factory=dict)
    drafts: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, Any] = field(default_factory=dict)
    llm: dict[str, Any] = field(default_factory=dict)
    suspensions: list[dict[str, Any]] = field(default_factory=list)
    drafting_health: dict[str, Any] = field(default_factory=dict)
    per_annotator: list[dict[str, Any]] = field(default_factory=list)
    daily: list[dict[str, Any]] = field(default_factory=list)
    distribution: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def days(self) -> float:
        return (self.until - self.since).total_seconds() / 86400

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only (no NaN); alerts come first after the identity of the report."""
        data = {
            "project": self.project,
            "name": self.name,
            "task": self.task,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "generated_at": _iso(self.generated_at),
            "timezone": self.timezone,
            "alerts": [a.to_dict() for a in self.alerts],
            "labels": self.labels,
            "answered": self.answered,
            "items": self.items,
            "annotators": self.annotators,
            "throughput": self.throughput,
            "agreement": self.agreement,
            "accuracy_cap": self.accuracy_cap,
            "gold_accuracy": self.gold.get("all", {}),
            "gold": self.gold,
            "drafts": self.drafts,
            "drift": self.drift,
            "llm": self.llm,
            "suspensions": self.suspensions,
            "drafting_health": self.drafting_health,
            "per_annotator": self.per_annotator,
            "daily": self.daily,
            "distribution": self.distribution,
        }
        return _jsonable(data)

    def to_text(self) -> str:
        from bot.blocks.report import report_text

        return report_text(self.to_json())


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _jsonable(obj: Any) -> Any:
    """Numpy scalars to Python, NaN/inf to None, dates to ISO strings, recursively."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, datetime):
        return _iso(obj)
    if isinstance(obj, date):
        return obj.isoformat()
    return obj


class _Section:
    """Builds one JSON section: name -> value; reasons for nulls; the full Measure under "detail"."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.reasons: dict[str, str] = {}
        self.detail: dict[str, Any] = {}

    def measure(self, name: str, m: Measure) -> None:
        self.values[name] = m.value
        if m.value is None:
            self.reasons[name] = m.reason or "n/a"
        self.detail[name] = m.to_dict()

    def na(self, name: str, reason: str) -> None:
        self.measure(name, Measure.na(reason))

    def set(self, name: str, value: Any) -> None:
        self.values[name] = value

    def out(self) -> dict[str, Any]:
        return {**self.values, "reasons": self.reasons, "detail": self.detail}


def _measures(ms: dict[str, Measure]) -> dict[str, Any]:
    return {k: m.to_dict() for k, m in ms.items()}


# --------------------------------------------------------------------------------------------------
# Building it
# --------------------------------------------------------------------------------------------------


def report_window(now: datetime, days: float) -> tuple[datetime, datetime]:
    return now - timedelta(days=days), now


def build_report(db: Database, slug: str, *, since: datetime, until: datetime, now: datetime) -> Report:
    """Assemble the report of project `slug` for labels created in [since, until)."""
    if until <= since:
        raise ReportError("The report window is empty: `until` must be after `since`.")
    timings: dict[str, float] = {}
    clock = _Stopwatch(timings)
    change_edges = [until - timedelta(days=k * CHANGE_DAYS) for k in (2, 1, 0)]
    with db.read() as s:
        project = get_project(s, slug)
        spec = spec_of(project)
        clock.lap("project")
        window = labels_frame(s, project.id, since, until)
        clock.lap("labels_frame")
        members = members_frame(s, project.id)
        # Week on week anchoring: a week the window does not cover is counted by a GROUP BY in SQL
        # (for the daily report, last week's labels are never loaded).
        change_windows = list(itertools.pairwise(change_edges))
        change_counts = {w: anchoring_counts(s, project.id, *w) for w in change_windows if w[0] < since}
        stats = _call_drafting("draft_stats", s, project.id, since, until, spec)
        health = _call_drafting("drafter_health", s, project.id, since, now=now)
        if isinstance(stats, dict):
            drafts = {
                "drafts": int(stats.get("drafts") or 0),
                "errors": int(stats.get("error_total") or 0),
                "prompt_tokens": int(stats.get("prompt_tokens") or 0),
                "completion_tokens": int(stats.get("completion_tokens") or 0),
            }
        else:
            drafts = draft_totals(s, project.id, since, until)
        clock.lap("other_frames")
    change = _anchoring_change(window, change_windows, change_counts)
    return _assemble(project, spec, window, change, drafts, members, stats, health, since, until, now, clock)


def _anchoring_change(
    window: pd.DataFrame,
    weeks: list[tuple[datetime, datetime]],
    counts: dict[tuple[datetime, datetime], tuple[int, int, int, int]],
) -> drift_stats.AnchoringChange:
    """`drift.AnchoringChange` for the previous and the current week from their (k1, n1, k0, n0) counts
    (SQL for a week outside the loaded window, the frame's rows otherwise), each turned into the
    difference and its Newcombe interval by `drift.anchoring_from_counts`, the code `drift.anchoring` uses (there
    is no public counts entry point yet)."""

    def week(a: datetime, b: datetime) -> Measure:
        return drift_stats.anchoring_from_counts(*(counts[(a, b)] if (a, b) in counts else _week_counts(window, a, b)))

    before, now = (week(a, b) for a, b in weeks)
    if before.ok and now.ok:
        delta = Measure(value=now.value - before.value)
    else:
        delta = Measure.na(f"needs anchoring in both {CHANGE_DAYS}-day windows")
    return drift_stats.AnchoringChange(current=now, previous=before, delta=delta, days=CHANGE_DAYS)


class _Stopwatch:
    """Wall seconds per step into `timings`, and CPU seconds under "cpu:<step>" (for the bench)."""

    def __init__(self, timings: dict[str, float]) -> None:
        import time as _time

        self._wall, self._cpu = _time.perf_counter, _time.process_time
        self._last = (self._wall(), self._cpu())
        self.timings = timings

    def lap(self, name: str) -> None:
        now = (self._wall(), self._cpu())
        self.timings[name] = round(now[0] - self._last[0], 4)
        self.timings[f"cpu:{name}"] = round(now[1] - self._last[1], 4)
        self._last = now


_MISSING = object()


def _call_drafting(name: str, *args: Any, **kwargs: Any) -> Any:
    """Call bot.drafting.<name>(...) if that module offers it, else return _MISSING."""
    try:
        module = importlib.import_module("bot.services.drafting")
    except ModuleNotFoundError as e:
        if e.name != "bot.services.drafting":
            raise
        return _MISSING
    fn = getattr(module, name, None)
    return _MISSING if fn is None else fn(*args, **kwargs)


def _score_fn(spec: ProjectSpec) -> Any:
    """None (exact match, with Wilson CIs) for classification; the quiz's per-task score otherwise."""
    if spec.task is TaskType.CLASSIFICATION:
        return None
    return functools.partial(scoring.score, spec.task.value, jaccard_threshold=spec.quiz.jaccard_threshold)


def _assemble(
    project: Project,
    spec: ProjectSpec,
    window: pd.DataFrame,
    change: drift_stats.AnchoringChange,
    drafts: dict[str, int],
    members: pd.DataFrame,
    stats: Any,
    health: Any,
    since: datetime,
    until: datetime,
    now: datetime,
    clock: _Stopwatch,
) -> Report:
    task = spec.task
    tz = spec.report.timezone
    score = _score_fn(spec)
    # Answers on gold items keep every column (scores need decoded values); the rest of the work runs
    # on a slimmer frame: copying a million-row object column for each filter is what costs.
    gold_rows = answered(of_kind(window, "quiz", "honeypot"))
    heavy = {"tier", "member_id"} | ({"value"} if task is TaskType.CLASSIFICATION else set())
    keep = [c for c in window.columns if c not in heavy]
    window = window[keep]
    ans = answered(window)
    prod = of_kind(window, "production")
    prod_ans = answered(prod)
    # One answer per (item, annotator), only the columns the agreement measures read.
    agree_cols = ["item_id", "annotator", "value_key", "created_at"] + (["value"] if "value" in keep else [])
    agree_rows = latest_per_rater(counting(prod))[agree_cols]
    report = Report(
        project=project.slug,
        name=project.name,
        task=task.value,
        timezone=tz,
        since=since,
        until=until,
        generated_at=now,
        labels=len(window),
        answered=len(ans),
        items=int(window["item_id"].nunique()),
        annotators=int(window["annotator"].nunique()),
        timings=clock.timings,
    )
    days = _days(since, until, tz)

    # --- agreement
    agree = _Section()
    pairs: list[agreement_stats.PairKappa] = []
    per_label: dict[str, Measure] = {}
    if task is TaskType.CLASSIFICATION:
        summary = agreement_stats.classification_agreement(agree_rows, max_pairs=MAX_KAPPA_PAIRS)
        percent = summary.percent
        agree.measure("percent", percent)
        pairs = summary.pairs
        agree.measure("fleiss_kappa", summary.fleiss)
        agree.measure("krippendorff_alpha", summary.alpha)
        agree.measure("mean_cohen_kappa", summary.light_kappa)
        per_label = summary.per_label
        agree.set("confusions", [c.to_dict() for c in summary.confusions])
    else:
        percent = agreement_stats.percent_agreement(agree_rows)
        agree.measure("percent", percent)
        why = f"n/a: defined for classification; this is a {task.value} project"
        for name in ("fleiss_kappa", "krippendorff_alpha", "mean_cohen_kappa"):
            agree.na(name, why)
        agree.set("confusions", [])
        if task is TaskType.MULTILABEL:
            per_label = agreement_stats.multilabel_alpha(agree_rows)
        elif task is TaskType.SPANS:
            agree.measure("span_f1", agreement_stats.span_f1(agree_rows, mode="exact"))
            agree.measure("span_f1_overlap", agreement_stats.span_f1(agree_rows, mode="overlap"))
        elif task is TaskType.REWRITE:
            agree.measure("rewrite_similarity", agreement_stats.rewrite_similarity(agree_rows))
    agree.set(
        "cohen_kappa",
        [
            {
                "a": p.a,
                "b": p.b,
                "kappa": p.kappa.value,
                "n": p.kappa.n,
                "ci": [p.kappa.ci_low, p.kappa.ci_high] if p.kappa.ci_low is not None else None,
                "reason": p.kappa.reason,
            }
            for p in pairs
        ],
    )
    if not pairs:
        agree.reasons["cohen_kappa"] = (
            "n/a: no two annotators answered the same item"
            if task is TaskType.CLASSIFICATION
            else f"n/a: defined for classification; this is a {task.value} project"
        )
    agree.set("per_label_alpha", {k: m.value for k, m in per_label.items()})
    agree.detail["per_label_alpha"] = _measures(per_label)
    report.agreement = agree.out()
    cap = agreement_stats.accuracy_cap(percent)
    report.accuracy_cap = cap.to_dict()
    clock.lap("agreement")

    # --- throughput and the daily trend
    report.throughput, report.daily = _throughput_and_trend(window, agree_rows, days, tz)
    clock.lap("throughput")

    # --- gold accuracy
    quiz = agreement_stats.gold_accuracy(gold_rows, "quiz", score=score)
    hidden = agreement_stats.gold_accuracy(gold_rows, "honeypot", score=score)
    combined = agreement_stats.gold_accuracy(gold_rows.assign(kind="gold"), "gold", score=score)
    report.gold = {
        "all": {k: m.value for k, m in combined.items()},
        "quiz": _measures(quiz),
        "hidden": _measures(hidden),
        "reasons": {} if combined else {"all": "n/a: no answers on gold items in this window"},
    }
    clock.lap("gold")

    # --- drafts
    actions = drift_stats.draft_action_rates(prod)
    report.drafts = _drafts_section(spec, prod, prod_ans, drafts, stats, actions)
    clock.lap("drafts")

    # --- drift and anchoring
    drift_sec = _Section()
    label_drift: drift_stats.LabelDrift | None = None
    if task in (TaskType.CLASSIFICATION, TaskType.MULTILABEL):
        # Blind controls against drafted answers on items that had a draft (an item the drafter failed
        # on is not a control: it may differ in kind).
        label_drift = drift_stats.label_drift(prod_ans.loc[prod_ans["draft_key"].notna().to_numpy()])
        for name in ("chi2", "p_value", "cramers_v", "js_distance"):
            drift_sec.measure(name, getattr(label_drift, name))
        drift_sec.set("dof", label_drift.dof)
        report.distribution = _distribution(label_drift)
    else:
        for name in ("chi2", "p_value", "cramers_v", "js_distance"):
            drift_sec.na(name, f"n/a: {task.value} answers are not categories")
        report.distribution = {"labels": [], "blind": [], "drafted": [], "reason": drift_sec.reasons["chi2"]}
    anchor = drift_stats.anchoring(prod_ans)
    drift_sec.measure("anchoring", anchor.overall)
    drift_sec.measure("anchoring_shown", anchor.shown)
    drift_sec.measure("anchoring_blind", anchor.blind)
    drift_sec.measure("anchoring_change", change.delta)
    drift_sec.measure("anchoring_previous", change.previous)
    drift_sec.set("anchoring_ci", [anchor.overall.ci_low, anchor.overall.ci_high] if anchor.overall.ok else None)
    report.drift = drift_sec.out()
    clock.lap("drift")

    # --- the LLM as one more annotator
    report.llm = _llm_section(task, gold_rows, prod, score)
    clock.lap("llm")

    # --- people
    report.suspensions = _suspensions(members, since, until)
    report.drafting_health = _health_section(health, drafts)
    hidden_flags = drift_stats.rubber_stamp_flags(
        of_kind(window, "production", "honeypot"),
        max_gold_accuracy=spec.honeypot.floor,
        min_gold=spec.honeypot.min_checks,
    )
    report.per_annotator = _per_annotator(window, members, quiz, hidden, actions, anchor)

    # --- alerts, first in every rendering
    suspended = set(members.loc[(members["state"] == "suspended").to_numpy(), "user_id"]) if len(members) else set()
    report.alerts = _alerts(spec, report, hidden, hidden_flags, anchor, label_drift, change, suspended)
    clock.lap("people_alerts")
    return report


def _week_counts(window: pd.DataFrame, a: datetime, b: datetime) -> tuple[int, int, int, int]:
    """The rows `storage.frames.anchoring_counts` counts in SQL, counted on the frame: production
    answers created in [a, b) on items with a stored draft; k = answers equal to the draft."""
    created = window["created_at"]
    keep = (
        (created >= pd.Timestamp(a)) & (created < pd.Timestamp(b)) & window["kind"].eq("production")
        & window["action"].isin(ANSWER_ACTIONS) & window["value_key"].notna() & window["draft_key"].notna()
    ).to_numpy()  # fmt: skip
    rows = window.loc[keep]
    hit = same_key(rows["value_key"], rows["draft_key"])
    shown = rows["draft_shown"].to_numpy(dtype=bool)
    return int((hit & shown).sum()), int(shown.sum()), int((hit & ~shown).sum()), int((~shown).sum())


def _days(since: datetime, until: datetime, tz: str) -> list[date]:
    zone = ZoneInfo(tz)
    first = since.astimezone(zone).date()
    last = (until - timedelta(microseconds=1)).astimezone(zone).date()
    first = max(first, last - timedelta(days=MAX_TREND_DAYS - 1))
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _throughput_and_trend(
    window: pd.DataFrame, agree_rows: pd.DataFrame, days: list[date], tz: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    day_index = np.array(days, dtype="datetime64[D]")
    per_day = pd.Series(0, index=day_index, dtype="int64")
    per_annotator: dict[str, int] = {}
    if len(window):
        day_of = pd.Series(local_days(window["created_at"], tz))
        per_day = day_of.value_counts().reindex(day_index, fill_value=0).astype("int64")
        counts = window["annotator"].astype(object).value_counts()
        per_annotator = {str(k): int(v) for k, v in counts.items()}
    # Agreement per day: items by the local day of their latest counting answer, each item's answers
    # in the window pooled (so a day's number is about the items completed that day).
    trend: dict[date, Measure] = {}
    if len(agree_rows):
        last = agree_rows.groupby("item_id", sort=False)["created_at"].max()
        item_day = pd.Series(local_days(last, tz), index=last.index)
        row_day = item_day.reindex(agree_rows["item_id"].to_numpy()).to_numpy()
        for day, day64 in zip(days, day_index, strict=True):
            rows = agree_rows.loc[row_day == day64]
            if len(rows):
                trend[day] = agreement_stats.percent_agreement(rows)
    daily = [
        {
            "day": d,
            "labels": int(n),
            "agreement": trend[d].value if d in trend else None,
            "agreement_items": trend[d].n if d in trend else 0,
        }
        for d, n in zip(days, per_day.to_numpy(), strict=True)
    ]
    throughput = {
        "per_day": [{"day": d, "labels": int(n)} for d, n in zip(days, per_day.to_numpy(), strict=True)],
        "per_annotator": per_annotator,
    }
    return throughput, daily


def _drafts_section(
    spec: ProjectSpec,
    prod: pd.DataFrame,
    prod_ans: pd.DataFrame,
    drafts: dict[str, int],
    stats: Any,
    actions: drift_stats.DraftActions,
) -> dict[str, Any]:
    sec = _Section()
    shown = prod_ans["draft_shown"].to_numpy(dtype=bool)
    blind_flag = prod_ans["blind"].to_numpy(dtype=bool) if "blind" in prod_ans.columns else ~shown
    sec.set("shown", int(shown.sum()))
    sec.set("blind", int((blind_flag & ~shown).sum()))
    sec.set("without_draft", int((~shown & ~blind_flag).sum()))
    rates = actions.overall
    sec.measure("accept_rate", rates.accept)
    sec.measure("edit_rate", rates.edit)
    sec.measure("reject_rate", rates.reject)
    speed = drift_stats.draft_speedup(prod)
    sec.measure("median_seconds_drafted", speed.drafted)
    sec.measure("median_seconds_blind", speed.blind)
    sec.measure("speedup", speed.ratio)
    sec.set("drafts_made", drafts["drafts"])
    if stats is _MISSING or stats is None:
        sec.set("tokens", drafts["prompt_tokens"] + drafts["completion_tokens"])
        sec.na("cost_usd", "n/a: cost comes from bot.drafting.draft_stats, which is not available yet")
        sec.set("stats", None)
    else:
        prompt, completion = _first(stats, "prompt_tokens", default=0), _first(stats, "completion_tokens", default=0)
        sec.set("tokens", int(prompt) + int(completion))
        cost = _first(stats, "cost")
        if isinstance(cost, int | float) and math.isfinite(cost):
            sec.measure("cost_usd", Measure(value=float(cost), n=_first(stats, "drafts")))
        else:
            sec.na("cost_usd", "n/a: bot.drafting.draft_stats reported no cost")
        sec.set("stats", _jsonable(stats))
        sec.set("simulated", bool(_first(stats, "simulated", default=False)))
    return sec.out()


def _first(mapping: Any, *keys: str, default: Any = None) -> Any:
    if not isinstance(mapping, dict):
        return default
    for key in keys:
        if mapping.get(key) is not None:
            return mapping[key]
    return default


def _distribution(drift: drift_stats.LabelDrift, top: int = 12) -> dict[str, Any]:
    totals = {k: drift.blind.get(k, 0) + drift.drafted.get(k, 0) for k in {*drift.blind, *drift.drafted}}
    labels = sorted(totals, key=lambda k: (-totals[k], k))[:top]
    return {
        "labels": labels,
        "blind": [drift.blind.get(k, 0) for k in labels],
        "drafted": [drift.drafted.get(k, 0) for k in labels],
        "more": max(0, len(totals) - len(labels)),
    }


def _llm_section(task: TaskType, gold_rows: pd.DataFrame, prod: pd.DataFrame, score: Any) -> dict[str, Any]:
    sec = _Section()
    # One number over every gold item with a draft (quiz and hidden pooled; each item once).
    pooled = llm_stats.draft_gold_accuracy(gold_rows.assign(kind="honeypot"), score=score)["honeypot"]
    by_kind = llm_stats.draft_gold_accuracy(gold_rows, score=score)
    sec.measure("accuracy_vs_gold", pooled)
    consensus = llm_stats.majority_consensus(prod)
    sec.measure("accuracy_vs_consensus", llm_stats.draft_consensus_accuracy(prod, consensus))
    blind_prod = blind(prod)
    blind_consensus = llm_stats.majority_consensus(blind_prod)
    sec.measure("accuracy_vs_blind_consensus", llm_stats.draft_consensus_accuracy(blind_prod, blind_consensus))
    if task in (TaskType.CLASSIFICATION, TaskType.MULTILABEL):
        sec.measure("kappa_vs_humans", llm_stats.drafter_kappa(prod, consensus))
        sec.measure("kappa_vs_blind_humans", llm_stats.drafter_kappa(blind_prod, blind_consensus))
        sec.set("confusions", [c.to_dict() for c in llm_stats.drafter_confusions(prod, consensus, top=5)])
    else:
        sec.na("kappa_vs_humans", f"n/a: kappa needs categories; {task.value} answers are not")
        sec.na("kappa_vs_blind_humans", f"n/a: kappa needs categories; {task.value} answers are not")
        sec.set("confusions", [])
    sec.set("gold_by_kind", _measures(by_kind))
    sec.set(
        "note",
        "Consensus = strict majority of counting production answers; answers given with the draft shown "
        "are anchored on it, so the blind-only figures are the fairer ones.",
    )
    return sec.out()


def _suspensions(members: pd.DataFrame, since: datetime, until: datetime) -> list[dict[str, Any]]:
    if members.empty:
        return []
    at = members["suspended_at"]
    hit = (members["state"] == "suspended") & at.notna() & (at >= pd.Timestamp(since)) & (at < pd.Timestamp(until))
    rows = members.loc[hit.to_numpy(dtype=bool)].sort_values("suspended_at")
    return [
        {"user": str(r.user_id), "reason": r.state_reason or "no reason recorded", "at": r.suspended_at.to_pydatetime()}
        for r in rows.itertuples()
    ]


def _health_section(health: Any, drafts: dict[str, int]) -> dict[str, Any]:
    sec = _Section()
    sec.set("draft_errors", drafts["errors"])
    sec.set("drafts", drafts["drafts"])
    if health is _MISSING or health is None:
        sec.set("paused", None)
        sec.set("failures", None)
        sec.reasons["paused"] = "n/a: bot.drafting.drafter_health is not available yet"
        sec.reasons["failures"] = sec.reasons["paused"]
        sec.set("health", None)
    else:
        sec.set("paused", bool(health.get("paused")))
        sec.set("failures", int(health.get("error_total") or 0))
        sec.set("consecutive_failures", int(health.get("consecutive_failures") or 0))
        sec.set("paused_until", health.get("paused_until"))
        sec.set("last_error", health.get("last_error"))
        sec.set("health", _jsonable(health))
    return sec.out()


def _per_annotator(
    window: pd.DataFrame,
    members: pd.DataFrame,
    quiz: dict[str, Measure],
    hidden: dict[str, Measure],
    actions: drift_stats.DraftActions,
    anchor: drift_stats.Anchoring,
) -> list[dict[str, Any]]:
    if window.empty:
        return []
    who = window["annotator"]
    action = window["action"]
    is_answer = (~action.isin(("skip", "ambiguous"))).to_numpy()
    table = pd.DataFrame(
        {
            "labels": who.value_counts(),
            "skipped": who[(action == "skip").to_numpy()].value_counts(),
            "ambiguous": who[(action == "ambiguous").to_numpy()].value_counts(),
            "median_seconds": window["seconds"][is_answer].groupby(who[is_answer], observed=True).median(),
        }
    )
    table = table.loc[table["labels"].fillna(0).to_numpy() > 0]
    table.index = table.index.astype(object)
    table[["skipped", "ambiguous"]] = table[["skipped", "ambiguous"]].fillna(0)
    info = members.set_index("user_id") if len(members) else pd.DataFrame(columns=["tier", "state"])
    rows = []
    for user, r in table.sort_values("labels", ascending=False, kind="stable").iterrows():
        rates = actions.by_annotator.get(str(user))
        rows.append(
            {
                "user": str(user),
                "tier": info["tier"].get(user) if user in info.index else None,
                "state": info["state"].get(user) if user in info.index else None,
                "labels": int(r["labels"]),
                "skipped": int(r["skipped"]),
                "ambiguous": int(r["ambiguous"]),
                "median_seconds": r["median_seconds"],
                "accept_rate": rates.accept.value if rates is not None else None,
                "gold_quiz": quiz[user].value if user in quiz else None,
                "gold_quiz_n": quiz[user].n if user in quiz else 0,
                "gold_hidden": hidden[user].value if user in hidden else None,
                "gold_hidden_n": hidden[user].n if user in hidden else 0,
                "anchoring": anchor.by_annotator[user].value if user in anchor.by_annotator else None,
            }
        )
    return rows


def _alerts(
    spec: ProjectSpec,
    report: Report,
    hidden: dict[str, Measure],
    rubber: list[tuple[str, str]],
    anchor: drift_stats.Anchoring,
    label_drift: drift_stats.LabelDrift | None,
    change: drift_stats.AnchoringChange,
    suspended: set[str],
) -> list[Alert]:
    """Alerts, most urgent first. Members already suspended get no low-accuracy or rubber-stamp alert
    (their suspension is the news, and it is listed when it happened in the window)."""
    out: list[Alert] = []
    health = report.drafting_health
    if health.get("paused"):
        until = health.get("paused_until")
        when = f" until {_iso(until)}" if isinstance(until, datetime) else ""
        last = health.get("last_error")
        why = f" after {health.get('consecutive_failures') or 'repeated'} consecutive failures" + (
            f" (last error: {str(last)[:200]})" if last else ""
        )
        out.append(Alert("drafting_paused", f"Drafting is paused{when}{why}; annotators are labeling without drafts."))
    for s in report.suspensions:
        out.append(Alert("suspension", f"{s['user']} was suspended: {str(s['reason']).rstrip('.')}.", s["user"]))
    floor, min_checks = spec.honeypot.floor, spec.honeypot.min_checks
    for user, m in sorted(hidden.items()):
        if user not in suspended and m.value is not None and (m.n or 0) >= min_checks and m.value < floor:
            out.append(
                Alert(
                    "low_gold_accuracy",
                    f"{user} scores {m.value:.0%} on hidden checks (n={m.n}), below the {floor:.0%} floor.",
                    user,
                )
            )
    for user, why in rubber:
        if user in suspended:
            continue
        out.append(Alert("rubber_stamp", f"{user} may be rubber-stamping drafts: {why}.", user))
    for text in drift_stats.alerts(
        anchoring=anchor,
        drift=label_drift,
        change=change,
        anchoring_max=spec.report.anchoring_alert,
        js_max=spec.report.js_alert,
    ):
        kind = "drift" if text.startswith("Labels on drafted") else "anchoring"
        out.append(Alert(kind, text))
    return out


# --------------------------------------------------------------------------------------------------
# Who may see what
# --------------------------------------------------------------------------------------------------


def lead_projects(db: Database, user_id: str, team_id: str | None = None) -> list[str]:
    """Slugs of the (non-archived) projects `user_id` leads, in `team_id` when given."""
    with db.read() as s:
        return [p.slug for p in lead_projects_in(s, user_id, team_id)]


# --------------------------------------------------------------------------------------------------
# The daily summary
# --------------------------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    project: str
    day: date
    status: str  # posted | failed | skipped
    ts: str | None = None
    error: str | None = None


def _due_day(spec: ProjectSpec, now: datetime) -> date | None:
    """Today's local date if the report time has passed in the report's time zone, else None."""
    zone = ZoneInfo(spec.report.timezone)
    local = now.astimezone(zone)
    hour, minute = (int(x) for x in spec.report.time.split(":"))
    return local.date() if local.time() >= time(hour, minute) else None


def run_due_reports(deps: Any) -> list[RunOutcome]:
    """Post each project's daily summary once per local day, at or after its report time.

    A replica claims (project, local day) by inserting the ReportRun row; the unique constraint lets
    exactly one win, so several replicas (and a restart after the time passed: the catch-up) post once.
    A failed post marks the run failed with the error; it is not retried that day."""
    now = deps.clock.now()
    with deps.db.read() as s:
        candidates = [(p.id, p.slug, p.team_id, spec_of(p)) for p in list_projects(s)]
    outcomes: list[RunOutcome] = []
    for project_id, slug, team_id, spec in candidates:
        channel = spec.report.channel
        day = _due_day(spec, now) if channel else None
        if day is None:
            continue
        with deps.db.read() as s:
            existing = s.execute(
                select(ReportRun.id, ReportRun.status, ReportRun.created_at)
                .where(ReportRun.project_id == project_id, ReportRun.day == day)
            ).one_or_none()
        stale = existing is not None and existing[1] == "claimed" and existing[2] < now - STALE_CLAIM
        if existing is not None and not stale:
            continue
        client = deps.workspace_client(team_id)
        if client is None:
            log.warning("no Slack client for workspace %s: daily report of %s not posted", team_id, slug)
            continue
        if stale:
            # The replica that claimed it died before posting: take the claim over, exactly once.
            with deps.db.session() as s:
                taken = s.execute(
                    update(ReportRun)
                    .where(ReportRun.id == existing[0], ReportRun.status == "claimed",
                           ReportRun.created_at == existing[2])
                    .values(claimed_by=instance_name(), created_at=now)
                ).rowcount
            if taken != 1:
                continue
            log.warning("daily report %s for %s: taking over a claim left unfinished since %s", slug, day,
                        existing[2])
            outcomes.append(_post_daily(deps, client, existing[0], slug, channel, day, now))
            continue
        try:
            with deps.db.session() as s:
                run = ReportRun(
                    project_id=project_id, day=day, status="claimed", claimed_by=instance_name(),
                    channel=channel, created_at=now,
                )  # fmt: skip
                s.add(run)
                s.flush()
                run_id = run.id
        except IntegrityError:
            continue  # another replica claimed it
        outcomes.append(_post_daily(deps, client, run_id, slug, channel, day, now))
    return outcomes


def _post_daily(deps: Any, client: Any, run_id: int, slug: str, channel: str, day: date, now: datetime) -> RunOutcome:
    from bot.blocks.report import summary_blocks, summary_text
    from bot.services.reports.chart import report_chart

    ts: str | None = None
    try:
        since, until = report_window(now, DAILY_WINDOW_DAYS)
        report = build_report(deps.db, slug, since=since, until=until, now=now)
        data = report.to_json()
        title = f"Daily summary: {report.name}"
        response = client.chat_postMessage(
            channel=channel, blocks=summary_blocks(data, title=title), text=summary_text(data, title=title)
        )
        ts = response.get("ts")
        channel_id = response.get("channel") or channel
        error = None
        try:
            client.files_upload_v2(
                channel=channel_id,
                file=report_chart(data),
                filename=f"{slug}-{day.isoformat()}.png",
                title=f"{report.name}: last {DAILY_WINDOW_DAYS} days",
                thread_ts=ts,
            )
        except Exception as e:  # the summary is out; a missing chart is worth a note, not a failure
            log.warning("daily report %s: chart upload failed: %s", slug, e)
            error = f"chart upload failed: {e}"
        _finish_run(deps.db, run_id, "posted", ts=ts, error=error, now=deps.clock.now())
        return RunOutcome(slug, day, "posted", ts=ts, error=error)
    except Exception as e:  # a failed post marks the run failed; the scheduler keeps going
        log.exception("daily report %s for %s failed", slug, day)
        message = f"{type(e).__name__}: {e}"
        _finish_run(deps.db, run_id, "failed", ts=ts, error=message[:2000], now=deps.clock.now())
        return RunOutcome(slug, day, "failed", ts=ts, error=message)


def _finish_run(db: Database, run_id: int, status: str, *, ts: str | None, error: str | None, now: datetime) -> None:
    with db.session() as s:
        run = s.get(ReportRun, run_id)
        if run is None:
            return
        run.status = status
        run.ts = ts
        run.error = error
        if status == "posted":
            run.posted_at = now


# --------------------------------------------------------------------------------------------------
# On demand (slash command and CLI)
# --------------------------------------------------------------------------------------------------


def parse_report_args(text: str) -> tuple[str | None, int | None]:
    """`[project] [days]` in either order -> (slug or None, days or None); ReportError if malformed."""
    slug: str | None = None
    days: int | None = None
    for token in (text or "").split():
        if token.lstrip("-").isdigit():
            if days is not None:
                raise ReportError("Give the number of days once, e.g. `/label-report intents 7`.")
            days = int(token)
            if not 1 <= days <= MAX_DAYS:
                raise ReportError(f"Days must be between 1 and {MAX_DAYS}; got {days}.")
        elif slug is None:
            slug = token.strip().lower()
        else:
            raise ReportError("Usage: `/label-report [project] [days]`, e.g. `/label-report intents 7`.")
    return slug, days


def report_for(db: Database, slug: str, days: float, now: datetime) -> Report:
    """The report of the last `days` days up to `now`."""
    since, until = report_window(now, days)
    return build_report(db, slug, since=since, until=until, now=now)


@dataclass(frozen=True)
class Chosen:
    slug: str
    name: str


def choose_for_lead(db: Database, team_id: str | None, user_id: str, slug: str | None) -> Chosen | str:
    """The project `user_id` may see a report of, or the (mrkdwn) sentence to answer instead.

    With no slug: the one project they lead in the workspace. Projects of other workspaces are
    treated as unknown. Only leads see reports; others are told who the leads are."""
    from bot.blocks import report as ui

    with db.read() as s:
        projects = list_projects(s, team_id)
        if slug is not None:
            project = next((p for p in projects if p.slug == slug), None)
            if project is None:
                return ui.unknown_project(slug, [p.slug for p in projects])
            leads = _leads(s, project.id)
            if user_id not in leads:
                return ui.not_a_lead(project.name, leads)
            return Chosen(project.slug, project.name)
        mine = lead_projects_in(s, user_id, team_id)
    if not mine:
        return ui.leads_nothing()
    if len(mine) > 1:
        return ui.choose_project([p.slug for p in mine])
    return Chosen(mine[0].slug, mine[0].name)


def _leads(session: Any, project_id: int) -> list[str]:
    return list(
        session.scalars(
            select(Member.user_id)
            .where(Member.project_id == project_id, Member.tier == Tier.LEAD)
            .order_by(Member.user_id)
        )
    )


def lead_projects_in(session: Any, user_id: str, team_id: str | None = None) -> list[Project]:
    q = (
        select(Project)
        .join(Member, Member.project_id == Project.id)
        .where(Member.user_id == user_id, Member.tier == Tier.LEAD, Project.archived.is_(False))
        .order_by(Project.slug)
    )
    if team_id is not None:
        q = q.where(Project.team_id == team_id)
    return list(session.scalars(q))


def to_json_text(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2, allow_nan=False, ensure_ascii=False)
