"""bot.quality.llm: the drafter as an annotator, on a hand-computed 3-label table (kappa 3/7),
against gold, a computed majority and a consensus passed in; plus the n/a cases."""

import json

import pandas as pd
import pytest

from bot.quality import llm
from bot.quality.common import empty_frame
from tests.quality.frames import finish_frame

T0 = pd.Timestamp("2026-11-20 08:00", tz="UTC")


def key(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def frame_of(items, categorical=False):
    """items: {item_id: (draft, [human values...], extra)}; None in humans = a skip."""
    records = []
    for item, (draft, humans, *extra) in items.items():
        for n, value in enumerate(humans):
            rec = {
                "item_id": item,
                "annotator": f"U{n}",
                "value_key": None if value is None else key(value),
                "value": value,
                "action": "skip" if value is None else ("accept" if value == draft else "edit"),
                "draft_shown": True,
                "draft_key": None if draft is None else key(draft),
                "seconds": 4.0,
                "counts": True,
                "kind": "production",
                "gold_key": None,
                "created_at": T0 + pd.Timedelta(minutes=len(records)),
            }
            if extra:
                rec.update(extra[0])
            records.append(rec)
    return finish_frame(records, categorical=categorical)


ITEMS = {
    1: ("a", ["a", "a", "b"]),  # consensus a: right
    2: ("a", ["a", "a", "a"]),  # a: right
    3: ("b", ["b", "b", "a"]),  # b: right
    4: ("a", ["b", "b", "b"]),  # b: draft a -> b
    5: ("a", ["b", "b", "c"]),  # b: draft a -> b
    6: ("c", ["c", "c", "c"]),  # c: right
    7: ("c", ["a", "a", "c"]),  # a: draft c -> a
    8: ("b", ["a", "b", "c"]),  # no majority: left out
    9: ("b", ["b", "b", None]),  # skip does not count: b by 2 of 2, right
    10: ("a", ["a"]),  # one rater: left out
    11: (None, ["a", "a"]),  # no draft: left out of drafter measures
}
GOLD = {
    20: ("x", ["x", "y"], {"kind": "honeypot", "gold_key": key("x"), "counts": False}),
    21: ("y", ["x"], {"kind": "honeypot", "gold_key": key("x"), "counts": False}),
    30: ("x", ["x"], {"kind": "quiz", "gold_key": key("x"), "counts": False, "draft_shown": False}),
    31: ("y", ["y"], {"kind": "quiz", "gold_key": key("y"), "counts": False, "draft_shown": False}),
    32: ("y", ["x"], {"kind": "quiz", "gold_key": key("x"), "counts": False, "draft_shown": False}),
}


@pytest.fixture(params=[False, True], ids=["plain", "categorical"])
def frame(request):
    return frame_of({**ITEMS, **GOLD}, categorical=request.param)


def test_majority_consensus(frame):
    consensus = llm.majority_consensus(frame)
    assert consensus.index.tolist() == [1, 2, 3, 4, 5, 6, 7, 9, 11]
    assert consensus.loc[1, "consensus_key"] == key("a") and consensus.loc[1, "votes"] == 2
    assert consensus.loc[9, "raters"] == 2
    assert llm.majority_consensus(frame, min_raters=1).index.tolist() == [1, 2, 3, 4, 5, 6, 7, 9, 10, 11]


def test_draft_accuracy_against_gold(frame):
    gold = llm.draft_gold_accuracy(frame)
    assert gold["honeypot"].value == 0.5 and gold["honeypot"].n == 2  # one draft per item, not per answer
    assert gold["quiz"].value == pytest.approx(2 / 3) and gold["quiz"].n == 3
    assert 0 < gold["quiz"].ci_low < 2 / 3 < gold["quiz"].ci_high < 1
    scored = llm.draft_gold_accuracy(frame, score=lambda d, g: 1.0 if d == g else 0.25)
    assert scored["honeypot"].value == pytest.approx(0.625) and scored["honeypot"].ci_low is None


def test_drafter_vs_consensus_by_hand(frame):
    # draft (rows) x consensus (columns), labels a b c: [[2, 2, 0], [0, 2, 0], [1, 0, 1]], n = 8
    accuracy = llm.draft_consensus_accuracy(frame)
    assert accuracy.value == pytest.approx(5 / 8) and accuracy.n == 8
    kappa = llm.drafter_kappa(frame)
    assert kappa.value == pytest.approx(3 / 7) and kappa.n == 8  # po 5/8, pe 22/64
    assert kappa.ci_low < 3 / 7 < kappa.ci_high
    per_label = llm.drafter_label_kappa(frame)
    assert {k: round(v.value, 4) for k, v in per_label.items()} == {"a": 0.25, "b": 0.5, "c": 0.6}
    confusions = llm.drafter_confusions(frame)
    assert [(c.first, c.second, c.count, c.share) for c in confusions] == [("a", "b", 2, 0.5), ("c", "a", 1, 0.5)]
    assert llm.drafter_confusions(frame, top=1)[0].first == "a"


def test_consensus_can_be_passed_in(frame):
    # e.g. an aggregation result: item_id and value_key columns; item 4 is "b" (draft a: wrong), item 8
    # (no majority among humans) resolved to "b" (draft b: right)
    given = pd.DataFrame({"item_id": [4, 8], "value_key": [key("b"), key("b")]})
    assert llm.draft_consensus_accuracy(frame, given).value == 0.5
    series = pd.Series([key("b"), key("b")], index=pd.Index([4, 8], name="item_id"))
    assert llm.draft_consensus_accuracy(frame, series).value == 0.5
    as_column = pd.DataFrame({"consensus_key": [key("b")]}, index=pd.Index([8], name="item_id"))
    assert llm.draft_consensus_accuracy(frame, as_column).value == 1.0
    with pytest.raises(ValueError):
        llm.drafts_vs_consensus(frame, pd.DataFrame({"item_id": [1], "label": ["a"]}))


def test_drafter_report_is_json_friendly(frame):
    report = llm.drafter_report(frame)
    d = report.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["kappa"]["value"] == pytest.approx(3 / 7)
    assert d["gold"]["quiz"]["n"] == 3 and d["confusions"][0]["first"] == "a"


def test_na_cases():
    empty = llm.drafter_report(empty_frame())
    assert empty.gold["quiz"].reason == "n/a: no quiz items with a draft"
    assert empty.consensus_accuracy.reason == "n/a: no items with a draft and a consensus"
    assert empty.kappa.value is None and empty.per_label == {} and empty.confusions == []
    assert llm.majority_consensus(empty_frame()).empty
    one = frame_of({1: ("a", ["a", "a"]), 2: ("a", ["a", "a", "a"])})
    assert llm.drafter_kappa(one).reason == "n/a: only one category observed"
    assert llm.draft_consensus_accuracy(one).value == 1.0
    assert llm.drafter_label_kappa(one)["a"].reason == "n/a: only one category observed"
    assert llm.drafter_confusions(one) == []
    single = frame_of({1: ("a", ["b"])})  # a single annotator: no consensus at all
    assert llm.drafter_kappa(single).reason == "n/a: no items with a draft and a consensus"
