"""Turning several labels per item into one answer: majority vote, Dawid-Skene, per-task rules.

Pure numpy/pandas. The labels frame has one row per label with columns
``item_id, annotator, value, value_key, counts, kind, tier`` (see `LABEL_COLUMNS`);
``value_key`` is the canonical JSON of ``value`` (`value_key`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bot.quality.scoring import normalise_text

__all__ = [
    "AGGREGATE_COLUMNS",
    "CALIBRATED_DS",
    "LABEL_COLUMNS",
    "MAJORITY_COLUMNS",
    "DawidSkeneResult",
    "aggregate",
    "calibrated_dawid_skene",
    "canonical_value",
    "dawid_skene",
    "majority_vote",
    "value_key",
]

_NONE = np.array(None, dtype=object)  # a missing reason in np.where
LABEL_COLUMNS = ["item_id", "annotator", "value", "value_key", "counts", "kind", "tier"]
MAJORITY_COLUMNS = ["item_id", "value_key", "value", "n_labels", "support", "tie"]
DS_ITEM_COLUMNS = ["item_id", "value_key", "value", "confidence", "tie", "n_labels"]
AGGREGATE_COLUMNS = [
    "item_id",
    "value",
    "value_key",
    "confidence",
    "method",
    "n_labels",
    "agreement",
    "source",
    "needs_expert",
    "reason",
]
TASKS = ("classification", "multilabel", "spans", "rewrite")
METHODS = ("majority", "dawid_skene")

_TIE_EPS = 1e-12

#: Dawid-Skene options that give calibrated confidences (pass as ``ds_options`` to `aggregate`, or use
#: `calibrated_dawid_skene`): every annotator's confusion matrix is shrunk toward the pooled matrix by
#: 20 pseudo-labels per true class, a Dirichlet pseudo-count of 1 on every cell, and annotators with
#: fewer than 30 labels fall back to a one-coin model. On one day of the synthetic crowd of
#: bench/quality_sim.py this cuts the expected calibration error from 0.037 to 0.018 and the mean
#: confidence on 1-1-1 splits of 5 labels from 0.79 to 0.53 (their accuracy: 0.41-0.46); single
#: 1-1-1 items can still reach ~0.9 (see tests/quality/test_calibration.py for why).
CALIBRATED_DS: dict[str, float] = {"smoothing": 1.0, "shrinkage": 20.0, "diagonal_prior": 0.0, "one_coin_below": 30}


def value_key(value: Any) -> str:
    """Canonical JSON of a task-shaped value (the key labels are compared by)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_value(task: str, value: Any) -> Any:
    """Sorted unique labels (multilabel), sorted span dicts (spans); other values unchanged."""
    kind = str(task)
    if value is None:
        return None
    if kind == "multilabel":
        return sorted(set(value))
    if kind == "spans":
        spans = {(int(s["start"]), int(s["end"]), str(s["label"])) for s in value}
        return [{"start": s, "end": e, "label": lab} for s, e, lab in sorted(spans)]
    return value


def _values_by_key(frame: pd.DataFrame) -> dict[str, Any]:
    first = frame.drop_duplicates("value_key")
    return dict(zip(first["value_key"], first["value"], strict=True))


def _obj(values: Any) -> pd.Series:
    return pd.Series(list(values), dtype=object)


# --------------------------------------------------------------------------------------------
# Majority vote
# --------------------------------------------------------------------------------------------


def majority_vote(frame: pd.DataFrame) -> pd.DataFrame:
    """Plurality vote per item on ``value_key``: one row per item with the winner, ``n_labels``,
    ``support`` (winner's share of the votes) and ``tie``. A tie is not broken: tie=True and
    value/value_key are None, so the caller can escalate."""
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in MAJORITY_COLUMNS})
    counts = frame.groupby(["item_id", "value_key"], sort=True).size().rename("n").reset_index()
    by_item = counts.groupby("item_id", sort=True)["n"]
    counts["n_labels"] = by_item.transform("sum")
    counts["top"] = by_item.transform("max")
    best = counts[counts["n"] == counts["top"]]
    n_best = best.groupby("item_id", sort=True).size()
    first = best.drop_duplicates("item_id").set_index("item_id")
    tie = (n_best.reindex(first.index) > 1).to_numpy()
    keys = first["value_key"].to_numpy(dtype=object, copy=True)
    keys[tie] = None
    values = _values_by_key(frame)
    return pd.DataFrame(
        {
            "item_id": first.index.to_numpy(),
            "value_key": _obj(keys),
            "value": _obj(values.get(k) if k is not None else None for k in keys),
            "n_labels": first["n_labels"].to_numpy(dtype=np.int64),
            "support": (first["top"] / first["n_labels"]).to_numpy(dtype=float),
            "tie": tie,
        }
    )


# --------------------------------------------------------------------------------------------
# Dawid-Skene
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DawidSkeneResult:
    """Output of `dawid_skene`.

    items: item_id, value_key, value, confidence (max posterior), tie, n_labels.
    posteriors: index item_id, one column per class key, rows sum to 1.
    errors: array [annotator, observed, true]; each (annotator, :, true) column sums to 1.
    priors: Series of class probabilities indexed by class key.
    """

    items: pd.DataFrame
    posteriors: pd.DataFrame
    errors: np.ndarray
    annotators: list[str]
    classes: list[str]
    priors: pd.Series
    iterations: int
    converged: bool
    log_likelihood: float

    @property
    def confusion(self) -> pd.DataFrame:
        """Long form: index (annotator, observed), columns true class; P(observed | true)."""
        index = pd.MultiIndex.from_product([self.annotators, self.classes], names=["annotator", "observed"])
        flat = self.errors.reshape(len(self.annotators) * len(self.classes), len(self.classes))
        return pd.DataFrame(flat, index=index, columns=pd.Index(self.classes, name="true"))

    def confusion_matrix(self, annotator: str) -> pd.DataFrame:
        """One annotator's P(observed | true): rows observed, columns true."""
        w = self.annotators.index(annotator)
        return pd.DataFrame(
            self.errors[w],
            index=pd.Index(self.classes, name="observed"),
            columns=pd.Index(self.classes, name="true"),
        )

    def annotator_accuracy(self) -> pd.Series:
        """Estimated P(annotator answers the true class) = sum_c prior[c] * P(c | c)."""
        diagonal = np.diagonal(self.errors, axis1=1, axis2=2)
        acc = diagonal @ self.priors.to_numpy(dtype=float)
        return pd.Series(acc, index=pd.Index(self.annotators, name="annotator"), name="accuracy")


def _sum_by(index: np.ndarray, weights_t: np.ndarray, size: int) -> np.ndarray:
    """out[i, c] = sum of weights_t[c, r] over rows r with index[r] == i (one bincount per class)."""
    out = np.empty((size, weights_t.shape[0]))
    for c in range(weights_t.shape[0]):
        out[:, c] = np.bincount(index, weights=weights_t[c], minlength=size)
    return out


def dawid_skene(
    frame: pd.DataFrame,
    max_iter: int = 100,
    tol: float = 1e-6,
    init: str = "majority",
    *,
    gold: Mapping[Any, str] | None = None,
    smoothing: float = 0.01,
    shrinkage: float = 0.0,
    diagonal_prior: float = 0.0,
    one_coin_below: int = 0,
) -> DawidSkeneResult:
    """Dawid & Skene (1979) EM over ``item_id, annotator, value_key`` rows (missing keys ignored).

    Starts from the soft majority vote (each item's vote shares), then alternates an M-step
    (per-annotator confusion matrices and class priors, `smoothing` added to every count so no
    probability is 0) and an E-step (item posteriors). `max_iter` counts E-steps; a last M-step
    makes the returned matrices match the returned posteriors, so ``max_iter=0`` gives the
    confusion matrices of the majority vote. Converged when the log-likelihood changes by at most
    `tol` relative to its size between two E-steps.
    `gold` ({item_id: value_key}) pins those items' posteriors to their known class.

    The defaults reproduce the classic estimator, which is over-confident on a realistic crowd
    (3 labels per item: 1-1-1 splits get ~0.93 confidence for ~0.34 accuracy). Calibration options,
    all applied in every M-step to the expected counts n[w, observed, true]:

    - `shrinkage` (pseudo-labels per true class): n[w, :, t] += shrinkage * pooled[:, t], with pooled
      the column-normalised sum of all annotators' counts: an annotator with few labels of class t
      looks like the crowd until their own labels say otherwise (empirical-Bayes partial pooling);
    - `diagonal_prior`: a Dirichlet pseudo-count added to the diagonal (prior belief that annotators
      are right more often than not); `smoothing` is the pseudo-count on every cell;
    - `one_coin_below`: annotators with fewer labels than this get a one-coin matrix: accuracy a =
      trace / total of their (shrunk) counts on the diagonal, (1 - a) / (K - 1) elsewhere.

    `CALIBRATED_DS` holds the recommended values (see `calibrated_dawid_skene`).
    """
    if init != "majority":
        raise ValueError(f"unknown init {init!r} (supported: 'majority')")
    gold = dict(gold or {})
    frame = frame.loc[frame["value_key"].notna().to_numpy(dtype=bool)]
    if frame.empty:
        return DawidSkeneResult(
            items=pd.DataFrame({c: pd.Series(dtype=object) for c in DS_ITEM_COLUMNS}),
            posteriors=pd.DataFrame(),
            errors=np.zeros((0, 0, 0)),
            annotators=[],
            classes=[],
            priors=pd.Series(dtype=float, name="prior"),
            iterations=0,
            converged=True,
            log_likelihood=0.0,
        )

    item_codes, items = pd.factorize(frame["item_id"], sort=True)
    ann_codes, annotators = pd.factorize(frame["annotator"], sort=True)
    observed_keys = frame["value_key"].to_numpy(dtype=object)
    classes = pd.Index(sorted(set(observed_keys.tolist()) | set(gold.values())))
    lab_codes = classes.get_indexer(observed_keys)
    n_items, n_ann, k = len(items), len(annotators), len(classes)

    gold_pos = items.get_indexer(list(gold))
    gold_mask = gold_pos >= 0
    gold_rows = gold_pos[gold_mask]
    gold_cls = classes.get_indexer([gold[g] for g, m in zip(gold, gold_mask, strict=True) if m])

    def pin(t: np.ndarray) -> np.ndarray:
        if len(gold_rows):
            t[gold_rows] = 0.0
            t[gold_rows, gold_cls] = 1.0
        return t

    flat_cell = ann_codes * k + lab_codes  # (annotator, observed) cell of each label
    n_per_item = np.bincount(item_codes, minlength=n_items)
    few = np.flatnonzero(np.bincount(ann_codes, minlength=n_ann) < one_coin_below)

    # soft majority vote
    t = np.bincount(item_codes * k + lab_codes, minlength=n_items * k).reshape(n_items, k).astype(float)
    t /= t.sum(axis=1, keepdims=True)
    t = pin(t)

    def m_step(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        counts = _sum_by(flat_cell, t.T[:, item_codes], n_ann * k).reshape(n_ann, k, k)
        if shrinkage > 0:
            pooled = counts.sum(axis=0) + smoothing
            counts = counts + shrinkage * (pooled / pooled.sum(axis=0, keepdims=True))[None]
        if diagonal_prior > 0:
            counts[:, np.arange(k), np.arange(k)] += diagonal_prior
        counts += smoothing
        errors = counts / counts.sum(axis=1, keepdims=True)
        if len(few) and k > 1:
            sub = counts[few]
            acc = np.trace(sub, axis1=1, axis2=2) / sub.sum(axis=(1, 2))
            coin = np.repeat(((1.0 - acc) / (k - 1))[:, None, None], k, axis=1).repeat(k, axis=2)
            coin[:, np.arange(k), np.arange(k)] = acc[:, None]
            errors[few] = coin
        priors = (t.sum(axis=0) + smoothing) / (n_items + k * smoothing)
        return errors, priors

    def e_step(errors: np.ndarray, priors: np.ndarray) -> tuple[np.ndarray, float]:
        log_err = np.log(errors).reshape(n_ann * k, k)
        log_t = _sum_by(item_codes, log_err.T[:, flat_cell], n_items) + np.log(priors)
        top = log_t.max(axis=1, keepdims=True)
        post = np.exp(log_t - top)
        norm = post.sum(axis=1, keepdims=True)
        log_likelihood = float((np.log(norm) + top).sum())
        return pin(post / norm), log_likelihood

    errors, priors = m_step(t)
    iterations, converged, log_likelihood = 0, False, float("nan")
    for _ in range(max_iter):
        previous = log_likelihood
        t, log_likelihood = e_step(errors, priors)
        iterations += 1
        errors, priors = m_step(t)
        if abs(log_likelihood - previous) <= tol * abs(log_likelihood):
            converged = True
            break

    order = np.argsort(-t, axis=1, kind="stable")
    best = order[:, 0]
    confidence = t[np.arange(n_items), best]
    tie = np.zeros(n_items, dtype=bool)
    if k > 1:
        tie = confidence - t[np.arange(n_items), order[:, 1]] <= _TIE_EPS
    keys = np.asarray(classes, dtype=object)[best]
    keys[tie] = None
    values = _values_by_key(frame)
    values.update({v: json.loads(v) for v in gold.values() if v not in values})
    item_frame = pd.DataFrame(
        {
            "item_id": np.asarray(items),
            "value_key": _obj(keys),
            "value": _obj(values.get(key) if key is not None else None for key in keys),
            "confidence": confidence,
            "tie": tie,
            "n_labels": n_per_item.astype(np.int64),
        }
    )
    return DawidSkeneResult(
        items=item_frame,
        posteriors=pd.DataFrame(t, index=pd.Index(items, name="item_id"), columns=list(classes)),
        errors=errors,
        annotators=[str(a) for a in annotators],
        classes=list(classes),
        priors=pd.Series(priors, index=list(classes), name="prior"),
        iterations=iterations,
        converged=converged,
        log_likelihood=log_likelihood,
    )


def calibrated_dawid_skene(
    frame: pd.DataFrame,
    max_iter: int = 100,
    tol: float = 1e-6,
    *,
    gold: Mapping[Any, str] | None = None,
    **options: Any,
) -> DawidSkeneResult:
    """`dawid_skene` with `CALIBRATED_DS` (any of its keys can be overridden through `options`).

    Use its ``items["confidence"]`` wherever a confidence is compared with a threshold (routing to an
    expert, stopping redundancy); check it against gold with `bot.quality.calibration`."""
    return dawid_skene(frame, max_iter, tol, gold=gold, **{**CALIBRATED_DS, **options})


# --------------------------------------------------------------------------------------------
# Per-task crowd rules
# --------------------------------------------------------------------------------------------


def _element_vote(
    crowd: pd.DataFrame, elements: pd.DataFrame, element_cols: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per item and element (label or span): kept when chosen by > half of the item's annotators.

    Returns (kept elements sorted, per-item frame with n_labels, tie, confidence)."""
    n = crowd.groupby("item_id", sort=True).size().rename("n_labels")
    per_item = pd.DataFrame({"n_labels": n})
    if elements.empty:
        per_item["tie"] = False
        per_item["confidence"] = 1.0
        return elements.iloc[0:0], per_item
    votes = elements.groupby(["item_id", *element_cols], sort=True).size().rename("votes").reset_index()
    votes["n_labels"] = votes["item_id"].map(n)
    twice = 2 * votes["votes"]
    votes["keep"] = twice > votes["n_labels"]
    votes["tied"] = twice == votes["n_labels"]
    votes["margin"] = np.maximum(votes["votes"], votes["n_labels"] - votes["votes"]) / votes["n_labels"]
    grouped = votes.groupby("item_id", sort=True)
    per_item["tie"] = grouped["tied"].any().reindex(per_item.index, fill_value=False).astype(bool)
    per_item["confidence"] = grouped["margin"].min().reindex(per_item.index, fill_value=1.0).astype(float)
    return votes[votes["keep"]], per_item


def _collect(kept: pd.DataFrame, index: pd.Index, make: Any, columns: list[str]) -> list[list[Any]]:
    out: dict[Any, list[Any]] = {i: [] for i in index}
    for row in zip(kept["item_id"], *(kept[c] for c in columns), strict=True):
        out[row[0]].append(make(*row[1:]))
    return [out[i] for i in index]


def _explode(crowd: pd.DataFrame) -> pd.DataFrame:
    """One row per element of each label: columns row (label number), item_id, element."""
    tagged = pd.DataFrame(
        {
            "row": np.arange(len(crowd)),
            "item_id": crowd["item_id"].to_numpy(),
            "element": crowd["value"].to_numpy(dtype=object),
        }
    )
    return tagged.explode("element").dropna(subset=["element"]).reset_index(drop=True)


def _crowd_multilabel(crowd: pd.DataFrame) -> pd.DataFrame:
    exploded = _explode(crowd).rename(columns={"element": "label"})
    exploded = exploded.drop_duplicates(["row", "label"]).drop(columns="row")
    kept, per_item = _element_vote(crowd, exploded, ["label"])
    values = _collect(kept, per_item.index, lambda lab: lab, ["label"])
    return _finish_elements(per_item, values)


def _crowd_spans(crowd: pd.DataFrame) -> pd.DataFrame:
    exploded = _explode(crowd)
    parts = pd.DataFrame(exploded["element"].tolist(), columns=["start", "end", "label"])
    spans = pd.concat([exploded[["row", "item_id"]], parts], axis=1)
    spans = spans.drop_duplicates().drop(columns="row")
    kept, per_item = _element_vote(crowd, spans, ["start", "end", "label"])
    values = _collect(
        kept,
        per_item.index,
        lambda s, e, lab: {"start": int(s), "end": int(e), "label": str(lab)},
        ["start", "end", "label"],
    )
    return _finish_elements(per_item, values)


def _finish_elements(per_item: pd.DataFrame, values: list[list[Any]]) -> pd.DataFrame:
    tie = per_item["tie"].to_numpy(dtype=bool)
    keys = [None if t else value_key(v) for v, t in zip(values, tie, strict=True)]
    return pd.DataFrame(
        {
            "item_id": per_item.index.to_numpy(),
            "value_key": _obj(keys),
            "value": _obj(None if t else v for v, t in zip(values, tie, strict=True)),
            "confidence": per_item["confidence"].to_numpy(dtype=float),
            "tie": tie,
            "n_labels": per_item["n_labels"].to_numpy(dtype=np.int64),
        }
    )


def _crowd_rewrite(crowd: pd.DataFrame) -> pd.DataFrame:
    texts = crowd[["item_id", "value"]].copy()
    texts["value"] = texts["value"].astype(object).where(texts["value"].notna(), "")
    texts["norm"] = [normalise_text(v) for v in texts["value"]]
    vote = majority_vote(texts.rename(columns={"norm": "value_key"})[["item_id", "value_key", "value"]])
    # the most frequent raw spelling inside the winning group (ties: alphabetical)
    winners = texts.merge(
        vote[["item_id", "value_key"]], left_on=["item_id", "norm"], right_on=["item_id", "value_key"]
    )
    spelling = (
        winners.groupby(["item_id", "value"], sort=True)
        .size()
        .rename("n")
        .reset_index()
        .sort_values(["item_id", "n", "value"], ascending=[True, False, True], kind="stable")
        .drop_duplicates("item_id")
        .set_index("item_id")["value"]
    )
    raw = vote["item_id"].map(spelling).astype(object)
    raw[vote["tie"].to_numpy()] = None
    return pd.DataFrame(
        {
            "item_id": vote["item_id"].to_numpy(),
            "value_key": _obj(None if v is None or v != v else value_key(v) for v in raw),
            "value": _obj(None if v is None or v != v else v for v in raw),
            "confidence": vote["support"].to_numpy(dtype=float),
            "tie": vote["tie"].to_numpy(dtype=bool),
            "n_labels": vote["n_labels"].to_numpy(dtype=np.int64),
        }
    )


# --------------------------------------------------------------------------------------------
# aggregate
# --------------------------------------------------------------------------------------------


_NO_ANSWER_ACTIONS = ("skip", "ambiguous")


def _answers(frame: pd.DataFrame) -> pd.DataFrame:
    """Counting rows that carry an answer, oldest first when `created_at` is present."""
    keep = frame["counts"].fillna(False).to_numpy(dtype=bool) & frame["value_key"].notna().to_numpy(dtype=bool)
    if "action" in frame.columns:
        keep &= ~frame["action"].isin(_NO_ANSWER_ACTIONS).to_numpy(dtype=bool)
    used = frame.loc[keep]
    if "created_at" in used.columns and len(used):
        order = np.argsort(pd.to_datetime(used["created_at"], utc=True).to_numpy(), kind="stable")
        used = used.iloc[order]
    return used


def _empty_aggregate() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in AGGREGATE_COLUMNS})


def aggregate(
    task: str,
    frame: pd.DataFrame,
    gold: Mapping[Any, Any] | None = None,
    method: str = "majority",
    min_confidence: float | None = None,
    *,
    ds_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """One row per item that has at least one counting answer (`AGGREGATE_COLUMNS`).

    Precedence: gold items keep their gold answer (source "gold"); else an expert answer
    (kind == "expert" or tier == "expert"; several disagreeing experts -> majority, a tie is
    escalated) wins (source "expert"); else the crowd (source "crowd"):
    classification by majority vote or Dawid-Skene; multilabel per label and spans per
    (start, end, label), each kept when > half of the item's annotators chose it; rewrite by the
    most endorsed normalised text. Only ``counts`` rows with a value_key are used (and, when
    the frame has an ``action`` column, not skip/ambiguous); ``tier`` is optional. One vote per
    annotator, item and expert-or-not: the last row wins (by ``created_at`` when present).

    ``confidence`` is the winner's vote share (majority, rewrite), the max posterior
    (Dawid-Skene), or the weakest per-element majority (multilabel, spans); 1.0 for gold and
    expert rows. ``agreement`` is the share of the item's crowd labels equal to the final value
    (NaN without crowd labels). ``needs_expert`` with ``reason`` "tie", "low_confidence"
    (below `min_confidence`) or "expert_tie"; tied rows carry no value.
    """
    kind = str(task)
    if kind not in TASKS:
        raise ValueError(f"unknown task type {task!r} (expected one of {', '.join(TASKS)})")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (expected one of {', '.join(METHODS)})")
    if method == "dawid_skene" and kind != "classification":
        raise ValueError("dawid_skene aggregates classification labels only")

    used = _answers(frame)
    if used.empty:
        return _empty_aggregate()
    is_expert = (used["kind"] == "expert").to_numpy(dtype=bool, copy=True)
    if "tier" in used.columns:
        is_expert |= (used["tier"] == "expert").to_numpy(dtype=bool)
    used = used.assign(_expert=is_expert).drop_duplicates(["item_id", "annotator", "_expert"], keep="last")
    crowd = used[~used["_expert"]]
    experts = used[used["_expert"]]

    gold_keys: dict[Any, str] = {}
    gold_values: dict[Any, Any] = {}
    for item, answer in (gold or {}).items():
        canon = canonical_value(kind, answer)
        gold_values[item] = canon
        gold_keys[item] = value_key(canon)

    expert_vote = majority_vote(experts).set_index("item_id")
    clamps = {i: k for i, k in zip(expert_vote.index, expert_vote["value_key"], strict=True) if k is not None}
    clamps.update(gold_keys)

    if kind == "classification" and method == "dawid_skene":
        fitted = dawid_skene(crowd, gold=clamps, **dict(ds_options or {}))
        crowd_out = fitted.items
    elif kind == "classification":
        crowd_out = majority_vote(crowd).rename(columns={"support": "confidence"})
    elif kind == "multilabel":
        crowd_out = _crowd_multilabel(crowd)
    elif kind == "spans":
        crowd_out = _crowd_spans(crowd)
    else:
        crowd_out = _crowd_rewrite(crowd)
    crowd_out = crowd_out.set_index("item_id")

    item_ids = pd.Index(sorted(set(crowd_out.index) | set(expert_vote.index)), name="item_id")
    out = pd.DataFrame(index=item_ids)
    out["value"] = crowd_out["value"].reindex(item_ids).astype(object)
    out["value_key"] = crowd_out["value_key"].reindex(item_ids).astype(object)
    out["confidence"] = crowd_out["confidence"].reindex(item_ids).astype(float)
    out["method"] = method
    n_crowd = crowd.groupby("item_id").size()
    out["n_labels"] = n_crowd.reindex(item_ids, fill_value=0).astype(np.int64)
    out["source"] = "crowd"
    tie = crowd_out["tie"].reindex(item_ids, fill_value=False).astype(bool)
    out["needs_expert"] = tie
    out["reason"] = pd.Series(np.where(tie.to_numpy(), "tie", _NONE), index=item_ids, dtype=object)
    if min_confidence is not None:
        low = ~tie & (out["confidence"] < min_confidence)
        out.loc[low, "needs_expert"] = True
        out.loc[low, "reason"] = "low_confidence"

    # experts override the crowd
    exp_ids = expert_vote.index
    out.loc[exp_ids, "value"] = expert_vote["value"].astype(object)
    out.loc[exp_ids, "value_key"] = expert_vote["value_key"].astype(object)
    out.loc[exp_ids, "confidence"] = np.where(expert_vote["tie"], np.nan, 1.0)
    out.loc[exp_ids, "method"] = "expert"
    out.loc[exp_ids, "source"] = "expert"
    out.loc[exp_ids, "needs_expert"] = expert_vote["tie"].to_numpy(dtype=bool)
    out.loc[exp_ids, "reason"] = np.where(expert_vote["tie"].to_numpy(dtype=bool), "expert_tie", _NONE)

    # gold keeps gold
    gold_ids = [i for i in gold_keys if i in out.index]
    if gold_ids:
        out.loc[gold_ids, "value"] = _obj(gold_values[i] for i in gold_ids).to_numpy()
        out.loc[gold_ids, "value_key"] = [gold_keys[i] for i in gold_ids]
        out.loc[gold_ids, "confidence"] = 1.0
        out.loc[gold_ids, "method"] = "gold"
        out.loc[gold_ids, "source"] = "gold"
        out.loc[gold_ids, "needs_expert"] = False
        out.loc[gold_ids, "reason"] = None

    if kind == "rewrite":
        final = out["value"].map(lambda v: None if v is None else normalise_text(v))
        mine = np.array([normalise_text(v) if isinstance(v, str) else "" for v in crowd["value"]], dtype=object)
    else:
        final, mine = out["value_key"], crowd["value_key"].to_numpy(dtype=object)
    match = mine == crowd["item_id"].map(final).to_numpy(dtype=object)
    agreement = pd.Series(match, index=crowd.index).groupby(crowd["item_id"]).mean()
    out["agreement"] = agreement.reindex(item_ids).astype(float)
    out["needs_expert"] = out["needs_expert"].astype(bool)
    return out.reset_index()[AGGREGATE_COLUMNS]
