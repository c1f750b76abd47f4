"""Inter-annotator agreement on a labels frame (see `common` for the frame contract).

What it computes, and who does the math:

- percent agreement: mean over items with 2+ raters of the share of agreeing rater pairs (numpy);
- Cohen's kappa per annotator pair with a 95% CI: `statsmodels.stats.inter_rater.cohens_kappa`;
- Fleiss' kappa: `statsmodels.stats.inter_rater.fleiss_kappa` on an items x categories count table
  (the layout `aggregate_raters` returns, built here with sparse matrices because `aggregate_raters`
  loops over items in Python);
- Krippendorff's alpha, nominal, missing raters allowed: `krippendorff.alpha(value_counts=...,
  level_of_measurement="nominal")`; above `KRIPPENDORFF_DENSE_CELLS` (the library materialises an
  items x V x V array) the same closed form is evaluated from sparse counts, pinned in the tests to the
  library and to Krippendorff (2011);
- per-label one-vs-rest alpha, most-confused label pairs, per-label alpha for multilabel answers;
- span F1 between annotators (exact or overlap), mean pairwise text similarity of rewrites
  (`difflib.SequenceMatcher.ratio`, i.e. 2*matches/total characters, not Levenshtein);
- `accuracy_cap`, and gold accuracy per annotator for quiz and hidden (honeypot) checks.

Callers choose the rows (e.g. `common.counting(frame)`). Every function drops rows without a
value_key and keeps one answer per (item, annotator), the latest. Categories are decoded label names
(`common.label_names`). Undefined results are `Measure.na` with a reason, never NaN.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import krippendorff
import numpy as np
import pandas as pd
from scipy import sparse
from statsmodels.stats import inter_rater as ir
from statsmodels.stats.proportion import proportion_confint

from bot.quality.common import (
    Confusion,
    Measure,
    answered,
    decode_keys,
    label_names,
    latest_per_rater,
    of_kind,
    require_columns,
    same_key,
)

__all__ = [
    "KRIPPENDORFF_DENSE_CELLS",
    "MAX_CATEGORIES",
    "MIN_SHARED_ITEMS",
    "AccuracyCap",
    "AgreementIntervals",
    "AgreementSummary",
    "BlindCap",
    "PairKappa",
    "PairwiseSummary",
    "accuracy_cap",
    "agreement_intervals",
    "blind_accuracy_cap",
    "classification_agreement",
    "cohens_kappa_pairs",
    "cohens_kappa_table",
    "confused_pairs",
    "fleiss_kappa",
    "gold_accuracy",
    "gold_accuracy_by_kind",
    "krippendorff_alpha",
    "light_kappa_weighted",
    "mean_pairwise_kappa",
    "multilabel_alpha",
    "nominal_alpha_from_counts",
    "pairwise_kappa_summary",
    "per_label_alpha",
    "percent_agreement",
    "reliability_matrix",
    "rewrite_similarity",
    "span_f1",
]

#: Above this many items x V x V cells, alpha is evaluated from sparse counts instead of the library.
KRIPPENDORFF_DENSE_CELLS = 4_000_000
#: Nominal statistics over more distinct values than this are n/a (free text is not a category).
MAX_CATEGORIES = 1000

Score = Callable[[Any, Any], float]


# --- coding the frame ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Coded:
    """One answer per (item, rater) as integer codes, plus the item x category count matrix."""

    item: np.ndarray  # item code per answer
    rater: np.ndarray  # rater code per answer (raters sorted by id)
    cat: np.ndarray  # category code per answer
    items: np.ndarray  # item_id per item code
    raters: list[str]
    categories: list[str]
    counts: sparse.csr_array  # items x categories: raters who chose the category

    @property
    def raters_per_item(self) -> np.ndarray:
        return np.asarray(self.counts.sum(axis=1)).ravel()


def _coded(frame: pd.DataFrame) -> _Coded:
    require_columns(frame, ("item_id", "annotator", "value_key"))
    columns = [c for c in ("item_id", "annotator", "value_key", "created_at") if c in frame.columns]
    rows = frame.loc[frame["value_key"].notna().to_numpy(dtype=bool), columns]
    rows = latest_per_rater(rows)
    item, items = pd.factorize(rows["item_id"], sort=True)
    rater, raters = pd.factorize(rows["annotator"], sort=True)
    names = label_names(rows["value_key"])
    cat = names.cat.codes.to_numpy(dtype=np.int64)
    categories = [str(c) for c in names.cat.categories]
    counts = sparse.csr_array((np.ones(len(rows), dtype=np.int64), (item, cat)), shape=(len(items), len(categories)))
    counts.sum_duplicates()
    return _Coded(
        item=item.astype(np.int64),
        rater=rater.astype(np.int64),
        cat=cat,
        items=np.asarray(items),
        raters=[str(r) for r in raters],
        categories=categories,
        counts=counts,
    )


def _observed_columns(counts: sparse.csr_array) -> np.ndarray:
    return np.flatnonzero(np.asarray(counts.sum(axis=0)).ravel() > 0)


# --- the reliability matrix and raw agreement ------------------------------------------------------


def reliability_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Items (rows, by item_id) x annotators (columns): the category each annotator gave, NaN where
    they gave none. Dense; meant for small frames and display — the measures below never build it."""
    coded = _coded(frame)
    names = np.asarray(coded.categories, dtype=object)
    out = np.full((len(coded.items), len(coded.raters)), np.nan, dtype=object)
    out[coded.item, coded.rater] = names[coded.cat]
    return pd.DataFrame(
        out,
        index=pd.Index(coded.items, name="item_id"),
        columns=pd.Index(coded.raters, name="annotator", dtype=object),
    )


def percent_agreement(frame: pd.DataFrame) -> Measure:
    """Raw pairwise agreement: for each item with 2+ raters, agreeing rater pairs / all rater pairs,
    averaged over those items (Fleiss' P-bar). n = items used; note = rater pairs."""
    return _percent(_coded(frame))


def _percent(coded: _Coded) -> Measure:
    m = coded.raters_per_item
    use = m >= 2
    if not use.any():
        return Measure.na("no item has 2 or more raters")
    sq = np.asarray(coded.counts.multiply(coded.counts).sum(axis=1)).ravel()
    pairs = m[use] * (m[use] - 1)
    agree = sq[use] - m[use]
    return Measure(value=float(np.mean(agree / pairs)), n=int(use.sum()), note=f"{int(pairs.sum() // 2)} rater pairs")


# --- Cohen's kappa -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairKappa:
    """Cohen's kappa of annotators `a` < `b` over the items both answered (`kappa.n`)."""

    a: str
    b: str
    kappa: Measure

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "kappa": self.kappa.to_dict()}


def cohens_kappa_table(table: Any, *, min_items: int = 2) -> Measure:
    """Cohen's kappa of a square contingency table (rater 1 in rows, rater 2 in columns) with the
    asymptotic 95% CI from statsmodels, clipped to [-1, 1]. Categories neither rater used are
    dropped. n = items."""
    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"a contingency table must be square, got shape {t.shape}")
    n = round(float(t.sum()))
    if n < min_items:
        return Measure.na(f"fewer than {min_items} shared items", n=n)
    used = (t.sum(axis=0) + t.sum(axis=1)) > 0
    if used.sum() < 2:
        return Measure.na("only one category observed", n=n)
    t = t[np.ix_(used, used)]
    with np.errstate(divide="ignore", invalid="ignore"):
        res = ir.cohens_kappa(t)
    return Measure.of(
        res.kappa,
        reason="kappa undefined (chance agreement is 1)",
        n=n,
        ci_low=np.clip(res.kappa_low, -1.0, 1.0),
        ci_high=np.clip(res.kappa_upp, -1.0, 1.0),
    )


def cohens_kappa_pairs(frame: pd.DataFrame, *, min_shared: int = 2, max_pairs: int | None = None) -> list[PairKappa]:
    """Cohen's kappa for every annotator pair that shares items, most shared items first.

    Pairs with fewer than `min_shared` shared items or a single category come back as n/a.
    statsmodels builds a results object per pair (about 3 ms); `max_pairs` keeps only the pairs with
    the most shared items when there are very many annotators."""
    return _pairs(_coded(frame), min_shared=min_shared, max_pairs=max_pairs)


def _pairs(coded: _Coded, *, min_shared: int, max_pairs: int | None) -> list[PairKappa]:
    if len(coded.rater) == 0:
        return []
    df = pd.DataFrame({"item": coded.item, "rater": coded.rater, "cat": coded.cat})
    pairs = df.merge(df, on="item", suffixes=("_a", "_b"))
    pairs = pairs.loc[(pairs["rater_a"] < pairs["rater_b"]).to_numpy()]
    if pairs.empty:
        return []
    cells = pairs.groupby(["rater_a", "rater_b", "cat_a", "cat_b"], sort=True).size().reset_index(name="n")
    shared = cells.groupby(["rater_a", "rater_b"], sort=False)["n"].sum()
    order = shared.sort_values(ascending=False, kind="stable")
    if max_pairs is not None:
        order = order.iloc[:max_pairs]
    # cells are sorted by pair: find each pair's block once, then slice
    keys = cells["rater_a"].to_numpy() * len(coded.raters) + cells["rater_b"].to_numpy()
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    block = dict(zip(keys[starts].tolist(), zip(starts.tolist(), ends.tolist(), strict=True), strict=True))
    cat_a, cat_b, n = (cells[c].to_numpy() for c in ("cat_a", "cat_b", "n"))
    out: list[PairKappa] = []
    for (ra, rb), total in order.items():
        a, b = coded.raters[int(ra)], coded.raters[int(rb)]
        if total < min_shared:
            out.append(PairKappa(a, b, Measure.na(f"fewer than {min_shared} shared items", n=int(total))))
            continue
        lo, hi = block[int(ra) * len(coded.raters) + int(rb)]
        cats, inv = np.unique(np.r_[cat_a[lo:hi], cat_b[lo:hi]], return_inverse=True)
        table = np.zeros((len(cats), len(cats)))
        np.add.at(table, (inv[: hi - lo], inv[hi - lo :]), n[lo:hi])
        out.append(PairKappa(a, b, cohens_kappa_table(table, min_items=min_shared)))
    return out


def mean_pairwise_kappa(pairs: list[PairKappa]) -> Measure:
    """Light's kappa: the unweighted mean of the defined pairwise kappas. n = pairs used."""
    values = [p.kappa.value for p in pairs if p.kappa.value is not None]
    if not values:
        return Measure.na("no annotator pair with a defined kappa")
    return Measure(value=float(np.mean(values)), n=len(values))


# --- Fleiss' kappa and Krippendorff's alpha -------------------------------------------------------------


def fleiss_kappa(frame: pd.DataFrame) -> Measure:
    """Fleiss' kappa over the items rated by the most common number of raters (2+; a tie goes to the
    larger number). n = items used; the note says how many raters and how many items were left out."""
    return _fleiss(_coded(frame))


def _fleiss(coded: _Coded) -> Measure:
    m = coded.raters_per_item
    multi = m[m >= 2]
    if multi.size == 0:
        return Measure.na("no item has 2 or more raters")
    sizes, freq = np.unique(multi, return_counts=True)
    k = int(sizes[np.lexsort((sizes, freq))[-1]])
    rows = coded.counts[np.flatnonzero(m == k)]
    cols = _observed_columns(rows)
    left_out = int(multi.size - rows.shape[0])
    note = f"{rows.shape[0]} items with {k} raters each; {left_out} items with another rater count left out"
    if rows.shape[0] < 2:
        return Measure.na(f"fewer than 2 items with {k} raters", n=rows.shape[0], note=note)
    if len(cols) < 2:
        return Measure.na("only one category observed", n=rows.shape[0], note=note)
    if len(cols) > MAX_CATEGORIES:
        return Measure.na(f"{len(cols)} distinct values: too many for a nominal statistic", n=rows.shape[0])
    table = rows[:, cols].toarray()
    with np.errstate(divide="ignore", invalid="ignore"):
        value = ir.fleiss_kappa(table, method="fleiss")
    return Measure.of(value, reason="kappa undefined for these data", n=rows.shape[0], note=note)


def nominal_alpha_from_counts(value_counts: Any) -> float:
    """Krippendorff's nominal alpha from a units x values count table (dense or scipy sparse).

    The closed form of Krippendorff (2011) for nominal data, with n_c = pairable values of c,
    n = sum n_c and the coincidence diagonal sum_u (sum_c n_uc^2 - m_u) / (m_u - 1):
    alpha = 1 - (n - 1) * (n - diagonal) / (n^2 - sum_c n_c^2). Units with fewer than 2 values are
    ignored. Returns NaN when undefined (callers wrap it in a Measure)."""
    counts = sparse.csr_array(value_counts, dtype=np.float64)
    m = np.asarray(counts.sum(axis=1)).ravel()
    keep = np.flatnonzero(m >= 2)
    counts, m = counts[keep], m[keep]
    if m.size == 0:
        return float("nan")
    n_c = np.asarray(counts.sum(axis=0)).ravel()
    n = n_c.sum()
    diagonal = ((np.asarray(counts.multiply(counts).sum(axis=1)).ravel() - m) / (m - 1)).sum()
    expected = n * n - (n_c * n_c).sum()
    if expected <= 0:
        return float("nan")
    return float(1.0 - (n - 1.0) * (n - diagonal) / expected)


def _alpha(counts: sparse.csr_array) -> Measure:
    """Nominal alpha of an items x values count matrix (rows with < 2 values are dropped)."""
    m = np.asarray(counts.sum(axis=1)).ravel()
    rows = counts[np.flatnonzero(m >= 2)]
    n_items = rows.shape[0]
    if n_items == 0:
        return Measure.na("no item has 2 or more raters")
    cols = _observed_columns(rows)
    if len(cols) < 2:
        return Measure.na("only one category observed", n=n_items)
    if len(cols) > MAX_CATEGORIES:
        return Measure.na(f"{len(cols)} distinct values: too many for a nominal statistic", n=n_items)
    rows = rows[:, cols]
    if n_items * len(cols) ** 2 <= KRIPPENDORFF_DENSE_CELLS:
        with np.errstate(divide="ignore", invalid="ignore"):
            value = krippendorff.alpha(value_counts=rows.toarray(), level_of_measurement="nominal")
    else:
        value = nominal_alpha_from_counts(rows)
    return Measure.of(value, reason="alpha undefined for these data", n=n_items)


def krippendorff_alpha(frame: pd.DataFrame) -> Measure:
    """Krippendorff's alpha for nominal data; raters may be missing. n = items with 2+ answers."""
    return _alpha(_coded(frame).counts)


def per_label_alpha(frame: pd.DataFrame) -> dict[str, Measure]:
    """One-vs-rest nominal alpha per category: each answer recoded as "this label" / "another".
    A label nobody used on an item with 2+ raters, or that every such answer used, is n/a."""
    return _per_label(_coded(frame))


def _per_label(coded: _Coded) -> dict[str, Measure]:
    m = coded.raters_per_item
    keep = np.flatnonzero(m >= 2)
    counts, m = coded.counts[keep], m[keep]
    out: dict[str, Measure] = {}
    for j, name in enumerate(coded.categories):
        yes = counts[:, [j]].toarray().ravel()
        binary = sparse.csr_array(np.column_stack((m - yes, yes)))
        out[name] = _alpha(binary)
    return out


def confused_pairs(frame: pd.DataFrame, *, top: int = 10) -> list[Confusion]:
    """The label pairs raters most often split on: for labels a < b, the number of rater pairs on one
    item where one said a and the other b. share = count / all disagreeing rater pairs."""
    return _confused(_coded(frame), top=top)


def _confused(coded: _Coded, *, top: int) -> list[Confusion]:
    if not coded.categories:
        return []
    co = (coded.counts.T @ coded.counts).tocoo()
    upper = co.row < co.col
    rows, cols, vals = co.row[upper], co.col[upper], co.data[upper]
    total = vals.sum()
    order = np.lexsort((cols, rows, -vals))[:top]
    return [
        Confusion(
            coded.categories[int(rows[i])],
            coded.categories[int(cols[i])],
            int(vals[i]),
            float(vals[i] / total),
        )
        for i in order
    ]


# --- other task types ----------------------------------------------------------------------------------


def multilabel_alpha(frame: pd.DataFrame) -> dict[str, Measure]:
    """Per-label nominal alpha of binary presence: each answer (a list of labels) says for every label
    whether it applies. n = items with 2+ answers. Keyed by label, sorted."""
    require_columns(frame, ("item_id", "annotator", "value_key", "value"))
    rows = latest_per_rater(frame.loc[frame["value_key"].notna().to_numpy(dtype=bool)])
    item, items = pd.factorize(rows["item_id"], sort=True)
    m = np.bincount(item, minlength=len(items))
    long = pd.DataFrame(
        {"item": item, "rater": rows["annotator"].to_numpy(dtype=object), "label": rows["value"].to_numpy(dtype=object)}
    )
    long = long.explode("label").dropna(subset=["label"]).drop_duplicates()
    if long.empty:
        return {}
    label, labels = pd.factorize(long["label"].astype(str), sort=True)
    present = sparse.csr_array(
        (np.ones(len(long)), (long["item"].to_numpy(dtype=np.int64), label)), shape=(len(items), len(labels))
    )
    out: dict[str, Measure] = {}
    for j, name in enumerate(labels):
        yes = present[:, [j]].toarray().ravel()
        out[str(name)] = _alpha(sparse.csr_array(np.column_stack((m - yes, yes))))
    return out


def _rater_pairs(rows: pd.DataFrame) -> pd.DataFrame:
    """(item_id, a, b) for every two annotators (a < b) who answered the same item."""
    base = pd.DataFrame(
        {"item_id": rows["item_id"].to_numpy(dtype=np.int64), "annotator": rows["annotator"].to_numpy(dtype=object)}
    )
    pairs = base.merge(base, on="item_id", suffixes=("_a", "_b"))
    pairs = pairs.loc[(pairs["annotator_a"] < pairs["annotator_b"]).to_numpy()]
    return pairs.rename(columns={"annotator_a": "a", "annotator_b": "b"}).reset_index(drop=True)


def _spans_long(rows: pd.DataFrame) -> pd.DataFrame:
    ex = rows[["item_id", "annotator", "value"]].explode("value")
    ex = ex.loc[ex["value"].notna().to_numpy(dtype=bool)]
    spans = pd.DataFrame.from_records(ex["value"].tolist(), columns=["start", "end", "label"])
    spans.insert(0, "annotator", ex["annotator"].to_numpy(dtype=object))
    spans.insert(0, "item_id", ex["item_id"].to_numpy())
    spans["label"] = spans["label"].astype(str)
    spans = spans.drop_duplicates(["item_id", "annotator", "start", "end", "label"]).reset_index(drop=True)
    spans["sid"] = np.arange(len(spans))
    return spans


def span_f1(frame: pd.DataFrame, *, mode: Literal["exact", "overlap"] = "exact") -> Measure:
    """Mean F1 over every two annotators on the same item, treating one as reference.

    exact: spans match when (start, end, label) are equal; F1 = 2 * matches / (|A| + |B|).
    overlap: a span is matched when the other annotator has a span with the same label whose
    half-open range [start, end) overlaps it; P = matched A / |A|, R = matched B / |B|, F1 = 2PR/(P+R).
    Two empty answers agree (1.0); one empty against one not scores 0. n = annotator pairs."""
    require_columns(frame, ("item_id", "annotator", "value_key", "value"))
    if mode not in ("exact", "overlap"):
        raise ValueError(f"mode must be 'exact' or 'overlap', got {mode!r}")
    rows = latest_per_rater(frame.loc[frame["value_key"].notna().to_numpy(dtype=bool)])
    pairs = _rater_pairs(rows)
    if pairs.empty:
        return Measure.na("no item has 2 or more annotators")
    spans = _spans_long(rows)
    sizes = spans.groupby(["item_id", "annotator"]).size()
    size_a = sizes.reindex(pd.MultiIndex.from_frame(pairs[["item_id", "a"]])).fillna(0).to_numpy()
    size_b = sizes.reindex(pd.MultiIndex.from_frame(pairs[["item_id", "b"]])).fillna(0).to_numpy()
    if mode == "exact":
        hits = spans.merge(spans, on=["item_id", "start", "end", "label"], suffixes=("_a", "_b"))
        hits = hits.loc[(hits["annotator_a"] < hits["annotator_b"]).to_numpy()]
        tp = hits.groupby(["item_id", "annotator_a", "annotator_b"]).size()
        tp = tp.reindex(pd.MultiIndex.from_frame(pairs[["item_id", "a", "b"]])).fillna(0).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            f1 = np.where(size_a + size_b == 0, 1.0, 2.0 * tp / (size_a + size_b))
    else:
        near = spans.merge(spans, on=["item_id", "label"], suffixes=("_a", "_b"))
        near = near.loc[
            (
                (near["annotator_a"] != near["annotator_b"])
                & (near["start_a"] < near["end_b"])
                & (near["start_b"] < near["end_a"])
            ).to_numpy()
        ]
        matched = near.groupby(["item_id", "annotator_a", "annotator_b"])["sid_a"].nunique()
        m_ab = matched.reindex(pd.MultiIndex.from_frame(pairs[["item_id", "a", "b"]])).fillna(0).to_numpy()
        m_ba = matched.reindex(pd.MultiIndex.from_frame(pairs[["item_id", "b", "a"]])).fillna(0).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(size_a > 0, m_ab / size_a, 0.0)
            r = np.where(size_b > 0, m_ba / size_b, 0.0)
            f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
        f1 = np.where(size_a + size_b == 0, 1.0, f1)
    return Measure(value=float(f1.mean()), n=len(pairs), note=f"{mode} span match")


def _difflib_ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def rewrite_similarity(
    frame: pd.DataFrame,
    *,
    similarity: Callable[[str, str], float] | None = None,
    max_pairs: int | None = 20_000,
    seed: int = 0,
) -> Measure:
    """Mean similarity of two annotators' rewrites of the same item, over annotator pairs.

    Default similarity: `difflib.SequenceMatcher(autojunk=False).ratio()` = 2 * matched characters /
    total characters (two empty texts: 1.0). Pass e.g. `bot.quality.scoring.text_similarity` for
    1 - Levenshtein / max(len). Text comparison is per pair in Python, so at most `max_pairs` pairs are
    scored, drawn at random with `seed`; n = pairs scored, the note says how many there were."""
    require_columns(frame, ("item_id", "annotator", "value_key", "value"))
    score = similarity or _difflib_ratio
    rows = latest_per_rater(frame.loc[frame["value_key"].notna().to_numpy(dtype=bool)])
    pairs = _rater_pairs(rows)
    if pairs.empty:
        return Measure.na("no item has 2 or more annotators")
    text = pd.Series(
        rows["value"].to_numpy(dtype=object),
        index=pd.MultiIndex.from_arrays(
            [rows["item_id"].to_numpy(dtype=np.int64), rows["annotator"].to_numpy(dtype=object)]
        ),
    )
    text_a = text.reindex(pd.MultiIndex.from_frame(pairs[["item_id", "a"]])).to_numpy()
    text_b = text.reindex(pd.MultiIndex.from_frame(pairs[["item_id", "b"]])).to_numpy()
    total = len(pairs)
    if max_pairs is not None and total > max_pairs:
        pick = np.sort(np.random.default_rng(seed).choice(total, size=max_pairs, replace=False))
        text_a, text_b = text_a[pick], text_b[pick]
    scores = [score(str(a or ""), str(b or "")) for a, b in zip(text_a, text_b, strict=True)]
    return Measure(value=float(np.mean(scores)), n=len(scores), note=f"{len(scores)} of {total} pairs")


# --- what agreement means for a model, and accuracy against gold -------------------------------------


@dataclass(frozen=True)
class AccuracyCap:
    """Rule of thumb: with annotator agreement p, measured model accuracy tops out near (1 + p) / 2."""

    value: float | None
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "sentence": self.sentence}


def accuracy_cap(p: float | Measure) -> AccuracyCap:
    """(1 + p) / 2 for an agreement rate p in [0, 1] (or a Measure holding one), with a sentence."""
    if isinstance(p, Measure):
        if p.value is None:
            return AccuracyCap(None, f"Accuracy cap {p.reason}")
        p = p.value
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"agreement must be within [0, 1], got {p}")
    cap = (1.0 + p) / 2.0
    return AccuracyCap(
        cap, f"Annotators agree {p:.0%} of the time, so measured model accuracy is capped near {cap:.0%}."
    )


def gold_accuracy(frame: pd.DataFrame, kind: str, *, score: Score | None = None) -> dict[str, Measure]:
    """Accuracy per annotator on gold items of one assignment `kind` ("quiz" or "honeypot").

    Rows: answered (not skip/ambiguous) with a gold_key; every attempt counts. Default score: exact
    equality of value_key and gold_key, with a Wilson 95% CI. With `score(value, gold_value) -> float`
    (decoded values, e.g. `functools.partial(bot.quality.scoring.score, "spans")`) the mean score is
    reported without a CI. n = answers scored."""
    require_columns(frame, ("annotator", "kind", "gold_key", "value"))
    rows = of_kind(answered(frame), kind)
    rows = rows.loc[rows["gold_key"].notna().to_numpy(dtype=bool)]
    if rows.empty:
        return {}
    if score is None:
        points = same_key(rows["value_key"], rows["gold_key"]).astype(float)
    else:
        gold = decode_keys(rows["gold_key"]).to_numpy()
        points = np.array(
            [float(score(v, g)) for v, g in zip(rows["value"].to_numpy(), gold, strict=True)], dtype=float
        )
    per = (
        pd.DataFrame({"annotator": rows["annotator"].to_numpy(), "points": points})
        .groupby("annotator", sort=True)["points"]
        .agg(["sum", "count"])
    )
    out: dict[str, Measure] = {}
    for annotator, total, count in per.itertuples():
        value = total / count
        if score is None:
            lo, hi = proportion_confint(int(total), int(count), method="wilson")
            out[str(annotator)] = Measure(value=value, n=int(count), ci_low=lo, ci_high=hi)
        else:
            out[str(annotator)] = Measure(value=value, n=int(count))
    return out


def gold_accuracy_by_kind(frame: pd.DataFrame, *, score: Score | None = None) -> dict[str, dict[str, Measure]]:
    """{"quiz": per-annotator accuracy, "honeypot": per-annotator accuracy} (see `gold_accuracy`)."""
    return {kind: gold_accuracy(frame, kind, score=score) for kind in ("quiz", "honeypot")}


# --- one call for a classification report ----------------------------------------------------------


@dataclass(frozen=True)
class AgreementSummary:
    """Everything `classification_agreement` measured; `to_dict()` is JSON-friendly."""

    percent: Measure
    cap: AccuracyCap
    fleiss: Measure
    alpha: Measure
    light_kappa: Measure
    pairs: list[PairKappa] = field(default_factory=list)
    per_label: dict[str, Measure] = field(default_factory=dict)
    confusions: list[Confusion] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "percent": self.percent.to_dict(),
            "cap": self.cap.to_dict(),
            "fleiss": self.fleiss.to_dict(),
            "alpha": self.alpha.to_dict(),
            "light_kappa": self.light_kappa.to_dict(),
            "pairs": [p.to_dict() for p in self.pairs],
            "per_label": {k: v.to_dict() for k, v in self.per_label.items()},
            "confusions": [c.to_dict() for c in self.confusions],
        }


def classification_agreement(
    frame: pd.DataFrame, *, pairs: bool = True, max_pairs: int | None = 200, top: int = 10
) -> AgreementSummary:
    """Percent agreement and its accuracy cap, Fleiss' kappa, alpha, pairwise Cohen's kappa (with
    Light's mean), per-label alpha and the most-confused pairs, on the rows given (filter first, e.g.
    `counting(frame)`)."""
    coded = _coded(frame)
    percent = _percent(coded)
    pair_list = _pairs(coded, min_shared=2, max_pairs=max_pairs) if pairs else []
    return AgreementSummary(
        percent=percent,
        cap=accuracy_cap(percent),
        fleiss=_fleiss(coded),
        alpha=_alpha(coded.counts),
        light_kappa=mean_pairwise_kappa(pair_list) if pairs else Measure.na("pairwise kappa not computed"),
        pairs=pair_list,
        per_label=_per_label(coded),
        confusions=_confused(coded, top=top),
    )


# --- small-sample hygiene: pair thresholds, weighted Light's kappa, bootstrap intervals ---------------

#: Pairs of annotators sharing fewer items than this are listed but left out of summary figures.
MIN_SHARED_ITEMS = 20


def light_kappa_weighted(pairs: list[PairKappa], *, min_shared: int = MIN_SHARED_ITEMS) -> Measure:
    """Light's kappa weighted by shared items: sum_pairs n_pair * kappa_pair / sum n_pair over pairs
    with a defined kappa and at least `min_shared` shared items (a 2-item pair says almost nothing,
    so it must not weigh like a 500-item one). n = pairs used; the note says how many were left out."""
    defined = [p for p in pairs if p.kappa.value is not None and p.kappa.n is not None]
    used = [p for p in defined if (p.kappa.n or 0) >= min_shared]
    left = len(pairs) - len(used)
    note = f"{len(used)} pairs with >= {min_shared} shared items; {left} pairs left out"
    if not used:
        return Measure.na(f"no annotator pair shares {min_shared}+ items with a defined kappa", note=note)
    n = np.array([p.kappa.n for p in used], dtype=float)
    k = np.array([p.kappa.value for p in used], dtype=float)
    return Measure(value=float((n * k).sum() / n.sum()), n=len(used), note=note)


@dataclass(frozen=True)
class PairwiseSummary:
    """Pairwise Cohen's kappa split by sample size: `pairs` (>= min_shared shared items, used in the
    summary), `too_few` (listed for the curious, never summarised: their CIs are meaningless, e.g.
    2 shared items that agree give kappa 1 with CI 1-1), and `light` (weighted Light's kappa)."""

    light: Measure
    pairs: list[PairKappa] = field(default_factory=list)
    too_few: list[PairKappa] = field(default_factory=list)
    min_shared: int = MIN_SHARED_ITEMS

    def to_dict(self) -> dict[str, Any]:
        return {
            "light": self.light.to_dict(),
            "pairs": [p.to_dict() for p in self.pairs],
            "too_few": [p.to_dict() for p in self.too_few],
            "min_shared": self.min_shared,
        }


def pairwise_kappa_summary(
    frame: pd.DataFrame, *, min_shared: int = MIN_SHARED_ITEMS, max_pairs: int | None = 200
) -> PairwiseSummary:
    """Cohen's kappa per annotator pair, pairs under `min_shared` shared items moved to `too_few`
    (with kappa n/a "fewer than N shared items"), and the shared-items-weighted Light's kappa."""
    all_pairs = _pairs(_coded(frame), min_shared=min_shared, max_pairs=max_pairs)
    used = [p for p in all_pairs if p.kappa.n is not None and p.kappa.n >= min_shared]
    few = [p for p in all_pairs if p.kappa.n is None or p.kappa.n < min_shared]
    return PairwiseSummary(
        light=light_kappa_weighted(used, min_shared=min_shared), pairs=used, too_few=few, min_shared=min_shared
    )


@dataclass(frozen=True)
class AgreementIntervals:
    """Percent agreement, Fleiss' kappa (unequal rater counts allowed) and nominal Krippendorff's alpha,
    each with an item-bootstrap 95% CI; n = items with 2+ raters (all three use the same items)."""

    percent: Measure
    fleiss: Measure
    alpha: Measure

    def to_dict(self) -> dict[str, Any]:
        return {"percent": self.percent.to_dict(), "fleiss": self.fleiss.to_dict(), "alpha": self.alpha.to_dict()}


def _agreement_stats(w: np.ndarray, per: np.ndarray, n_cat: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From item weights w (B x I) and per-item columns [m, P_i, D_i, n_i1..n_iC]: percent, Fleiss
    (generalised to unequal m: P-bar over items, p_c over all answers) and nominal alpha."""
    s = w @ per  # B x (3 + C)
    items = w.sum(axis=1)
    m, p_sum, d_sum, n_c = s[:, 0], s[:, 1], s[:, 2], s[:, 3 : 3 + n_cat]
    with np.errstate(divide="ignore", invalid="ignore"):
        percent = p_sum / items
        share = n_c / m[:, None]
        pe = (share * share).sum(axis=1)
        fleiss = (percent - pe) / (1.0 - pe)
        sq = (n_c * n_c).sum(axis=1)
        alpha = 1.0 - (m - 1.0) * (m - d_sum) / (m * m - sq)
    return percent, fleiss, alpha


def agreement_intervals(frame: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> AgreementIntervals:
    """Percent agreement, Fleiss' kappa and Krippendorff's alpha with item-bootstrap 95% CIs.

    Uses every item with 2+ raters, whatever its rater count. Fleiss' kappa for unequal counts:
    kappa = (P-bar - P_e) / (1 - P_e), P-bar the mean over items of the agreeing share of rater pairs
    (as `percent_agreement`), P_e = sum_c p_c^2 with p_c the share of all answers in category c; with
    equal counts this is Fleiss (1971) exactly (and `fleiss_kappa`). Alpha is the nominal closed form of
    `nominal_alpha_from_counts`. Items are resampled with replacement `n_boot` times (seeded; percentile
    interval). Cost: one (n_boot x items) @ (items x categories) product per block of replicates."""
    coded = _coded(frame)
    m_all = coded.raters_per_item
    keep = np.flatnonzero(m_all >= 2)
    if keep.size == 0:
        na = Measure.na("no item has 2 or more raters")
        return AgreementIntervals(na, na, na)
    counts = coded.counts[keep]
    cols = _observed_columns(counts)
    if len(cols) < 2:
        na = Measure.na("only one category observed", n=int(keep.size))
        return AgreementIntervals(na, na, na)
    if len(cols) > MAX_CATEGORIES:
        na = Measure.na(f"{len(cols)} distinct values: too many for a nominal statistic", n=int(keep.size))
        return AgreementIntervals(na, na, na)
    dense = counts[:, cols].toarray().astype(np.float64)
    m = m_all[keep].astype(np.float64)
    sq = (dense * dense).sum(axis=1)
    p_i = (sq - m) / (m * (m - 1.0))
    d_i = (sq - m) / (m - 1.0)
    per = np.column_stack([m, p_i, d_i, dense])
    n_items, n_cat = len(keep), len(cols)
    point = [float(x[0]) for x in _agreement_stats(np.ones((1, n_items)), per, n_cat)]
    bounds = [(None, None)] * 3
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        reps = []
        block = max(1, 2_000_000 // n_items)
        for start in range(0, n_boot, block):
            b = min(block, n_boot - start)
            draws = rng.integers(0, n_items, size=(b, n_items))
            w = np.bincount((np.arange(b)[:, None] * n_items + draws).ravel(), minlength=b * n_items)
            reps.append(np.column_stack(_agreement_stats(w.reshape(b, n_items).astype(np.float64), per, n_cat)))
        boot = np.concatenate(reps)
        bounds = []
        for j in range(3):
            vals = boot[:, j][np.isfinite(boot[:, j])]
            bounds.append(tuple(np.quantile(vals, [0.025, 0.975])) if vals.size >= 2 else (None, None))
    sizes = np.unique(m_all[keep]).astype(int)
    note = f"{n_items} items with {sizes.min()}-{sizes.max()} raters; item bootstrap"
    out = [
        Measure.of(v, reason="undefined for these data", n=n_items, ci_low=lo, ci_high=hi, note=note)
        for v, (lo, hi) in zip(point, bounds, strict=True)
    ]
    return AgreementIntervals(percent=out[0], fleiss=out[1], alpha=out[2])


@dataclass(frozen=True)
class BlindCap:
    """Blind agreement between two annotators and the accuracy cap it implies for a model measured
    against a single annotator's label: cap = (1 + p) / 2 (CI mapped from p's CI). `sentence` says so."""

    agreement: Measure
    cap: Measure
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return {"agreement": self.agreement.to_dict(), "cap": self.cap.to_dict(), "sentence": self.sentence}


def blind_accuracy_cap(
    frame: pd.DataFrame, *, blind_column: str = "blind", n_boot: int = 1000, seed: int = 0
) -> BlindCap:
    """Accuracy cap from agreement on *blind* items only (rows whose `blind_column` is true): drafted
    answers are anchored on the same draft, which inflates agreement and hence the cap. Percent
    agreement with an item-bootstrap CI (`agreement_intervals`), then (1 + p) / 2: the rule of thumb for
    the best accuracy a model can show when scored against one annotator's label (an annotator who
    matches another with probability p is, under symmetric noise, right with probability ~ (1 + p) / 2
    when compared one-to-one; it is not a cap against an adjudicated consensus)."""
    require_columns(frame, ("item_id", "annotator", "value_key", blind_column))
    flag = frame[blind_column].astype(object)
    flag = flag.where(flag.notna(), False).astype(bool).to_numpy()
    blind_rows = frame.loc[flag]
    p = agreement_intervals(blind_rows, n_boot=n_boot, seed=seed).percent
    if p.value is None:
        return BlindCap(p, Measure.na(f"accuracy cap {p.reason}"), f"Accuracy cap {p.reason} (blind items).")
    lo = None if p.ci_low is None else (1.0 + p.ci_low) / 2.0
    hi = None if p.ci_high is None else (1.0 + p.ci_high) / 2.0
    cap = Measure(value=(1.0 + p.value) / 2.0, n=p.n, ci_low=lo, ci_high=hi, note="vs a single annotator")
    return BlindCap(
        p,
        cap,
        f"On blind items annotators agree {p.value:.0%} of the time, so a model scored against a single "
        f"annotator's label is capped near {cap.value:.0%} accuracy (vs a single annotator).",
    )
