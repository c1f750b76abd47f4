"""One vocabulary for what people did, used by every surface that counts (report, demo, CLI).

A label row is one of:

- an **answer**: a production example answered (accept, edit, reject or from scratch); an answer
  *counts* when its author was qualified at the time (`Label.counts`);
- a **skip** or an **ambiguous flag** (on any example an annotator was served, hidden checks included:
  annotators cannot tell those apart);
- a **quiz answer** (the qualification quiz);
- a **gold check**: an answer on a hidden gold check;
- an **expert decision**: an expert's answer on an escalated item.

Items are counted apart from **gold items** (the calibration set: quiz questions and hidden checks).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

SKIP, AMBIGUOUS = "skip", "ambiguous"

#: (field of `Activity`, singular, plural) in the order every surface lists them.
TERMS: tuple[tuple[str, str, str], ...] = (
    ("answers", "answer", "answers"),
    ("skips", "skip", "skips"),
    ("ambiguous", "ambiguous flag", "ambiguous flags"),
    ("quiz_answers", "quiz answer", "quiz answers"),
    ("gold_checks", "gold check", "gold checks"),
    ("expert_decisions", "expert decision", "expert decisions"),
)


def category(kind: str, action: str) -> str:
    """The `Activity` field a label row of this assignment kind and action is counted in."""
    if kind == "quiz":
        return "quiz_answers"
    if action == SKIP:
        return "skips"
    if action == AMBIGUOUS:
        return "ambiguous"
    if kind == "honeypot":
        return "gold_checks"
    if kind == "expert":
        return "expert_decisions"
    return "answers"


def plural(n: int, one: str, many: str | None = None) -> str:
    """`1 answer`, `1,004 answers`."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


@dataclass
class Activity:
    """Label rows counted in the one vocabulary; `counting` is how many of the answers count."""

    answers: int = 0
    skips: int = 0
    ambiguous: int = 0
    quiz_answers: int = 0
    gold_checks: int = 0
    expert_decisions: int = 0
    counting: int = 0

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, bool, int]]) -> Activity:
        """From (kind, action, counts, n) groups, e.g. a GROUP BY over labels."""
        out = cls()
        for kind, action, counts, n in rows:
            name = category(str(kind), str(action))
            setattr(out, name, getattr(out, name) + int(n))
            if name == "answers" and counts:
                out.counting += int(n)
        return out

    @property
    def total(self) -> int:
        """Every label row (what older reports called "labels")."""
        return sum(getattr(self, name) for name, _, _ in TERMS)

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}

    @classmethod
    def from_dict(cls, data: dict[str, int] | None) -> Activity:
        data = data or {}
        return cls(**{f.name: int(data.get(f.name) or 0) for f in fields(cls)})

    def words(self, *, zeros: bool = False) -> str:
        """"1,004 answers, 67 skips, 12 ambiguous flags, 60 quiz answers, 55 gold checks" (zeros left out
        unless `zeros`; answers always said). Answers that do not count are said when there are any."""
        parts = []
        for name, one, many in TERMS:
            n = getattr(self, name)
            if n or zeros or name == "answers":
                text = plural(n, one, many)
                if name == "answers" and self.counting != n:
                    text += f" ({self.counting:,} counting)"
                parts.append(text)
        return ", ".join(parts)
