"""bot.quality.anchoring: the Mantel-Haenszel switch rate (textbook 2x2xK example), hand-computed
frames, the score test against the pooled two-proportion z, arms and exclusions, seeding."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.contingency_tables import StratifiedTable

from bot.quality.anchoring import anchoring_effect, mh_switch_rate, switch_rate
from tests.quality.frames import finish_frame


def key(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def test_mantel_haenszel_textbook_example():
    # UGDP tolbutamide trial by age (the stratified example in Rothman & Greenland, Modern Epidemiology):
    # < 55: tolbutamide 8 deaths / 106, placebo 5 / 120; 55+: 22 / 98 vs 16 / 85.
    # RR_MH = (8*120/226 + 22*85/183) / (5*106/226 + 16*98/183) = 14.4664 / 10.9134 = 1.3256 (published 1.33;
    # crude 1.44). "Stay" (answer differs from the draft) plays the death: hit = n - deaths.
    rate = mh_switch_rate([106, 98], [106 - 8, 98 - 22], [120, 85], [120 - 5, 85 - 16])
    assert 1 - rate == pytest.approx(1.3256, abs=1e-4)
    tables = [np.array([[8, 98], [5, 115]]), np.array([[22, 76], [16, 69]])]
    assert 1 - rate == pytest.approx(StratifiedTable(tables).riskratio_pooled, rel=1e-12)


def test_mh_switch_rate_needs_both_arms_per_stratum():
    # the second stratum has no blind answers: no weight
    assert mh_switch_rate([10, 50], [4, 50], [5, 0], [0, 0]) == pytest.approx(0.4)
    assert math.isnan(mh_switch_rate([10], [4], [0], [0]))
    # 2-d: one value per row
    both = mh_switch_rate([[10], [10]], [[4], [5]], [[5], [10]], [[0], [2]])
    assert both == pytest.approx([0.4, 0.375])


def row(item, annotator, value, draft, *, blind, shown=None, correct=None, action=None):
    shown = (not blind) if shown is None else shown
    return {
        "item_id": item,
        "annotator": annotator,
        "value_key": key(value),
        "value": value,
        "action": action or ("manual" if not shown else ("accept" if value == draft else "edit")),
        "draft_shown": shown,
        "draft_key": key(draft),
        "seconds": 5.0,
        "counts": True,
        "kind": "production",
        "gold_key": None,
        "created_at": pd.Timestamp("2026-11-02", tz="UTC"),
        "blind": blind,
        "draft_correct": correct,
    }


def hand_frame(categorical=False):
    """Wrong drafts ("x", truth elsewhere):
    A: shown 10 (4 took the draft), blind 5 (0 equal to it): switch (0.4 - 0) / 1 = 0.4
    B: shown 10 (5), blind 10 (2): switch (0.5 - 0.2) / 0.8 = 0.375
    MH: num = 6*5/15 + 5*10/20 = 4.5, den = 5*10/15 + 8*10/20 = 7.3333, RR = 0.613636, rate 0.386364
    Right drafts ("y"): A shown 4 (all took it), blind 4 (2 equal): (1 - 0.5) / 0.5 = 1.0
    Plus rows that belong to no arm or have no judgement."""
    records, item = [], 0

    def add(annotator, n, hits, *, blind, draft="x", correct=False):
        nonlocal item
        for i in range(n):
            records.append(row(item, annotator, draft if i < hits else "z", draft, blind=blind, correct=correct))
            item += 1

    add("A", 10, 4, blind=False)
    add("A", 5, 0, blind=True)
    add("B", 10, 5, blind=False)
    add("B", 10, 2, blind=True)
    add("A", 4, 4, blind=False, draft="y", correct=True)
    add("A", 4, 2, blind=True, draft="y", correct=True)
    # excluded: late-linked draft (not blind, not shown), blind with the draft shown
    records.append(row(900, "A", "x", "x", blind=False, shown=False, correct=False))
    records.append(row(901, "A", "x", "x", blind=True, shown=True, correct=False))
    # unjudged, and a skip (not an answer)
    records.append(row(902, "B", "x", "x", blind=False, correct=None))
    records.append(row(903, "B", "x", "x", blind=False, correct=False, action="skip"))
    frame = finish_frame(records, categorical=categorical)
    frame["blind"] = [r["blind"] for r in records]
    frame["draft_correct"] = pd.Series([r["draft_correct"] for r in records], dtype=object)
    return frame


@pytest.mark.parametrize("categorical", [False, True])
def test_anchoring_effect_hand_computed(categorical):
    effect = anchoring_effect(hand_frame(categorical), n_boot=200, seed=3)
    harm = effect.harmful
    assert harm.rate.value == pytest.approx(1 - 4.5 / (5 * 10 / 15 + 8 * 10 / 20))
    assert harm.rate.value == pytest.approx(0.386364, abs=1e-6)
    assert harm.rate.n == 35
    assert harm.by_stratum["A"].value == pytest.approx(0.4)
    assert harm.by_stratum["B"].value == pytest.approx(0.375)
    assert harm.shown.value == pytest.approx(9 / 20) and harm.blind.value == pytest.approx(2 / 15)
    assert harm.counts.loc["B"].tolist() == [10, 5, 10, 2]
    assert harm.rate.ci_low <= harm.rate.value <= harm.rate.ci_high
    assert 0 < harm.p_value < 0.05
    assert effect.helpful.rate.value == pytest.approx(1.0)
    # raw: all drafts in an arm, judged or not (the unjudged shown row took its draft):
    # (4+5+4+1)/25 - (0+2+2)/19
    assert effect.raw.value == pytest.approx(14 / 25 - 4 / 19)
    assert effect.excluded == 2 and effect.unjudged == 1
    assert json.loads(json.dumps(effect.to_dict()))["harmful"]["rate"]["n"] == 35
    # seeded
    again = anchoring_effect(hand_frame(categorical), n_boot=200, seed=3)
    assert again.harmful.rate == harm.rate


def test_crude_estimate_without_strata():
    effect = anchoring_effect(hand_frame(), stratify=False, n_boot=0)
    # one stratum: 1 - (11/20) / (13/15)
    assert effect.harmful.rate.value == pytest.approx(1 - (11 / 20) / (13 / 15))
    assert effect.harmful.rate.ci_low is None and effect.harmful.p_value is not None


def test_score_test_is_the_pooled_two_proportion_z_without_clusters():
    # one stratum, one answer per item: shown 4/10 equal the draft, blind 1/10.
    # U = 0.5 (4 - 2.5) - 0.5 (1 - 2.5) = 1.5; Var = 20 * 0.25 * 0.25 * 0.75 = 0.9375; z = 1.5492
    # = (0.4 - 0.1) / sqrt(0.25 * 0.75 * (1/10 + 1/10)), the classic pooled z.
    shown = [True] * 10 + [False] * 10
    hit = [True] * 4 + [False] * 6 + [True] + [False] * 9
    res = switch_rate(range(20), ["a"] * 20, shown, hit, n_boot=0)
    assert res.z == pytest.approx(1.5 / math.sqrt(0.9375))
    assert res.z == pytest.approx(0.3 / math.sqrt(0.25 * 0.75 * 0.2))
    assert res.p_value == pytest.approx(0.0606, abs=1e-4)


def test_score_test_counts_answers_on_one_item_together():
    # the same answers, but pairs of answers share an item: identical residuals on an item add a
    # positive covariance, so z shrinks
    shown = [True] * 10 + [False] * 10
    hit = [True] * 4 + [False] * 6 + [True] * 2 + [False] * 8
    apart = switch_rate(range(20), ["a"] * 20, shown, hit, n_boot=0)
    paired = switch_rate([i // 2 for i in range(20)], ["a"] * 20, shown, hit, n_boot=0)
    assert paired.z < apart.z


def test_missing_arm_is_na():
    res = switch_rate([1, 2], ["a", "a"], [True, True], [True, False])
    assert res.rate.value is None and "no blind answers" in res.rate.reason
    assert res.shown.value == 0.5


def test_bootstrap_coverage_and_speed_on_a_large_frame():
    rng = np.random.default_rng(7)
    n_items = 20_000  # 60,000 answers
    item = np.repeat(np.arange(n_items), 3)
    ann = rng.integers(0, 10, size=item.size)
    blind = np.repeat(rng.random(n_items) < 0.1, 3)
    hit = np.where(~blind & (rng.random(item.size) < 0.2), True, rng.random(item.size) < 0.1)
    res = switch_rate(item, ann, ~blind, hit, n_boot=1000, seed=1)
    assert res.rate.ci_low < 0.2 < res.rate.ci_high
    assert res.rate.ci_high - res.rate.ci_low < 0.05
    assert len(res.by_stratum) == 10 and res.items == n_items
