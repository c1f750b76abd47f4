import random

import pytest

from bot.quality.scoring import (
    is_correct,
    jaccard,
    levenshtein,
    normalise_text,
    score,
    span_f1,
    text_similarity,
)


def span(start, end, label):
    return {"start": start, "end": end, "label": label}


# --- normalise_text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Hello,   World!  ", "hello, world"),
        ("\t«Quoted»\n", "quoted"),
        ("...", ""),
        ("", ""),
        (None, ""),
        ("Straße", "strasse"),
        ("a\u00a0\u2003b", "a b"),
        ("e\u0301", "\u00e9"),
        ("(inner) punctuation, stays", "inner) punctuation, stays"),
    ],
)
def test_normalise_text(raw, expected):
    assert normalise_text(raw) == expected


# --- levenshtein ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "d"),
    [
        ("", "", 0),
        ("abc", "", 3),
        ("", "abc", 3),
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("intention", "execution", 5),
        ("same", "same", 0),
        ("ab", "ba", 2),
        ("😀a", "😀b", 1),
    ],
)
def test_levenshtein_known_values(a, b, d):
    assert levenshtein(a, b) == d
    assert levenshtein(b, a) == d


def _reference_levenshtein(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        table[i][0] = i
    for j in range(len(b) + 1):
        table[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = min(
                table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
    return table[-1][-1]


def test_levenshtein_matches_full_table_on_random_strings():
    rng = random.Random(7)
    for _ in range(300):
        a = "".join(rng.choice("abc ") for _ in range(rng.randint(0, 12)))
        b = "".join(rng.choice("abc ") for _ in range(rng.randint(0, 12)))
        assert levenshtein(a, b) == _reference_levenshtein(a, b)


def test_levenshtein_cap_is_an_upper_bound():
    a = "x" * 50 + "a" * 30
    b = "x" * 50 + "b" * 40
    exact = levenshtein(a, b)
    capped = levenshtein(a, b, max_chars=10)
    assert exact == 40
    assert capped >= exact


def test_levenshtein_long_identical_prefix_is_cheap():
    base = "lorem ipsum " * 5000
    assert levenshtein(base + "a", base + "b") == 1


# --- similarity, jaccard, span F1 -------------------------------------------------------------


def test_text_similarity():
    assert text_similarity("Hello world.", "  hello   WORLD ") == 1.0
    assert text_similarity("", "") == 1.0
    assert text_similarity("abc", "") == 0.0
    assert text_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)


def test_jaccard():
    assert jaccard([], []) == 1.0
    assert jaccard(["a"], []) == 0.0
    assert jaccard(["a", "b"], ["b", "c"]) == pytest.approx(1 / 3)


def test_span_f1():
    gold = [span(0, 5, "LOC"), span(10, 13, "PER")]
    assert span_f1([], []) == 1.0
    assert span_f1([], gold) == 0.0
    assert span_f1(gold, []) == 0.0
    assert span_f1(gold, gold) == 1.0
    # one exact, one with a wrong boundary: P = 1/2, R = 1/2
    assert span_f1([span(0, 5, "LOC"), span(10, 12, "PER")], gold) == pytest.approx(0.5)
    # right boundaries, wrong label
    assert span_f1([span(0, 5, "PER")], [span(0, 5, "LOC")]) == 0.0
    # P = 1, R = 1/2
    assert span_f1([span(0, 5, "LOC")], gold) == pytest.approx(2 / 3)


# --- score / is_correct per task --------------------------------------------------------------


def test_classification():
    assert score("classification", "pos", "pos") == 1.0
    assert score("classification", "neg", "pos") == 0.0
    assert score("classification", "Pos", "pos") == 0.0
    assert is_correct("classification", "pos", "pos")
    assert not is_correct("classification", "neg", "pos")
    assert not is_correct("classification", None, "pos")


def test_multilabel_exact_and_jaccard():
    assert score("multilabel", ["b", "a"], ["a", "b"]) == 1.0
    assert score("multilabel", ["a"], ["a", "b"]) == 0.0
    assert score("multilabel", [], []) == 1.0
    assert is_correct("multilabel", ["a", "b"], ["b", "a"])
    assert not is_correct("multilabel", ["a"], ["a", "b"])
    assert score("multilabel", ["a"], ["a", "b"], jaccard_threshold=0.5) == 0.5
    assert is_correct("multilabel", ["a"], ["a", "b"], jaccard_threshold=0.5)
    assert not is_correct("multilabel", ["a"], ["a", "b", "c"], jaccard_threshold=0.5)
    assert is_correct("multilabel", [], [], jaccard_threshold=0.9)


def test_spans():
    gold = [span(0, 5, "LOC")]
    assert score("spans", [], []) == 1.0
    assert is_correct("spans", [], [])
    assert is_correct("spans", [span(0, 5, "LOC")], gold)
    assert not is_correct("spans", [span(0, 4, "LOC")], gold)
    assert not is_correct("spans", [span(0, 5, "LOC"), span(6, 8, "PER")], gold)
    assert is_correct("spans", [span(0, 5, "LOC"), span(6, 8, "PER")], gold, span_threshold=0.6)


def test_rewrite():
    gold = "The quick brown fox jumps over the lazy dog."
    assert score("rewrite", "the quick brown fox jumps over the lazy dog", gold) == 1.0
    one_typo = "The quick brown fox jumps over the lazy dig."
    assert score("rewrite", one_typo, gold) == pytest.approx(1 - 1 / 43)
    assert is_correct("rewrite", one_typo, gold)
    assert not is_correct("rewrite", "A fast fox leaps over a dog.", gold)
    assert is_correct("rewrite", "A fast fox", "a fast fax", rewrite_threshold=0.85)
    assert not is_correct("rewrite", "A fast fox", "a fast fax", rewrite_threshold=0.95)
    assert score("rewrite", "", "") == 1.0
    assert score("rewrite", None, gold) == 0.0


def test_scores_stay_in_unit_interval():
    rng = random.Random(3)
    labels = ["a", "b", "c"]
    for _ in range(200):
        answer = sorted(rng.sample(labels, rng.randint(0, 3)))
        gold = sorted(rng.sample(labels, rng.randint(0, 3)))
        for threshold in (None, 0.5):
            assert 0.0 <= score("multilabel", answer, gold, jaccard_threshold=threshold) <= 1.0
        text_a = "".join(rng.choice("ab .!") for _ in range(rng.randint(0, 8)))
        text_b = "".join(rng.choice("ab .!") for _ in range(rng.randint(0, 8)))
        assert 0.0 <= score("rewrite", text_a, text_b) <= 1.0


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task"):
        score("ranking", "a", "a")
