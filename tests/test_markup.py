import random

import pytest

from bot.core.markup import MarkupError, describe, parse, render

LABELS = ["LOC", "PER", "ORG"]
TEXT = "I flew to Paris with Ann"
SPANS = [{"start": 10, "end": 15, "label": "LOC"}, {"start": 21, "end": 24, "label": "PER"}]


def span(start, end, label):
    return {"start": start, "end": end, "label": label}


# --- render / parse basics --------------------------------------------------------------------


def test_render_example():
    assert render(TEXT, SPANS) == "I flew to [Paris](LOC) with [Ann](PER)"
    assert render(TEXT, list(reversed(SPANS))) == "I flew to [Paris](LOC) with [Ann](PER)"
    assert render(TEXT, []) == TEXT
    assert render("", []) == ""


def test_parse_example():
    assert parse("I flew to [Paris](LOC) with [Ann](PER)", TEXT, LABELS) == SPANS
    assert parse(TEXT, TEXT, LABELS) == []
    assert parse("[I](PER) flew to Paris with Ann", TEXT, LABELS) == [span(0, 1, "PER")]
    assert parse("I flew to Paris with [Ann]( PER )", TEXT, LABELS) == [span(21, 24, "PER")]


def test_escaping_rule():
    text = r"a[b]c\d(e)"
    assert render(text, []) == r"a\[b\]c\\d(e)"
    assert render(text, [span(7, 10, "LOC")]) == r"a\[b\]c\\d[(e)](LOC)"
    assert parse(r"a\[b\]c\\d\(e\)", text, LABELS) == []  # escaped parentheses are read too
    assert parse(r"a\[b\]c\d(e)", text, LABELS) == []  # a backslash before a letter is a backslash
    assert parse("x\\", "x\\", LABELS) == []  # a trailing lone backslash too


def test_labels_with_markup_characters_round_trip():
    labels = ["a)b", "x\\y", "[z]", "p(q"]
    text = "one two three four"
    spans = [span(0, 3, "a)b"), span(4, 7, "x\\y"), span(8, 13, "[z]"), span(14, 18, "p(q")]
    markup = render(text, spans)
    assert markup == r"[one](a\)b) [two](x\\y) [three](\[z\]) [four](p\(q)"
    assert parse(markup, text, labels) == spans


def test_render_rejects_overlaps_and_bad_spans():
    with pytest.raises(ValueError, match="overlap"):
        render(TEXT, [span(10, 15, "LOC"), span(12, 20, "PER")])
    with pytest.raises(ValueError, match="overlap"):
        render(TEXT, [span(10, 15, "LOC"), span(10, 15, "PER")])
    with pytest.raises(ValueError, match="outside"):
        render(TEXT, [span(20, 30, "LOC")])
    with pytest.raises(ValueError, match="empty"):
        render(TEXT, [span(3, 3, "LOC")])
    # touching spans are fine
    assert render("ab", [span(0, 1, "LOC"), span(1, 2, "PER")]) == "[a](LOC)[b](PER)"


# --- error messages ---------------------------------------------------------------------------


def error_of(markup, text=TEXT, labels=LABELS):
    with pytest.raises(MarkupError) as info:
        parse(markup, text, labels)
    message = str(info.value)
    assert len(message) <= 150, message
    return message


def test_text_mismatch_says_where():
    message = error_of("I flew to [paris](LOC) with Ann")
    assert message == (
        "the text outside the brackets must match the item text; "
        "first difference at character 11: expected 'P', found 'p'"
    )
    assert "expected the end of the text, found 'x'" in error_of("I flew to Paris with Annx")
    assert "character 24: expected 'n', found the end of your text" in error_of("I flew to Paris with An")
    assert "found U+200B (zero width space)" in error_of("I flew\u200b to Paris with Ann")
    assert "expected a space" in error_of("I flewto Paris with Ann")


def test_unknown_label():
    assert error_of("I flew to [Paris](LCO) with Ann").startswith("unknown label 'LCO', did you mean 'LOC'?")
    assert "(allowed: LOC, PER, ORG)" in error_of("I flew to [Paris](LCO) with Ann")
    assert error_of("I flew to [Paris](loc) with Ann").startswith("unknown label 'loc', did you mean 'LOC'?")
    assert error_of("[I](QQQQQ) flew to Paris with Ann") == "unknown label 'QQQQQ' (allowed: LOC, PER, ORG)"
    many = [f"LABEL_NUMBER_{i}" for i in range(40)]
    assert len(error_of("[I](nope) flew to Paris with Ann", labels=many)) <= 150


def test_structural_errors():
    assert error_of("I flew to [Paris with Ann").startswith("unclosed '[' at character 11 ('[Paris with Ann')")
    assert error_of("I flew to []() Paris").startswith("empty span at character 11")
    assert error_of("I flew to [](LOC)Paris with Ann").startswith("empty span at character 11")
    assert error_of("I flew to Paris] with Ann").startswith("unmatched ']' at character 16")
    assert "needs a label" in error_of("I flew to [Paris] with Ann")
    assert error_of("I flew to [Paris](LOC with Ann") == "unclosed '(' at character 18: end the label with ')'"
    assert error_of("I flew to [Paris]() with Ann") == "missing label in '()' at character 18"
    assert "can't nest" in error_of("I flew to [Pa[ris](LOC)](LOC) with Ann")


def test_error_carries_position():
    with pytest.raises(MarkupError) as info:
        parse("I flew to [Paris with Ann", TEXT, LABELS)
    assert info.value.position == 10
    assert isinstance(info.value, ValueError)


# --- describe ---------------------------------------------------------------------------------


def test_describe():
    assert describe(TEXT, SPANS) == ["Paris — LOC (10–15)", "Ann — PER (21–24)"]
    assert describe("a  b\nc", [span(0, 6, "X")]) == ["a b c — X (0–6)"]
    long = "x" * 100
    assert describe(long, [span(0, 100, "X")]) == ["x" * 39 + "… — X (0–100)"]
    assert describe(TEXT, []) == []


# --- round trip on random texts ---------------------------------------------------------------

ALPHABET = (
    list("abc XYZ \n\t.,")
    + list("[]()\\")
    + ["😀", "👩‍👩‍👧", "🇫🇷"]  # emoji, a ZWJ sequence, a flag
    + list("שלום")
    + list("مرحبا")
    + ["\u200f", "\u200e", "\u202e"]  # RTL letters and marks
    + ["\u200b", "\u200d", "\ufeff", "\u00a0"]  # zero-width and no-break spaces
    + ["e\u0301", "\u0301"]  # combining accent
)
ROUND_TRIP_LABELS = ["LOC", "PER", "ORG", "a)b", "x\\y", "[z]", "ünï cödé"]


def random_text(rng):
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 40)))


def random_spans(rng, text):
    cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, 2 * rng.randint(0, 4))))
    spans = []
    for start, end in zip(cuts[::2], cuts[1::2], strict=False):
        if start < end and rng.random() < 0.8:
            spans.append(span(start, end, rng.choice(ROUND_TRIP_LABELS)))
    return spans


def test_round_trip_random_texts_and_spans():
    rng = random.Random(20240601)
    for _ in range(2000):
        text = random_text(rng)
        spans = random_spans(rng, text)
        markup = render(text, spans)
        assert parse(markup, text, ROUND_TRIP_LABELS) == spans, (text, spans, markup)


def test_round_trip_adversarial_texts():
    for text in ["\\", "[", "]", "(", ")", "\\\\[", "](x)", "[a](LOC)", "\\]", "a\\", "\u200b", "😀"]:
        assert parse(render(text, []), text, LABELS) == []
        spans = [span(0, len(text), "LOC")]
        assert parse(render(text, spans), text, LABELS) == spans


def test_parse_of_random_markup_only_raises_markup_error():
    rng = random.Random(99)
    pieces = ["[", "]", "(", ")", "\\", "LOC", "PER", "a", " ", "😀", "\u200b"]
    for _ in range(3000):
        markup = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        text = rng.choice([markup, "a", "", "aLOC"])
        try:
            spans = parse(markup, text, LABELS)
        except MarkupError as exc:
            assert 0 < len(str(exc)) <= 150
        else:
            # whatever parses renders back to an equivalent markup
            assert parse(render(text, spans), text, LABELS) == spans
