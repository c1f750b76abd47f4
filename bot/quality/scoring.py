"""Quiz and honeypot scoring: how close an answer is to the gold answer, per task type.

Pure functions (stdlib only). `task` is a task-type name or a StrEnum with the same values:
classification, multilabel, spans, rewrite.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "MAX_LEVENSHTEIN_CHARS",
    "is_correct",
    "jaccard",
    "levenshtein",
    "normalise_text",
    "score",
    "span_f1",
    "text_similarity",
]

#: Longest stretch (after trimming the common prefix and suffix) that `levenshtein` compares exactly.
MAX_LEVENSHTEIN_CHARS = 2000

_WS = re.compile(r"\s+")


def _is_edge_junk(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch).startswith("P")


def normalise_text(text: str | None) -> str:
    """NFC, case-fold, collapse whitespace to one space, strip whitespace and punctuation at both ends."""
    if not text:
        return ""
    text = _WS.sub(" ", unicodedata.normalize("NFC", text).casefold())
    start, end = 0, len(text)
    while start < end and _is_edge_junk(text[start]):
        start += 1
    while end > start and _is_edge_junk(text[end - 1]):
        end -= 1
    return text[start:end]


def levenshtein(a: str, b: str, *, max_chars: int = MAX_LEVENSHTEIN_CHARS) -> int:
    """Edit distance (insert, delete, substitute; cost 1 each) with a two-row DP.

    The common prefix and suffix are trimmed first (exact). If what remains is longer than
    `max_chars`, only the first `max_chars` characters are compared and the rest is counted as
    edits: an upper bound on the true distance, so long texts are never scored too generously.
    """
    if a == b:
        return 0
    lo = 0
    limit = min(len(a), len(b))
    while lo < limit and a[lo] == b[lo]:
        lo += 1
    hi_a, hi_b = len(a), len(b)
    while hi_a > lo and hi_b > lo and a[hi_a - 1] == b[hi_b - 1]:
        hi_a -= 1
        hi_b -= 1
    a, b = a[lo:hi_a], b[lo:hi_b]
    overflow = 0
    if len(a) > max_chars or len(b) > max_chars:
        overflow = max(len(a), len(b)) - max_chars
        a, b = a[:max_chars], b[:max_chars]
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a) + overflow
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1] + overflow


def text_similarity(a: str | None, b: str | None) -> float:
    """1 - Levenshtein / max(len) on normalised texts; two empty texts are identical (1.0)."""
    na, nb = normalise_text(a), normalise_text(b)
    longest = max(len(na), len(nb))
    if longest == 0:
        return 1.0
    return max(0.0, 1.0 - levenshtein(na, nb) / longest)


def jaccard(a: Iterable[str] | None, b: Iterable[str] | None) -> float:
    """|A ∩ B| / |A ∪ B|; two empty sets are identical (1.0)."""
    sa, sb = set(a or ()), set(b or ())
    union = sa | sb
    return 1.0 if not union else len(sa & sb) / len(union)


def _span_set(spans: Iterable[Mapping[str, Any]] | None) -> set[tuple[int, int, str]]:
    return {(int(s["start"]), int(s["end"]), str(s["label"])) for s in spans or ()}


def span_f1(answer: Iterable[Mapping[str, Any]] | None, gold: Iterable[Mapping[str, Any]] | None) -> float:
    """F1 of exact (start, end, label) matches; both empty -> 1.0, one empty -> 0.0."""
    sa, sg = _span_set(answer), _span_set(gold)
    if not sa and not sg:
        return 1.0
    hits = len(sa & sg)
    return 2.0 * hits / (len(sa) + len(sg))


def score(
    task: str,
    answer: Any,
    gold: Any,
    *,
    jaccard_threshold: float | None = None,
    rewrite_threshold: float = 0.9,
) -> float:
    """A score in [0, 1]: exact match (classification; multilabel without a Jaccard threshold),
    Jaccard (multilabel with a threshold), span F1 (spans) or normalised text similarity (rewrite).
    `rewrite_threshold` does not change the score; it is accepted so callers can pass one set of options.
    A missing answer (None) scores 0 unless the gold answer is missing too."""
    del rewrite_threshold
    kind = str(task)
    if answer is None:
        return 1.0 if gold is None else 0.0
    if kind == "classification":
        return 1.0 if answer == gold else 0.0
    if kind == "multilabel":
        if jaccard_threshold is None:
            return 1.0 if set(answer) == set(gold or ()) else 0.0
        return jaccard(answer, gold)
    if kind == "spans":
        return span_f1(answer, gold)
    if kind == "rewrite":
        return text_similarity(answer, gold)
    raise ValueError(f"unknown task type {task!r}")


def is_correct(
    task: str,
    answer: Any,
    gold: Any,
    *,
    jaccard_threshold: float | None = None,
    rewrite_threshold: float = 0.9,
    span_threshold: float = 1.0,
) -> bool:
    """Pass/fail for one quiz answer. Multilabel passes on an exact set, or Jaccard >= threshold when
    given; spans pass when F1 >= `span_threshold` (default: all spans exact); rewrite when the
    similarity >= `rewrite_threshold`."""
    value = score(task, answer, gold, jaccard_threshold=jaccard_threshold)
    kind = str(task)
    if kind == "multilabel" and jaccard_threshold is not None:
        return value >= jaccard_threshold
    if kind == "spans":
        return value >= span_threshold
    if kind == "rewrite":
        return value >= rewrite_threshold
    return value == 1.0
