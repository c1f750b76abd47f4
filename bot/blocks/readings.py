"""PURE plain-language readings of the report's statistics, one line each, for leads who are not
statisticians: "annotators agree substantially: α 0.72, CI 0.66-0.77".

Each function takes numbers from the report's JSON (value, interval, n) and returns a sentence that
starts with the reading and ends with the figure it rests on; None values read as "not available" and
never as a claim. The bands are the usual ones and are said where they are used:

- agreement (Krippendorff's α, Cohen's and Fleiss' κ): Landis and Koch (1977): below 0 less than chance,
  up to 0.20 slight, 0.40 fair, 0.60 moderate, 0.80 substantial, above almost perfect;
- anchoring (answers matching a shown draft minus answers matching a hidden one): "no clear sign" when
  the 95% interval holds 0; otherwise under 0.05 a little, under 0.15 noticeably, then strongly;
- label drift (Jensen-Shannon distance between labels given with and without a draft): under 0.05 the
  same, under 0.10 a little different, then different.
"""

from __future__ import annotations

from typing import Any

AGREEMENT_BANDS = ((0.0, "less than chance would"), (0.2, "slightly"), (0.4, "fairly"), (0.6, "moderately"),
                   (0.8, "substantially"), (float("inf"), "almost perfectly"))  # fmt: skip


def number(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def interval(low: Any, high: Any, digits: int = 2) -> str:
    """", CI 0.66-0.77" (", CI -0.05 to 0.12" when a bound is negative); "" without an interval."""
    if low is None or high is None:
        return ""
    if low < 0 or high < 0:
        return f", CI {low:.{digits}f} to {high:.{digits}f}"
    return f", CI {low:.{digits}f}-{high:.{digits}f}"


def _n(n: Any, what: str) -> str:
    """", 38 items" (", 1 item")."""
    if not n:
        return ""
    singular = {"items": "item", "shown": "shown"}.get(what, what)
    return f", {int(n):,} {singular if int(n) == 1 else what}"


def agreement_word(value: float) -> str:
    for upper, word in AGREEMENT_BANDS:
        if value < upper:
            return word
    return AGREEMENT_BANDS[-1][1]


def agreement(value: Any, low: Any = None, high: Any = None, *, symbol: str = "α") -> str:
    """"annotators agree substantially: α 0.72, CI 0.66-0.77"."""
    if value is None:
        return "not available yet"
    return f"annotators agree {agreement_word(value)}: {symbol} {number(value)}{interval(low, high)}"


def percent_agreement(value: Any, items: Any = None) -> str:
    if value is None:
        return "not available yet (no item has two answers)"
    return f"two people answering the same item agree {value:.0%} of the time{_n(items, 'items')}"


def similarity(value: Any, what: str, n: Any = None) -> str:
    """Span F1 or rewrite similarity between two people's answers on the same item (0 to 1)."""
    if value is None:
        return "not available yet (no item has two answers)"
    word = "closely" if value >= 0.8 else "partly" if value >= 0.5 else "little"
    return f"people's answers match {word}: {what} {number(value)}{_n(n, 'items')}"


def gold_accuracy(value: Any, people: Any = None) -> str:
    if value is None:
        return "not available yet (no answers on gold items)"
    who = f" ({int(people)} {'person' if people == 1 else 'people'})" if people else ""
    return f"annotators are right on {value:.0%} of gold questions on average{who}"


def accept_rate(value: Any, shown: Any = None) -> str:
    if value is None:
        return "not available yet (no drafts shown)"
    return f"people accept {value:.0%} of the drafts they see{_n(shown, 'shown')}"


def anchoring(value: Any, low: Any = None, high: Any = None) -> str:
    """How much a shown draft pulls answers toward it."""
    if value is None:
        return "not available yet (needs answers with and without a draft)"
    figure = f"anchoring {value:+.2f}{interval(low, high)}"
    if low is not None and high is not None and low <= 0 <= high:
        return f"no clear sign that drafts pull answers toward them: {figure}"
    if value <= 0:
        return f"answers do not follow the drafts: {figure}"
    word = "a little" if value < 0.05 else "noticeably" if value < 0.15 else "strongly"
    return f"drafts pull answers toward them {word}: {figure}"


def label_drift(js: Any, p: Any = None) -> str:
    """Labels given with a draft shown against blind controls."""
    if js is None:
        return "not available yet (needs answers with and without a draft)"
    chance = " (could be chance)" if p is not None and p >= 0.05 else ""
    p_text = f", p {p:.2g}" if p is not None else ""
    if js < 0.05:
        return f"labels look the same with and without drafts: JS distance {number(js)}{p_text}"
    word = "a little different" if js < 0.1 else "different"
    return f"labels are {word} with a draft shown{chance}: JS distance {number(js)}{p_text}"


def model_accuracy(value: Any, n: Any = None) -> str:
    if value is None:
        return "not available yet (no drafts on gold items)"
    return f"the model is right on {value:.0%} of gold items{_n(n, 'items')}"


def model_kappa(value: Any, low: Any = None, high: Any = None) -> str:
    if value is None:
        return "not available yet"
    word = agreement_word(value)
    return f"the model agrees with people {word}: κ {number(value)}{interval(low, high)}"


def speedup(ratio: Any, drafted: Any = None, blind: Any = None) -> str:
    if ratio is None:
        return "not available yet (needs timed answers with and without a draft)"
    secs = f": {drafted:.1f} s against {blind:.1f} s" if drafted is not None and blind is not None else ""
    if ratio >= 1.05:
        return f"a draft makes answering {ratio:.1f}× faster{secs}"
    if ratio <= 0.95:
        return f"a draft makes answering slower ({ratio:.2f}×){secs}"
    return f"a draft does not change the time an answer takes{secs}"
