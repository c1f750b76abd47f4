"""bot.quality.calibration, bot.quality.redundancy and the calibrated Dawid-Skene: hand tables for the
reliability table, ECE, isotonic fit and one-coin posterior; properties of the calibrated model."""

import json

import numpy as np
import pandas as pd
import pytest

from bot.quality.aggregation import CALIBRATED_DS, aggregate, calibrated_dawid_skene, dawid_skene, value_key
from bot.quality.calibration import (
    Calibrator,
    calibration_against_gold,
    expected_calibration_error,
    fit_calibrator,
    reliability_table,
)
from bot.quality.redundancy import one_coin_posterior

# Tiny hand table, 10 equal-width bins:
#   bin (0.1, 0.2]: confidences 0.15, 0.15; correct 0, 1 -> accuracy 0.5, gap |0.5 - 0.15| = 0.35
#   bin (0.8, 0.9]: confidences 0.85 x 4; correct 1, 1, 1, 0 -> accuracy 0.75, gap 0.10
#   ECE = 2/6 * 0.35 + 4/6 * 0.10 = 0.116667 + 0.066667 = 0.183333
CONF = [0.15, 0.15, 0.85, 0.85, 0.85, 0.85]
HIT = [0, 1, 1, 1, 1, 0]


def test_reliability_table_by_hand():
    table = reliability_table(CONF, HIT)
    assert table["count"].tolist() == [2, 4]
    assert table["bin_low"].tolist() == pytest.approx([0.1, 0.8])
    assert table["mean_confidence"].tolist() == pytest.approx([0.15, 0.85])
    assert table["accuracy"].tolist() == pytest.approx([0.5, 0.75])
    assert (table["ci_low"] <= table["accuracy"]).all() and (table["accuracy"] <= table["ci_high"]).all()
    # edges: 0 goes to the first bin, 1 to the last, 0.2 to (0.1, 0.2]
    assert reliability_table([0.0, 0.2, 1.0], [1, 1, 1])["bin_low"].tolist() == pytest.approx([0.0, 0.1, 0.9])


def test_ece_by_hand():
    m = expected_calibration_error(CONF, HIT, n_boot=200)
    assert m.value == pytest.approx(0.35 * 2 / 6 + 0.10 * 4 / 6)
    assert m.n == 6 and m.ci_low <= m.ci_high
    assert expected_calibration_error([0.5] * 4, [1, 0, 1, 0], n_boot=0).value == pytest.approx(0.0)
    assert expected_calibration_error([], []).value is None
    with pytest.raises(ValueError):
        expected_calibration_error([1.5], [1])


def test_isotonic_calibrator_by_hand():
    # PAV on y = 0, 1, 0, 1 at x = 0.1 .. 0.4: the middle violators pool to 0.5
    # blocks {0.1} -> 0, {0.2, 0.3} -> 0.5 (knot at 0.25), {0.4} -> 1
    cal = fit_calibrator([0.4, 0.1, 0.3, 0.2], [1, 0, 0, 1])
    assert cal.knots == pytest.approx((0.1, 0.25, 0.4)) and cal.values == pytest.approx((0.0, 0.5, 1.0))
    assert cal.apply([0.05, 0.25, 0.325, 0.9]) == pytest.approx([0.0, 0.5, 0.75, 1.0])
    assert Calibrator.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal


def test_binned_calibrator_is_monotone_and_shrunk():
    rng = np.random.default_rng(0)
    raw = rng.random(2000)
    hit = rng.random(2000) < raw**2  # over-confident source
    cal = fit_calibrator(raw, hit, method="binned", bins=5, prior=2.0)
    values = np.asarray(cal.values)
    assert (np.diff(values) >= -1e-12).all()
    assert cal.apply(0.95) == pytest.approx(values[-1])
    # the calibrated confidence fixes the over-confidence
    iso = fit_calibrator(raw, hit)
    assert expected_calibration_error(iso.apply(raw), hit, n_boot=0).value < 0.03
    assert expected_calibration_error(raw, hit, n_boot=0).value > 0.1
    with pytest.raises(ValueError):
        fit_calibrator([], [])


def test_calibration_against_gold():
    items = pd.DataFrame(
        {"item_id": [1, 2, 3, 4], "value_key": ['"a"', '"b"', None, '"a"'], "confidence": [0.9, 0.6, 0.5, 0.8]}
    )
    check = calibration_against_gold(items, {1: '"a"', 2: '"a"', 3: '"a"', 99: '"b"'})
    assert check.accuracy.value == pytest.approx(1 / 3) and check.accuracy.n == 3
    assert check.mean_confidence.value == pytest.approx(2.0 / 3)
    assert check.table["count"].sum() == 3
    json.dumps(check.to_dict())
    assert calibration_against_gold(items, {99: '"b"'}).ece.value is None


# --- one-coin posterior ---------------------------------------------------------------------------------


def test_one_coin_posterior_by_hand():
    # K = 3, uniform prior, answers a, a, b at accuracy 0.8 (errors 0.1 each):
    # a: 0.8 * 0.8 * 0.1 = 0.064; b: 0.1 * 0.1 * 0.8 = 0.008; c: 0.1^3 = 0.001 -> P(a) = 0.064 / 0.073
    post = one_coin_posterior(["a", "a", "b"], [0.8, 0.8, 0.8], ["a", "b", "c"])
    assert post.label == "a" and post.confidence == pytest.approx(0.064 / 0.073)
    assert post.probabilities["c"] == pytest.approx(0.001 / 0.073)
    # a prior: 2:1:1 doubles a's weight
    weighted = one_coin_posterior(["b"], [0.8], ["a", "b", "c"], prior=[2, 1, 1])
    assert weighted.probabilities["b"] == pytest.approx(0.8 / (2 * 0.1 + 0.8 + 0.1))
    assert one_coin_posterior([], [], 4).confidence == pytest.approx(0.25)
    with pytest.raises(ValueError):
        one_coin_posterior(["z"], [0.8], ["a", "b"])


def test_one_coin_posterior_with_anchoring():
    classes = ["a", "b", "c"]
    # full copying: a shown answer equal to the draft says nothing; only the blind answer counts
    post = one_coin_posterior(["a", "a"], [0.8, 0.8], classes, draft="a", shown=[True, False], copy_wrong=1.0)
    assert post.confidence == pytest.approx(0.8)
    # k = 0.5, one shown answer equal to the draft "a":
    # truth a: 0.5 + 0.5 * 0.8 = 0.9; truth b or c: 0.5 + 0.5 * 0.1 = 0.55 -> P(a) = 0.9 / 2.0
    half = one_coin_posterior(["a"], [0.8], classes, draft="a", shown=[True], copy_wrong=0.5)
    assert half.confidence == pytest.approx(0.45)
    # helpful drafts: copying right drafts more than wrong ones makes agreement more informative
    # truth a: 0.5 + 0.5 * 0.8 = 0.9; truth b, c: 0 + 1 * 0.1 = 0.1 -> 0.9 / 1.1
    helpful = one_coin_posterior(["a"], [0.8], classes, draft="a", shown=[True], copy_wrong=0.0, copy_right=0.5)
    assert helpful.confidence == pytest.approx(0.9 / 1.1)
    # no copying: the plain posterior
    plain = one_coin_posterior(["a"], [0.8], classes, draft="a", shown=[True], copy_wrong=0.0)
    assert plain.confidence == pytest.approx(0.8)
    # an answer rejecting the draft: truth b: (1 - 0.5) * 0.8; truth a: (1 - 0.5) * 0.1; c: 0.5 * 0.1
    rejecting = one_coin_posterior(["b"], [0.8], classes, draft="a", shown=[True], copy_wrong=0.5)
    assert rejecting.confidence == pytest.approx(0.8)


# --- calibrated Dawid-Skene -----------------------------------------------------------------------------


def crowd_frame(rng, n_items, *, n_annotators=8, k=5, skew=None, per_item=3, accuracy=(0.65, 0.9)):
    prior = np.full(k, 1 / k) if skew is None else np.asarray(skew)
    truth = rng.choice(k, size=n_items, p=prior)
    acc = rng.uniform(*accuracy, size=n_annotators)
    rows = []
    for i, t in enumerate(truth):
        for a in rng.choice(n_annotators, size=per_item, replace=False):
            ans = t if rng.random() < acc[a] else rng.choice([c for c in range(k) if c != t])
            rows.append((i, f"w{a}", value_key(f"c{ans}")))
    frame = pd.DataFrame(rows, columns=["item_id", "annotator", "value_key"])
    frame["value"] = frame["value_key"]
    return frame, truth


def test_defaults_are_unchanged_and_options_change_the_matrices():
    rng = np.random.default_rng(1)
    frame, _ = crowd_frame(rng, 300)
    classic = dawid_skene(frame)
    explicit = dawid_skene(frame, smoothing=0.01, shrinkage=0.0, diagonal_prior=0.0, one_coin_below=0)
    assert np.allclose(classic.errors, explicit.errors)
    # huge shrinkage: every annotator's matrix is (nearly) the pooled one
    pooled = dawid_skene(frame, max_iter=0, shrinkage=1e9)
    assert np.allclose(pooled.errors, pooled.errors[0], atol=1e-6)
    # one-coin fallback: an annotator with few labels has one accuracy and equal off-diagonals
    few = pd.concat([frame, frame.head(3).assign(annotator="newbie")], ignore_index=True)
    coin = dawid_skene(few, one_coin_below=10).confusion_matrix("newbie").to_numpy()
    off = coin[~np.eye(len(coin), dtype=bool)]
    assert np.allclose(np.diag(coin), coin[0, 0]) and np.allclose(off, off[0])
    assert np.allclose(coin.sum(axis=0), 1.0)


def test_calibrated_dawid_skene_on_111_splits():
    """Property, balanced classes, annotators of accuracy 0.72-0.9 (the review's crowd), 600 items:
    on 1-1-1 splits of 5 classes the calibrated model's mean confidence stays below 0.6 where classic
    DS claims > 0.7, and with the one-coin model for everyone no 1-1-1 split ever exceeds 0.6.

    "Never above 0.6" is *not* asserted for CALIBRATED_DS: with the true matrices a 0.9 annotator
    against two 0.72 ones gives 0.9 * 0.07^2 / (0.9 * 0.07^2 + 2 * 0.025 * 0.72 * 0.07 + 2 * 0.025 *
    0.07^2) = 0.616 in a one-coin world, and full confusion matrices estimated from ~45 labels per
    column produce individual 1-1-1 items near 0.75 (see the report in bench/quality_sim.py)."""
    for seed in range(4):
        rng = np.random.default_rng(seed)
        frame, _ = crowd_frame(rng, 600, accuracy=(0.72, 0.9))
        split = frame.groupby("item_id")["value_key"].nunique()
        one_one_one = split.index[split == 3]
        assert len(one_one_one) > 10

        def conf(fit, ids=one_one_one):
            return fit.items.set_index("item_id").loc[ids, "confidence"]

        assert conf(calibrated_dawid_skene(frame)).mean() < 0.6 < conf(dawid_skene(frame)).mean()
        assert conf(calibrated_dawid_skene(frame, one_coin_below=10**9)).max() <= 0.6


def test_calibrated_dawid_skene_is_better_calibrated_on_a_small_crowd():
    rng = np.random.default_rng(5)
    frame, truth = crowd_frame(rng, 400, skew=[0.45, 0.25, 0.15, 0.1, 0.05])
    eces = {}
    for name, fit in (("classic", dawid_skene(frame)), ("calibrated", calibrated_dawid_skene(frame))):
        items = fit.items.set_index("item_id").sort_index()
        correct = items["value_key"].to_numpy() == np.array([value_key(f"c{t}") for t in truth], dtype=object)
        eces[name] = expected_calibration_error(items["confidence"], correct, n_boot=0).value
    assert eces["calibrated"] < eces["classic"]


def test_aggregate_accepts_the_calibrated_options():
    rng = np.random.default_rng(2)
    frame, _ = crowd_frame(rng, 50)
    frame["counts"] = True
    frame["kind"] = "production"
    out = aggregate("classification", frame, method="dawid_skene", ds_options=CALIBRATED_DS)
    assert len(out) == 50 and out["confidence"].between(0, 1).all()
