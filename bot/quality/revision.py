"""Did a guideline revision help? Agreement per guideline version, how well people separate two
labels, and the change between two versions with a bootstrap interval. PURE: pandas, numpy, scipy.

Frames follow the labels-frame contract of `bot.quality.common` (`item_id`, `annotator`,
`value_key`, optional `created_at`), one frame per guideline version, holding only answers given
under that version: agreement is then always between people who read the same guidelines (an item
answered partly before and partly after a revision counts in each version with that version's
answers only, and only where they are two or more).

- `pair_agreement(frame, a, b)`: over every two people on one item whose answers are both `a` or `b`,
  the share that agree. With n_a and n_b the people choosing a and b on an item, the pairs are
  C(n_a + n_b, 2), the agreeing ones C(n_a, 2) + C(n_b, 2), and the split ones n_a * n_b (which is
  the `count` of `agreement.confused_pairs`).
- `version_agreement(frame)`: percent agreement and nominal Krippendorff's alpha with item-bootstrap
  95% CIs (`agreement.agreement_intervals`), and the most confused pairs with their pair agreement.
- `agreement_change(before, after)`: the difference of the headline measure (alpha, or percent
  agreement for answers that are not categories) between two versions, each version's items
  resampled on their own (independent samples), with a percentile interval, and a plain verdict.
- `recommend(...)`: a pair that a revision left confused gets a structural proposal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from bot.core.guidelines import Recommendation
from bot.quality import agreement as agreement_stats
from bot.quality.common import Confusion, Measure, label_names, latest_per_rater, require_columns

__all__ = [
    "IMPROVED",
    "MIN_ITEMS",
    "MIN_PAIR_PAIRS",
    "STILL_CONFUSED",
    "UNMOVED",
    "AgreementChange",
    "PairAgreement",
    "PairChange",
    "VersionAgreement",
    "agreement_change",
    "item_counts",
    "pair_agreement",
    "pair_change",
    "plain_verdict",
    "recommend",
    "same_people",
    "split_items",
    "version_agreement",
]

#: A version needs this many items with 2+ answers before it is compared with another.
MIN_ITEMS = 10
#: A pair's agreement is judged only over at least this many rater pairs in each version.
MIN_PAIR_PAIRS = 10
#: Below this pair agreement, two labels are still confused.
STILL_CONFUSED = 0.8
#: A rise of pair agreement smaller than this after a revision means the revision did not fix the pair...
IMPROVED = 0.10
#: ...and one smaller than this means it did not move it at all (propose merging the labels).
UNMOVED = 0.05


# --- coding --------------------------------------------------------------------------------------


def item_counts(frame: pd.DataFrame) -> tuple[pd.Index, list[str], sparse.csr_array]:
    """(item ids, categories, items x categories count matrix) of one answer per (item, annotator)
    with a value_key; categories are decoded label names (`common.label_names`)."""
    require_columns(frame, ("item_id", "annotator", "value_key"))
    rows = frame.loc[frame["value_key"].notna().to_numpy(dtype=bool)]
    rows = latest_per_rater(rows)
    item, items = pd.factorize(rows["item_id"], sort=True)
    names = label_names(rows["value_key"])
    cat = names.cat.codes.to_numpy(dtype=np.int64)
    categories = [str(c) for c in names.cat.categories]
    counts = sparse.csr_array(
        (np.ones(len(rows), dtype=np.int64), (item.astype(np.int64), cat)), shape=(len(items), len(categories))
    )
    counts.sum_duplicates()
    return pd.Index(items), categories, counts


# --- two labels ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairAgreement:
    """How well people separate `first` and `second`: `agree` rater pairs gave the same of the two,
    `split` gave one each, over `items` items."""

    first: str
    second: str
    agree: int
    split: int
    items: int

    @property
    def pairs(self) -> int:
        return self.agree + self.split

    @property
    def value(self) -> float | None:
        return self.agree / self.pairs if self.pairs else None

    def to_dict(self) -> dict[str, Any]:
        return {"first": self.first, "second": self.second, "agree": self.agree, "split": self.split,
                "pairs": self.pairs, "items": self.items, "agreement": self.value}


def _pair_columns(categories: list[str], counts: sparse.csr_array, first: str, second: str
                  ) -> tuple[np.ndarray, np.ndarray]:
    def column(name: str) -> np.ndarray:
        if name not in categories:
            return np.zeros(counts.shape[0], dtype=np.int64)
        return counts[:, [categories.index(name)]].toarray().ravel().astype(np.int64)

    return column(first), column(second)


def pair_agreement(frame: pd.DataFrame, first: str, second: str) -> PairAgreement:
    """Pairs of people on one item who both chose `first` or `second`: how many agree, how many split."""
    _, categories, counts = item_counts(frame)
    return _pair(categories, counts, first, second)


def _pair(categories: list[str], counts: sparse.csr_array, first: str, second: str) -> PairAgreement:
    na, nb = _pair_columns(categories, counts, first, second)
    agree = (na * (na - 1) // 2 + nb * (nb - 1) // 2).sum()
    split = (na * nb).sum()
    items = int(((na + nb) >= 2).sum())
    return PairAgreement(first, second, int(agree), int(split), items)


def split_items(frame: pd.DataFrame, first: str, second: str) -> list[tuple[Any, int, int]]:
    """(item_id, people choosing `first`, people choosing `second`) for the items where both were
    chosen, the most evenly split first (then the most answers, then the item id)."""
    items, categories, counts = item_counts(frame)
    na, nb = _pair_columns(categories, counts, first, second)
    hit = np.flatnonzero((na > 0) & (nb > 0))
    rows = [(_py(items[i]), int(na[i]), int(nb[i])) for i in hit]
    rows.sort(key=lambda r: (-min(r[1], r[2]), -(r[1] + r[2]), r[0]))
    return rows


def _py(value: Any) -> Any:
    """A numpy scalar as the Python value (item ids leave this module as plain ints)."""
    return value.item() if isinstance(value, np.generic) else value


# --- one version -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionAgreement:
    """Agreement under one guideline version. `answers`: answers used (one per item and person);
    `items`: items with 2+ of them; `confused`: the most confused pairs with their pair agreement."""

    percent: Measure
    alpha: Measure
    answers: int
    items: int
    confused: list[tuple[Confusion, PairAgreement]] = field(default_factory=list)


def version_agreement(frame: pd.DataFrame, *, top: int = 5, n_boot: int = 1000, seed: int = 0) -> VersionAgreement:
    """Percent agreement and nominal alpha with item-bootstrap CIs, and the `top` confused pairs."""
    _, categories, counts = item_counts(frame)
    m = np.asarray(counts.sum(axis=1)).ravel()
    intervals = agreement_stats.agreement_intervals(frame, n_boot=n_boot, seed=seed)
    confused = [
        (c, _pair(categories, counts, c.first, c.second))
        for c in agreement_stats.confused_pairs(frame, top=top)
    ]
    return VersionAgreement(
        percent=intervals.percent, alpha=intervals.alpha, answers=int(m.sum()), items=int((m >= 2).sum()),
        confused=confused,
    )


# --- two versions ------------------------------------------------------------------------------------


def _per_item(counts: sparse.csr_array) -> tuple[np.ndarray, np.ndarray, np.ndarray, sparse.csr_array]:
    """For items with 2+ answers: m_i, P_i (agreeing share of rater pairs), D_i (the item's diagonal of
    the coincidence matrix, sum_c n_ic (n_ic - 1) / (m_i - 1)) and the count rows."""
    m = np.asarray(counts.sum(axis=1)).ravel().astype(np.float64)
    keep = np.flatnonzero(m >= 2)
    rows = counts[keep].astype(np.float64)
    m = m[keep]
    sq = np.asarray(rows.multiply(rows).sum(axis=1)).ravel()
    return m, (sq - m) / (m * (m - 1.0)), (sq - m) / (m - 1.0), rows


def _replicates(counts: sparse.csr_array, measure: str, n_boot: int, seed: int) -> tuple[float, np.ndarray]:
    """The measure on all items, and on `n_boot` item-bootstrap resamples (NaN where undefined)."""
    m, p, d, rows = _per_item(counts)
    n_items = len(m)

    def stat(w: np.ndarray) -> np.ndarray:  # w: B x items
        with np.errstate(divide="ignore", invalid="ignore"):
            if measure == "percent":
                return (w @ p) / w.sum(axis=1)
            n_c = (rows.T @ w.T).T  # B x categories
            n = w @ m
            diagonal = w @ d
            return 1.0 - (n - 1.0) * (n - diagonal) / (n * n - (n_c * n_c).sum(axis=1))

    point = float(stat(np.ones((1, n_items)))[0])
    if n_boot <= 0:
        return point, np.empty(0)
    rng = np.random.default_rng(seed)
    reps = []
    block = max(1, 2_000_000 // max(n_items, 1))
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        draws = rng.integers(0, n_items, size=(b, n_items))
        w = np.bincount((np.arange(b)[:, None] * n_items + draws).ravel(), minlength=b * n_items)
        reps.append(stat(w.reshape(b, n_items).astype(np.float64)))
    return point, np.concatenate(reps)


@dataclass(frozen=True)
class AgreementChange:
    """The headline measure under two versions and its change `delta` (with a 95% CI).

    `verdict`: "helped" (the whole interval is above 0), "worse" (below 0), "unclear" (it spans 0) or
    "too_early" (a version has fewer than `MIN_ITEMS` items with 2+ answers); `sentence` says it."""

    measure: str  # "alpha" | "percent"
    before: Measure
    after: Measure
    delta: Measure
    verdict: str
    sentence: str
    people: list[str] | None = None  # the compared answers are only theirs (people under both versions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "measure": self.measure, "before": self.before.value, "after": self.after.value,
            "delta": self.delta.value, "ci": [self.delta.ci_low, self.delta.ci_high] if self.delta.ok else None,
            "verdict": self.verdict, "sentence": self.sentence,
            "people": len(self.people) if self.people is not None else None,
        }


def same_people(before: pd.DataFrame, after: pd.DataFrame, *, minimum: int = 2
                ) -> tuple[pd.DataFrame, pd.DataFrame, list[str] | None]:
    """Both versions' answers restricted to the people who answered under both, when there are at
    least `minimum` of them (else the frames unchanged and None): a revision is then judged on the
    same people, not on who happened to join or leave meanwhile."""
    common = sorted(set(before["annotator"].astype(str)) & set(after["annotator"].astype(str)))
    if len(common) < minimum:
        return before, after, None
    keep_b = before["annotator"].astype(str).isin(common).to_numpy(dtype=bool)
    keep_a = after["annotator"].astype(str).isin(common).to_numpy(dtype=bool)
    return before.loc[keep_b], after.loc[keep_a], common


_NAMES = {"alpha": "Krippendorff's α", "percent": "percent agreement"}


def _fmt(measure: str, value: float) -> str:
    return f"{value:.0%}" if measure == "percent" else f"{value:.2f}"


def _signed(measure: str, value: float, unit: bool = True) -> str:
    if measure == "percent":
        return f"{value * 100:+.0f}" + (" points" if unit else "")
    return f"{value:+.2f}"


def agreement_change(
    before: pd.DataFrame,
    after: pd.DataFrame,
    *,
    versions: tuple[int, int] = (1, 2),
    measure: str = "alpha",
    n_boot: int = 2000,
    seed: int = 0,
    min_items: int = MIN_ITEMS,
    comparable_people: bool = True,
) -> AgreementChange:
    """Change of `measure` ("alpha" or "percent") from the `before` answers to the `after` answers.

    With `comparable_people`, only the answers of people who answered under both versions are compared
    (when there are two or more such people; `same_people`). Each version's items are resampled with
    replacement on their own (the two versions are independent samples of items), `n_boot` times with
    `seed`; the interval is the 2.5 and 97.5 percentiles of the replicate differences. Undefined
    replicates (one category only) are dropped."""
    if measure not in _NAMES:
        raise ValueError(f"measure must be 'alpha' or 'percent', got {measure!r}")
    v0, v1 = versions
    name = _NAMES[measure]
    people = None
    if comparable_people:
        before, after, people = same_people(before, after)
    who = f" among the {len(people)} people who labeled under both" if people else ""
    parts = []
    for frame, offset in ((before, 0), (after, 1)):
        _, _, counts = item_counts(frame)
        n_items = int((np.asarray(counts.sum(axis=1)).ravel() >= 2).sum())
        if n_items == 0:
            parts.append((n_items, float("nan"), np.empty(0)))
            continue
        point, reps = _replicates(counts, measure, n_boot, seed + offset)
        parts.append((n_items, point, reps))
    (n0, p0, r0), (n1, p1, r1) = parts
    m0 = Measure.of(p0, reason="undefined for these answers", n=n0)
    m1 = Measure.of(p1, reason="undefined for these answers", n=n1)
    short = [(v, n) for v, n in ((v0, n0), (v1, n1)) if n < min_items]
    if short:
        v, n = short[0]
        why = (f"version {v} has {n} item{'s' if n != 1 else ''} with two or more answers; "
               f"comparing needs {min_items}")
        return AgreementChange(measure, m0, m1, Measure.na(why), "too_early", f"Too early to tell: {why}{who}.",
                               people)
    if not (m0.ok and m1.ok):
        reason = str(m0.reason if not m0.ok else m1.reason)
        return AgreementChange(measure, m0, m1, Measure.na(reason), "unclear",
                               f"No verdict: {name} is {reason}{who}.", people)
    diff = r1 - r0
    diff = diff[np.isfinite(diff)]
    lo, hi = (np.quantile(diff, [0.025, 0.975]) if diff.size >= 2 else (None, None))
    delta = Measure(value=p1 - p0, n=n0 + n1, ci_low=lo, ci_high=hi,
                    note=f"item bootstrap, {n_boot} resamples per version")
    span = f"{_signed(measure, p1 - p0)}" + (
        f", 95% CI {_signed(measure, lo, False)} to {_signed(measure, hi, False)}"
        if lo is not None and hi is not None else ""
    )
    if lo is not None and lo > 0:
        verdict = "helped"
        sentence = (f"Version {v1} helped: {name}{who} rose from {_fmt(measure, p0)} under version {v0} to "
                    f"{_fmt(measure, p1)} ({span}).")
    elif hi is not None and hi < 0:
        verdict = "worse"
        sentence = (f"Version {v1} made it worse: {name}{who} fell from {_fmt(measure, p0)} under version {v0} "
                    f"to {_fmt(measure, p1)} ({span}).")
    else:
        verdict = "unclear"
        sentence = (f"No clear change yet: {name}{who} {_fmt(measure, p0)} under version {v0}, "
                    f"{_fmt(measure, p1)} under version {v1} ({span}); more answers will tell.")
    return AgreementChange(measure, m0, m1, delta, verdict, sentence, people)


@dataclass(frozen=True)
class PairChange:
    """A pair's agreement (`pair_agreement`) under two versions, its change with a 95% CI and a verdict
    ("helped" | "worse" | "unclear" | "too_early", as for `AgreementChange`)."""

    before: PairAgreement
    after: PairAgreement
    delta: Measure
    verdict: str
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "first": self.after.first, "second": self.after.second, "before": self.before.value,
            "after": self.after.value, "before_pairs": self.before.pairs, "after_pairs": self.after.pairs,
            "delta": self.delta.value, "ci": [self.delta.ci_low, self.delta.ci_high] if self.delta.ok else None,
            "verdict": self.verdict, "sentence": self.sentence,
        }


def _pair_replicates(categories: list[str], counts: sparse.csr_array, first: str, second: str, n_boot: int,
                     seed: int) -> np.ndarray:
    na, nb = _pair_columns(categories, counts, first, second)
    keep = (na + nb) >= 2
    agree = (na * (na - 1) // 2 + nb * (nb - 1) // 2)[keep].astype(np.float64)
    pairs = ((na + nb) * (na + nb - 1) // 2)[keep].astype(np.float64)
    n = len(pairs)
    if n == 0 or n_boot <= 0:
        return np.empty(0)
    rng = np.random.default_rng(seed)
    out = []
    block = max(1, 2_000_000 // n)
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        draws = rng.integers(0, n, size=(b, n))
        w = np.bincount((np.arange(b)[:, None] * n + draws).ravel(), minlength=b * n).reshape(b, n).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append((w @ agree) / (w @ pairs))
    return np.concatenate(out)


def pair_change(before: pd.DataFrame, after: pd.DataFrame, first: str, second: str, *,
                versions: tuple[int, int] = (1, 2), n_boot: int = 2000, seed: int = 0,
                min_pairs: int = MIN_PAIR_PAIRS) -> PairChange:
    """How the agreement on `first` / `second` changed between two versions: items resampled within each
    version (the ratio of agreeing to all rater pairs recomputed each time), percentile interval."""
    v0, v1 = versions
    _, cat0, counts0 = item_counts(before)
    _, cat1, counts1 = item_counts(after)
    p0, p1 = _pair(cat0, counts0, first, second), _pair(cat1, counts1, first, second)
    label = f"{first} / {second}"
    short = [(v, p.pairs) for v, p in ((v0, p0), (v1, p1)) if p.pairs < min_pairs]
    if short:
        v, n = short[0]
        why = f"{label}: version {v} has {n} rater pairs choosing between them; comparing needs {min_pairs}"
        return PairChange(p0, p1, Measure.na(why), "too_early", f"Too early to tell for {why}.")
    assert p0.value is not None and p1.value is not None
    r0 = _pair_replicates(cat0, counts0, first, second, n_boot, seed)
    r1 = _pair_replicates(cat1, counts1, first, second, n_boot, seed + 1)
    diff = (r1 - r0)[np.isfinite(r1 - r0)] if r0.size and r1.size else np.empty(0)
    lo, hi = (np.quantile(diff, [0.025, 0.975]) if diff.size >= 2 else (None, None))
    delta = Measure(value=p1.value - p0.value, n=p0.pairs + p1.pairs, ci_low=lo, ci_high=hi)
    span = f"{_signed('percent', p1.value - p0.value)}" + (
        f", 95% CI {_signed('percent', lo, False)} to {_signed('percent', hi, False)}"
        if lo is not None and hi is not None else ""
    )
    verdict = "helped" if lo is not None and lo > 0 else "worse" if hi is not None and hi < 0 else "unclear"
    said = {"helped": "it helped", "worse": "it got worse", "unclear": "no clear change yet"}[verdict]
    sentence = (f"{label}: people choosing between them agreed {p0.value:.0%} under version {v0} and "
                f"{p1.value:.0%} under version {v1} ({span}): {said}.")
    return PairChange(p0, p1, delta, verdict, sentence)


def plain_verdict(version: int, overall: AgreementChange, aimed: list[PairChange]) -> tuple[str, str]:
    """(verdict, one plain sentence) for a revision: the overall verdict, or "helped_where_aimed" when
    overall agreement has not clearly moved but a pair the revision was aimed at clearly improved (and
    none clearly got worse)."""
    helped = [p for p in aimed if p.verdict == "helped"]
    worse = [p for p in aimed if p.verdict == "worse"]
    names = ", ".join(f"{p.after.first} / {p.after.second}" for p in helped)
    if overall.verdict == "helped":
        return "helped", f"Version {version} helped: {overall.sentence.split(': ', 1)[-1]}"
    if overall.verdict == "worse" or worse:
        return "worse", f"Version {version} made agreement worse: " + (
            overall.sentence.split(": ", 1)[-1] if overall.verdict == "worse" else worse[0].sentence)
    if helped and overall.verdict == "unclear":
        return "helped_where_aimed", (f"Version {version} helped where it was aimed ({names}); overall agreement "
                                      "has not clearly changed yet.")
    return overall.verdict, overall.sentence


# --- what to do about a pair a revision did not fix ------------------------------------------------------


def recommend(
    before: PairAgreement,
    after: PairAgreement,
    *,
    versions: tuple[int, int] = (1, 2),
    min_pairs: int = MIN_PAIR_PAIRS,
    still: float = STILL_CONFUSED,
    improved: float = IMPROVED,
    unmoved: float = UNMOVED,
) -> Recommendation | None:
    """A structural change for `first` / `second` when a revision left them confused, else None.

    Confused still: pair agreement under the later version below `still`, and it rose by less than
    `improved` (both versions with `min_pairs` rater pairs or more). It did not move (a rise below
    `unmoved`): no wording separates them, so propose merging the two labels. It moved but not
    enough: some items really are both, so propose an explicit label for them."""
    b, a = before.value, after.value
    if b is None or a is None or before.pairs < min_pairs or after.pairs < min_pairs:
        return None
    if a >= still or a - b >= improved:
        return None
    v0, v1 = versions
    first, second = after.first, after.second
    why = (f"people separating {first} and {second} agreed {b:.0%} of the time under version {v0} "
           f"({before.pairs} rater pairs) and {a:.0%} under version {v1} ({after.pairs})")
    if a - b < unmoved:
        return Recommendation(
            "merge",
            f"Merge {first} and {second} into one label (or make one a sub-case of the other): {why}, so "
            "the revision did not help people tell them apart.",
        )
    ambiguous = f"{first}_or_{second}"[:48]
    return Recommendation(
        "ambiguous_label",
        f"Add an explicit label for the cases that are really both (e.g. `{ambiguous}`): {why}; the revision "
        f"helped a little but the pair stays below {still:.0%}.",
    )
