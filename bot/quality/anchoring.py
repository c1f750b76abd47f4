"""Anchoring on LLM drafts, split by whether the draft was right: how often a shown draft pulls an
answer to its value beyond what the same annotators give without seeing it.

The estimand (per arm of drafts, wrong or right) is the *normalised switch rate*

    k = (p_shown - p_blind) / (1 - p_blind)

where p is the share of answers equal to the draft's value: p_shown over non-blind rows whose draft was
shown, p_blind over rows of blind items (assignment blind flag set, draft stored but hidden). Under the
copying model "with the draft shown, take it with probability k, else answer as if blind", p_shown =
k + (1 - k) p_blind, so k is exactly the copy probability. Equivalently k = 1 - RR, with RR the ratio
of "answer differs from the draft" shown vs blind; strata (annotators by default) are pooled with the
Mantel-Haenszel risk-ratio estimator RR_MH = sum_s a_s n0_s / N_s / sum_s c_s n1_s / N_s (a, c: answers
different from the draft, shown and blind; n1, n0: answers; N = n1 + n0), which is consistent when
every annotator copies at the same rate and, unlike the crude ratio, is not biased by annotators who
do more (or fewer) blind items.

- `harmful`: drafts judged wrong. The headline: the share of would-be-independent answers that an
  erroneous draft converts to its (wrong) value.
- `helpful`: drafts judged right: the share of would-be errors a right draft fixes (or rubber-stamps).
- `raw`: the old figure, P(answer == draft | shown) - P(answer == draft | blind) over all drafts
  (Newcombe CI), with the control arm defined by the blind flag.

The 95% CI is an item-cluster percentile bootstrap (items resampled with replacement, every answer of a
resampled item kept, so the 3 correlated answers on one item count as one unit); seeded and vectorised
(one matrix product per block of replicates). The one-sided p-value of "no anchoring" uses the
bootstrap standard error of log RR_MH (the ratio is closer to normal on the log scale).

Rows used: answers (accept/edit/reject/manual with a value_key) that have a draft_key. Shown arm:
blind flag unset and draft_shown. Control arm: blind flag set and draft not shown. Non-blind rows
where no draft was shown (late-linked drafts, "no draft yet") belong to neither arm, nor do blind rows
that somehow showed the draft (counted in `excluded`).

Whether a draft was right (`draft_correct`: True / False / None) is the caller's judgement, by gold,
a decoy flag, an expert, or blind consensus. It must not be derived from the very answers being scored
on shown items (a consensus of anchored answers agrees with the draft, hiding wrong drafts), and it
should be equally good in both arms: judging blind items by their own blind consensus while judging
shown items by gold biases p_blind (answers that disagree with the draft are what made it "wrong").
Leave-one-out consensus, gold and decoys are safe.

Pure: numpy, pandas, scipy, statsmodels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint

from bot.quality.common import ANSWER_ACTIONS, Measure, answered, require_columns, same_key
from bot.quality.drift import anchoring_from_counts

__all__ = [
    "BLIND_COLUMN",
    "CORRECT_COLUMN",
    "AnchoringEffect",
    "SwitchRate",
    "anchoring_effect",
    "mh_switch_rate",
    "switch_rate",
]

#: Column holding the assignment's blind flag (True: the item is a blind control, its draft hidden).
BLIND_COLUMN = "blind"
#: Column holding the judgement of the item's draft: True (right), False (wrong), None (unknown).
CORRECT_COLUMN = "draft_correct"

#: Largest bootstrap count matrix built at once (replicates x items).
_BLOCK_CELLS = 2_000_000


def _wilson(k: int, n: int, what: str) -> Measure:
    if n == 0:
        return Measure.na(f"no {what}")
    lo, hi = proportion_confint(k, n, method="wilson")
    return Measure(value=k / n, n=n, ci_low=lo, ci_high=hi)


def mh_switch_rate(n_shown: Any, hit_shown: Any, n_blind: Any, hit_blind: Any) -> Any:
    """Mantel-Haenszel pooled switch rate 1 - RR_MH from per-stratum counts (array-likes, one entry
    per stratum): answers and answers equal to the draft, shown and blind. Strata lacking either arm
    carry no weight. NaN when undefined (no stratum with both arms, or no blind answer differing from
    the draft). Works on 2-d arrays too (strata on the last axis), returning one value per row."""
    n1 = np.asarray(n_shown, dtype=float)
    n0 = np.asarray(n_blind, dtype=float)
    a = n1 - np.asarray(hit_shown, dtype=float)  # shown answers that differ from the draft
    c = n0 - np.asarray(hit_blind, dtype=float)  # blind answers that differ from the draft
    total = n1 + n0
    with np.errstate(divide="ignore", invalid="ignore"):
        both = (n1 > 0) & (n0 > 0)
        num = np.where(both, a * n0 / np.where(total > 0, total, 1.0), 0.0).sum(axis=-1)
        den = np.where(both, c * n1 / np.where(total > 0, total, 1.0), 0.0).sum(axis=-1)
        rr = np.where(den > 0, num / den, np.nan)
    return 1.0 - rr  # a float for 1-d input, an array for 2-d


def _score_test(
    item: np.ndarray, stratum: np.ndarray, shown: np.ndarray, hit: np.ndarray, totals: np.ndarray, n_items: int
) -> tuple[float | None, float | None]:
    """Cluster-robust stratified score (Cochran-Mantel-Haenszel type) test of "no switching".

    U = sum_s (a1_s n0_s - a0_s n1_s) / N_s (a: answers equal to the draft) is a sum over rows of
    (hit - pbar_s) * w, w = n0_s / N_s on shown rows and -n1_s / N_s on blind rows, pbar_s the pooled
    hit share of the stratum (the null estimate, so sparse blind hits do not shrink the variance as a
    Wald test's would). Var(U) = sum of w^2 pbar (1 - pbar) over answers (their variance under the
    null) + the observed cross-products of residuals of answers on the same item (so the answers of
    one item may be correlated). Returns (z, one-sided p) or (None, None)."""
    n1, n0 = totals[:, 0], totals[:, 2]
    big_n = n1 + n0
    both = (n1 > 0) & (n0 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pbar = np.where(both, (totals[:, 1] + totals[:, 3]) / big_n, 0.0)
        w_shown = np.where(both, n0 / big_n, 0.0)
        w_blind = np.where(both, -n1 / big_n, 0.0)
    w = np.where(shown, w_shown[stratum], w_blind[stratum])
    p_row = pbar[stratum]
    contrib = (hit - p_row) * w
    per_item = np.bincount(item, weights=contrib, minlength=n_items)
    u = float(per_item.sum())
    # each answer's own variance under the null (w^2 p (1 - p)), plus the observed cross-products of
    # answers on the same item (their covariance); the squared residuals themselves are not used:
    # with rare hits they shrink exactly when U is large, which inflates a sandwich z-test's tail
    diagonal = float((w * w * p_row * (1.0 - p_row)).sum())
    cross = float((per_item * per_item).sum() - (contrib * contrib).sum())
    v = diagonal + cross if diagonal + cross > 0 else diagonal
    if not v > 0:
        return None, None
    z = u / np.sqrt(v)
    return float(z), float(norm.sf(z))


@dataclass(frozen=True)
class SwitchRate:
    """The normalised switch rate toward the draft for one arm of drafts (wrong or right ones).

    rate: 1 - RR_MH pooled over strata, item-cluster bootstrap 95% CI; n = answers in both arms.
    shown / blind: crude shares of answers equal to the draft (Wilson CIs).
    p_value: one-sided p of "no switching toward the draft": cluster-robust stratified score test
    (see `_score_test`; calibrated with few blind answers, unlike a Wald test), or None.
    z: its z statistic; se_log_rr: the bootstrap SE of log RR_MH (used for tests against a tolerance).
    by_stratum: the per-stratum (per-annotator) rate with its bootstrap CI.
    counts: per stratum n_shown, hit_shown, n_blind, hit_blind (what the per-annotator alarms test).
    items: distinct items (the bootstrap unit)."""

    rate: Measure
    shown: Measure
    blind: Measure
    p_value: float | None = None
    z: float | None = None
    se_log_rr: float | None = None
    items: int = 0
    by_stratum: dict[str, Measure] = field(default_factory=dict)
    counts: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate.to_dict(),
            "shown": self.shown.to_dict(),
            "blind": self.blind.to_dict(),
            "p_value": self.p_value,
            "z": self.z,
            "se_log_rr": self.se_log_rr,
            "items": self.items,
            "by_stratum": {k: v.to_dict() for k, v in self.by_stratum.items()},
        }


def _empty_counts() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype="int64") for c in ("n_shown", "hit_shown", "n_blind", "hit_blind")})


def switch_rate(
    item: Any,
    stratum: Any,
    shown: Any,
    hit: Any,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    what: str = "drafts",
) -> SwitchRate:
    """The switch rate from one row per answer (array-likes of equal length):

    item: the item (any hashable; the bootstrap resamples items), stratum: the annotator (or any
    stratum; pass a constant for the crude estimate), shown: True for the shown arm, False for the
    blind arm, hit: the answer equals the draft. Select the rows (e.g. wrong drafts only) first.
    `n_boot` replicates (0: no CI, no p-value) drawn with `seed`; `what` names the rows in n/a reasons."""
    item_codes, _ = pd.factorize(pd.Series(np.asarray(item, dtype=object)), sort=False)
    strata_codes, strata = pd.factorize(pd.Series(np.asarray(stratum, dtype=object)), sort=True)
    shown_arr = np.asarray(shown, dtype=bool)
    hit_arr = np.asarray(hit, dtype=bool)
    if not (len(item_codes) == len(strata_codes) == len(shown_arr) == len(hit_arr)):
        raise ValueError("item, stratum, shown and hit must have the same length")
    n_items, n_strata = (int(item_codes.max()) + 1 if len(item_codes) else 0), len(strata)
    n1, k1 = int(shown_arr.sum()), int((shown_arr & hit_arr).sum())
    n0, k0 = int((~shown_arr).sum()), int((~shown_arr & hit_arr).sum())
    shown_m = _wilson(k1, n1, f"shown answers on {what}")
    blind_m = _wilson(k0, n0, f"blind answers on {what}")
    if n1 == 0 or n0 == 0:
        side = "shown" if n1 == 0 else "blind"
        na = Measure.na(f"no {side} answers on {what}", n=n1 + n0)
        return SwitchRate(na, shown_m, blind_m, items=n_items, counts=_empty_counts())

    # per item x (stratum, statistic) counts: n_shown, hit_shown, n_blind, hit_blind
    col = strata_codes.astype(np.int64) * 4 + np.where(shown_arr, 0, 2)
    cells = np.bincount(item_codes * (4 * n_strata) + col, minlength=n_items * 4 * n_strata)
    cells += np.bincount(
        item_codes * (4 * n_strata) + col + 1, weights=hit_arr, minlength=n_items * 4 * n_strata
    ).astype(np.int64)
    per_item = cells.reshape(n_items, n_strata, 4).astype(np.float64)
    totals = per_item.sum(axis=0)  # strata x 4
    counts = pd.DataFrame(
        totals.astype(np.int64),
        index=pd.Index([str(s) for s in strata], name="stratum"),
        columns=["n_shown", "hit_shown", "n_blind", "hit_blind"],
    )
    point = float(mh_switch_rate(totals[:, 0], totals[:, 1], totals[:, 2], totals[:, 3]))
    per_stratum_point = mh_switch_rate(
        totals[:, 0, None], totals[:, 1, None], totals[:, 2, None], totals[:, 3, None]
    )  # one value per stratum
    n = n1 + n0
    if not np.isfinite(point):
        na = Measure.na(f"no annotator answered {what} both shown and blind (or every blind answer took the draft)")
        return SwitchRate(na, shown_m, blind_m, items=n_items, counts=counts)

    z, p_value = _score_test(item_codes, strata_codes, shown_arr, hit_arr, totals, n_items)
    ci: tuple[float | None, float | None] = (None, None)
    se = None
    strata_ci = np.full((n_strata, 2), np.nan)
    if n_boot > 0:
        flat = per_item.reshape(n_items, 4 * n_strata).astype(np.float32)
        rng = np.random.default_rng(seed)
        block = max(1, _BLOCK_CELLS // max(n_items, 1))
        reps: list[np.ndarray] = []
        for start in range(0, n_boot, block):
            b = min(block, n_boot - start)
            draws = rng.integers(0, n_items, size=(b, n_items))
            weights = np.bincount((np.arange(b)[:, None] * n_items + draws).ravel(), minlength=b * n_items).reshape(
                b, n_items
            )
            reps.append((weights.astype(np.float32) @ flat).astype(np.float64).reshape(b, n_strata, 4))
        boot = np.concatenate(reps, axis=0)  # n_boot x strata x 4
        rates = mh_switch_rate(boot[..., 0], boot[..., 1], boot[..., 2], boot[..., 3])
        finite = rates[np.isfinite(rates) & (rates < 1.0)]
        if finite.size >= 2:
            ci = (float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975)))
            se = float(np.std(np.log1p(-finite), ddof=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            one = mh_switch_rate(boot[..., 0, None], boot[..., 1, None], boot[..., 2, None], boot[..., 3, None])
        for s in range(n_strata):
            vals = one[:, s][np.isfinite(one[:, s])]
            if vals.size >= 2:
                strata_ci[s] = np.quantile(vals, [0.025, 0.975])

    by_stratum: dict[str, Measure] = {}
    for s, name in enumerate(strata):
        ns1, _, ns0, _ = totals[s]
        if ns1 == 0 or ns0 == 0:
            by_stratum[str(name)] = Measure.na(f"needs both shown and blind answers on {what}", n=int(ns1 + ns0))
            continue
        by_stratum[str(name)] = Measure.of(
            per_stratum_point[s],
            reason="every blind answer took the draft",
            n=int(ns1 + ns0),
            ci_low=strata_ci[s, 0],
            ci_high=strata_ci[s, 1],
        )
    rate = Measure(
        value=point,
        n=n,
        ci_low=ci[0],
        ci_high=ci[1],
        note=f"Mantel-Haenszel over {n_strata} strata; item-cluster bootstrap over {n_items} items",
    )
    return SwitchRate(
        rate=rate,
        shown=shown_m,
        blind=blind_m,
        p_value=p_value,
        z=z,
        se_log_rr=se,
        items=n_items,
        by_stratum=by_stratum,
        counts=counts,
    )


@dataclass(frozen=True)
class AnchoringEffect:
    """Anchoring split by draft correctness (see the module docstring).

    harmful: switch rate toward drafts judged wrong (the headline; report `harmful.rate`).
    helpful: switch rate toward drafts judged right (would-be errors fixed by a right draft).
    raw: the old, diluted figure P(= draft | shown) - P(= draft | blind) over all drafts, blind flag
    defining the control arm (expose as `drift.anchoring_raw`).
    excluded: answer rows with a draft that belong to neither arm (non-blind without the draft shown,
    or blind with the draft shown); unjudged: rows in an arm whose draft_correct is unknown."""

    harmful: SwitchRate
    helpful: SwitchRate
    raw: Measure
    excluded: int = 0
    unjudged: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "harmful": self.harmful.to_dict(),
            "helpful": self.helpful.to_dict(),
            "raw": self.raw.to_dict(),
            "excluded": self.excluded,
            "unjudged": self.unjudged,
        }


def _flag(series: pd.Series) -> np.ndarray:
    """True / False / missing -> 1 / 0 / -1 (accepts bool, boolean, object and category dtypes)."""
    values = series.astype(object)
    missing = values.isna().to_numpy(dtype=bool)
    truth = values.where(~missing, False).astype(bool).to_numpy(dtype=bool)
    out = np.where(truth, 1, 0).astype(np.int8)
    out[missing] = -1
    return out


def anchoring_effect(
    frame: pd.DataFrame,
    *,
    blind_column: str = BLIND_COLUMN,
    correct_column: str = CORRECT_COLUMN,
    stratify: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
) -> AnchoringEffect:
    """Anchoring on wrong drafts (headline), on right drafts, and the old raw difference.

    `frame`: a labels frame plus a `blind_column` (assignment blind flag) and a `correct_column`
    (True / False / None: was the item's draft right?). Choose the rows first (production rows, a
    window). Strata are annotators (`stratify=False`: one stratum, the crude ratio). Seeded: the same
    frame and seed give the same CI. Typical cost: about 0.1 s for 60,000 rows with 1,000 replicates."""
    require_columns(frame, ("item_id", "annotator", "action", "draft_shown", "draft_key", blind_column, correct_column))
    rows = answered(frame)
    rows = rows.loc[(rows["action"].isin(ANSWER_ACTIONS) & rows["draft_key"].notna()).to_numpy(dtype=bool)]
    blind_flag = _flag(rows[blind_column]) == 1
    shown_flag = rows["draft_shown"].fillna(False).to_numpy(dtype=bool)
    shown_arm = ~blind_flag & shown_flag
    blind_arm = blind_flag & ~shown_flag
    in_arm = shown_arm | blind_arm
    hit = same_key(rows["value_key"], rows["draft_key"])
    correct = _flag(rows[correct_column])
    item = rows["item_id"].to_numpy()
    who = rows["annotator"].astype(object).to_numpy() if stratify else np.zeros(len(rows), dtype=np.int64)

    def arm(mask: np.ndarray, what: str) -> SwitchRate:
        use = in_arm & mask
        return switch_rate(item[use], who[use], shown_arm[use], hit[use], n_boot=n_boot, seed=seed, what=what)

    raw = anchoring_from_counts(
        int((hit & shown_arm).sum()), int(shown_arm.sum()), int((hit & blind_arm).sum()), int(blind_arm.sum())
    )
    return AnchoringEffect(
        harmful=arm(correct == 0, "drafts judged wrong"),
        helpful=arm(correct == 1, "drafts judged right"),
        raw=raw,
        excluded=int((~in_arm).sum()),
        unjudged=int((in_arm & (correct < 0)).sum()),
    )
