"""Result types of the guideline revision loop (stdlib only): the evidence of where people disagree, a
suggested revision, a published version, and the DM that tells an annotator about it.

The services (`bot.services.guidelines`) return them; the pure builders (`bot.blocks.guidelines`) and
the CLI turn them into messages. Every string that came from data (item texts, answers, LLM output,
text a lead typed) is untrusted: builders escape it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

#: A proposal's places for the lead to write in start with this; publishing refuses text that has one.
PLACEHOLDER = "[write here"
#: The longest guidelines accepted (10 modal inputs of 3000 characters).
MAX_GUIDELINES_CHARS = 30_000


@dataclass(frozen=True)
class VersionInfo:
    """One published version of a project's guidelines."""

    version: int
    created_at: datetime
    author: str
    source: str  # spec | slack | cli
    summary: list[str]
    chars: int
    current: bool = False


@dataclass(frozen=True)
class QuotedItem:
    """An item quoted as evidence: its text (cut), how people answered, what the expert decided."""

    item_id: int
    external_id: str
    text: str
    answers: dict[str, int]  # shown answer -> how many people gave it
    expert: str | None = None  # the expert's decision (shown form), if an expert settled the item
    expert_user: str | None = None
    flagged: int = 0  # times flagged Ambiguous

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuotedItem:
        return cls(
            item_id=int(data["item_id"]), external_id=str(data["external_id"]), text=str(data["text"]),
            answers={str(k): int(v) for k, v in (data.get("answers") or {}).items()},
            expert=data.get("expert"), expert_user=data.get("expert_user"), flagged=int(data.get("flagged") or 0),
        )


@dataclass(frozen=True)
class Recommendation:
    """A structural change for a pair a revision did not fix: `kind` is "merge" or "ambiguous_label";
    `text` says what and why (the pair's agreement before and after)."""

    kind: str
    text: str


@dataclass(frozen=True)
class PairEvidence:
    """Two labels people split on, under one guideline version.

    `count`: rater pairs on one item where one chose `first` and the other `second`; `share`: of all
    disagreeing rater pairs. `agreement`: among rater pairs whose two answers are both `first` or
    `second`, the share that agree (how well people separate the two); `pairs` is how many such pairs.
    `before` / `before_pairs`: the same under the previous version (None when there is none)."""

    first: str
    second: str
    count: int
    share: float | None
    agreement: float | None
    pairs: int
    items: list[QuotedItem] = field(default_factory=list)
    before: float | None = None
    before_pairs: int = 0
    recommendation: Recommendation | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["items"] = [i.to_dict() for i in self.items]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairEvidence:
        rec = data.get("recommendation")
        return cls(
            first=str(data["first"]), second=str(data["second"]), count=int(data["count"]),
            share=data.get("share"), agreement=data.get("agreement"), pairs=int(data.get("pairs") or 0),
            items=[QuotedItem.from_dict(i) for i in data.get("items") or []],
            before=data.get("before"), before_pairs=int(data.get("before_pairs") or 0),
            recommendation=Recommendation(str(rec["kind"]), str(rec["text"])) if rec else None,
        )


@dataclass(frozen=True)
class Evidence:
    """Where the people of a project disagree, under its current guideline version (or under every
    version, when the current one has too few answers yet: `scope` says which, `note` why)."""

    slug: str
    name: str
    task: str
    version: int  # the current guideline version
    scope: str  # "version N" | "all versions"
    answers: int  # counting answers looked at
    items: int  # items with 2+ of them
    percent: float | None  # pairwise percent agreement on those items
    alpha: float | None  # Krippendorff's alpha (classification), else None
    labels: list[str] = field(default_factory=list)
    pairs: list[PairEvidence] = field(default_factory=list)
    split: list[QuotedItem] = field(default_factory=list)  # tasks without categories: most split items
    ambiguous: list[QuotedItem] = field(default_factory=list)
    note: str | None = None

    @property
    def expert_items(self) -> list[QuotedItem]:
        """Quoted items an expert settled (each once): the worked examples that can become gold."""
        seen: dict[int, QuotedItem] = {}
        for item in [*(i for p in self.pairs for i in p.items), *self.split, *self.ambiguous]:
            if item.expert is not None and item.item_id not in seen:
                seen[item.item_id] = item
        return list(seen.values())

    @property
    def empty(self) -> bool:
        return not (self.pairs or self.split or self.ambiguous)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pairs"] = [p.to_dict() for p in self.pairs]
        data["split"] = [i.to_dict() for i in self.split]
        data["ambiguous"] = [i.to_dict() for i in self.ambiguous]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evidence:
        return cls(
            slug=str(data["slug"]), name=str(data["name"]), task=str(data["task"]), version=int(data["version"]),
            scope=str(data["scope"]), answers=int(data["answers"]), items=int(data["items"]),
            percent=data.get("percent"), alpha=data.get("alpha"), labels=[str(x) for x in data.get("labels") or []],
            pairs=[PairEvidence.from_dict(p) for p in data.get("pairs") or []],
            split=[QuotedItem.from_dict(i) for i in data.get("split") or []],
            ambiguous=[QuotedItem.from_dict(i) for i in data.get("ambiguous") or []],
            note=data.get("note"),
        )


@dataclass(frozen=True)
class Suggestion:
    """A proposed revision: `method` "llm" (written by the project's model), "simulated" (the demo's
    writer) or "template" (the evidence laid out for the lead to write in; also after an LLM failure,
    whose kind and message are in `error_kind` / `error`)."""

    id: int
    slug: str
    name: str
    based_on: int
    method: str
    model: str | None
    text: str
    changes: list[str]
    evidence: Evidence
    current_text: str
    error_kind: str | None = None
    error: str | None = None

    @property
    def is_template(self) -> bool:
        return self.method == "template"


@dataclass(frozen=True)
class Published:
    """A new guideline version: `notices` annotators will get one DM each, `promoted` expert
    decisions became gold."""

    slug: str
    name: str
    version: int
    version_id: int
    summary: list[str]
    notices: int
    promoted: int


@dataclass(frozen=True)
class Notice:
    """One DM to send: annotator `user_id` learns that `slug` has guideline version `version`."""

    id: int
    team_id: str
    user_id: str
    slug: str
    name: str
    version: int
    summary: list[str]
    author: str
