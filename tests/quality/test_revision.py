"""bot.quality.revision: pair agreement, agreement per guideline version and its change, pinned to
hand-computed values (and to the `krippendorff` library through `agreement`)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bot.quality import agreement as ag
from bot.quality import revision as rev

T0 = pd.Timestamp("2026-11-02 09:00", tz="UTC")


def frame_of(rows):
    """rows: (item_id, annotator, label)."""
    return pd.DataFrame(
        {
            "item_id": pd.Series([r[0] for r in rows], dtype="int64"),
            "annotator": pd.Series([r[1] for r in rows], dtype=object),
            "value_key": pd.Series([json.dumps(r[2]) for r in rows], dtype=object),
            "created_at": [T0 + pd.Timedelta(seconds=i) for i in range(len(rows))],
        }
    )


# item 1: a a b; item 2: a b c; item 3: c c
SMALL = frame_of([(1, "x", "a"), (1, "y", "a"), (1, "z", "b"), (2, "x", "a"), (2, "y", "b"), (2, "z", "c"),
                  (3, "x", "c"), (3, "y", "c")])


def repeat(pattern, times, first_item=1, people=("x", "y", "z")):
    """`times` items, each answered `pattern` (a tuple of labels, one per person)."""
    rows = []
    for k in range(times):
        for person, label in zip(people, pattern[k % len(pattern)], strict=False):
            rows.append((first_item + k, person, label))
    return frame_of(rows)


def test_pair_agreement_by_hand():
    # (a, b): item 1 has n_a=2, n_b=1 -> C(2,2)+C(1,2)=1 agreeing pair, 2*1=2 split; item 2 has 1 and 1 -> 1 split.
    p = rev.pair_agreement(SMALL, "a", "b")
    assert (p.agree, p.split, p.pairs, p.items) == (1, 3, 4, 2)
    assert p.value == pytest.approx(0.25)
    # the split count is the confusion count of agreement.confused_pairs
    confusion = next(c for c in ag.confused_pairs(SMALL) if (c.first, c.second) == ("a", "b"))
    assert confusion.count == p.split == 3
    # (a, c): item 1 a a -> 1 agree; item 2 a c -> 1 split; item 3 c c -> 1 agree
    q = rev.pair_agreement(SMALL, "a", "c")
    assert (q.agree, q.split, q.items) == (2, 1, 3) and q.value == pytest.approx(2 / 3)
    assert rev.pair_agreement(SMALL, "a", "zzz").value == pytest.approx(1.0)  # only a a on item 1
    assert rev.pair_agreement(SMALL.iloc[:0], "a", "b").value is None


def test_split_items_most_evenly_split_then_most_answers():
    assert rev.split_items(SMALL, "a", "b") == [(1, 2, 1), (2, 1, 1)]
    assert all(isinstance(item, int) for item, _, _ in rev.split_items(SMALL, "a", "b"))
    assert rev.split_items(SMALL, "b", "c") == [(2, 1, 1)]


def test_version_agreement_by_hand():
    va = rev.version_agreement(SMALL, n_boot=200)
    # percent: item 1 1/3, item 2 0/3, item 3 1/1 -> 4/9
    assert va.percent.value == pytest.approx(4 / 9)
    # alpha: n=8, n_a=3, n_b=2, n_c=3; coincidence diagonal (4+1-3)/2 + 0 + (4-2)/1 = 3;
    # alpha = 1 - 7 * (8 - 3) / (64 - 22) = 1/6, as the krippendorff library has it
    assert va.alpha.value == pytest.approx(1 / 6)
    assert va.alpha.value == pytest.approx(ag.krippendorff_alpha(SMALL).value)
    assert va.alpha.ci_low is not None and va.alpha.ci_low <= va.alpha.value <= va.alpha.ci_high
    assert (va.answers, va.items) == (8, 3)
    (first, pair), *_ = va.confused
    assert (first.first, first.second, first.count) == ("a", "b", 3) and pair.value == pytest.approx(0.25)


SPLIT = repeat([("a", "a", "b"), ("b", "b", "a")], 12)
CLEAR = repeat([("a", "a", "a"), ("b", "b", "b"), ("a", "a", "b")], 12, first_item=100)


def test_agreement_change_point_is_the_difference_of_the_alphas():
    change = rev.agreement_change(SPLIT, CLEAR, n_boot=500, seed=1)
    before, after = ag.krippendorff_alpha(SPLIT).value, ag.krippendorff_alpha(CLEAR).value
    assert change.before.value == pytest.approx(before) and change.after.value == pytest.approx(after)
    assert change.delta.value == pytest.approx(after - before)
    assert change.verdict == "helped" and change.delta.ci_low > 0
    assert change.sentence.startswith("Version 2 helped: Krippendorff's α among the 3 people who labeled under both")
    assert change.people == ["x", "y", "z"]
    worse = rev.agreement_change(CLEAR, SPLIT, n_boot=500, seed=1)
    assert worse.verdict == "worse" and worse.delta.ci_high < 0 and "made it worse" in worse.sentence
    assert worse.delta.value == pytest.approx(before - after)


def test_agreement_change_unclear_and_reproducible():
    same = rev.agreement_change(CLEAR, CLEAR, n_boot=400, seed=3)
    assert same.delta.value == pytest.approx(0.0) and same.verdict == "unclear"
    assert same.delta.ci_low < 0 < same.delta.ci_high
    assert "No clear change yet" in same.sentence
    again = rev.agreement_change(CLEAR, CLEAR, n_boot=400, seed=3)
    assert (again.delta.ci_low, again.delta.ci_high) == (same.delta.ci_low, same.delta.ci_high)


def test_agreement_change_needs_enough_items():
    few = repeat([("a", "a", "b")], 5)
    change = rev.agreement_change(few, CLEAR, versions=(3, 4))
    assert change.verdict == "too_early" and not change.delta.ok
    assert change.sentence == ("Too early to tell: version 3 has 5 items with two or more answers; comparing "
                               "needs 10 among the 3 people who labeled under both.")


def test_agreement_change_in_percent_for_answers_that_are_not_categories():
    change = rev.agreement_change(SPLIT, CLEAR, measure="percent", n_boot=200)
    # SPLIT: every item 1 of 3 pairs agree; CLEAR: 2 of 3 items unanimous, 1 at 1/3
    assert change.before.value == pytest.approx(1 / 3)
    assert change.after.value == pytest.approx((1 + 1 + 1 / 3) / 3)
    assert change.delta.value == pytest.approx(change.after.value - 1 / 3)
    assert "points" in change.sentence
    with pytest.raises(ValueError):
        rev.agreement_change(SPLIT, CLEAR, measure="kappa")


def test_comparable_people_only():
    after = repeat([("a", "a", "a")], 12, people=("x", "y", "w"))
    before, restricted, people = rev.same_people(SPLIT, after)
    assert people == ["x", "y"] and set(before["annotator"]) == {"x", "y"}
    assert set(restricted["annotator"]) == {"x", "y"}
    # x and y gave the same answer on every SPLIT item (a a / b b): restricted, they always agree
    change = rev.agreement_change(SPLIT, after, measure="percent", n_boot=100)
    assert change.before.value == pytest.approx(1.0) and change.people == ["x", "y"]
    everyone = rev.agreement_change(SPLIT, after, measure="percent", n_boot=100, comparable_people=False)
    assert everyone.before.value == pytest.approx(1 / 3) and everyone.people is None
    lonely = repeat([("a", "a")], 12, people=("x", "q"))
    assert rev.same_people(SPLIT, lonely)[2] is None  # one person in common: compare everyone


def test_pair_change_by_hand():
    before = repeat([("a", "a", "b")], 12)  # per item 1 of 3 pairs agree
    after = repeat([("a", "a", "a"), ("b", "b", "b")], 12, first_item=50)
    change = rev.pair_change(before, after, "a", "b", n_boot=300)
    assert change.before.value == pytest.approx(1 / 3) and change.after.value == pytest.approx(1.0)
    assert change.delta.value == pytest.approx(2 / 3)
    assert change.verdict == "helped" and change.delta.ci_low > 0
    assert change.sentence == ("a / b: people choosing between them agreed 33% under version 1 and 100% under "
                               f"version 2 (+67 points, 95% CI {change.delta.ci_low * 100:+.0f} to "
                               f"{change.delta.ci_high * 100:+.0f}): it helped.")
    short = rev.pair_change(repeat([("a", "b")], 3), after, "a", "b")
    assert short.verdict == "too_early" and "has 3 rater pairs" in short.sentence


def test_plain_verdict_helped_where_aimed():
    overall = rev.agreement_change(CLEAR, CLEAR, n_boot=200)
    aimed = [rev.pair_change(repeat([("a", "a", "b")], 12), repeat([("a", "a", "a")], 12), "a", "b", n_boot=200)]
    verdict, sentence = rev.plain_verdict(2, overall, aimed)
    assert verdict == "helped_where_aimed"
    assert sentence == "Version 2 helped where it was aimed (a / b); overall agreement has not clearly changed yet."
    assert rev.plain_verdict(2, overall, [])[0] == "unclear"
    helped = rev.agreement_change(SPLIT, CLEAR, n_boot=200)
    assert rev.plain_verdict(2, helped, [])[0] == "helped"
    worse_pair = [rev.pair_change(repeat([("a", "a", "a")], 12), repeat([("a", "a", "b")], 12), "a", "b",
                                  n_boot=200)]
    assert rev.plain_verdict(2, overall, worse_pair)[0] == "worse"


def _pair(agree, split):
    return rev.PairAgreement("bug", "how_to", agree, split, items=agree + split)


def test_recommend_merge_when_the_revision_did_not_move_the_pair():
    rec = rev.recommend(_pair(50, 50), _pair(52, 48))  # 50% -> 52%
    assert rec is not None and rec.kind == "merge"
    assert rec.text.startswith("Merge bug and how_to into one label")
    assert "agreed 50% of the time under version 1 (100 rater pairs) and 52% under version 2 (100)" in rec.text


def test_recommend_an_ambiguous_label_when_it_moved_a_little():
    rec = rev.recommend(_pair(50, 50), _pair(57, 43))  # +7 points: more than 5, less than 10
    assert rec is not None and rec.kind == "ambiguous_label" and "`bug_or_how_to`" in rec.text
    assert "stays below 80%" in rec.text


def test_no_recommendation_when_fixed_improved_or_too_few():
    assert rev.recommend(_pair(50, 50), _pair(85, 15)) is None  # no longer confused
    assert rev.recommend(_pair(50, 50), _pair(61, 39)) is None  # rose by 11 points: the revision works
    assert rev.recommend(_pair(2, 2), _pair(52, 48)) is None  # 4 rater pairs before: too few to judge
    assert rev.recommend(_pair(0, 0), _pair(52, 48)) is None
