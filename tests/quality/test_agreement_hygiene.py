"""bot.quality.agreement small-sample hygiene: weighted Light's kappa, pairs under 20 shared items,
item-bootstrap CIs for percent agreement / Fleiss / alpha (pinned to the published point values),
Fleiss with unequal rater counts by hand, and the blind accuracy cap."""

import json

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats import inter_rater as ir

from bot.quality import agreement as ag
from bot.quality.common import Measure
from tests.quality.test_agreement import (
    FLEISS_WIKIPEDIA,
    cohen_wikipedia_frame,
    fleiss_frame,
    frame_of,
    krippendorff_frame,
)


def test_light_kappa_weighted_by_hand():
    pairs = [
        ag.PairKappa("a", "b", Measure(value=0.5, n=30)),
        ag.PairKappa("a", "c", Measure(value=0.8, n=100)),
        ag.PairKappa("b", "c", Measure(value=1.0, n=5)),  # too few shared items: left out
        ag.PairKappa("c", "d", Measure.na("only one category observed", n=40)),
    ]
    m = ag.light_kappa_weighted(pairs)
    assert m.value == pytest.approx((30 * 0.5 + 100 * 0.8) / 130)  # 0.7308
    assert m.n == 2 and "2 pairs left out" in m.note
    assert ag.mean_pairwise_kappa(pairs).value == pytest.approx((0.5 + 0.8 + 1.0) / 3)  # the old, unweighted
    assert ag.light_kappa_weighted(pairs[2:]).value is None


def test_pairwise_summary_lists_small_pairs_apart():
    frame = cohen_wikipedia_frame()  # A and B share 50 items
    extra = frame_of([(900, "A", "yes"), (900, "C", "yes"), (901, "A", "no"), (901, "C", "no")])
    summary = ag.pairwise_kappa_summary(pd.concat([frame, extra], ignore_index=True))
    assert [(p.a, p.b) for p in summary.pairs] == [("A", "B")]
    assert summary.pairs[0].kappa.value == pytest.approx(0.4)  # Wikipedia: 0.4
    assert [(p.a, p.b) for p in summary.too_few] == [("A", "C")]
    assert summary.too_few[0].kappa.value is None  # not "kappa 1, CI 1-1" from 2 items
    assert summary.light.value == pytest.approx(0.4)
    json.dumps(summary.to_dict())


def test_intervals_match_the_published_point_values():
    fleiss = ag.agreement_intervals(fleiss_frame(FLEISS_WIKIPEDIA), n_boot=300, seed=1)
    assert round(fleiss.fleiss.value, 4) == 0.2099  # Wikipedia: 0.210
    assert fleiss.fleiss.ci_low < fleiss.fleiss.value < fleiss.fleiss.ci_high
    assert fleiss.percent.value == pytest.approx(ag.percent_agreement(fleiss_frame(FLEISS_WIKIPEDIA)).value)
    kripp = ag.agreement_intervals(krippendorff_frame(), n_boot=300, seed=1)
    assert round(kripp.alpha.value, 3) == 0.743  # Krippendorff (2011), nominal, raters missing
    assert kripp.alpha.ci_low < kripp.alpha.value < kripp.alpha.ci_high
    again = ag.agreement_intervals(krippendorff_frame(), n_boot=300, seed=1)
    assert again == kripp
    json.dumps(kripp.to_dict())


def test_fleiss_with_unequal_rater_counts_by_hand():
    # items: {a, a} (2 raters), {a, a, b} (3), {a, b} (2)
    # P_i = 1, (2^2 + 1 - 3) / (3 * 2) = 1/3, 0 -> P-bar = 4/9
    # p_a = 5/7, p_b = 2/7 -> P_e = 29/49; kappa = (4/9 - 29/49) / (20/49) = -65/180 = -0.36111
    frame = frame_of(
        [(1, "r1", "a"), (1, "r2", "a"), (2, "r1", "a"), (2, "r2", "a"), (2, "r3", "b"), (3, "r1", "a"), (3, "r3", "b")]
    )
    m = ag.agreement_intervals(frame, n_boot=50)
    assert m.fleiss.value == pytest.approx(-65 / 180)
    assert m.percent.value == pytest.approx(4 / 9) and m.fleiss.n == 3
    assert "2-3 raters" in m.fleiss.note
    # with equal counts it is Fleiss (1971) exactly
    counts = np.array(FLEISS_WIKIPEDIA)
    assert ag.agreement_intervals(fleiss_frame(FLEISS_WIKIPEDIA), n_boot=0).fleiss.value == pytest.approx(
        ir.fleiss_kappa(counts)
    )


def test_intervals_na_cases():
    single = ag.agreement_intervals(frame_of([(1, "a", "x"), (2, "a", "y")]))
    assert single.fleiss.value is None and "2 or more raters" in single.fleiss.reason
    one_cat = ag.agreement_intervals(frame_of([(1, "a", "x"), (1, "b", "x")]))
    assert one_cat.alpha.value is None


def test_blind_accuracy_cap():
    rows = [(1, "a", "x"), (1, "b", "x"), (2, "a", "x"), (2, "b", "y")]  # blind: agreement 1/2
    rows += [(3, "a", "z"), (3, "b", "z"), (4, "a", "z"), (4, "b", "z")]  # drafted: anchored, agree
    frame = frame_of(rows)
    frame["blind"] = [True] * 4 + [False] * 4
    cap = ag.blind_accuracy_cap(frame, n_boot=100)
    assert cap.agreement.value == pytest.approx(0.5) and cap.cap.value == pytest.approx(0.75)
    assert cap.cap.note == "vs a single annotator" and "vs a single annotator" in cap.sentence
    assert cap.cap.ci_low <= 0.75 <= cap.cap.ci_high
    frame["blind"] = False
    assert ag.blind_accuracy_cap(frame).cap.value is None
