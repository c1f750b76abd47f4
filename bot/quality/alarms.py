"""Alarms with known false-alarm rates: each returns an `Alarm` (fired or not, a p-value or statistic,
the threshold it was held to, and a plain-English sentence).

Error-rate bookkeeping. A report that re-tests every day re-rolls the dice every day: at alpha = 0.05
per look, 30 daily looks fire on pure noise far more than 5% of the time. Every alarm here therefore
takes `alpha` (the false-alarm budget for a whole monitoring period, e.g. 30 days) and `looks` (how
many times the alarm is evaluated in that period) and tests each look at alpha / looks (Bonferroni
over looks: valid whatever the overlap between windows, conservative when windows overlap). Give each
alarm its own share of the period budget (the defaults sum to 0.045 over the three alarms on the
anchoring/drift page: 0.02 + 0.015 + 0.01), so "some alarm fired in a quiet period" stays below 5%.

- `anchoring_alarm`: one-sided test that drafts judged wrong pull answers to their value
  (normalised switch rate > tolerance), from `anchoring.SwitchRate`.
- `annotator_anchoring_alarms`: the same per annotator, one-sided Fisher exact tests on each
  annotator's 2x2 table (answer = wrong draft, shown vs blind), Benjamini-Hochberg across annotators.
- `label_shift_alarm` / `label_shift_test`: permutation test that labels on drafted items are
  distributed differently from blind items. The blind flag is re-randomised across *items* (the unit
  that was randomised; an item's answers move together, so their correlation is respected) and the
  statistic is stratified by annotator (differences are taken within annotator, Mantel-Haenszel
  weighted), so annotators who do more blind work cannot fake a shift. Rare labels are pooled; for
  multilabel answers each label's presence is tested on its own and the labels are combined by BH.
- `rubber_stamp_check`: a CUSUM of log-likelihood ratios on hidden decoy checks (a gold item shown
  with a deliberately wrong draft): accepting a decoy is evidence of rubber-stamping, rejecting one
  is evidence against.

Pure: numpy, pandas, scipy, statsmodels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact
from statsmodels.stats.multitest import multipletests

from bot.quality.anchoring import BLIND_COLUMN, SwitchRate
from bot.quality.common import ANSWER_ACTIONS, answered, label_names, require_columns

__all__ = [
    "Alarm",
    "ShiftTest",
    "anchoring_alarm",
    "annotator_anchoring_alarms",
    "benjamini_hochberg",
    "label_shift_alarm",
    "label_shift_test",
    "rubber_stamp_check",
]


@dataclass(frozen=True)
class Alarm:
    """One alarm. `fired`; `p_value` (None when the alarm is a statistic crossing a threshold);
    `statistic` (z, CUSUM value, permutation statistic: the function says which); `threshold` (the
    per-look alpha, or the CUSUM limit); `meaning`: one plain sentence for a lead; `details`: JSON-safe
    extras (per-annotator p-values, counts)."""

    name: str
    fired: bool
    p_value: float | None
    statistic: float | None
    threshold: float
    meaning: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fired": self.fired,
            "p_value": self.p_value,
            "statistic": self.statistic,
            "threshold": self.threshold,
            "meaning": self.meaning,
            "details": self.details,
        }


def _per_look(alpha: float, looks: int) -> float:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be within (0, 1), got {alpha}")
    if looks < 1:
        raise ValueError(f"looks must be at least 1, got {looks}")
    return alpha / looks


def benjamini_hochberg(p_values: Sequence[float], q: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg step-up at false discovery rate `q`: (rejected, adjusted p-values), in the
    input order (`statsmodels.stats.multitest.multipletests(method="fdr_bh")`)."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return np.zeros(0, dtype=bool), np.zeros(0)
    reject, adjusted, _, _ = multipletests(p, alpha=q, method="fdr_bh")
    return reject.astype(bool), adjusted


# --- anchoring -----------------------------------------------------------------------------------------


def anchoring_alarm(
    harmful: SwitchRate,
    *,
    alpha: float = 0.02,
    looks: int = 1,
    tolerance: float = 0.0,
) -> Alarm:
    """Fires when the switch rate toward wrong drafts is significantly above `tolerance`.

    tolerance 0 (default): the cluster-robust stratified score test stored in `harmful` (pass
    `AnchoringEffect.harmful`). tolerance > 0 (e.g. 0.05, so a very large window does not alarm on a
    trivial amount of copying): one-sided Wald test on the log scale, z = (log(1 - tolerance) -
    log RR_MH) / SE with the item-bootstrap SE (needs n_boot > 0; less reliable with few blind answers).
    Fires when p < alpha / looks."""
    threshold = _per_look(alpha, looks)
    m = harmful.rate
    if tolerance == 0.0:
        z, p = harmful.z, harmful.p_value
    elif harmful.se_log_rr is not None and harmful.se_log_rr > 0 and m.value is not None and m.value < 1.0:
        z = (math.log1p(-tolerance) - math.log1p(-m.value)) / harmful.se_log_rr
        p = float(0.5 * math.erfc(z / math.sqrt(2.0)))
    else:
        z = p = None
    if m.value is None or z is None or p is None:
        reason = m.reason or "no variance estimate"
        return Alarm("anchoring", False, None, None, threshold, f"No anchoring test: {reason}.")
    fired = p < threshold
    ci = f"95% CI {m.ci_low:.0%} to {m.ci_high:.0%}" if m.ci_low is not None and m.ci_high is not None else "no CI"
    if fired:
        meaning = (
            f"Annotators take wrong drafts: {m.value:.0%} of answers that would have differed from a wrong "
            f"draft follow it when it is shown ({ci}; p = {p:.2g} < {threshold:.2g})."
        )
    else:
        meaning = (
            f"No evidence that wrong drafts pull answers beyond {tolerance:.0%}: switch rate {m.value:.0%} "
            f"({ci}; p = {p:.2g}, threshold {threshold:.2g})."
        )
    return Alarm("anchoring", fired, p, float(z), threshold, meaning, {"rate": m.to_dict(), "tolerance": tolerance})


def annotator_anchoring_alarms(harmful: SwitchRate, *, alpha: float = 0.015, looks: int = 1) -> Alarm:
    """Per annotator: one-sided Fisher exact test of "answers equal the wrong draft more often when it
    is shown than on blind items" on that annotator's counts (each annotator sees an item once, so
    the rows are independent), Benjamini-Hochberg across annotators at q = alpha / looks.

    details["annotators"]: {annotator: {"p": p, "p_bh": adjusted p, "flagged": bool, counts...}};
    annotators lacking either arm are left out (listed in details["untested"])."""
    threshold = _per_look(alpha, looks)
    counts = harmful.counts
    if counts.empty:
        return Alarm("annotator_anchoring", False, None, None, threshold, "No annotator could be tested.")
    usable = counts.loc[(counts["n_shown"] > 0) & (counts["n_blind"] > 0)]
    untested = [str(a) for a in counts.index.difference(usable.index)]
    if usable.empty:
        return Alarm(
            "annotator_anchoring",
            False,
            None,
            None,
            threshold,
            "No annotator has both shown and blind answers on wrong drafts.",
            {"untested": untested},
        )
    p_values = []
    for n1, k1, n0, k0 in usable[["n_shown", "hit_shown", "n_blind", "hit_blind"]].itertuples(index=False):
        table = [[int(k1), int(n1 - k1)], [int(k0), int(n0 - k0)]]
        p_values.append(float(fisher_exact(table, alternative="greater").pvalue))
    reject, adjusted = benjamini_hochberg(p_values, threshold)
    per: dict[str, Any] = {}
    for (name, row), p, padj, r in zip(usable.iterrows(), p_values, adjusted, reject, strict=True):
        per[str(name)] = {"p": p, "p_bh": float(padj), "flagged": bool(r), **{k: int(v) for k, v in row.items()}}
    flagged = [a for a, d in per.items() if d["flagged"]]
    smallest = float(np.min(adjusted))
    if flagged:
        meaning = (
            f"{len(flagged)} annotator(s) take wrong drafts more often than their own blind answers explain: "
            f"{', '.join(flagged)} (Benjamini-Hochberg at {threshold:.2g})."
        )
    else:
        meaning = f"No annotator stands out for taking wrong drafts (smallest adjusted p = {smallest:.2g})."
    return Alarm(
        "annotator_anchoring",
        bool(flagged),
        smallest,
        None,
        threshold,
        meaning,
        {"annotators": per, "untested": untested},
    )


# --- label distribution shift --------------------------------------------------------------------------

_PERM_BLOCK_CELLS = 4_000_000


@dataclass(frozen=True)
class ShiftTest:
    """Result of `label_shift_test`: statistic, permutation p-value, the categories tested (rare ones
    pooled into "(rare)"), total variation distance between the two label distributions (crude), and
    answers on each side."""

    statistic: float
    p_value: float
    categories: list[str]
    total_variation: float
    n_blind: int
    n_drafted: int


def _shift_statistic(x0: np.ndarray, n0: np.ndarray, tot_x: np.ndarray, tot_n: np.ndarray) -> np.ndarray:
    """x0: (..., S, C) blind label counts, n0: (..., S) blind answers; tot_*: the same over both arms.
    Sum over labels of D_c^2 / V_c, D_c = sum_s (x1 n0 - x0 n1) / N (MH-weighted difference of
    shares within annotator), V_c = sum_s n1 n0 / N * p_sc (1 - p_sc) with p_sc pooled within s."""
    n1 = tot_n - n0
    x1 = tot_x - x0
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(tot_n > 0, 1.0 / np.where(tot_n > 0, tot_n, 1.0), 0.0)
        d = ((x1 * n0[..., None] - x0 * n1[..., None]) * inv[..., None]).sum(axis=-2)
        p = tot_x * inv[..., None]
        v = ((n1 * n0 * inv)[..., None] * p * (1.0 - p)).sum(axis=-2)
        terms = np.where(v > 0, d * d / np.where(v > 0, v, 1.0), 0.0)
    return terms.sum(axis=-1)


def label_shift_test(
    item: Any,
    annotator: Any,
    label: Any,
    blind: Any,
    *,
    n_perm: int = 999,
    seed: int = 0,
    min_count: int = 5,
) -> ShiftTest | None:
    """Permutation test of "labels do not depend on whether the draft was shown", one row per answer.

    `blind` must be constant within an item (it is the item's assignment flag). Labels whose total
    count is below `min_count` are pooled into one "(rare)" category. The blind flags of the items are
    shuffled `n_perm` times (seeded); p = (1 + #{T_perm >= T}) / (1 + n_perm), so p >= 1 / (n_perm + 1):
    choose n_perm above looks / alpha. None when one side is empty or fewer than 2 categories remain."""
    item_codes, _ = pd.factorize(pd.Series(np.asarray(item, dtype=object)))
    ann_codes, _ = pd.factorize(pd.Series(np.asarray(annotator, dtype=object)))
    labels = pd.Series(np.asarray(label, dtype=object))
    blind_arr = np.asarray(blind, dtype=bool)
    if len(item_codes) == 0 or blind_arr.all() or not blind_arr.any():
        return None
    freq = labels.value_counts()
    rare = set(freq.index[freq < min_count])
    if rare:
        labels = labels.where(~labels.isin(rare), "(rare)")
    lab_codes, cats = pd.factorize(labels, sort=True)
    if len(cats) < 2:
        return None
    n_items, n_ann, n_cat = int(item_codes.max()) + 1, int(ann_codes.max()) + 1, len(cats)
    item_blind = np.zeros(n_items, dtype=bool)
    item_blind[item_codes] = blind_arr
    n_blind = int(item_blind.sum())
    # per item: answers per annotator (S) and label counts per annotator x label (S*C)
    per_n = np.bincount(item_codes * n_ann + ann_codes, minlength=n_items * n_ann).reshape(n_items, n_ann)
    per_x = np.bincount(
        (item_codes * n_ann + ann_codes) * n_cat + lab_codes, minlength=n_items * n_ann * n_cat
    ).reshape(n_items, n_ann * n_cat)
    per_n, per_x = per_n.astype(np.float32), per_x.astype(np.float32)  # small integer counts: exact
    tot_n = per_n.sum(axis=0, dtype=np.float64)
    tot_x = per_x.sum(axis=0, dtype=np.float64).reshape(n_ann, n_cat)

    def stat(flags: np.ndarray) -> np.ndarray:
        f = flags.astype(np.float32)
        n0 = (f @ per_n).astype(np.float64)
        x0 = (f @ per_x).astype(np.float64).reshape(*f.shape[:-1], n_ann, n_cat)
        return _shift_statistic(x0, n0, tot_x, tot_n)

    observed = float(stat(item_blind))
    rng = np.random.default_rng(seed)
    exceed = 0
    block = max(1, _PERM_BLOCK_CELLS // n_items)
    for start in range(0, n_perm, block):
        b = min(block, n_perm - start)
        keys = rng.random((b, n_items), dtype=np.float32)
        kth = np.partition(keys, n_blind - 1, axis=1)[:, n_blind - 1 : n_blind]
        flags = keys <= kth  # a uniformly random set of n_blind items per row
        exceed += int((stat(flags) >= observed - 1e-9 * max(abs(observed), 1.0)).sum())
    share0 = np.bincount(lab_codes[blind_arr], minlength=n_cat) / max(int(blind_arr.sum()), 1)
    share1 = np.bincount(lab_codes[~blind_arr], minlength=n_cat) / max(int((~blind_arr).sum()), 1)
    return ShiftTest(
        statistic=observed,
        p_value=(1 + exceed) / (1 + n_perm),
        categories=[str(c) for c in cats],
        total_variation=float(0.5 * np.abs(share0 - share1).sum()),
        n_blind=int(blind_arr.sum()),
        n_drafted=int((~blind_arr).sum()),
    )


def _multilabel_sets(value_keys: pd.Series) -> list[set[str]]:
    codes, uniques = pd.factorize(value_keys.astype(object))
    decoded = []
    for k in uniques:
        v = json.loads(k)
        decoded.append({str(x) for x in v} if isinstance(v, list) else {str(v)})
    return [decoded[c] for c in codes]


def label_shift_alarm(
    frame: pd.DataFrame,
    *,
    blind_column: str = BLIND_COLUMN,
    task: str = "classification",
    alpha: float = 0.01,
    looks: int = 1,
    n_perm: int | None = None,
    seed: int = 0,
    min_count: int = 5,
) -> Alarm:
    """Do labels on drafted items (draft shown) differ from labels on blind items?

    Rows: answers with a value_key; drafted arm = blind flag unset and draft shown, blind arm = blind
    flag set and draft hidden (others are left out). Classification: one permutation test over label
    names. Multilabel: one binary test per label (present / absent), BH across labels. `n_perm`
    defaults to enough permutations to reach the per-look threshold (at least 999). Statistic: the
    stratified chi-square-like sum (see `label_shift_test`); details hold the total variation distance
    and, for multilabel, per-label p-values."""
    threshold = _per_look(alpha, looks)
    if n_perm is None:
        n_perm = max(999, math.ceil(3.0 / threshold))
    require_columns(frame, ("item_id", "annotator", "value_key", "action", "draft_shown", blind_column))
    rows = answered(frame)
    rows = rows.loc[rows["action"].isin(ANSWER_ACTIONS).to_numpy(dtype=bool)]
    blind_flag = rows[blind_column].astype(object).where(rows[blind_column].notna(), False).astype(bool).to_numpy()
    shown = rows["draft_shown"].fillna(False).to_numpy(dtype=bool)
    keep = (blind_flag & ~shown) | (~blind_flag & shown)
    rows, blind_flag = rows.loc[keep], blind_flag[keep]
    item = rows["item_id"].to_numpy()
    who = rows["annotator"].astype(object).to_numpy()
    if task == "multilabel":
        sets = _multilabel_sets(rows["value_key"])
        names = sorted(set().union(*sets)) if sets else []
        per: dict[str, Any] = {}
        tests = []
        for name in names:
            present = np.array([name in s for s in sets], dtype=object)
            t = label_shift_test(item, who, present, blind_flag, n_perm=n_perm, seed=seed, min_count=min_count)
            if t is not None:
                tests.append((name, t))
        if not tests:
            return Alarm("label_shift", False, None, None, threshold, "No label could be tested (one side empty).")
        reject, adjusted = benjamini_hochberg([t.p_value for _, t in tests], threshold)
        for (name, t), r, padj in zip(tests, reject, adjusted, strict=True):
            per[name] = {"p": t.p_value, "p_bh": float(padj), "flagged": bool(r), "total_variation": t.total_variation}
        flagged = [n for n, d in per.items() if d["flagged"]]
        p_min = float(np.min(adjusted))
        meaning = (
            f"Labels {', '.join(flagged)} are used differently on drafted items than on blind items "
            f"(permutation test, BH-adjusted p <= {p_min:.2g})."
            if flagged
            else f"No label is used differently on drafted items than on blind items (smallest adjusted "
            f"p = {p_min:.2g})."
        )
        return Alarm("label_shift", bool(flagged), p_min, None, threshold, meaning, {"labels": per})
    labels = label_names(rows["value_key"]).astype(object).to_numpy()
    t = label_shift_test(item, who, labels, blind_flag, n_perm=n_perm, seed=seed, min_count=min_count)
    if t is None:
        return Alarm(
            "label_shift", False, None, None, threshold, "No label-shift test: one side empty or one label only."
        )
    fired = t.p_value < threshold
    details = {"total_variation": t.total_variation, "categories": t.categories, "n_blind": t.n_blind,
               "n_drafted": t.n_drafted, "n_perm": n_perm}  # fmt: skip
    if fired:
        meaning = (
            f"Labels on drafted items are distributed differently from blind items by more than random "
            f"assignment explains (total variation {t.total_variation:.0%}, permutation p = {t.p_value:.2g})."
        )
    else:
        meaning = (
            f"Label mix on drafted items is compatible with blind items (total variation {t.total_variation:.0%}, "
            f"permutation p = {t.p_value:.2g}, threshold {threshold:.2g})."
        )
    return Alarm("label_shift", fired, t.p_value, t.statistic, threshold, meaning, details)


# --- rubber-stamping --------------------------------------------------------------------------------------


def rubber_stamp_check(
    decoy_accepted: Sequence[bool],
    *,
    p_honest: float = 0.1,
    p_stamper: float = 0.9,
    limit: float | None = None,
) -> Alarm:
    """Sequential check of one annotator's hidden decoy checks (gold items shown with a wrong draft),
    oldest first: True when the annotator accepted the wrong draft.

    A CUSUM of log-likelihood ratios of "rubber-stamper" (accepts a decoy with probability `p_stamper`)
    against "honest" (`p_honest`): S_i = max(0, S_(i-1) + llr_i) with llr = log(p_stamper / p_honest) for
    an accepted decoy and log((1 - p_stamper) / (1 - p_honest)) for a rejected one; flagged the first
    time S reaches `limit` (default: three times the accept step, i.e. three more accepted decoys than
    the rejections in between can offset; with the defaults the steps are +-log 9, so "net +3").

    Proposed rule for hidden checks: serve them in blocks of 10, 5 with a decoy draft in random order
    (exactly half, not half on average). A rubber-stamper accepts every decoy and is flagged at the
    3rd, so within the first 6-10 checks; an honest annotator who accepts decoys only when they would
    have given that label anyway (accuracy 0.9: a few percent) is flagged in well under 1% of 50-check
    histories; one who also takes 10% of all drafts is flagged in about 5% (see bench/quality_sim.py).
    `statistic` is the final S; details["flagged_at"] is the
    1-based decoy index where S first crossed the limit."""
    if not 0 < p_honest < p_stamper < 1:
        raise ValueError("need 0 < p_honest < p_stamper < 1")
    up = math.log(p_stamper / p_honest)
    down = math.log((1 - p_stamper) / (1 - p_honest))
    limit = 3 * up - 1e-9 if limit is None else limit
    s, flagged_at = 0.0, None
    accepted = [bool(a) for a in decoy_accepted]
    for i, a in enumerate(accepted, start=1):
        s = max(0.0, s + (up if a else down))
        if flagged_at is None and s >= limit:
            flagged_at = i
    fired = flagged_at is not None
    n_acc = sum(accepted)
    if fired:
        meaning = (
            f"Rubber-stamping: accepted {n_acc} of {len(accepted)} decoy drafts (wrong on purpose); "
            f"flagged at decoy {flagged_at}."
        )
    else:
        meaning = f"Accepted {n_acc} of {len(accepted)} decoy drafts: not flagged."
    return Alarm(
        "rubber_stamp",
        fired,
        None,
        s,
        limit,
        meaning,
        {"flagged_at": flagged_at, "accepted": n_acc, "decoys": len(accepted)},
    )
