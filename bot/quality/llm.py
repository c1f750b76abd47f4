"""The LLM drafter judged as one more annotator.

- draft accuracy against gold, quiz and honeypot items separately (draft_key vs gold_key; Wilson CI
  from `statsmodels.stats.proportion.proportion_confint`);
- draft accuracy against the human consensus: by default the strict majority (more than half) of the
  counting labels of an item, computed here with pandas; any consensus (e.g. from an aggregation
  model) can be passed in instead;
- Cohen's kappa of drafter vs consensus, overall and one-vs-rest per label
  (`statsmodels.stats.inter_rater.cohens_kappa`, via `agreement.cohens_kappa_table`);
- the drafter's systematic mistakes: the most frequent draft -> consensus confusions.

The drafter sees one draft per item: the first non-missing draft_key of each item is used. Human
answers given with the draft shown are anchored on it (see `drift.anchoring`), which flatters the
drafter; pass `common.blind(frame)` to judge it on blind answers only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from bot.quality.agreement import cohens_kappa_table
from bot.quality.common import (
    Confusion,
    Measure,
    counting,
    decode_keys,
    label_names,
    latest_per_rater,
    of_kind,
    require_columns,
    same_key,
)

__all__ = [
    "DrafterReport",
    "draft_consensus_accuracy",
    "draft_gold_accuracy",
    "drafter_confusions",
    "drafter_kappa",
    "drafter_label_kappa",
    "drafter_report",
    "drafts_vs_consensus",
    "majority_consensus",
]

Score = Callable[[Any, Any], float]
Consensus: TypeAlias = pd.Series | pd.DataFrame


def _accuracy(hits: np.ndarray, what: str) -> Measure:
    n = int(hits.size)
    if n == 0:
        return Measure.na(f"no {what}")
    k = int(hits.sum())
    lo, hi = proportion_confint(k, n, method="wilson")
    return Measure(value=k / n, n=n, ci_low=lo, ci_high=hi)


def _drafts(frame: pd.DataFrame) -> pd.DataFrame:
    require_columns(frame, ("item_id", "draft_key"))
    rows = frame.loc[frame["draft_key"].notna().to_numpy(dtype=bool)]
    return rows.drop_duplicates("item_id", keep="first")


def draft_gold_accuracy(frame: pd.DataFrame, *, score: Score | None = None) -> dict[str, Measure]:
    """{"quiz": ..., "honeypot": ...}: share of gold items of that kind whose draft equals the gold
    answer (Wilson CI), n = items. With `score(draft_value, gold_value) -> float` on decoded values the
    mean score is reported instead, without a CI."""
    require_columns(frame, ("kind", "gold_key"))
    out: dict[str, Measure] = {}
    for kind in ("quiz", "honeypot"):
        rows = of_kind(frame, kind)
        rows = _drafts(rows.loc[rows["gold_key"].notna().to_numpy(dtype=bool)])
        if score is None:
            out[kind] = _accuracy(same_key(rows["draft_key"], rows["gold_key"]), f"{kind} items with a draft")
        elif rows.empty:
            out[kind] = Measure.na(f"no {kind} items with a draft")
        else:
            points = [
                float(score(d, g))
                for d, g in zip(decode_keys(rows["draft_key"]), decode_keys(rows["gold_key"]), strict=True)
            ]
            out[kind] = Measure(value=float(np.mean(points)), n=len(points))
    return out


def majority_consensus(frame: pd.DataFrame, *, min_raters: int = 2) -> pd.DataFrame:
    """Items whose counting answers (latest per annotator) have a strict majority value.

    Returns a frame indexed by item_id with columns consensus_key (the winning value_key), votes and
    raters; items with fewer than `min_raters` raters or no value held by more than half are left out."""
    rows = latest_per_rater(counting(frame))
    empty = pd.DataFrame(
        {"consensus_key": pd.Series([], dtype=object), "votes": pd.Series([], dtype="int64"),
         "raters": pd.Series([], dtype="int64")},
        index=pd.Index([], dtype="int64", name="item_id"),
    )  # fmt: skip
    if rows.empty:
        return empty
    votes = rows.groupby(["item_id", rows["value_key"]]).size().rename("votes").reset_index()
    votes = votes.rename(columns={"value_key": "consensus_key"})
    raters = rows.groupby("item_id").size().rename("raters")
    votes = votes.join(raters, on="item_id")
    won = votes.loc[((2 * votes["votes"] > votes["raters"]) & (votes["raters"] >= min_raters)).to_numpy()]
    return won.set_index("item_id")[["consensus_key", "votes", "raters"]].sort_index()


def _consensus_keys(frame: pd.DataFrame, consensus: Consensus | None) -> pd.Series:
    if consensus is None:
        return majority_consensus(frame)["consensus_key"]
    if isinstance(consensus, pd.DataFrame):
        column = next((c for c in ("consensus_key", "value_key") if c in consensus.columns), None)
        if column is None:
            raise ValueError("a consensus frame needs a consensus_key (or value_key) column")
        table = consensus.set_index("item_id") if "item_id" in consensus.columns else consensus
        return table[column].rename("consensus_key")
    return consensus.rename("consensus_key")


def drafts_vs_consensus(frame: pd.DataFrame, consensus: Consensus | None = None) -> pd.DataFrame:
    """item_id, draft_key, consensus_key for items that have both a draft and a consensus.

    `consensus`: None (strict majority of counting answers, see `majority_consensus`), a Series
    item_id -> key, or a frame with a consensus_key column, or else a value_key column (such as
    `bot.quality.aggregation.aggregate` returns), indexed by item_id or with an item_id column."""
    keys = _consensus_keys(frame, consensus).dropna()
    drafts = _drafts(frame)[["item_id", "draft_key"]]
    paired = drafts.join(keys, on="item_id", how="inner")
    return paired.reset_index(drop=True)


def draft_consensus_accuracy(frame: pd.DataFrame, consensus: Consensus | None = None) -> Measure:
    """Share of items whose draft equals the human consensus (Wilson CI), n = items."""
    paired = drafts_vs_consensus(frame, consensus)
    return _accuracy(same_key(paired["draft_key"], paired["consensus_key"]), "items with a draft and a consensus")


def _paired_labels(paired: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    both = pd.concat([paired["draft_key"], paired["consensus_key"]], ignore_index=True).astype(object)
    names = label_names(both)
    codes = names.cat.codes.to_numpy()
    return codes[: len(paired)], codes[len(paired) :], [str(c) for c in names.cat.categories]


def drafter_kappa(frame: pd.DataFrame, consensus: Consensus | None = None) -> Measure:
    """Cohen's kappa of drafter vs human consensus over items, with the statsmodels 95% CI."""
    paired = drafts_vs_consensus(frame, consensus)
    if paired.empty:
        return Measure.na("no items with a draft and a consensus")
    draft, human, categories = _paired_labels(paired)
    table = np.zeros((len(categories), len(categories)))
    np.add.at(table, (draft, human), 1)
    return cohens_kappa_table(table)


def drafter_label_kappa(frame: pd.DataFrame, consensus: Consensus | None = None) -> dict[str, Measure]:
    """One-vs-rest Cohen's kappa per label: does the drafter say "label" exactly when humans do?"""
    paired = drafts_vs_consensus(frame, consensus)
    if paired.empty:
        return {}
    draft, human, categories = _paired_labels(paired)
    out: dict[str, Measure] = {}
    for j, name in enumerate(categories):
        d, h = draft == j, human == j
        table = np.array([[np.sum(d & h), np.sum(d & ~h)], [np.sum(~d & h), np.sum(~d & ~h)]], dtype=float)
        out[name] = cohens_kappa_table(table)
    return out


def drafter_confusions(frame: pd.DataFrame, consensus: Consensus | None = None, *, top: int = 10) -> list[Confusion]:
    """Where the drafter is systematically wrong: (draft label, consensus label, count, share) for the
    most frequent disagreements; share = count / items where the drafter proposed that label."""
    paired = drafts_vs_consensus(frame, consensus)
    if paired.empty:
        return []
    draft, human, categories = _paired_labels(paired)
    pairs = pd.DataFrame({"draft": draft, "human": human})
    per_draft = pairs.groupby("draft").size()
    wrong = pairs.loc[pairs["draft"] != pairs["human"]].groupby(["draft", "human"]).size()
    if wrong.empty:
        return []
    order = wrong.reset_index(name="n").sort_values(["n", "draft", "human"], ascending=[False, True, True])
    return [
        Confusion(categories[int(d)], categories[int(h)], int(n), float(n / per_draft[d]))
        for d, h, n in order.head(top).itertuples(index=False)
    ]


@dataclass(frozen=True)
class DrafterReport:
    """Everything `drafter_report` measured; `to_dict()` is JSON-friendly."""

    gold: dict[str, Measure]
    consensus_accuracy: Measure
    kappa: Measure
    per_label: dict[str, Measure] = field(default_factory=dict)
    confusions: list[Confusion] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gold": {k: v.to_dict() for k, v in self.gold.items()},
            "consensus_accuracy": self.consensus_accuracy.to_dict(),
            "kappa": self.kappa.to_dict(),
            "per_label": {k: v.to_dict() for k, v in self.per_label.items()},
            "confusions": [c.to_dict() for c in self.confusions],
        }


def drafter_report(
    frame: pd.DataFrame,
    consensus: Consensus | None = None,
    *,
    score: Score | None = None,
    top: int = 10,
) -> DrafterReport:
    """All of the above in one call; the consensus is computed once."""
    keys = _consensus_keys(frame, consensus)
    return DrafterReport(
        gold=draft_gold_accuracy(frame, score=score),
        consensus_accuracy=draft_consensus_accuracy(frame, keys),
        kappa=drafter_kappa(frame, keys),
        per_label=drafter_label_kappa(frame, keys),
        confusions=drafter_confusions(frame, keys, top=top),
    )
