import numpy as np
import pandas as pd
import pytest

from bot.quality.aggregation import (
    AGGREGATE_COLUMNS,
    MAJORITY_COLUMNS,
    aggregate,
    canonical_value,
    dawid_skene,
    majority_vote,
    value_key,
)


def labels(rows, *, task="classification"):
    """rows: (item_id, annotator, value[, counts[, kind[, tier]]])."""
    records = []
    for row in rows:
        item, annotator, value, *rest = row
        counts = rest[0] if len(rest) > 0 else True
        kind = rest[1] if len(rest) > 1 else "production"
        tier = rest[2] if len(rest) > 2 else "crowd"
        value = canonical_value(task, value)
        records.append(
            {
                "item_id": item,
                "annotator": annotator,
                "value": value,
                "value_key": value_key(value),
                "counts": counts,
                "kind": kind,
                "tier": tier,
            }
        )
    return pd.DataFrame(records)


def by_item(frame):
    return frame.set_index("item_id")


# --------------------------------------------------------------------------------------------
# (a) Published example: crowd-kit's toy "YSDA" dataset (tests/conftest.py `toy_answers_df`)
# with its step-by-step expected values (tests/aggregation/test_ds_aggregation.py
# `test_dawid_skene_step_by_step`, compared there with atol=0.005) and expected labels
# (`toy_ground_truth_df`: t1 yes, t2 yes, t3 no, t4 yes, t5 no).
# --------------------------------------------------------------------------------------------

TOY = {
    "w1": {1: "no", 2: "yes", 3: "yes", 4: "yes", 5: "yes"},
    "w2": {1: "yes", 2: "yes", 3: "no", 4: "yes", 5: "no"},
    "w3": {2: "yes", 3: "no", 4: "yes", 5: "no"},
    "w4": {1: "yes", 2: "no", 3: "yes", 4: "yes", 5: "no"},
    "w5": {1: "no", 2: "no", 3: "no", 4: "yes", 5: "no"},
}
NO, YES = value_key("no"), value_key("yes")

# crowd-kit: n_iter=0 -> majority-vote probabilities and the confusion matrices they imply
PUBLISHED = {
    0: {
        "probas": {1: (0.5, 0.5), 2: (0.4, 0.6), 3: (0.6, 0.4), 4: (0.0, 1.0), 5: (0.8, 0.2)},
        "priors": (0.46, 0.54),
        # worker: (P(no|no), P(no|yes)); P(yes|.) = 1 - that
        "errors": {
            "w1": (0.22, 0.19),
            "w2": (0.61, 0.22),
            "w3": (0.78, 0.27),
            "w4": (0.52, 0.30),
            "w5": (1.00, 0.63),
        },
    },
    1: {
        "probas": {1: (0.35, 0.65), 2: (0.26, 0.74), 3: (0.87, 0.13), 4: (0.00, 1.00), 5: (0.95, 0.05)},
        "priors": (0.49, 0.51),
        "errors": {
            "w1": (0.14, 0.25),
            "w2": (0.75, 0.07),
            "w3": (0.87, 0.09),
            "w4": (0.50, 0.31),
            "w5": (1.00, 0.61),
        },
    },
}


@pytest.fixture
def toy():
    return labels([(item, worker, answer) for worker, answers in TOY.items() for item, answer in answers.items()])


@pytest.mark.parametrize("n_iter", [0, 1])
def test_dawid_skene_matches_crowd_kit_step_by_step(toy, n_iter):
    expected = PUBLISHED[n_iter]
    # crowd-kit does not smooth; a negligible pseudo-count reproduces its numbers
    result = dawid_skene(toy, max_iter=n_iter, smoothing=1e-9)
    assert result.iterations == n_iter
    posteriors = result.posteriors
    for item, (p_no, p_yes) in expected["probas"].items():
        assert posteriors.loc[item, NO] == pytest.approx(p_no, abs=0.005)
        assert posteriors.loc[item, YES] == pytest.approx(p_yes, abs=0.005)
    assert result.priors[NO] == pytest.approx(expected["priors"][0], abs=0.005)
    assert result.priors[YES] == pytest.approx(expected["priors"][1], abs=0.005)
    for worker, (no_given_no, no_given_yes) in expected["errors"].items():
        matrix = result.confusion_matrix(worker)
        assert matrix.loc[NO, NO] == pytest.approx(no_given_no, abs=0.005)
        assert matrix.loc[NO, YES] == pytest.approx(no_given_yes, abs=0.005)
        assert matrix.loc[YES, NO] == pytest.approx(1 - no_given_no, abs=0.005)
        assert matrix.loc[YES, YES] == pytest.approx(1 - no_given_yes, abs=0.005)


@pytest.mark.parametrize("gold", [None, {1: YES, 2: YES}])
def test_dawid_skene_toy_labels(toy, gold):
    result = dawid_skene(toy, gold=gold)
    assert result.converged
    items = by_item(result.items)
    assert items["value"].to_dict() == {1: "yes", 2: "yes", 3: "no", 4: "yes", 5: "no"}
    assert not items["tie"].any()
    assert (items["confidence"] > 0.99).all()
    assert items["n_labels"].to_dict() == {1: 4, 2: 5, 3: 5, 4: 5, 5: 5}
    # the posterior of each item sums to 1, every confusion column too
    assert np.allclose(result.posteriors.sum(axis=1), 1.0)
    assert np.allclose(result.errors.sum(axis=1), 1.0)


def test_toy_majority_vote_leaves_the_tie_open(toy):
    mv = by_item(majority_vote(toy))
    assert list(majority_vote(toy).columns) == MAJORITY_COLUMNS
    assert mv.loc[1, "tie"] and mv.loc[1, "value"] is None and mv.loc[1, "value_key"] is None
    assert mv.loc[1, "support"] == 0.5
    assert mv.loc[2, "value"] == "yes" and mv.loc[2, "support"] == pytest.approx(0.6)
    assert mv.loc[4, "support"] == 1.0
    assert mv["n_labels"].to_dict() == {1: 4, 2: 5, 3: 5, 4: 5, 5: 5}


@pytest.mark.parametrize("overlap", [3, 300])
def test_dawid_skene_symmetric_overlap(overlap):
    # crowd-kit test_dawid_skene_overlap: posteriors (1/3, 2/3) for every task, priors (1/3, 2/3)
    rows = [(task, f"w{w}", "yes" if (w - task) % 3 else "no") for w in range(overlap) for task in range(3)]
    result = dawid_skene(labels(rows), max_iter=20)
    assert np.allclose(result.posteriors[NO], 1 / 3, atol=0.005)
    assert np.allclose(result.posteriors[YES], 2 / 3, atol=0.005)
    assert result.priors[NO] == pytest.approx(1 / 3, abs=0.005)
    assert set(result.items["value"]) == {"yes"}


# --------------------------------------------------------------------------------------------
# (b) Simulated annotators with known accuracies
# --------------------------------------------------------------------------------------------


def simulate(n_items, accuracies, n_classes, seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    n_ann = len(accuracies)
    items = np.repeat(np.arange(n_items), n_ann)
    annotators = np.tile(np.arange(n_ann), n_items)
    correct = rng.random(items.size) < np.asarray(accuracies)[annotators]
    wrong = (truth[items] + rng.integers(1, n_classes, items.size)) % n_classes  # uniform over the others
    answer = np.where(correct, truth[items], wrong)
    names = np.array([f"class{c}" for c in range(n_classes)], dtype=object)
    keys = np.array([value_key(n) for n in names], dtype=object)
    frame = pd.DataFrame(
        {
            "item_id": items,
            "annotator": np.array([f"ann{a}" for a in range(n_ann)], dtype=object)[annotators],
            "value": names[answer],
            "value_key": keys[answer],
            "counts": True,
            "kind": "production",
            "tier": "crowd",
        }
    )
    return frame, pd.Series(keys[truth], index=np.arange(n_items))


def test_dawid_skene_beats_majority_vote_and_recovers_accuracies():
    accuracies = [0.9, 0.9, 0.9, 0.35, 0.35, 0.35, 0.35]
    frame, truth = simulate(2000, accuracies, n_classes=4, seed=20240601)

    ds = dawid_skene(frame)
    mv = majority_vote(frame)
    ds_acc = (by_item(ds.items)["value_key"] == truth).mean()
    mv_acc = (by_item(mv)["value_key"] == truth).mean()  # ties count as misses
    mv_tie_half = mv_acc + 0.5 * by_item(mv)["tie"].mean()  # generous: a coin flip wins half the ties
    assert ds.converged
    assert ds_acc > 0.97
    assert ds_acc > mv_tie_half + 0.05
    estimated = ds.annotator_accuracy()
    for i, acc in enumerate(accuracies):
        assert estimated[f"ann{i}"] == pytest.approx(acc, abs=0.05)

    # the same through aggregate()
    out = by_item(aggregate("classification", frame, method="dawid_skene"))
    assert (out["value_key"] == truth).mean() == pytest.approx(ds_acc)
    assert set(out["method"]) == {"dawid_skene"} and set(out["source"]) == {"crowd"}


def test_dawid_skene_gold_pins_posteriors():
    frame, truth = simulate(300, [0.8, 0.7, 0.6], n_classes=3, seed=5)
    gold = {i: truth[i] for i in range(0, 300, 10)}
    result = dawid_skene(frame, gold=gold)
    for item, key in gold.items():
        assert result.posteriors.loc[item, key] == 1.0


def test_dawid_skene_rejects_unknown_init_and_handles_empty():
    with pytest.raises(ValueError, match="init"):
        dawid_skene(labels([(1, "a", "x")]), init="random")
    empty = dawid_skene(labels([]).reindex(columns=["item_id", "annotator", "value", "value_key"]))
    assert empty.items.empty and empty.iterations == 0


# --------------------------------------------------------------------------------------------
# (c) ties escalate, (d) experts override, gold keeps gold, non-counting labels are ignored
# --------------------------------------------------------------------------------------------


def test_tie_escalates_without_a_value():
    frame = labels([(1, "a", "pos"), (1, "b", "neg"), (2, "a", "pos"), (2, "b", "pos"), (2, "c", "neg")])
    out = by_item(aggregate("classification", frame))
    assert list(aggregate("classification", frame).columns) == AGGREGATE_COLUMNS
    assert out.loc[1, "needs_expert"] and out.loc[1, "reason"] == "tie"
    assert out.loc[1, "value"] is None and out.loc[1, "value_key"] is None
    assert not out.loc[2, "needs_expert"] and out.loc[2, "reason"] is None
    assert out.loc[2, "value"] == "pos"
    assert out.loc[2, "confidence"] == pytest.approx(2 / 3)
    assert out.loc[2, "agreement"] == pytest.approx(2 / 3)
    assert out.loc[2, "n_labels"] == 3
    assert out.loc[2, "source"] == "crowd" and out.loc[2, "method"] == "majority"


def test_low_confidence_escalates_but_keeps_the_best_guess():
    frame = labels([(1, "a", "x"), (1, "b", "x"), (1, "c", "y"), (1, "d", "z"), (2, "a", "x"), (2, "b", "x")])
    out = by_item(aggregate("classification", frame, min_confidence=0.6))
    assert out.loc[1, "value"] == "x" and out.loc[1, "needs_expert"] and out.loc[1, "reason"] == "low_confidence"
    assert not out.loc[2, "needs_expert"]


def test_expert_overrides_the_crowd():
    frame = labels(
        [
            (1, "a", "pos"),
            (1, "b", "pos"),
            (1, "c", "pos"),
            (1, "e", "neg", True, "expert", "expert"),
            (2, "a", "pos"),
            (2, "b", "neg"),
            (2, "lead", "neg", True, "expert", "lead"),  # an adjudication by a lead
            (3, "a", "neg"),
            (3, "x", "pos", True, "production", "expert"),  # an expert labeling like anyone
        ]
    )
    out = by_item(aggregate("classification", frame))
    assert out.loc[1, "value"] == "neg" and out.loc[1, "source"] == "expert"
    assert out.loc[1, "confidence"] == 1.0 and not out.loc[1, "needs_expert"]
    assert out.loc[1, "agreement"] == 0.0 and out.loc[1, "n_labels"] == 3
    assert out.loc[2, "value"] == "neg" and out.loc[2, "source"] == "expert"  # the crowd tie is settled
    assert not out.loc[2, "needs_expert"] and out.loc[2, "agreement"] == 0.5
    assert out.loc[3, "value"] == "pos" and out.loc[3, "source"] == "expert"


def test_disagreeing_experts_escalate():
    frame = labels([(1, "a", "pos"), (1, "e1", "pos", True, "expert"), (1, "e2", "neg", True, "expert")])
    out = by_item(aggregate("classification", frame))
    assert out.loc[1, "needs_expert"] and out.loc[1, "reason"] == "expert_tie" and out.loc[1, "value"] is None


def test_gold_keeps_gold_and_non_counting_labels_are_ignored():
    frame = labels(
        [
            (1, "a", "neg", True, "honeypot"),
            (1, "b", "neg", True, "honeypot"),
            (1, "e", "neg", True, "expert", "expert"),
            (2, "a", "pos"),
            (2, "b", "neg", False),  # does not count (e.g. a failed quiz taker)
            (2, "c", "neg", False),
            (3, "a", "neg", False),  # nothing counts: no row
        ]
    )
    out = by_item(aggregate("classification", frame, gold={1: "pos"}))
    assert set(out.index) == {1, 2}
    assert out.loc[1, "value"] == "pos" and out.loc[1, "source"] == "gold" and out.loc[1, "method"] == "gold"
    assert out.loc[1, "value_key"] == value_key("pos") and out.loc[1, "confidence"] == 1.0
    assert out.loc[1, "agreement"] == 0.0
    assert out.loc[2, "value"] == "pos" and out.loc[2, "n_labels"] == 1 and out.loc[2, "confidence"] == 1.0


def test_one_vote_per_annotator_and_item():
    frame = labels([(1, "a", "pos"), (1, "a", "neg"), (1, "b", "neg")])
    out = by_item(aggregate("classification", frame))
    assert out.loc[1, "value"] == "neg" and out.loc[1, "n_labels"] == 2


def test_rows_without_an_answer_and_the_shared_frame_contract():
    # no `tier` column; skip/ambiguous rows and missing keys carry no answer; created_at orders re-votes
    frame = labels([(1, "a", "pos"), (1, "b", "pos"), (1, "c", "neg"), (1, "d", "neg"), (1, "b", "neg")])
    frame = frame.drop(columns="tier")
    frame["action"] = ["accept", "accept", "accept", "skip", "edit"]
    frame.loc[3, "value_key"] = None
    frame["created_at"] = pd.to_datetime(["2024-01-01", "2024-01-03", "2024-01-01", "2024-01-01", "2024-01-02"])
    out = by_item(aggregate("classification", frame))
    # b's latest answer is "pos" (Jan 3rd); d skipped
    assert out.loc[1, "value"] == "pos" and out.loc[1, "n_labels"] == 3
    assert out.loc[1, "confidence"] == pytest.approx(2 / 3)
    assert dawid_skene(frame).classes == [value_key("neg"), value_key("pos")]  # a missing key is no class


def test_dawid_skene_method_with_gold_and_experts():
    frame = labels([(1, "a", "pos"), (1, "b", "neg"), (2, "a", "pos"), (2, "e", "neg", True, "expert")])
    out = by_item(aggregate("classification", frame, gold={1: "neg"}, method="dawid_skene"))
    assert out.loc[1, "source"] == "gold" and out.loc[1, "value"] == "neg"
    assert out.loc[2, "source"] == "expert" and out.loc[2, "value"] == "neg"


def test_bad_arguments_and_empty_input():
    frame = labels([(1, "a", ["x"])], task="multilabel")
    with pytest.raises(ValueError, match="classification"):
        aggregate("multilabel", frame, method="dawid_skene")
    with pytest.raises(ValueError, match="method"):
        aggregate("classification", frame, method="mean")
    with pytest.raises(ValueError, match="task"):
        aggregate("ranking", frame)
    empty = aggregate("classification", labels([(1, "a", "x", False)]))
    assert empty.empty and list(empty.columns) == AGGREGATE_COLUMNS


# --------------------------------------------------------------------------------------------
# (e) multilabel, spans, rewrite
# --------------------------------------------------------------------------------------------


def test_multilabel_per_label_majority():
    frame = labels(
        [
            (1, "a", ["news", "sport"]),
            (1, "b", ["sport"]),
            (1, "c", ["sport", "tech"]),
            (2, "a", ["news"]),
            (2, "b", []),
            (3, "a", []),
            (3, "b", []),
            (3, "c", ["x"]),
        ],
        task="multilabel",
    )
    out = by_item(aggregate("multilabel", frame))
    assert out.loc[1, "value"] == ["sport"] and out.loc[1, "value_key"] == value_key(["sport"])
    assert out.loc[1, "confidence"] == pytest.approx(2 / 3)  # news and tech were 1 vs 2
    assert out.loc[1, "agreement"] == pytest.approx(1 / 3)
    assert out.loc[2, "needs_expert"] and out.loc[2, "reason"] == "tie" and out.loc[2, "value"] is None
    assert out.loc[3, "value"] == [] and not out.loc[3, "needs_expert"]


def test_spans_span_level_vote():
    paris, paris_short, ann = (10, 15, "LOC"), (10, 14, "LOC"), (21, 24, "PER")

    def s(*spans):
        return [{"start": a, "end": b, "label": c} for a, b, c in spans]

    frame = labels(
        [
            (1, "a", s(paris, ann)),
            (1, "b", s(paris)),
            (1, "c", s(paris_short, ann)),
            (2, "a", s(paris)),
            (2, "b", s()),
            (2, "c", s()),
            (3, "a", s(paris)),
            (3, "b", s(ann)),
        ],
        task="spans",
    )
    out = by_item(aggregate("spans", frame))
    assert out.loc[1, "value"] == s(paris, ann) and not out.loc[1, "needs_expert"]
    assert out.loc[1, "agreement"] == pytest.approx(1 / 3)
    assert out.loc[2, "value"] == [] and out.loc[2, "value_key"] == "[]"
    assert out.loc[3, "needs_expert"] and out.loc[3, "reason"] == "tie"


def test_rewrite_most_endorsed_normalised_text():
    frame = labels(
        [
            (1, "a", "Hello world."),
            (1, "b", "hello   world"),
            (1, "c", "Hello world."),
            (1, "d", "Goodbye"),
            (2, "a", "one"),
            (2, "b", "two"),
        ],
        task="rewrite",
    )
    out = by_item(aggregate("rewrite", frame, min_confidence=0.5))
    assert out.loc[1, "value"] == "Hello world." and out.loc[1, "value_key"] == value_key("Hello world.")
    assert out.loc[1, "confidence"] == 0.75 and out.loc[1, "agreement"] == 0.75
    assert not out.loc[1, "needs_expert"]
    assert out.loc[2, "needs_expert"] and out.loc[2, "reason"] == "tie" and out.loc[2, "value"] is None


def test_canonical_value():
    assert canonical_value("multilabel", ["b", "a", "b"]) == ["a", "b"]
    spans = [{"label": "B", "end": 5, "start": 0}, {"start": 0, "end": 5, "label": "A"}]
    assert canonical_value("spans", spans) == [
        {"start": 0, "end": 5, "label": "A"},
        {"start": 0, "end": 5, "label": "B"},
    ]
    assert value_key(["é"]) == '["é"]'
