"""Building a report: read the window's rows (one labels frame), run the pure statistics of `bot.quality`
on it, and assemble the sections."""

from __future__ import annotations

import functools
import itertools
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from bot.core.enums import TaskType
from bot.quality import agreement as agreement_stats
from bot.quality import drift as drift_stats
from bot.quality import scoring
from bot.quality.common import (
    Measure,
    answered,
    counting,
    latest_per_rater,
    of_kind,
)
from bot.services import drafting
from bot.services.projects import get_project, spec_of
from bot.services.reports.guidelines import agreement_by_guidelines, suggestions_section
from bot.services.reports.model import (
    CHANGE_DAYS,
    MAX_KAPPA_PAIRS,
    Report,
    ReportError,
    Section,
    measures_json,
    report_window,
)
from bot.services.reports.progress import activity_section, add_daily_series, progress_section
from bot.services.reports.sections import (
    alerts_section,
    drafts_section,
    health_section,
    label_distribution,
    llm_section,
    local_days_between,
    models_section,
    per_annotator_section,
    suspensions_section,
    throughput_and_trend,
    week_counts,
)
from bot.spec import ProjectSpec
from storage.db import Database
from storage.frames import anchoring_counts, draft_totals, labels_frame, members_frame
from storage.models import Project

# Building it
# --------------------------------------------------------------------------------------------------


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
        stats = drafting.draft_stats(s, project.id, since, until, spec)
        health = drafting.drafter_health(s, project.id, since, now=now)
        if isinstance(stats, dict):
            drafts = {
                "drafts": int(stats.get("drafts") or 0),
                "errors": int(stats.get("error_total") or 0),
                "prompt_tokens": int(stats.get("prompt_tokens") or 0),
                "completion_tokens": int(stats.get("completion_tokens") or 0),
            }
        else:
            drafts = draft_totals(s, project.id, since, until)
        progress = progress_section(s, project, spec, now)
        clock.lap("other_frames")
        by_version = agreement_by_guidelines(s, project, spec)
        suggestions = suggestions_section(s, project)
        clock.lap("guidelines")
    change = _anchoring_change(window, change_windows, change_counts)
    report = _assemble(project, spec, window, change, drafts, members, stats, health, since, until, now, clock)
    report.agreement_by_guidelines, report.guideline_suggestions = by_version, suggestions
    # What leads read first, and every count in one vocabulary (bot.services.reports.progress).
    tz = spec.report.timezone
    report.progress = progress
    report.activity = activity_section(window, local_days_between(since, until, tz), tz)
    add_daily_series(report.daily, window, tz)
    clock.lap("progress")
    return report


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
        k1, n1, k0, n0 = counts[(a, b)] if (a, b) in counts else week_counts(window, a, b)
        if n1 + n0 == 0:  # say which days had no answers (not "no answers with the draft shown")
            return Measure.na(f"no answers on drafted items from {a:%b %d} to {b:%b %d}")
        return drift_stats.anchoring_from_counts(k1, n1, k0, n0)

    before, now = (week(a, b) for a, b in weeks)
    if before.value is not None and now.value is not None:
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
    days = local_days_between(since, until, tz)

    # --- agreement
    agree = Section()
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
    agree.detail["per_label_alpha"] = measures_json(per_label)
    report.agreement = agree.out()
    cap = agreement_stats.accuracy_cap(percent)
    report.accuracy_cap = cap.to_dict()
    clock.lap("agreement")

    # --- throughput and the daily trend
    report.throughput, report.daily = throughput_and_trend(window, agree_rows, days, tz)
    clock.lap("throughput")

    # --- gold accuracy
    quiz = agreement_stats.gold_accuracy(gold_rows, "quiz", score=score)
    hidden = agreement_stats.gold_accuracy(gold_rows, "honeypot", score=score)
    combined = agreement_stats.gold_accuracy(gold_rows.assign(kind="gold"), "gold", score=score)
    report.gold = {
        "all": {k: m.value for k, m in combined.items()},
        "quiz": measures_json(quiz),
        "hidden": measures_json(hidden),
        "reasons": {} if combined else {"all": "n/a: no answers on gold items in this window"},
    }
    clock.lap("gold")

    # --- drafts
    actions = drift_stats.draft_action_rates(prod)
    report.drafts = drafts_section(spec, prod, prod_ans, drafts, stats, actions)
    clock.lap("drafts")

    # --- drift and anchoring
    drift_sec = Section()
    label_drift: drift_stats.LabelDrift | None = None
    if task in (TaskType.CLASSIFICATION, TaskType.MULTILABEL):
        # Blind controls against drafted answers on items that had a draft (an item the drafter failed
        # on is not a control: it may differ in kind).
        label_drift = drift_stats.label_drift(prod_ans.loc[prod_ans["draft_key"].notna().to_numpy()])
        for name in ("chi2", "p_value", "cramers_v", "js_distance"):
            drift_sec.measure(name, getattr(label_drift, name))
        drift_sec.set("dof", label_drift.dof)
        report.distribution = label_distribution(label_drift)
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
    report.llm = llm_section(task, gold_rows, prod, score)
    report.llm["by_model"] = models_section(task, gold_rows, prod, score)
    clock.lap("llm")

    # --- people
    report.suspensions = suspensions_section(members, since, until)
    report.drafting_health = health_section(health, drafts)
    hidden_flags = drift_stats.rubber_stamp_flags(
        of_kind(window, "production", "honeypot"),
        max_gold_accuracy=spec.honeypot.floor,
        min_gold=spec.honeypot.min_checks,
    )
    report.per_annotator = per_annotator_section(window, members, quiz, hidden, actions, anchor)

    # --- alerts, first in every rendering
    suspended = set(members.loc[(members["state"] == "suspended").to_numpy(), "user_id"]) if len(members) else set()
    report.alerts = alerts_section(spec, report, hidden, hidden_flags, anchor, label_drift, change, suspended)
    clock.lap("people_alerts")
    return report




def report_for(db: Database, slug: str, days: float, now: datetime) -> Report:
    """The report of the last `days` days up to `now`."""
    since, until = report_window(now, days)
    return build_report(db, slug, since=since, until=until, now=now)

