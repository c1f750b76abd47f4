"""bot.quality.agreement (and common.Measure): pinned to published values, hand-computed tables and
the n/a cases. Every frame-based test also runs with category dtypes, as storage.frames produces."""

import json

import krippendorff
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats import inter_rater as ir

from bot.quality import agreement as ag
from bot.quality.common import Measure, answered, counting, empty_frame, label_names, latest_per_rater
from tests.quality.frames import finish_frame

T0 = pd.Timestamp("2026-11-02 09:00", tz="UTC")


def key(value):
    """Canonical JSON, as the app stores value_key / draft_key / gold_key."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def frame_of(rows, *, categorical=False):
    """rows: (item_id, annotator, value) or (item_id, annotator, value, extra-dict); value None = skip."""
    records = []
    for i, row in enumerate(rows):
        item, annotator, value, *extra = row
        rec = {
            "item_id": item,
            "annotator": annotator,
            "value_key": None if value is None else key(value),
            "value": value,
            "action": "manual" if value is not None else "skip",
            "draft_shown": False,
            "draft_key": None,
            "seconds": 5.0,
            "counts": True,
            "kind": "production",
            "gold_key": None,
            "created_at": T0 + pd.Timedelta(seconds=i),
        }
        if extra:
            rec.update(extra[0])
        records.append(rec)
    return finish_frame(records, categorical=categorical)


@pytest.fixture(params=[False, True], ids=["plain", "categorical"])
def categorical(request):
    return request.param


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", nominal data with missing values:
# observers A-D (rows) x units 1-12 (columns), None = not coded. Published: alpha_nominal = 0.743.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]

# Wikipedia "Fleiss' kappa" worked example: 10 subjects x 5 categories, 14 raters each. kappa = 0.210.
FLEISS_WIKIPEDIA = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def krippendorff_frame(categorical=False):
    rows = [
        (unit + 1, coder, f"v{value}")
        for coder, codes in zip("ABCD", KRIPPENDORFF_2011, strict=True)
        for unit, value in enumerate(codes)
        if value is not None
    ]
    return frame_of(rows, categorical=categorical)


def cohen_wikipedia_frame(categorical=False):
    # Wikipedia "Cohen's kappa": 50 proposals; both yes 20, A yes/B no 5, A no/B yes 10, both no 15.
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    rows = []
    for item, (a, b) in enumerate(pairs):
        rows += [(item, "A", a), (item, "B", b)]
    return frame_of(rows, categorical=categorical)


# --- Measure ----------------------------------------------------------------------------------------


def test_measure_never_holds_nan_and_serialises_to_json():
    with pytest.raises(ValueError):
        Measure(value=float("nan"))
    with pytest.raises(ValueError):
        Measure(value=None)  # undefined needs a reason
    na = Measure.of(float("nan"), reason="only one category observed", n=3)
    assert na.value is None and na.reason == "n/a: only one category observed" and na.n == 3
    assert Measure.na("n/a: already prefixed").reason == "n/a: already prefixed"
    m = Measure(value=np.float64(0.5), n=np.int64(4), ci_low=np.nan, ci_high=0.7)
    assert type(m.value) is float and type(m.n) is int and m.ci_low is None
    assert json.loads(json.dumps(m.to_dict())) == {
        "value": 0.5,
        "reason": None,
        "n": 4,
        "ci_low": None,
        "ci_high": 0.7,
        "note": None,
    }
    assert str(na) == "n/a: only one category observed"


def test_filters_and_latest_answer_per_rater():
    frame = frame_of(
        [
            (1, "A", "x"),
            (1, "A", "y"),  # later: wins
            (1, "B", None),  # skip
            (2, "B", "x", {"counts": False}),
            (2, "C", "x", {"action": "ambiguous"}),
        ]
    )
    assert len(answered(frame)) == 3
    assert list(counting(frame)["annotator"]) == ["A", "A"]
    latest = latest_per_rater(answered(frame))
    assert sorted(zip(latest["item_id"], latest["annotator"], latest["value"], strict=True)) == [
        (1, "A", "y"),
        (2, "B", "x"),
    ]
    names = label_names(pd.Series(['"billing"', '["a","b"]', None]))
    assert names.iloc[0] == "billing" and names.iloc[1] == '["a","b"]' and pd.isna(names.iloc[2])


# --- reliability matrix and raw agreement ---------------------------------------------------------------


def test_reliability_matrix_is_items_by_annotators(categorical):
    matrix = ag.reliability_matrix(krippendorff_frame(categorical))
    assert matrix.shape == (12, 4)
    assert list(matrix.columns) == ["A", "B", "C", "D"]
    assert matrix.loc[6].tolist() == ["v1", "v2", "v3", "v4"]
    assert matrix.loc[12].isna().tolist() == [True, False, True, True]


def test_percent_agreement_by_hand(categorical):
    frame = frame_of(
        [
            (1, "A", "x"), (1, "B", "x"),  # 1 of 1 pairs agree
            (2, "A", "x"), (2, "B", "y"),  # 0 of 1
            (3, "A", "x"), (3, "B", "x"), (3, "C", "y"),  # 1 of 3
            (4, "A", "x"),  # one rater: not used
        ],
        categorical=categorical,
    )  # fmt: skip
    m = ag.percent_agreement(frame)
    assert m.value == pytest.approx((1 + 0 + 1 / 3) / 3) and m.n == 3
    assert m.note == "5 rater pairs"


# --- Cohen's kappa --------------------------------------------------------------------------------------


def test_cohens_kappa_wikipedia_example(categorical):
    (pair,) = ag.cohens_kappa_pairs(cohen_wikipedia_frame(categorical))
    assert (pair.a, pair.b) == ("A", "B")
    assert round(pair.kappa.value, 4) == 0.4
    assert pair.kappa.n == 50
    # statsmodels' asymptotic SE for this table is 0.1270: kappa -/+ 1.96 * SE
    assert pair.kappa.ci_low == pytest.approx(0.4 - 1.959964 * 0.126996, abs=1e-4)
    assert pair.kappa.ci_high == pytest.approx(0.4 + 1.959964 * 0.126996, abs=1e-4)
    assert round(ag.cohens_kappa_table([[20, 5], [10, 15]]).value, 4) == 0.4


def test_cohens_kappa_pairs_na_and_ordering(categorical):
    frame = frame_of(
        [
            (1, "A", "x"), (1, "B", "x"), (2, "A", "x"), (2, "B", "x"),  # A-B: one category only
            (3, "A", "x"), (3, "C", "y"),  # A-C: one shared item
            (4, "D", "x"),
        ],
        categorical=categorical,
    )  # fmt: skip
    pairs = {(p.a, p.b): p.kappa for p in ag.cohens_kappa_pairs(frame)}
    assert set(pairs) == {("A", "B"), ("A", "C")}
    assert pairs[("A", "B")].reason == "n/a: only one category observed" and pairs[("A", "B")].n == 2
    assert pairs[("A", "C")].reason == "n/a: fewer than 2 shared items" and pairs[("A", "C")].n == 1
    assert ag.mean_pairwise_kappa(list(ag.cohens_kappa_pairs(frame))).value is None


def test_cohens_kappa_perfect_agreement_ci_stays_within_bounds():
    m = ag.cohens_kappa_table([[9, 1], [1, 9]])  # po 0.9, pe 0.5
    assert m.value == pytest.approx(0.8)
    assert -1 <= m.ci_low < 0.8 < m.ci_high <= 1
    perfect = ag.cohens_kappa_table([[3, 0], [0, 3]])
    assert perfect.value == pytest.approx(1.0) and perfect.ci_high == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ag.cohens_kappa_table([[1, 2, 3]])


# --- Fleiss' kappa -------------------------------------------------------------------------------------


def fleiss_frame(table, categorical=False):
    rows = []
    for subject, counts in enumerate(table):
        slot = 0
        for category, count in enumerate(counts):
            for _ in range(count):
                rows.append((subject, f"R{slot:02d}", f"c{category}"))
                slot += 1
    return frame_of(rows, categorical=categorical)


def test_fleiss_kappa_wikipedia_example(categorical):
    m = ag.fleiss_kappa(fleiss_frame(FLEISS_WIKIPEDIA, categorical))
    assert round(m.value, 4) == 0.2099  # published: 0.210
    assert m.n == 10
    assert m.note.startswith("10 items with 14 raters each; 0 items")


def test_fleiss_kappa_uses_the_most_common_rater_count_and_matches_aggregate_raters():
    table = [row[:] for row in FLEISS_WIKIPEDIA]
    frame = fleiss_frame(table)
    extra = frame_of([(99, "R00", "c0"), (99, "R01", "c1"), (99, "R02", "c1")])  # 3 raters: left out
    m = ag.fleiss_kappa(pd.concat([frame, extra], ignore_index=True))
    assert round(m.value, 4) == 0.2099 and m.n == 10 and "1 items with another rater count" in m.note
    # the same count table that statsmodels' aggregate_raters builds from the reliability matrix
    matrix = ag.reliability_matrix(frame).to_numpy()
    counts, _ = ir.aggregate_raters(matrix)
    assert ir.fleiss_kappa(counts) == pytest.approx(m.value, abs=1e-12)


# --- Krippendorff's alpha --------------------------------------------------------------------------------


def test_krippendorff_alpha_2011_nominal_example(categorical):
    m = ag.krippendorff_alpha(krippendorff_frame(categorical))
    assert round(m.value, 4) == 0.7434  # published: 0.743
    assert m.n == 11  # unit 12 has a single value and is not pairable


def test_sparse_alpha_matches_the_library(monkeypatch):
    counts = np.array(
        [
            [sum(v == c for v in col if v is not None) for c in range(1, 6)]
            for col in zip(*KRIPPENDORFF_2011, strict=True)
        ]
    )
    assert round(ag.nominal_alpha_from_counts(counts), 4) == 0.7434
    rng = np.random.default_rng(7)
    data = rng.integers(0, 4, size=(5, 300)).astype(float)
    data[rng.random(data.shape) < 0.3] = np.nan
    data[0, :150] = data[1, :150]  # some real agreement
    library = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    value_counts = np.stack([(data == c).sum(axis=0) for c in range(4)], axis=1)
    assert ag.nominal_alpha_from_counts(value_counts) == pytest.approx(library, abs=1e-12)
    # and through the frame, forcing the sparse path
    rows = [(u, f"C{c}", f"v{int(data[c, u])}") for c in range(5) for u in range(300) if not np.isnan(data[c, u])]
    frame = frame_of(rows)
    dense = ag.krippendorff_alpha(frame).value
    monkeypatch.setattr(ag, "KRIPPENDORFF_DENSE_CELLS", 0)
    assert ag.krippendorff_alpha(frame).value == pytest.approx(dense, abs=1e-12) == pytest.approx(library)


def test_per_label_alpha_is_one_vs_rest_alpha():
    frame = krippendorff_frame()
    per_label = ag.per_label_alpha(frame)
    assert sorted(per_label) == ["v1", "v2", "v3", "v4", "v5"]
    for label in per_label:
        code = int(label[1])
        binary = [[np.nan if v is None else float(v == code) for v in row] for row in KRIPPENDORFF_2011]
        expected = krippendorff.alpha(reliability_data=binary, level_of_measurement="nominal")
        assert per_label[label].value == pytest.approx(expected, abs=1e-12)
    assert per_label["v5"].value == pytest.approx(1.0)


def test_confused_pairs_by_hand(categorical):
    # unit 2: 2,2,3,2 -> (v2,v3) x3; unit 6: 1,2,3,4 -> every pair once; unit 8: 1,1,2,1 -> (v1,v2) x3
    top = ag.confused_pairs(krippendorff_frame(categorical), top=3)
    assert [(c.first, c.second, c.count) for c in top] == [("v1", "v2", 4), ("v2", "v3", 4), ("v1", "v3", 1)]
    assert top[0].share == pytest.approx(4 / 12)


# --- n/a cases ---------------------------------------------------------------------------------------------


def test_one_category_only_is_na(categorical):
    frame = frame_of([(i, a, "x") for i in range(5) for a in "ABC"], categorical=categorical)
    assert ag.percent_agreement(frame).value == 1.0
    for m in (ag.fleiss_kappa(frame), ag.krippendorff_alpha(frame)):
        assert m.value is None and m.reason == "n/a: only one category observed"
    assert all(p.kappa.reason == "n/a: only one category observed" for p in ag.cohens_kappa_pairs(frame))
    assert ag.per_label_alpha(frame)["x"].value is None
    assert ag.confused_pairs(frame) == []


def test_single_annotator_is_na(categorical):
    frame = frame_of([(i, "A", v) for i, v in enumerate("xyxy")], categorical=categorical)
    for m in (ag.percent_agreement(frame), ag.fleiss_kappa(frame), ag.krippendorff_alpha(frame)):
        assert m.value is None and m.reason == "n/a: no item has 2 or more raters"
    assert ag.cohens_kappa_pairs(frame) == []
    assert ag.span_f1(frame).reason == "n/a: no item has 2 or more annotators"
    assert ag.rewrite_similarity(frame).value is None


def test_empty_frame_is_na():
    frame = empty_frame()
    summary = ag.classification_agreement(frame)
    d = summary.to_dict()
    assert json.loads(json.dumps(d)) == d
    for key in ("percent", "fleiss", "alpha", "light_kappa"):
        assert d[key]["value"] is None and d[key]["reason"].startswith("n/a: ")
    assert d["cap"]["value"] is None and d["pairs"] == [] and d["confusions"] == []
    assert ag.reliability_matrix(frame).shape == (0, 0)
    assert ag.multilabel_alpha(frame) == {}
    assert ag.span_f1(frame).value is None
    assert ag.gold_accuracy_by_kind(frame) == {"quiz": {}, "honeypot": {}}


def test_classification_summary_bundles_the_measures():
    summary = ag.classification_agreement(krippendorff_frame())
    assert round(summary.alpha.value, 4) == 0.7434
    assert summary.cap.value == pytest.approx((1 + summary.percent.value) / 2)
    assert summary.light_kappa.n == 6 and len(summary.pairs) == 6
    assert summary.confusions[0].count == 4


# --- other task types -----------------------------------------------------------------------------------


def test_multilabel_alpha_per_label(categorical):
    answers = {
        1: {"A": ["a", "b"], "B": ["a"], "C": ["a", "b"]},
        2: {"A": [], "B": ["b"], "C": []},
        3: {"A": ["a"], "B": ["a"]},
        4: {"A": ["b", "c"], "B": ["c", "b"]},
    }
    rows = [(item, who, sorted(labels)) for item, per in answers.items() for who, labels in per.items()]
    per_label = ag.multilabel_alpha(frame_of(rows, categorical=categorical))
    assert sorted(per_label) == ["a", "b", "c"]
    for label in ("a", "b", "c"):
        binary = [
            [float(label in answers[item][who]) if who in answers[item] else np.nan for item in answers]
            for who in "ABC"
        ]
        expected = krippendorff.alpha(reliability_data=binary, level_of_measurement="nominal")
        assert per_label[label].value == pytest.approx(expected, abs=1e-12)
        assert per_label[label].n == 4


def span(start, end, label):
    return {"end": end, "label": label, "start": start}


def span_frame(categorical=False):
    return frame_of(
        [
            (1, "A", [span(0, 5, "LOC"), span(10, 15, "PER")]),
            (1, "B", [span(0, 5, "LOC"), span(11, 15, "PER")]),  # exact 1 of 2 each; overlap all
            (2, "A", []),
            (2, "B", []),  # both empty: agree
            (3, "A", [span(0, 3, "ORG")]),
            (3, "B", []),  # one empty: 0
            (4, "A", [span(0, 4, "LOC")]),
            (4, "B", [span(0, 4, "PER")]),  # other label: 0
            (4, "C", [span(2, 6, "LOC")]),  # overlaps A's LOC
            (5, "A", [span(0, 5, "LOC")]),
            (5, "B", [span(5, 8, "LOC")]),  # touching half-open ranges do not overlap
        ],
        categorical=categorical,
    )


def test_span_f1_exact_and_overlap(categorical):
    frame = span_frame(categorical)
    exact = ag.span_f1(frame, mode="exact")
    overlap = ag.span_f1(frame, mode="overlap")
    # pairs: 1 AB, 2 AB, 3 AB, 4 AB, 4 AC, 4 BC, 5 AB
    assert exact.n == overlap.n == 7
    assert exact.value == pytest.approx((0.5 + 1 + 0 + 0 + 0 + 0 + 0) / 7)
    assert overlap.value == pytest.approx((1 + 1 + 0 + 0 + 1 + 0 + 0) / 7)
    with pytest.raises(ValueError):
        ag.span_f1(frame, mode="fuzzy")


def test_rewrite_similarity_difflib_and_custom(categorical):
    frame = frame_of(
        [(1, "A", "abcd"), (1, "B", "abce"), (2, "A", "same"), (2, "B", "same"), (3, "A", "solo")],
        categorical=categorical,
    )
    m = ag.rewrite_similarity(frame)
    assert m.value == pytest.approx((0.75 + 1.0) / 2) and m.n == 2  # 2*3/8 and identical
    exact = ag.rewrite_similarity(frame, similarity=lambda a, b: float(a == b))
    assert exact.value == 0.5
    sampled = ag.rewrite_similarity(frame, max_pairs=1)
    assert sampled.n == 1 and sampled.note == "1 of 2 pairs"


# --- accuracy cap and gold -------------------------------------------------------------------------------------


def test_accuracy_cap():
    cap = ag.accuracy_cap(0.8)
    assert cap.value == pytest.approx(0.9)
    assert "80%" in cap.sentence and "90%" in cap.sentence and "\n" not in cap.sentence
    assert ag.accuracy_cap(Measure(value=0.5)).value == pytest.approx(0.75)
    na = ag.accuracy_cap(Measure.na("no item has 2 or more raters"))
    assert na.value is None and "n/a" in na.sentence
    with pytest.raises(ValueError):
        ag.accuracy_cap(1.5)


def test_gold_accuracy_quiz_and_honeypot_separately(categorical):
    gold_x = key("x")
    quiz = {"kind": "quiz", "gold_key": gold_x, "counts": False}
    hidden = {"kind": "honeypot", "gold_key": gold_x}
    frame = frame_of(
        [
            (1, "A", "x", quiz), (2, "A", "y", quiz), (3, "A", "x", quiz),
            (4, "A", "y", hidden),
            (1, "B", "x", quiz),
            (4, "B", None, hidden),  # skipped: not scored
            (5, "B", "x"),  # production: not gold
        ],
        categorical=categorical,
    )  # fmt: skip
    by_kind = ag.gold_accuracy_by_kind(frame)
    assert by_kind["quiz"]["A"].value == pytest.approx(2 / 3) and by_kind["quiz"]["A"].n == 3
    assert by_kind["quiz"]["B"].value == 1.0
    assert by_kind["honeypot"] == {"A": by_kind["honeypot"]["A"]} and by_kind["honeypot"]["A"].value == 0.0
    lo, hi = by_kind["quiz"]["A"].ci_low, by_kind["quiz"]["A"].ci_high
    assert 0 < lo < 2 / 3 < hi < 1  # Wilson interval


def test_gold_accuracy_with_a_score_callable():
    hidden = {"kind": "honeypot", "gold_key": key(["a", "b"])}
    frame = frame_of([(1, "A", ["a"], hidden), (2, "A", ["a", "b"], hidden)])

    def jaccard(value, gold_value):
        return len(set(value) & set(gold_value)) / len(set(value) | set(gold_value))

    m = ag.gold_accuracy(frame, "honeypot", score=jaccard)["A"]
    assert m.value == pytest.approx((0.5 + 1.0) / 2) and m.ci_low is None
    assert ag.gold_accuracy(frame, "honeypot")["A"].value == 0.5  # exact key equality by default
    assert ag.gold_accuracy(frame, "honeypot")["A"].n == 2
