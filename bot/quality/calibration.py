"""Are confidences honest? Reliability tables, expected calibration error, and a calibrator that maps
raw confidences (Dawid-Skene posteriors, LLM draft confidences) to observed accuracy.

- `reliability_table`: equal-width bins of confidence -> count, mean confidence, accuracy, and the
  Wilson 95% interval of the accuracy;
- `expected_calibration_error`: sum over bins of (count / n) * |accuracy - mean confidence|
  (Guo et al. 2017, "On Calibration of Modern Neural Networks", eq. 3), with an item bootstrap CI;
- `fit_calibrator`: isotonic (pool-adjacent-violators, `scipy.optimize.isotonic_regression`) or binned
  calibrator fitted on (confidence, correct) pairs; `Calibrator.apply` maps new confidences;
- `calibration_against_gold`: the table and ECE of an aggregation's confidences on gold items.

Pure: numpy, pandas, scipy, statsmodels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import isotonic_regression
from statsmodels.stats.proportion import proportion_confint

from bot.quality.common import Measure

__all__ = [
    "CalibrationCheck",
    "Calibrator",
    "calibration_against_gold",
    "expected_calibration_error",
    "fit_calibrator",
    "reliability_table",
]

RELIABILITY_COLUMNS = ["bin_low", "bin_high", "count", "mean_confidence", "accuracy", "ci_low", "ci_high"]


def _pairs(confidence: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(confidence, dtype=float).ravel()
    hit = np.asarray(correct, dtype=float).ravel()
    if conf.shape != hit.shape:
        raise ValueError("confidence and correct must have the same length")
    keep = np.isfinite(conf) & np.isfinite(hit)
    conf, hit = conf[keep], hit[keep]
    if ((conf < 0) | (conf > 1)).any():
        raise ValueError("confidences must lie within [0, 1]")
    return conf, hit


def _bin_index(conf: np.ndarray, bins: int) -> np.ndarray:
    # bins (i/bins, (i+1)/bins]; 0 goes to the first bin, 1 to the last
    return np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)


def reliability_table(confidence: Any, correct: Any, *, bins: int = 10) -> pd.DataFrame:
    """One row per non-empty equal-width bin (lower edge excluded, upper included; 0 in the first
    bin): bin_low, bin_high, count, mean_confidence, accuracy (share correct) and its Wilson 95% CI.
    `correct` is 0/1 (or bool); non-finite pairs are dropped."""
    conf, hit = _pairs(confidence, correct)
    idx = _bin_index(conf, bins)
    count = np.bincount(idx, minlength=bins)
    used = np.flatnonzero(count)
    sum_conf = np.bincount(idx, weights=conf, minlength=bins)[used]
    sum_hit = np.bincount(idx, weights=hit, minlength=bins)[used]
    n = count[used]
    lo, hi = proportion_confint(np.round(sum_hit), n, method="wilson") if len(used) else ([], [])
    return pd.DataFrame(
        {
            "bin_low": used / bins,
            "bin_high": (used + 1) / bins,
            "count": n.astype(np.int64),
            "mean_confidence": sum_conf / n if len(used) else [],
            "accuracy": sum_hit / n if len(used) else [],
            "ci_low": lo,
            "ci_high": hi,
        },
        columns=RELIABILITY_COLUMNS,
    )


def _ece(idx: np.ndarray, conf: np.ndarray, hit: np.ndarray, bins: int, weights: np.ndarray | None) -> np.ndarray:
    """ECE for one or many weight vectors (rows of `weights`, e.g. bootstrap multiplicities)."""
    if weights is None:
        weights = np.ones((1, len(conf)))
    onehot = np.zeros((len(conf), bins))
    onehot[np.arange(len(conf)), idx] = 1.0
    n_b = weights @ onehot
    gap = weights @ (onehot * (hit - conf)[:, None])
    total = n_b.sum(axis=1)
    return np.abs(gap).sum(axis=1) / total


def expected_calibration_error(
    confidence: Any, correct: Any, *, bins: int = 10, n_boot: int = 500, seed: int = 0
) -> Measure:
    """Expected calibration error over equal-width bins: sum_b (n_b / n) |accuracy_b - confidence_b|.
    0 is perfect; n = pairs. 95% CI from a seeded bootstrap of the pairs (`n_boot` = 0: none).
    Note ECE is biased upward on small samples (each bin's accuracy is noisy): compare like with like."""
    conf, hit = _pairs(confidence, correct)
    if conf.size == 0:
        return Measure.na("no (confidence, correct) pairs")
    idx = _bin_index(conf, bins)
    value = float(_ece(idx, conf, hit, bins, None)[0])
    lo = hi = None
    if n_boot > 0 and conf.size > 1:
        rng = np.random.default_rng(seed)
        reps = []
        block = max(1, 2_000_000 // conf.size)
        for start in range(0, n_boot, block):
            b = min(block, n_boot - start)
            draws = rng.integers(0, conf.size, size=(b, conf.size))
            w = np.bincount((np.arange(b)[:, None] * conf.size + draws).ravel(), minlength=b * conf.size)
            reps.append(_ece(idx, conf, hit, bins, w.reshape(b, conf.size).astype(float)))
        boot = np.concatenate(reps)
        lo, hi = (float(x) for x in np.quantile(boot, [0.025, 0.975]))
    return Measure(value=value, n=int(conf.size), ci_low=lo, ci_high=hi, note=f"{bins} equal-width bins")


@dataclass(frozen=True)
class Calibrator:
    """A fitted monotone map from raw confidence to calibrated probability of being right.

    `knots` (increasing raw confidences) and `values` (calibrated probabilities, non-decreasing):
    isotonic calibrators interpolate linearly between knots and stay flat outside them; binned
    calibrators are step functions (each bin's accuracy, shrunk toward the bin centre by `prior`
    pseudo-counts). `n` = pairs fitted on. Serialisable with `to_dict` / `from_dict`."""

    method: Literal["isotonic", "binned"]
    knots: tuple[float, ...]
    values: tuple[float, ...]
    n: int

    def apply(self, confidence: Any) -> np.ndarray:
        """Calibrated probabilities for raw confidences (array-like or scalar -> numpy array)."""
        x = np.asarray(confidence, dtype=float)
        knots, values = np.asarray(self.knots), np.asarray(self.values)
        if self.method == "isotonic":
            return np.interp(x, knots, values)
        bins = len(values)
        return values[_bin_index(np.clip(x, 0.0, 1.0), bins)]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "knots": list(self.knots), "values": list(self.values), "n": self.n}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibrator:
        return cls(data["method"], tuple(data["knots"]), tuple(data["values"]), int(data["n"]))


def fit_calibrator(
    confidence: Any,
    correct: Any,
    *,
    method: Literal["isotonic", "binned"] = "isotonic",
    bins: int = 10,
    prior: float = 2.0,
) -> Calibrator:
    """Fit a calibrator on (raw confidence, right or wrong) pairs, e.g. LLM draft confidence against
    gold. isotonic: the non-decreasing least-squares fit (pool adjacent violators), knots at the mean
    confidence of each pooled block. binned: per equal-width bin, (hits + prior * centre) / (n + prior),
    then made non-decreasing. Needs at least one pair; ~200+ pairs for a stable isotonic fit."""
    conf, hit = _pairs(confidence, correct)
    if conf.size == 0:
        raise ValueError("no (confidence, correct) pairs to fit")
    if method == "binned":
        idx = _bin_index(conf, bins)
        n = np.bincount(idx, minlength=bins)
        hits = np.bincount(idx, weights=hit, minlength=bins)
        centre = (np.arange(bins) + 0.5) / bins
        rate = (hits + prior * centre) / (n + prior)
        rate = isotonic_regression(rate, weights=n + prior).x
        edges = tuple(float(e) for e in np.arange(bins + 1) / bins)
        return Calibrator("binned", edges, tuple(float(v) for v in rate), int(conf.size))
    if method != "isotonic":
        raise ValueError(f"unknown method {method!r} (isotonic or binned)")
    order = np.argsort(conf, kind="stable")
    x, y = conf[order], hit[order]
    ux, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    y_mean = np.bincount(inverse, weights=y) / counts
    fit = isotonic_regression(y_mean, weights=counts.astype(float))
    # one knot per pooled block: its weighted mean confidence and its fitted value
    levels = fit.x[fit.blocks[:-1]]
    knots = [
        float(np.average(ux[a:b], weights=counts[a:b])) for a, b in zip(fit.blocks[:-1], fit.blocks[1:], strict=True)
    ]
    return Calibrator("isotonic", tuple(knots), tuple(float(v) for v in levels), int(conf.size))


@dataclass(frozen=True)
class CalibrationCheck:
    """Calibration of an aggregation against gold: the reliability table, ECE (with CI) and accuracy
    and mean confidence over the gold items used (n = items)."""

    table: pd.DataFrame
    ece: Measure
    accuracy: Measure
    mean_confidence: Measure

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table.to_dict(orient="records"),
            "ece": self.ece.to_dict(),
            "accuracy": self.accuracy.to_dict(),
            "mean_confidence": self.mean_confidence.to_dict(),
        }


def calibration_against_gold(items: pd.DataFrame, gold: Mapping[Any, str], *, bins: int = 10) -> CalibrationCheck:
    """`items`: item_id, value_key, confidence (e.g. `DawidSkeneResult.items`, or `aggregate` output
    restricted to crowd rows — gold rows there carry confidence 1 by construction, so fit Dawid-Skene
    *without* pinning the gold items you check against). `gold`: {item_id: value_key}. Ties (no
    value) count as wrong at their confidence."""
    frame = items.loc[items["item_id"].isin(list(gold))]
    if frame.empty:
        na = Measure.na("no gold item among the aggregated items")
        return CalibrationCheck(pd.DataFrame(columns=RELIABILITY_COLUMNS), na, na, na)
    truth = frame["item_id"].map(dict(gold)).astype(object).to_numpy()
    got = frame["value_key"].astype(object).to_numpy()
    correct = np.array([g is not None and g == t for g, t in zip(got, truth, strict=True)], dtype=float)
    conf = frame["confidence"].to_numpy(dtype=float)
    n = len(conf)
    k = int(correct.sum())
    lo, hi = proportion_confint(k, n, method="wilson")
    return CalibrationCheck(
        table=reliability_table(conf, correct, bins=bins),
        ece=expected_calibration_error(conf, correct, bins=bins),
        accuracy=Measure(value=k / n, n=n, ci_low=lo, ci_high=hi),
        mean_confidence=Measure(value=float(conf.mean()), n=n),
    )
