"""bot.quality.alarms: Benjamini-Hochberg on the published example, Fisher per annotator by hand, the
per-look threshold, the label-shift permutation test and the rubber-stamp CUSUM by hand."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from bot.quality import alarms as al
from bot.quality.anchoring import switch_rate
from tests.quality.frames import finish_frame

# Benjamini & Hochberg (1995), section 4: 15 p-values; at q = 0.05 the step-up procedure rejects the
# four smallest (0.0095 <= 4/15 * 0.05 = 0.0133, while 0.0201 > 5/15 * 0.05 = 0.0167 and no larger
# p_(i) is below i/15 * 0.05); Bonferroni (0.05 / 15 = 0.0033) only three.
BH_1995 = [0.0201, 0.7590, 0.0001, 0.0004, 0.0019, 0.0095, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262,
           0.5719, 0.6528, 1.0000]  # fmt: skip


def test_benjamini_hochberg_published_example():
    reject, adjusted = al.benjamini_hochberg(BH_1995, 0.05)
    assert sorted(np.asarray(BH_1995)[reject].tolist()) == [0.0001, 0.0004, 0.0019, 0.0095]
    # adjusted p of 0.0095 (rank 4): min over j >= 4 of p_(j) * 15 / j = 0.0095 * 15 / 4
    assert adjusted[BH_1995.index(0.0095)] == pytest.approx(0.0095 * 15 / 4)
    assert al.benjamini_hochberg([], 0.05)[0].size == 0


def wrong_draft_rates(a_counts, b_counts):
    """Rows for switch_rate: per annotator (shown n, hits, blind n, hits), one answer per item."""
    item, who, shown, hit = [], [], [], []
    for name, (n1, k1, n0, k0) in (("A", a_counts), ("B", b_counts)):
        for n, k, arm in ((n1, k1, True), (n0, k0, False)):
            for i in range(n):
                item.append(len(item))
                who.append(name)
                shown.append(arm)
                hit.append(i < k)
    return switch_rate(item, who, shown, hit, n_boot=0)


def test_annotator_alarms_fisher_by_hand():
    # A: shown 5/5 took the wrong draft, blind 0/5: one-sided Fisher p = 1 / C(10, 5) = 1/252
    # B: shown 1/5, blind 1/5: p = P(X >= 1) for X ~ Hypergeometric(10, 2, 5) = 1 - C(8,5)/C(10,5) = 7/9
    rates = wrong_draft_rates((5, 5, 5, 0), (5, 1, 5, 1))
    alarm = al.annotator_anchoring_alarms(rates, alpha=0.05)
    per = alarm.details["annotators"]
    assert per["A"]["p"] == pytest.approx(1 / 252)
    assert per["B"]["p"] == pytest.approx(1 - 56 / 252)
    assert per["A"]["p_bh"] == pytest.approx(2 / 252)  # 2 tests, rank 1
    assert alarm.fired and per["A"]["flagged"] and not per["B"]["flagged"]
    assert "A" in alarm.meaning
    # 30 looks: 0.05 / 30 = 0.00167 < 2/252
    assert not al.annotator_anchoring_alarms(rates, alpha=0.05, looks=30).fired
    json.dumps(alarm.to_dict())


def test_anchoring_alarm_uses_the_per_look_threshold():
    rates = wrong_draft_rates((40, 20, 40, 4), (40, 18, 40, 5))
    assert rates.p_value < 1e-4
    alarm = al.anchoring_alarm(rates, alpha=0.02, looks=30)
    assert alarm.fired and alarm.threshold == pytest.approx(0.02 / 30)
    assert alarm.p_value == pytest.approx(rates.p_value)
    assert "wrong drafts" in alarm.meaning
    quiet = wrong_draft_rates((40, 4, 40, 4), (40, 5, 40, 5))
    assert not al.anchoring_alarm(quiet).fired
    none = al.anchoring_alarm(switch_rate([1], ["a"], [True], [True]))
    assert not none.fired and none.p_value is None
    with pytest.raises(ValueError):
        al.anchoring_alarm(rates, looks=0)


def test_anchoring_alarm_with_a_tolerance_uses_the_bootstrap_se():
    rng = np.random.default_rng(0)
    n = 3000
    blind = rng.random(n) < 0.3
    hit = np.where(~blind & (rng.random(n) < 0.08), True, rng.random(n) < 0.1)
    rates = switch_rate(np.arange(n), np.zeros(n), ~blind, hit, n_boot=500, seed=1)
    assert al.anchoring_alarm(rates, alpha=0.05).fired
    assert not al.anchoring_alarm(rates, alpha=0.05, tolerance=0.2).fired


def shift_rows(rng, n_items, shift):
    item = np.repeat(np.arange(n_items), 3)
    who = rng.integers(0, 6, size=item.size)
    blind = np.repeat(rng.random(n_items) < 0.3, 3)
    truth = np.repeat(rng.choice(4, size=n_items, p=[0.5, 0.3, 0.15, 0.05]), 3)
    label = np.where(rng.random(item.size) < 0.8, truth, rng.integers(0, 4, size=item.size))
    label = np.where(~blind & (rng.random(item.size) < shift), 1, label)
    return item, who, label, blind


def test_label_shift_test_null_and_shift():
    rng = np.random.default_rng(4)
    quiet = al.label_shift_test(*shift_rows(rng, 600, 0.0), n_perm=199, seed=1)
    loud = al.label_shift_test(*shift_rows(rng, 600, 0.3), n_perm=199, seed=1)
    assert quiet.p_value > 0.05
    assert loud.p_value == pytest.approx(1 / 200)
    assert loud.total_variation > 0.1
    # rare labels are pooled: "9" appears 3 times
    item, who, label, blind = shift_rows(rng, 300, 0.0)
    label = label.astype(object)
    label[:3] = 9
    pooled = al.label_shift_test(item, who, label, blind, n_perm=99, min_count=5)
    assert "(rare)" in pooled.categories
    assert al.label_shift_test([1, 2], ["a", "a"], ["x", "y"], [True, True]) is None


def test_label_shift_test_under_the_null_is_roughly_uniform():
    # item-level permutation keeps the false-positive rate near alpha despite 3 correlated answers per item
    rng = np.random.default_rng(9)
    p = [al.label_shift_test(*shift_rows(rng, 200, 0.0), n_perm=99, seed=s).p_value for s in range(60)]
    assert np.mean(np.asarray(p) <= 0.1) < 0.25


def shift_frame(task="classification"):
    rng = np.random.default_rng(2)
    item, who, label, blind = shift_rows(rng, 400, 0.4)
    names = np.array(["a", "b", "c", "d"], dtype=object)
    records = []
    for i, w, lab, b in zip(item, who, label, blind, strict=True):
        value = names[lab] if task == "classification" else sorted({names[lab], "a"})
        records.append(
            {"item_id": int(i), "annotator": f"w{w}", "value_key": json.dumps(value), "value": value,
             "action": "manual" if b else "edit", "draft_shown": not b, "draft_key": '"a"', "seconds": 3.0,
             "counts": True, "kind": "production", "gold_key": None,
             "created_at": pd.Timestamp("2026-11-02", tz="UTC")}
        )  # fmt: skip
    frame = finish_frame(records)
    frame["blind"] = blind
    return frame


def test_label_shift_alarm_classification_and_multilabel():
    alarm = al.label_shift_alarm(shift_frame(), alpha=0.05, n_perm=199)
    assert alarm.fired and alarm.p_value == pytest.approx(1 / 200)
    assert set(alarm.details["categories"]) == {"a", "b", "c", "d"}
    multi = al.label_shift_alarm(shift_frame("multilabel"), task="multilabel", alpha=0.05, n_perm=199)
    assert multi.fired and multi.details["labels"]["b"]["flagged"]
    # "a" is in every answer: one category only, not testable
    assert "a" not in multi.details["labels"]
    json.dumps(multi.to_dict())


def test_rubber_stamp_cusum_by_hand():
    step = math.log(9)  # p_honest 0.1, p_stamper 0.9: +log 9 per accepted decoy, -log 9 per rejected one
    a = al.rubber_stamp_check([True, True, True])
    assert a.fired and a.details["flagged_at"] == 3 and a.statistic == pytest.approx(3 * step)
    # S: 2.20, 0, 2.20, 4.39: never 3 steps up
    b = al.rubber_stamp_check([True, False, True, True])
    assert not b.fired and b.statistic == pytest.approx(2 * step)
    # S: 2.20, 4.39, 2.20, 4.39, 6.59: flagged at the 5th decoy
    c = al.rubber_stamp_check([True, True, False, True, True])
    assert c.details["flagged_at"] == 5
    assert not al.rubber_stamp_check([False] * 20 + [True, True]).fired
    with pytest.raises(ValueError):
        al.rubber_stamp_check([True], p_honest=0.9, p_stamper=0.1)
