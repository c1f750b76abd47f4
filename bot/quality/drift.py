"""How drafts change what annotators do: action rates, speed, rubber-stamping, label drift between
drafted and blind items, anchoring on the draft, its change week on week, and alert sentences.

Math from libraries: `scipy.stats.chi2_contingency` (chi-square, without Yates' correction),
`scipy.stats.contingency.association` (Cramér's V), `scipy.spatial.distance.jensenshannon` (base 2,
so the distance is within [0, 1]), `statsmodels.stats.proportion.proportion_confint` (Wilson intervals
for rates) and `confint_proportions_2indep(method="newcomb")` (Newcombe's hybrid score interval for a
difference of two proportions, used for anchoring). Everything else is pandas group-bys.

Input: a labels frame (see `common`). Rows that carry no answer (skip/ambiguous) are ignored here;
choose production rows, counting rows etc. before calling. Undefined results are `Measure.na`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency
from scipy.stats.contingency import association
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from bot.quality.common import (
    ANSWER_ACTIONS,
    Measure,
    answered,
    label_names,
    of_kind,
    require_columns,
    same_key,
)

__all__ = [
    "ActionRates",
    "Anchoring",
    "AnchoringChange",
    "DraftActions",
    "LabelDrift",
    "SpeedUp",
    "alerts",
    "anchoring",
    "anchoring_change",
    "draft_action_rates",
    "draft_speedup",
    "label_drift",
    "rubber_stamp_flags",
]


def _rate(count: int, total: int, what: str) -> Measure:
    if total == 0:
        return Measure.na(f"no {what}")
    lo, hi = proportion_confint(count, total, method="wilson")
    return Measure(value=count / total, n=total, ci_low=lo, ci_high=hi)


def _answer_rows(frame: pd.DataFrame) -> pd.DataFrame:
    require_columns(frame, ("action", "draft_shown"))
    return frame.loc[frame["action"].isin(ANSWER_ACTIONS).to_numpy(dtype=bool)]


def _shown(rows: pd.DataFrame) -> np.ndarray:
    return rows["draft_shown"].fillna(False).to_numpy(dtype=bool)


# --- what annotators do with drafts -------------------------------------------------------------------


@dataclass(frozen=True)
class ActionRates:
    """Shares of answers given with the draft shown: accepted, edited, rejected, or answered by hand.
    Wilson 95% CIs; `n` answers."""

    n: int
    accept: Measure
    edit: Measure
    reject: Measure
    manual: Measure

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            **{a: getattr(self, a).to_dict() for a in ("accept", "edit", "reject", "manual")},
        }


@dataclass(frozen=True)
class DraftActions:
    overall: ActionRates
    by_annotator: dict[str, ActionRates] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_dict(),
            "by_annotator": {k: v.to_dict() for k, v in self.by_annotator.items()},
        }


def _action_rates(counts: pd.Series) -> ActionRates:
    total = int(counts.sum())
    what = "answers with a draft shown"
    return ActionRates(
        n=total,
        **{a: _rate(int(counts.get(a, 0)), total, what) for a in ("accept", "edit", "reject", "manual")},
    )


def draft_action_rates(frame: pd.DataFrame) -> DraftActions:
    """Accept / edit / reject (and manual) rates among answers given with the draft shown, overall and
    per annotator. Skips and "ambiguous" are not answers and are left out of the denominator."""
    require_columns(frame, ("annotator",))
    rows = _answer_rows(frame)
    rows = rows.loc[_shown(rows)]
    table = (
        pd.DataFrame(
            {"annotator": rows["annotator"].to_numpy(dtype=object), "action": rows["action"].to_numpy(dtype=object)}
        )
        .groupby(["annotator", "action"])
        .size()
        .unstack("action", fill_value=0)
    )
    overall = table.sum(axis=0) if not table.empty else pd.Series(dtype="int64")
    return DraftActions(
        overall=_action_rates(overall),
        by_annotator={str(a): _action_rates(table.loc[a]) for a in table.index},
    )


@dataclass(frozen=True)
class SpeedUp:
    """Median seconds per answer with and without a draft; ratio = blind / drafted (> 1: drafts help)."""

    drafted: Measure
    blind: Measure
    ratio: Measure

    def to_dict(self) -> dict[str, Any]:
        return {"drafted": self.drafted.to_dict(), "blind": self.blind.to_dict(), "ratio": self.ratio.to_dict()}


def draft_speedup(frame: pd.DataFrame) -> SpeedUp:
    """Median `seconds` on drafted vs blind answers and the speed-up ratio blind / drafted."""
    require_columns(frame, ("seconds",))
    rows = _answer_rows(frame)
    rows = rows.loc[rows["seconds"].notna().to_numpy(dtype=bool)]
    shown = _shown(rows)
    secs = rows["seconds"].to_numpy(dtype=float)
    with_draft, without = secs[shown], secs[~shown]
    drafted = (
        Measure(value=float(np.median(with_draft)), n=with_draft.size)
        if with_draft.size
        else Measure.na("no answers with a draft shown")
    )
    blind_m = (
        Measure(value=float(np.median(without)), n=without.size) if without.size else Measure.na("no blind answers")
    )
    if not (drafted.ok and blind_m.ok):
        ratio = Measure.na("needs both drafted and blind answers")
    elif drafted.value == 0:
        ratio = Measure.na("median time with a draft is 0 seconds")
    else:
        assert blind_m.value is not None and drafted.value is not None
        ratio = Measure(value=blind_m.value / drafted.value, n=with_draft.size + without.size)
    return SpeedUp(drafted=drafted, blind=blind_m, ratio=ratio)


def rubber_stamp_flags(
    frame: pd.DataFrame,
    *,
    min_accept_rate: float = 0.9,
    speed_factor: float = 0.5,
    max_gold_accuracy: float = 0.8,
    min_drafted: int = 20,
    min_gold: int = 5,
    gold_kinds: tuple[str, ...] = ("honeypot",),
) -> list[tuple[str, str]]:
    """Annotators who seem to accept drafts without reading them: (annotator, reason) pairs.

    Flagged when all hold: at least `min_drafted` answers with a draft shown; accept rate >=
    `min_accept_rate`; median seconds per accept < `speed_factor` x the peer median (the median of the
    other annotators' median accept times); at least `min_gold` answers on gold items of `gold_kinds`
    with exact-match accuracy < `max_gold_accuracy`. Without enough gold nobody is flagged."""
    require_columns(frame, ("annotator", "seconds", "kind", "gold_key", "value_key"))
    rows = _answer_rows(frame)
    shown_rows = rows.loc[_shown(rows)]
    if shown_rows.empty:
        return []
    who = shown_rows["annotator"]
    is_accept = (shown_rows["action"] == "accept").to_numpy(dtype=bool)
    per = pd.DataFrame({"n": who.value_counts(), "accepts": who[is_accept].value_counts()}).fillna(0)
    accept_secs = shown_rows.loc[is_accept & shown_rows["seconds"].notna().to_numpy(dtype=bool)]
    medians = accept_secs.groupby(accept_secs["annotator"])["seconds"].median()
    gold_rows = of_kind(answered(frame), *gold_kinds)
    gold_rows = gold_rows.loc[gold_rows["gold_key"].notna().to_numpy(dtype=bool)]
    hit = pd.Series(same_key(gold_rows["value_key"], gold_rows["gold_key"]), index=gold_rows.index)
    gold = hit.groupby(gold_rows["annotator"]).agg(["mean", "count"])
    flags: list[tuple[str, str]] = []
    for annotator, (n, accepts) in per.iterrows():
        if n < min_drafted or accepts / n < min_accept_rate or annotator not in medians.index:
            continue
        peers = medians.drop(annotator)
        if peers.empty:
            continue
        own, peer = float(medians[annotator]), float(peers.median())
        if not own < speed_factor * peer:
            continue
        if annotator not in gold.index or gold.loc[annotator, "count"] < min_gold:
            continue
        accuracy, n_gold = float(gold.loc[annotator, "mean"]), int(gold.loc[annotator, "count"])
        if accuracy >= max_gold_accuracy:
            continue
        flags.append(
            (
                str(annotator),
                f"accepts {accepts / n:.0%} of drafts (n={int(n)}) in a median {own:.1f}s against "
                f"{peer:.1f}s for peers, and scores {accuracy:.0%} on hidden checks (n={n_gold})",
            )
        )
    return flags


# --- label drift ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelDrift:
    """Label distribution on blind vs drafted answers: chi-square test (no continuity correction),
    Cramér's V, Jensen-Shannon distance (base 2) and the counts per label on each side."""

    chi2: Measure
    p_value: Measure
    dof: int | None
    cramers_v: Measure
    js_distance: Measure
    blind: dict[str, int] = field(default_factory=dict)
    drafted: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chi2": self.chi2.to_dict(),
            "p_value": self.p_value.to_dict(),
            "dof": self.dof,
            "cramers_v": self.cramers_v.to_dict(),
            "js_distance": self.js_distance.to_dict(),
            "blind": dict(self.blind),
            "drafted": dict(self.drafted),
        }


def _na_drift(reason: str, blind_counts: dict[str, int], drafted_counts: dict[str, int]) -> LabelDrift:
    na = Measure.na(reason)
    return LabelDrift(na, na, None, na, na, blind_counts, drafted_counts)


def label_drift(frame: pd.DataFrame) -> LabelDrift:
    """Does showing a draft shift which labels are given? Categories are decoded label names."""
    rows = _answer_rows(answered(frame))
    labels = label_names(rows["value_key"])
    side = np.where(_shown(rows), "drafted", "blind")
    table = pd.crosstab(pd.Series(side, index=rows.index, name="side"), labels, dropna=True)
    table = table.reindex(index=["blind", "drafted"], fill_value=0)
    table = table.loc[:, table.sum(axis=0) > 0]
    blind_counts = {str(k): int(v) for k, v in table.loc["blind"].items() if v}
    drafted_counts = {str(k): int(v) for k, v in table.loc["drafted"].items() if v}
    if not blind_counts:
        return _na_drift("no blind answers", blind_counts, drafted_counts)
    if not drafted_counts:
        return _na_drift("no answers with a draft shown", blind_counts, drafted_counts)
    if table.shape[1] < 2:
        return _na_drift("only one category observed", blind_counts, drafted_counts)
    observed = table.to_numpy(dtype=np.int64)
    n = int(observed.sum())
    res = chi2_contingency(observed, correction=False)
    v = association(observed, method="cramer", correction=False)
    js = jensenshannon(observed[0], observed[1], base=2)
    return LabelDrift(
        chi2=Measure.of(res.statistic, n=n),
        p_value=Measure.of(res.pvalue, n=n),
        dof=int(res.dof),
        cramers_v=Measure.of(v, n=n),
        js_distance=Measure.of(js, n=n),
        blind=blind_counts,
        drafted=drafted_counts,
    )


# --- anchoring -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchoring:
    """overall = P(answer == draft | shown) - P(answer == draft | blind), Newcombe 95% CI, n = answers
    on both sides; `shown` and `blind` are the two proportions (Wilson CIs)."""

    overall: Measure
    shown: Measure
    blind: Measure
    by_annotator: dict[str, Measure] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_dict(),
            "shown": self.shown.to_dict(),
            "blind": self.blind.to_dict(),
            "by_annotator": {k: v.to_dict() for k, v in self.by_annotator.items()},
        }


def anchoring_from_counts(k1: int, n1: int, k0: int, n0: int) -> Measure:
    """Anchoring from counts: k1 of n1 answers matched the shown draft, k0 of n0 matched the hidden
    one; the difference of the two proportions with a Newcombe 95% interval."""
    if n1 == 0:
        return Measure.na("no answers with the draft shown", n=n0)
    if n0 == 0:
        return Measure.na("no blind answers with a stored draft", n=n1)
    lo, hi = confint_proportions_2indep(k1, n1, k0, n0, method="newcomb", compare="diff")
    return Measure(value=k1 / n1 - k0 / n0, n=n1 + n0, ci_low=lo, ci_high=hi)


def _anchor_rows(frame: pd.DataFrame) -> pd.DataFrame:
    require_columns(frame, ("draft_key",))
    rows = _answer_rows(answered(frame))
    return rows.loc[rows["draft_key"].notna().to_numpy(dtype=bool)]


def anchoring(frame: pd.DataFrame) -> Anchoring:
    """How much more often answers equal the stored draft when it is shown than when it is not.

    Uses answered rows with a draft_key (drafts are stored for blind items too); equality is on the
    canonical JSON keys. Per annotator the same difference, n/a where one side is empty."""
    require_columns(frame, ("annotator",))
    rows = _anchor_rows(frame)
    hit = same_key(rows["value_key"], rows["draft_key"])
    shown = _shown(rows)
    k1, n1 = int(hit[shown].sum()), int(shown.sum())
    k0, n0 = int(hit[~shown].sum()), int((~shown).sum())
    per = (
        pd.DataFrame({"annotator": rows["annotator"].to_numpy(), "shown": shown, "hit": hit})
        .groupby(["annotator", "shown"])["hit"]
        .agg(["sum", "count"])
        .unstack("shown", fill_value=0)
    )
    by_annotator: dict[str, Measure] = {}
    for annotator, row in per.iterrows():
        by_annotator[str(annotator)] = anchoring_from_counts(
            int(row.get(("sum", True), 0)),
            int(row.get(("count", True), 0)),
            int(row.get(("sum", False), 0)),
            int(row.get(("count", False), 0)),
        )
    return Anchoring(
        overall=anchoring_from_counts(k1, n1, k0, n0),
        shown=_rate(k1, n1, "answers with the draft shown"),
        blind=_rate(k0, n0, "blind answers with a stored draft"),
        by_annotator=by_annotator,
    )


@dataclass(frozen=True)
class AnchoringChange:
    """Anchoring in [now - days, now) vs [now - 2 days, now - days); delta = current - previous."""

    current: Measure
    previous: Measure
    delta: Measure
    days: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "current": self.current.to_dict(),
            "previous": self.previous.to_dict(),
            "delta": self.delta.to_dict(),
            "days": self.days,
        }


def anchoring_change(frame: pd.DataFrame, now: datetime, *, days: int = 7) -> AnchoringChange:
    """Overall anchoring this window and the one before it (`days` each; a naive `now` is taken as UTC)."""
    require_columns(frame, ("created_at",))
    end = pd.Timestamp(now)
    if end.tzinfo is None:
        end = end.tz_localize("UTC")
    span = timedelta(days=days)
    created = pd.to_datetime(frame["created_at"], utc=True)
    current_rows = frame.loc[((created >= end - span) & (created < end)).to_numpy(dtype=bool)]
    previous_rows = frame.loc[((created >= end - 2 * span) & (created < end - span)).to_numpy(dtype=bool)]
    current = anchoring(current_rows).overall
    previous = anchoring(previous_rows).overall
    if current.value is not None and previous.value is not None:
        delta = Measure(value=current.value - previous.value)
    else:
        delta = Measure.na(f"needs anchoring in both {days}-day windows")
    return AnchoringChange(current=current, previous=previous, delta=delta, days=days)


# --- alerts --------------------------------------------------------------------------------------------


def _interval(m: Measure) -> str:
    parts = []
    if m.ci_low is not None and m.ci_high is not None:
        parts.append(f"95% CI {m.ci_low:+.2f} to {m.ci_high:+.2f}")
    if m.n is not None:
        parts.append(f"n={m.n}")
    return ", ".join(parts)


def alerts(
    *,
    anchoring: Anchoring | None = None,
    drift: LabelDrift | None = None,
    change: AnchoringChange | None = None,
    anchoring_max: float = 0.15,
    js_max: float = 0.1,
    p_max: float = 0.01,
    rise_max: float = 0.1,
) -> list[str]:
    """Plain sentences for a lead, one per crossed threshold:

    - overall anchoring (from `anchoring`, else `change.current`) above `anchoring_max`;
    - an annotator whose anchoring CI lies wholly above `anchoring_max` (so small samples don't alarm);
    - anchoring up by more than `rise_max` on the previous window;
    - label drift with JS distance above `js_max` and chi-square p below `p_max`."""
    out: list[str] = []
    overall = anchoring.overall if anchoring is not None else (change.current if change is not None else None)
    if overall is not None and overall.value is not None and overall.value > anchoring_max:
        out.append(
            f"Anchoring is {overall.value:+.2f}, above {anchoring_max:.2f}: answers match the draft "
            f"{overall.value * 100:.0f} percentage points more often when it is shown than when it is "
            f"hidden ({_interval(overall)})."
        )
    if anchoring is not None:
        for annotator, m in anchoring.by_annotator.items():
            if m.value is not None and m.ci_low is not None and m.ci_low > anchoring_max:
                out.append(f"Anchoring for {annotator} is {m.value:+.2f}, above {anchoring_max:.2f} ({_interval(m)}).")
    if change is not None and change.delta.value is not None and change.delta.value > rise_max:
        out.append(
            f"Anchoring rose from {change.previous.value:+.2f} to {change.current.value:+.2f} "
            f"against the previous {change.days} days ({change.delta.value:+.2f})."
        )
    if drift is not None and drift.js_distance.ok and drift.p_value.ok:
        js, p = drift.js_distance.value, drift.p_value.value
        if js is not None and p is not None and js > js_max and p < p_max:
            v = drift.cramers_v.value
            out.append(
                f"Labels on drafted items drift from blind items: Jensen-Shannon distance {js:.2f} "
                f"(above {js_max:.2f}), chi-square p = {p:.2g}, Cramér's V {v:.2f}."
            )
    return out
