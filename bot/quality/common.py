"""Shared pieces of the quality statistics: the `Measure` result type, the labels-frame contract,
row filters and category decoding.

Pure: pandas and numpy only (no Slack, no SQLAlchemy).

A *labels frame* has one row per answer with the columns in `LABEL_COLUMNS` (see `empty_frame` for
the dtypes). Categories: for classification the category of an answer is the decoded label name
(`"billing"` for the value_key `"\\"billing\\""`); any value_key that does not decode to a JSON string
(multilabel lists, spans, ...) is its own category, spelled as the canonical JSON key. Every distinct
key is decoded once, never once per row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ANSWER_ACTIONS",
    "DRAFT_ACTIONS",
    "LABEL_COLUMNS",
    "NO_ANSWER_ACTIONS",
    "Confusion",
    "Measure",
    "answered",
    "blind",
    "counting",
    "decode_keys",
    "drafted",
    "empty_frame",
    "label_names",
    "latest_per_rater",
    "of_kind",
    "require_columns",
    "same_key",
]

LABEL_COLUMNS: tuple[str, ...] = (
    "item_id",
    "annotator",
    "value_key",
    "value",
    "action",
    "draft_shown",
    "draft_key",
    "seconds",
    "counts",
    "kind",
    "gold_key",
    "created_at",
)

#: Actions that carry no answer (no value): never part of agreement, accuracy or drift.
NO_ANSWER_ACTIONS: frozenset[str] = frozenset({"skip", "ambiguous"})
#: Actions that carry an answer.
ANSWER_ACTIONS: frozenset[str] = frozenset({"accept", "edit", "reject", "manual"})
#: What an annotator can do with a draft that was shown.
DRAFT_ACTIONS: tuple[str, ...] = ("accept", "edit", "reject")


def _clean_float(x: Any) -> float | None:
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


@dataclass(frozen=True, slots=True)
class Measure:
    """One statistic. `value` is a finite float, or None with a human `reason` ("n/a: ...").

    `n` is what the statistic was computed over (items, pairs, answers: each function says which),
    `ci_low`/`ci_high` a 95% interval when the method gives one, `note` optional context
    (e.g. how many items a Fleiss' kappa left out). Never NaN: build undefined results with `na`,
    or with `of`, which turns NaN/inf into `na`.
    """

    value: float | None
    reason: str | None = None
    n: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        value = _clean_float(self.value)
        if self.value is not None and value is None:
            raise ValueError(f"Measure value must be finite, got {self.value!r}; use Measure.na(reason)")
        if value is None and not self.reason:
            raise ValueError("an undefined Measure needs a reason")
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "ci_low", _clean_float(self.ci_low))
        object.__setattr__(self, "ci_high", _clean_float(self.ci_high))
        if self.n is not None:
            object.__setattr__(self, "n", int(self.n))

    @classmethod
    def na(cls, reason: str, *, n: int | None = None, note: str | None = None) -> Measure:
        """An undefined statistic; the reason is prefixed with "n/a: " unless it already is."""
        text = reason if reason.startswith("n/a") else f"n/a: {reason}"
        return cls(value=None, reason=text, n=n, note=note)

    @classmethod
    def of(
        cls,
        value: Any,
        *,
        reason: str = "undefined for these data",
        n: int | None = None,
        ci_low: Any = None,
        ci_high: Any = None,
        note: str | None = None,
    ) -> Measure:
        """`value` if finite, else `na(reason)`."""
        v = _clean_float(value)
        if v is None:
            return cls.na(reason, n=n, note=note)
        return cls(value=v, n=n, ci_low=ci_low, ci_high=ci_high, note=note)

    @property
    def ok(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (float/int/str/None)."""
        return asdict(self)

    def __str__(self) -> str:
        if self.value is None:
            return str(self.reason)
        parts = []
        if self.n is not None:
            parts.append(f"n={self.n}")
        if self.ci_low is not None and self.ci_high is not None:
            parts.append(f"95% CI {self.ci_low:.3f}–{self.ci_high:.3f}")
        return f"{self.value:.3f}" + (f" ({', '.join(parts)})" if parts else "")


@dataclass(frozen=True, slots=True)
class Confusion:
    """How often `first` met `second` (two raters on one item, or draft -> consensus).

    `share` is `count` over the number of chances (documented by the function that returns it)."""

    first: str
    second: str
    count: int
    share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the frame -------------------------------------------------------------------------------------


def empty_frame() -> pd.DataFrame:
    """A labels frame with no rows and the contract's dtypes."""
    return pd.DataFrame(
        {
            "item_id": pd.Series([], dtype="int64"),
            "annotator": pd.Series([], dtype=object),
            "value_key": pd.Series([], dtype=object),
            "value": pd.Series([], dtype=object),
            "action": pd.Series([], dtype=object),
            "draft_shown": pd.Series([], dtype=bool),
            "draft_key": pd.Series([], dtype=object),
            "seconds": pd.Series([], dtype="float64"),
            "counts": pd.Series([], dtype=bool),
            "kind": pd.Series([], dtype=object),
            "gold_key": pd.Series([], dtype=object),
            "created_at": pd.Series([], dtype="datetime64[ns, UTC]"),
        }
    )


def require_columns(frame: pd.DataFrame, columns: Iterable[str]) -> None:
    """Raise ValueError naming the columns `frame` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"labels frame lacks column(s): {', '.join(missing)}")


def answered(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows that carry an answer: action not skip/ambiguous and a value_key present."""
    require_columns(frame, ("action", "value_key"))
    keep = ~frame["action"].isin(NO_ANSWER_ACTIONS) & frame["value_key"].notna()
    return frame.loc[keep.to_numpy(dtype=bool)]


def counting(frame: pd.DataFrame) -> pd.DataFrame:
    """Answered rows whose `counts` flag is set (the ones that make up an item's labels)."""
    rows = answered(frame)
    require_columns(rows, ("counts",))
    return rows.loc[rows["counts"].fillna(False).to_numpy(dtype=bool)]


def of_kind(frame: pd.DataFrame, *kinds: str) -> pd.DataFrame:
    """Rows whose assignment kind is one of `kinds` (production, quiz, honeypot, expert)."""
    require_columns(frame, ("kind",))
    return frame.loc[frame["kind"].isin(kinds).to_numpy(dtype=bool)]


def drafted(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows where the draft was shown."""
    require_columns(frame, ("draft_shown",))
    return frame.loc[frame["draft_shown"].fillna(False).to_numpy(dtype=bool)]


def blind(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows where no draft was shown (blind controls, quiz)."""
    require_columns(frame, ("draft_shown",))
    return frame.loc[~frame["draft_shown"].fillna(False).to_numpy(dtype=bool)]


def latest_per_rater(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (item_id, annotator): the latest by `created_at` when that column is present."""
    require_columns(frame, ("item_id", "annotator"))
    if frame.empty:
        return frame
    item, _ = pd.factorize(frame["item_id"])
    rater, raters = pd.factorize(frame["annotator"])
    key = pd.Series(item.astype(np.int64) * max(len(raters), 1) + rater)
    if not key.duplicated().any():
        return frame
    order = np.arange(len(frame))
    if "created_at" in frame.columns:
        created = pd.to_datetime(frame["created_at"], utc=True)
        order = np.argsort(created.to_numpy(dtype="datetime64[ns]"), kind="stable")
    last = ~key.iloc[order].duplicated(keep="last").to_numpy()
    return frame.iloc[np.sort(order[last])]


def same_key(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Element-wise equality of two key columns as a numpy bool array; missing never equals."""
    if len(a) != len(b):
        raise ValueError("key columns must have the same length")
    left, right = a.reset_index(drop=True), b.reset_index(drop=True)
    both = left.notna().to_numpy(dtype=bool) & right.notna().to_numpy(dtype=bool)
    if left.dtype != right.dtype:
        left, right = left.astype(object), right.astype(object)
    eq = left.eq(right).fillna(False).to_numpy(dtype=bool)
    return both & eq


# --- keys and categories ---------------------------------------------------------------------------


def _label_of_key(key: str) -> str:
    try:
        decoded = json.loads(key)
    except (TypeError, ValueError):
        return str(key)
    return decoded if isinstance(decoded, str) else str(key)


def label_names(keys: pd.Series) -> pd.Series:
    """Categories for value keys (same index): the decoded label name when the key is a JSON string,
    otherwise the key itself; missing stays missing. Returns a pandas Categorical series."""
    codes, uniques = pd.factorize(keys, sort=True)
    names = [_label_of_key(k) for k in uniques]
    if len(set(names)) != len(names):  # two keys decode to one name: keep the keys apart
        names = [str(k) for k in uniques]
    cat = pd.Categorical.from_codes(codes, categories=pd.Index(names, dtype=object))
    return pd.Series(cat, index=keys.index, name=keys.name)


def decode_keys(keys: pd.Series) -> pd.Series:
    """json.loads of each key (missing -> None); each distinct key is decoded once."""
    codes, uniques = pd.factorize(keys.astype(object))
    decoded = np.empty(len(uniques) + 1, dtype=object)
    for i, k in enumerate(uniques):
        decoded[i] = json.loads(k)
    decoded[-1] = None
    return pd.Series(decoded[codes], index=keys.index, name=keys.name, dtype=object)
