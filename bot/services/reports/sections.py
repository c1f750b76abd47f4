"""The report's sections, each a pure function of frames and measures."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from bot.core.enums import TaskType
from bot.quality import agreement as agreement_stats
from bot.quality import drift as drift_stats
from bot.quality import llm as llm_stats
from bot.quality.common import (
    ANSWER_ACTIONS,
    Measure,
    blind,
    same_key,
)
from bot.services.reports.model import MAX_TREND_DAYS, Alert, Report, Section, iso_time, jsonable, measures_json
from bot.spec import ProjectSpec
from storage.frames import local_days


def week_counts(window: pd.DataFrame, a: datetime, b: datetime) -> tuple[int, int, int, int]:
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


def local_days_between(since: datetime, until: datetime, tz: str) -> list[date]:
    zone = ZoneInfo(tz)
    first = since.astimezone(zone).date()
    last = (until - timedelta(microseconds=1)).astimezone(zone).date()
    first = max(first, last - timedelta(days=MAX_TREND_DAYS - 1))
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def throughput_and_trend(
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


def drafts_section(
    spec: ProjectSpec,
    prod: pd.DataFrame,
    prod_ans: pd.DataFrame,
    drafts: dict[str, int],
    stats: Any,
    actions: drift_stats.DraftActions,
) -> dict[str, Any]:
    sec = Section()
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
    prompt, completion = _first(stats, "prompt_tokens", default=0), _first(stats, "completion_tokens", default=0)
    sec.set("tokens", int(prompt) + int(completion))
    cost = _first(stats, "cost")
    if isinstance(cost, int | float) and math.isfinite(cost):
        sec.measure("cost_usd", Measure(value=float(cost), n=_first(stats, "drafts")))
    else:
        sec.na("cost_usd", "n/a: no token cost was recorded")
    sec.set("stats", jsonable(stats))
    sec.set("simulated", bool(_first(stats, "simulated", default=False)))
    return sec.out()


def _first(mapping: Any, *keys: str, default: Any = None) -> Any:
    if not isinstance(mapping, dict):
        return default
    for key in keys:
        if mapping.get(key) is not None:
            return mapping[key]
    return default


def label_distribution(drift: drift_stats.LabelDrift, top: int = 12) -> dict[str, Any]:
    totals = {k: drift.blind.get(k, 0) + drift.drafted.get(k, 0) for k in {*drift.blind, *drift.drafted}}
    labels = sorted(totals, key=lambda k: (-totals[k], k))[:top]
    return {
        "labels": labels,
        "blind": [drift.blind.get(k, 0) for k in labels],
        "drafted": [drift.drafted.get(k, 0) for k in labels],
        "more": max(0, len(totals) - len(labels)),
    }


def llm_section(task: TaskType, gold_rows: pd.DataFrame, prod: pd.DataFrame, score: Any) -> dict[str, Any]:
    sec = Section()
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
    sec.set("gold_by_kind", measures_json(by_kind))
    sec.set(
        "note",
        "Consensus = strict majority of counting production answers; answers given with the draft shown "
        "are anchored on it, so the blind-only figures are the fairer ones.",
    )
    return sec.out()


def models_section(task: TaskType, gold_rows: pd.DataFrame, prod: pd.DataFrame, score: Any) -> dict[str, Any]:
    """"The model as an annotator" per model name (the project's LLM and each imported model): the
    `llm_section` figures on the answers whose item carried that model's draft, plus how often people
    accepted, edited or rejected it when it was shown."""
    if "draft_model" not in prod.columns:
        return {}
    names = sorted({str(m) for frame in (prod, gold_rows) for m in frame["draft_model"].dropna().unique()})
    out: dict[str, Any] = {}
    for name in names:
        p = prod.loc[(prod["draft_model"] == name).to_numpy(dtype=bool)]
        g = gold_rows.loc[(gold_rows["draft_model"] == name).to_numpy(dtype=bool)]
        sec = llm_section(task, g, p, score)
        rates = drift_stats.draft_action_rates(p).overall
        detail = sec["detail"]
        for key, m in (("accept_rate", rates.accept), ("edit_rate", rates.edit), ("reject_rate", rates.reject)):
            sec[key] = m.value
            detail[key] = m.to_dict()
        sec["shown"] = int(p["draft_shown"].to_numpy(dtype=bool).sum())
        sec["items"] = int(p["item_id"].nunique())
        out[name] = sec
    return out


def suspensions_section(members: pd.DataFrame, since: datetime, until: datetime) -> list[dict[str, Any]]:
    if members.empty:
        return []
    at = members["suspended_at"]
    hit = (members["state"] == "suspended") & at.notna() & (at >= pd.Timestamp(since)) & (at < pd.Timestamp(until))
    rows = members.loc[hit.to_numpy(dtype=bool)].sort_values("suspended_at")
    return [
        {"user": str(r.user_id), "reason": r.state_reason or "no reason recorded", "at": r.suspended_at.to_pydatetime()}
        for r in rows.itertuples()
    ]


def health_section(health: Any, drafts: dict[str, int]) -> dict[str, Any]:
    sec = Section()
    sec.set("draft_errors", drafts["errors"])
    sec.set("drafts", drafts["drafts"])
    sec.set("paused", bool(health.get("paused")))
    sec.set("failures", int(health.get("error_total") or 0))
    sec.set("consecutive_failures", int(health.get("consecutive_failures") or 0))
    sec.set("paused_until", health.get("paused_until"))
    sec.set("last_error", health.get("last_error"))
    sec.set("health", jsonable(health))
    return sec.out()


def per_annotator_section(
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


def alerts_section(
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
        when = f" until {iso_time(until)}" if isinstance(until, datetime) else ""
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
