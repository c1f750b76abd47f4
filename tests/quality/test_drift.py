"""bot.quality.drift: action rates, speed, rubber-stamp flags, label drift (hand-computed chi-square,
Cramér's V and Jensen-Shannon), anchoring with a hand-computed Newcombe interval, week-on-week change
and alerts. Frame tests run with plain and category dtypes."""

import json
import math

import pandas as pd
import pytest

from bot.quality import drift as dr
from bot.quality.common import empty_frame
from tests.quality.frames import finish_frame

NOW = pd.Timestamp("2026-11-29 12:00", tz="UTC")
Z = 1.959963984540054


def key(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def row(item, annotator, value, *, draft=None, shown=False, action=None, seconds=5.0, kind="production",
        gold=None, at=None):  # fmt: skip
    if action is None:
        action = "manual" if not shown else ("accept" if value == draft else "edit")
    return {
        "item_id": item,
        "annotator": annotator,
        "value_key": None if value is None else key(value),
        "value": value,
        "action": action,
        "draft_shown": shown,
        "draft_key": None if draft is None else key(draft),
        "seconds": seconds,
        "counts": kind == "production",
        "kind": kind,
        "gold_key": None if gold is None else key(gold),
        "created_at": NOW - pd.Timedelta(hours=1) if at is None else at,
    }


def frame_of(records, categorical=False):
    return finish_frame(records, categorical=categorical)


@pytest.fixture(params=[False, True], ids=["plain", "categorical"])
def categorical(request):
    return request.param


def wilson(k, n):
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return centre - half, centre + half


# --- actions and speed ------------------------------------------------------------------------------


def test_draft_action_rates(categorical):
    records = (
        [row(i, "A", "x", draft="x", shown=True) for i in range(6)]  # 6 accepts
        + [row(10 + i, "A", "y", draft="x", shown=True) for i in range(3)]  # 3 edits
        + [row(20, "A", "z", draft="x", shown=True, action="reject")]
        + [row(21, "A", None, draft="x", shown=True, action="skip")]  # not an answer
        + [row(22, "A", "x", draft="x", shown=False)]  # blind: not in the rates
        + [row(30, "B", "x", draft="x", shown=True)]
    )
    rates = dr.draft_action_rates(frame_of(records, categorical))
    assert rates.overall.n == 11
    assert rates.overall.accept.value == pytest.approx(7 / 11)
    assert rates.by_annotator["A"].n == 10
    a = rates.by_annotator["A"]
    assert (a.accept.value, a.edit.value, a.reject.value, a.manual.value) == pytest.approx((0.6, 0.3, 0.1, 0.0))
    assert (a.accept.ci_low, a.accept.ci_high) == pytest.approx(wilson(6, 10))
    assert rates.by_annotator["B"].edit.value == 0.0
    assert json.loads(json.dumps(rates.to_dict()))["overall"]["n"] == 11


def test_draft_speedup(categorical):
    records = [row(i, "A", "x", draft="x", shown=True, seconds=s) for i, s in enumerate([2.0, 4.0, 9.0])] + [
        row(10 + i, "A", "x", draft="x", seconds=s) for i, s in enumerate([10.0, 12.0, 14.0, 30.0])
    ]
    speed = dr.draft_speedup(frame_of(records, categorical))
    assert speed.drafted.value == 4.0 and speed.blind.value == 13.0
    assert speed.ratio.value == pytest.approx(13.0 / 4.0) and speed.ratio.n == 7
    only_blind = dr.draft_speedup(frame_of(records[3:], categorical))
    assert only_blind.drafted.value is None and only_blind.ratio.reason == "n/a: needs both drafted and blind answers"


def stamp_records(stamper_gold_right):
    records = []
    item = 0
    for annotator, accepts, seconds in (("A", 20, 1.0), ("B", 12, 6.0), ("C", 12, 8.0)):
        for i in range(20):
            value = "x" if i < accepts else "y"
            records.append(row(item, annotator, value, draft="x", shown=True, seconds=seconds))
            item += 1
    for i in range(6):
        right = i < stamper_gold_right
        records.append(row(1000 + i, "A", "g" if right else "h", kind="honeypot", gold="g", draft="h", shown=True))
        records.append(row(1000 + i, "B", "g", kind="honeypot", gold="g", draft="h", shown=True))
    return records


def test_rubber_stamp_flags(categorical):
    flags = dr.rubber_stamp_flags(frame_of(stamp_records(stamper_gold_right=2), categorical))
    assert [who for who, _ in flags] == ["A"]
    reason = flags[0][1]
    # 20 + 4 gold accepts of 26 drafts; median accept 1s vs peers' median of medians 7s; gold 2/6
    assert "accepts 92% of drafts (n=26)" in reason and "1.0s against 7.0s" in reason and "33%" in reason
    assert dr.rubber_stamp_flags(frame_of(stamp_records(stamper_gold_right=6), categorical)) == []
    assert dr.rubber_stamp_flags(frame_of(stamp_records(2), categorical), min_gold=7) == []  # too little gold
    assert dr.rubber_stamp_flags(frame_of(stamp_records(2), categorical), speed_factor=0.1) == []


# --- label drift --------------------------------------------------------------------------------------


def drift_records():
    # blind: x 10, y 10; drafted: x 30, y 10
    records = [row(i, "A", "x" if i < 10 else "y", draft="x") for i in range(20)]
    records += [row(100 + i, "B", "x" if i < 30 else "y", draft="x", shown=True) for i in range(40)]
    return records


def test_label_drift_by_hand(categorical):
    drift = dr.label_drift(frame_of(drift_records(), categorical))
    # expected counts 13.33 6.67 / 26.67 13.33; each cell is off by 10/3
    chi2 = sum((10 / 3) ** 2 / e for e in (40 / 3, 20 / 3, 80 / 3, 40 / 3))
    assert chi2 == pytest.approx(3.75)
    assert drift.chi2.value == pytest.approx(3.75) and drift.dof == 1 and drift.chi2.n == 60
    assert drift.p_value.value == pytest.approx(math.erfc(math.sqrt(3.75 / 2)))  # chi2(1) survival
    assert round(drift.p_value.value, 4) == 0.0528
    assert drift.cramers_v.value == pytest.approx(math.sqrt(3.75 / 60)) == pytest.approx(0.25)
    p, q = (0.5, 0.5), (0.75, 0.25)
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    js = math.sqrt(
        0.5 * sum(a * math.log2(a / c) for a, c in zip(p, m, strict=True))
        + 0.5 * sum(b * math.log2(b / c) for b, c in zip(q, m, strict=True))
    )
    assert drift.js_distance.value == pytest.approx(js)
    assert round(drift.js_distance.value, 4) == 0.2209
    assert drift.blind == {"x": 10, "y": 10} and drift.drafted == {"x": 30, "y": 10}
    assert json.loads(json.dumps(drift.to_dict()))["dof"] == 1


def test_label_drift_na(categorical):
    records = drift_records()
    no_blind = dr.label_drift(frame_of(records[20:], categorical))
    assert no_blind.js_distance.reason == "n/a: no blind answers" and no_blind.dof is None
    assert dr.label_drift(frame_of(records[:20], categorical)).chi2.reason == "n/a: no answers with a draft shown"
    one = [r for r in records if r["value"] == "x"]
    assert dr.label_drift(frame_of(one, categorical)).cramers_v.reason == "n/a: only one category observed"
    empty = dr.label_drift(empty_frame())
    assert empty.p_value.value is None and empty.blind == {} and empty.drafted == {}


# --- anchoring ----------------------------------------------------------------------------------------


def anchoring_records(shown_hits, blind_hits, *, annotator="A", at=None, start=0):
    records = []
    for i in range(10):
        records.append(row(start + i, annotator, "x" if i < shown_hits else "y", draft="x", shown=True, at=at))
        records.append(row(start + 100 + i, annotator, "x" if i < blind_hits else "y", draft="x", at=at))
    return records


def test_anchoring_with_newcombe_interval(categorical):
    records = [*anchoring_records(8, 3), row(999, "A", "x")]  # no stored draft: ignored
    result = dr.anchoring(frame_of(records, categorical))
    assert result.overall.value == pytest.approx(0.5) and result.overall.n == 20
    assert result.shown.value == pytest.approx(0.8) and result.blind.value == pytest.approx(0.3)
    (l1, u1), (l0, u0) = wilson(8, 10), wilson(3, 10)
    low = 0.5 - math.sqrt((0.8 - l1) ** 2 + (u0 - 0.3) ** 2)
    high = 0.5 + math.sqrt((u1 - 0.8) ** 2 + (0.3 - l0) ** 2)
    assert result.overall.ci_low == pytest.approx(low, abs=1e-6)
    assert result.overall.ci_high == pytest.approx(high, abs=1e-6)
    assert result.by_annotator["A"].value == pytest.approx(0.5)


def test_anchoring_per_annotator_and_na(categorical):
    records = anchoring_records(9, 2, annotator="A") + [
        row(500 + i, "B", "x", draft="x", shown=True)
        for i in range(4)  # B never works blind
    ]
    result = dr.anchoring(frame_of(records, categorical))
    assert result.by_annotator["A"].value == pytest.approx(0.7)
    assert result.by_annotator["B"].reason == "n/a: no blind answers with a stored draft"
    assert result.overall.value == pytest.approx(13 / 14 - 0.2)
    empty = dr.anchoring(empty_frame())
    assert empty.overall.reason == "n/a: no answers with the draft shown" and empty.by_annotator == {}


def test_anchoring_change_against_the_previous_week(categorical):
    this_week = anchoring_records(9, 2, at=NOW - pd.Timedelta(days=2))
    last_week = anchoring_records(5, 4, at=NOW - pd.Timedelta(days=9), start=1000)
    too_old = anchoring_records(0, 9, at=NOW - pd.Timedelta(days=20), start=2000)
    frame = frame_of(this_week + last_week + too_old, categorical)
    change = dr.anchoring_change(frame, NOW.to_pydatetime())
    assert change.current.value == pytest.approx(0.7)
    assert change.previous.value == pytest.approx(0.1)
    assert change.delta.value == pytest.approx(0.6) and change.days == 7
    naive = dr.anchoring_change(frame, NOW.tz_localize(None).to_pydatetime())
    assert naive.delta.value == pytest.approx(0.6)
    fresh = dr.anchoring_change(frame_of(this_week, categorical), NOW.to_pydatetime())
    assert fresh.previous.value is None and fresh.delta.reason.startswith("n/a: needs anchoring in both")


def test_alerts():
    anchored = dr.anchoring(frame_of(anchoring_records(9, 2)))
    calm = dr.anchoring(frame_of(anchoring_records(5, 5)))
    drifted = dr.label_drift(
        frame_of(
            [row(i, "A", "x" if i < 50 else "y", draft="x") for i in range(100)]
            + [row(200 + i, "B", "x" if i < 95 else "y", draft="x", shown=True) for i in range(100)]
        )
    )
    assert drifted.js_distance.value > 0.1 and drifted.p_value.value < 0.01
    change = dr.AnchoringChange(current=anchored.overall, previous=calm.overall, delta=dr.Measure(value=0.7), days=7)
    texts = dr.alerts(anchoring=anchored, drift=drifted, change=change)
    assert len(texts) == 4
    assert texts[0].startswith("Anchoring is +0.70, above 0.15: answers match the draft 70 percentage points")
    assert texts[0].endswith("(95% CI +0.27 to +0.87, n=20).")
    assert texts[1].startswith("Anchoring for A is +0.70, above 0.15")
    assert texts[2] == "Anchoring rose from +0.00 to +0.70 against the previous 7 days (+0.70)."
    assert texts[3].startswith("Labels on drafted items drift from blind items: Jensen-Shannon distance")
    assert dr.alerts(anchoring=calm, drift=dr.label_drift(frame_of(drift_records()))) == []  # p = 0.053
    assert dr.alerts(anchoring=anchored, anchoring_max=0.9) == []
    assert dr.alerts() == []
