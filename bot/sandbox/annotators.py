"""Simulated annotators for `labelbot demo`: people who read their DM in the fake Slack, decide, and click.

Each `Annotator` drives one Slack user through the real Bolt app with a `Driver` (signed requests, the
way Slack sends them). It only knows what a person would: the messages in its DM with the bot. What
it answers comes from a `Persona` (how accurate, how easily anchored by a draft, how often it skips or
flags) and an `AnswerKey` (what a careful reader would answer for each text of the demo data).

A person's thinking time is simulated: before each click the annotator calls `pace(seconds)`, which
the demo turns into a move of its shared fake clock, so the seconds stored per label are realistic
while the whole run takes seconds of wall time.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.sandbox.driver import Driver
from bot.sandbox.fake_slack import FakeSlack

# Labels a hurried or unsure person mixes up (the demo project's labels; others fall back to random).
CONFUSIONS: dict[str, list[str]] = {
    "billing": ["cancellation", "how_to", "account_access"],
    "bug": ["how_to", "account_access", "feature_request"],
    "account_access": ["bug", "how_to"],
    "feature_request": ["how_to", "bug"],
    "how_to": ["feature_request", "bug", "billing"],
    "cancellation": ["billing", "account_access"],
}
# The pair the demo's first guidelines leave unclear ("is it broken, or are they using it wrong?"): people
# mix the two up this often under each guideline version they have read, until a revision clarifies it.
CONFUSED_PAIR: tuple[str, str] = ("bug", "how_to")
PAIR_CONFUSION: dict[int, float] = {1: 0.4}
PAIR_CONFUSION_REVISED = 0.05  # under any later version
PREFIX_CHARS = 160
WAIT_SECONDS = 15.0  # how long a person waits for the bot before typing the command again


def _key(text: str) -> str:
    return " ".join(text.split())[:PREFIX_CHARS]


def _ts(ts: str) -> tuple[int, int]:
    head, _, tail = ts.partition(".")
    return int(head), int(tail or 0)


# --------------------------------------------------------------------------------------------------
# What the simulated people know
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Truth:
    """The answer a careful reader gives; for an ambiguous text, `alt` is the other reading."""

    label: str
    alt: str | None = None
    ambiguous: bool = False
    lang: str = "en"


class AnswerKey:
    """Looks a text up by its first characters (messages may show a cut text), a picture by its SHA-256."""

    def __init__(self, truths: dict[str, Truth], pictures: dict[str, Truth] | None = None) -> None:
        self._truths = truths
        self._pictures = pictures or {}

    @classmethod
    def for_pictures(cls, pictures: list[Any]) -> AnswerKey:
        """The key of the image demo: what each picture shows (`bot.sandbox.pictures.Picture`)."""
        return cls({}, {p.sha256: Truth(p.shape, p.alt, p.hard) for p in pictures})

    def lookup_picture(self, sha256: str | None) -> Truth | None:
        return self._pictures.get(sha256 or "")

    @classmethod
    def from_files(cls, items: Path, answers: Path, gold: Path | None = None) -> AnswerKey:
        by_id = {}
        for line in answers.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                by_id[row["id"]] = row
        truths: dict[str, Truth] = {}
        for line in items.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            answer = by_id.get(row["id"])
            if answer is not None:
                truths[_key(row["text"])] = Truth(
                    answer["label"], answer.get("alt"), bool(answer.get("ambiguous")), row.get("lang", "en")
                )
        if gold is not None:
            for line in gold.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    truths[_key(row["text"])] = Truth(row["label"])
        return cls(truths)

    def lookup(self, text: str) -> Truth | None:
        key = _key(text.removesuffix("…"))
        found = self._truths.get(key)
        if found is None and len(key) >= 40:  # a cut text: match on what is shown
            found = next((t for k, t in self._truths.items() if k.startswith(key[:-1])), None)
        return found

    def __len__(self) -> int:
        return len(self._truths) + len(self._pictures)


@dataclass(frozen=True)
class Persona:
    """How one simulated person labels."""

    user_id: str
    name: str
    accuracy: float  # chance their own reading is right
    accept_bias: float  # chance they accept a wrong draft anyway (anchoring)
    skip_rate: float = 0.03
    ambiguous_eye: float = 0.4  # chance they flag a genuinely ambiguous text as Ambiguous
    doubt: float = 0.005  # chance they flag a clear text as Ambiguous anyway
    languages: frozenset[str] = frozenset({"en", "es", "de", "fr"})
    pace: float = 1.0  # multiplies their thinking time
    expert: bool = False


FIRST_NAMES = ["Amara", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Gus", "Hana", "Ivo", "Jia", "Kofi", "Lena",
               "Mateo", "Nadia", "Oskar", "Pia", "Quinn", "Rosa", "Sami", "Tess"]
LANGUAGE_SETS = [
    {"en", "es", "pt"}, {"en", "de", "nl"}, {"en", "fr", "ar"}, {"en", "he", "ru"}, {"en", "ja", "zh"},
    {"en", "hi", "it"}, {"en", "es", "fr"}, {"en", "de", "fr"},
]


def make_personas(n: int, accuracy: float, accept_bias: float, seed: int) -> list[Persona]:
    """`n` crowd annotators around the given accuracy (one clearly weaker), and one expert last."""
    rng = random.Random(seed)
    offsets = [0.1, 0.05, 0.0, 0.04, -0.04, -0.25, 0.08, -0.02, 0.02, -0.08]
    people = []
    for i in range(n):
        offset = offsets[i % len(offsets)] if n > 2 or i == 0 else 0.05
        people.append(
            Persona(
                user_id=f"U0ANN{i + 1:03d}",
                name=FIRST_NAMES[i % len(FIRST_NAMES)] + ("" if i < len(FIRST_NAMES) else str(i)),
                accuracy=min(0.99, max(0.3, accuracy + offset)),
                accept_bias=min(1.0, max(0.0, accept_bias + rng.uniform(-0.15, 0.15))),
                skip_rate=rng.uniform(0.01, 0.05),
                ambiguous_eye=rng.uniform(0.25, 0.6),
                languages=frozenset(LANGUAGE_SETS[i % len(LANGUAGE_SETS)]),
                pace=rng.uniform(0.7, 1.4),
            )
        )
    people.append(
        Persona(user_id="U0EXPERT", name="Eve (expert)", accuracy=0.97, accept_bias=0.0, skip_rate=0.0,
                ambiguous_eye=0.0, doubt=0.0, languages=frozenset(set().union(*LANGUAGE_SETS)), pace=1.2,
                expert=True)
    )
    return people


# --------------------------------------------------------------------------------------------------
# The fake Slack, read the way a person reads their DM
# --------------------------------------------------------------------------------------------------


class DemoSlack(FakeSlack):
    """FakeSlack with a cheap "newest message in this channel" for many concurrent readers.

    `FakeSlack.last_message` copies the whole channel history on every call; the demo's annotators
    poll their DM after every click, so they read only the newest message.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._replies: dict[str, list[str]] = {}
        self._replies_scanned = 0

    def _newest(self, channel_id: str) -> Any:
        for message in reversed(self._history.get(channel_id, [])):
            if not message.deleted:
                return message
        return None

    def newest_ts(self, channel_id: str) -> str | None:
        with self._cond:
            message = self._newest(channel_id)
            return message.ts if message is not None else None

    def newest(self, channel_id: str) -> dict[str, Any] | None:
        with self._cond:
            message = self._newest(channel_id)
            return self._public(message) if message is not None else None

    def wait_newer(self, channel_id: str, after: str | None, timeout: float = WAIT_SECONDS) -> dict[str, Any] | None:
        """The newest message once it is newer than `after` (None after `timeout` seconds)."""
        floor = _ts(after) if after else (-1, -1)

        def ready() -> bool:
            ts = self.newest_ts(channel_id)
            return ts is not None and _ts(ts) > floor

        try:
            self.wait_for(ready, timeout=timeout)
        except AssertionError:
            return None
        return self.newest(channel_id)

    def find_call(self, method: str, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """The params of the first `method` call matching `predicate` (a copy), without copying the rest."""
        with self._cond:
            for name, params in self._calls:
                if name == method and predicate(params):
                    return copy.deepcopy(params)
        return None

    def replies_to(self, user_id: str, start: int = 0) -> list[str]:
        """The texts the bot answered this user through response_url (ephemeral replies), oldest first,
        from the `start`-th on (indexed as they arrive, so waiting readers stay cheap)."""
        with self._cond:
            if self._replies_scanned > len(self._responses):  # reset() cleared the log
                self._replies.clear()
                self._replies_scanned = 0
            for entry in self._responses[self._replies_scanned :]:
                payload = entry.get("payload")
                if isinstance(payload, dict) and payload.get("replace_original"):
                    continue  # the answered example turned into its record: not a reply
                text = str(payload.get("text", "")) if isinstance(payload, dict) else ""
                self._replies.setdefault(str(entry.get("user")), []).append(text)
            self._replies_scanned = len(self._responses)
            return self._replies.get(user_id, [])[start:]


@dataclass
class Shown:
    """One example message as a person sees it."""

    ts: str
    kind: str  # "quiz" | "expert" | "label"
    text: str
    labels: list[str]
    choose: dict[str, tuple[str, str]]  # label -> (action_id, option value or "")
    draft: str | None = None
    blind: bool = False
    has_accept: bool = False
    picture: str | None = None  # the SHA-256 of the picture shown, for an image item


def _picture_of(blocks: list[dict[str, Any]], fake: FakeSlack | None) -> str | None:
    """What a person sees in the example's image block: the uploaded file's bytes (by its SHA-256)."""
    import hashlib

    for block in blocks:
        ref = block.get("slack_file") if block.get("type") == "image" else None
        if isinstance(ref, dict) and fake is not None:
            found = fake.file(str(ref.get("id")))
            if found is not None:
                return hashlib.sha256(found["content"]).hexdigest()
    return None


def _texts(block: dict[str, Any]) -> str:
    if isinstance(block.get("text"), dict):
        return str(block["text"].get("text", ""))
    return " ".join(str(e.get("text", "")) for e in block.get("elements", []) if isinstance(e, dict))


def classify(message: dict[str, Any] | None) -> str:
    """"example", "quiz_end", "done", "paused" (suspended / quiz offer), "expired" or "other"."""
    if not message:
        return "other"
    ids = {b.get("block_id") for b in message.get("blocks") or []}
    if "lb.controls" in ids:
        return "example"
    for block_id, kind in (("lb.quiz_end", "quiz_end"), ("lb.done", "done"), ("lb.quiz_offer", "paused"),
                           ("lb.expired", "expired")):
        if block_id in ids:
            return kind
    return "other"


def read_example(message: dict[str, Any], fake: FakeSlack | None = None) -> Shown:
    blocks = message.get("blocks") or []
    title = _texts(blocks[0]) if blocks else ""
    kind = "quiz" if "quiz question" in title else "expert" if "expert review" in title else "label"
    text = next((_texts(b) for b in blocks if b.get("block_id") == "lb.text"), "")
    shown = Shown(ts=message["ts"], kind=kind, text=text, labels=[], choose={}, picture=_picture_of(blocks, fake))
    shown.blind = any("blind control" in _texts(b) for b in blocks if b.get("type") == "context")
    for block in blocks:
        for element in block.get("elements") or []:
            if not isinstance(element, dict):
                continue
            action_id = str(element.get("action_id", ""))
            if element.get("type") == "static_select" and action_id == "label.select":
                for option in element.get("options") or []:
                    name = option["text"]["text"]
                    shown.labels.append(name)
                    shown.choose[name] = (action_id, option["value"])
                initial = element.get("initial_option")
                if initial and any(b.get("block_id") == "lb.draft" for b in blocks):
                    shown.draft = initial["text"]["text"]
            elif action_id.startswith("label.choose:"):
                name = element["text"]["text"].removeprefix("✓ ")
                shown.labels.append(name)
                shown.choose[name] = (action_id, "")
                if element["text"]["text"].startswith("✓ "):
                    shown.draft = name
            elif action_id == "label.accept":
                shown.has_accept = True
    return shown


# --------------------------------------------------------------------------------------------------
# The people
# --------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What happened, for the progress bar and the summary (thread-safe)."""

    actions: Counter[str] = field(default_factory=Counter)
    events: list[str] = field(default_factory=list)
    quiz_answers: int = 0
    production: int = 0
    reviews: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str, kind: str) -> None:
        with self.lock:
            self.actions[what] += 1
            if kind == "quiz":
                self.quiz_answers += 1
            elif kind == "label":
                self.production += 1
            elif kind == "expert":
                self.reviews += 1

    def note(self, event: str, when: datetime | None = None) -> None:
        with self.lock:
            self.events.append(f"{when:%a %H:%M} {event}" if when else event)


@dataclass
class Decision:
    action: str  # "accept" | "choose" | "skip" | "ambiguous"
    label: str | None
    seconds: float


class Mind:
    """How a persona answers what it is shown (no Slack here): its own reading of the text, anchored
    by a shown draft with probability `accept_bias`, sometimes a skip or an Ambiguous flag."""

    def __init__(self, persona: Persona, key: AnswerKey, rng: random.Random) -> None:
        self.persona = persona
        self.key = key
        self.rng = rng
        self.unknown_texts = 0
        self.guideline_version = 1  # the version of the guidelines this person has read
        self.misread = False  # the last reading came from the unclear pair of the guidelines

    def pair_confusion(self) -> float:
        """How often this person mixes up `CONFUSED_PAIR` under the guidelines they have read."""
        if self.persona.expert:
            return 0.0
        return PAIR_CONFUSION.get(self.guideline_version, PAIR_CONFUSION_REVISED)

    def _own_reading(self, truth: Truth | None, labels: list[str], accuracy: float, *, production: bool = False) -> str:
        self.misread = False
        if truth is None:
            self.unknown_texts += 1
            return self.rng.choice(labels)
        right = truth.label
        if truth.ambiguous and truth.alt in labels and not self.persona.expert and self.rng.random() < 0.5:
            right = truth.alt
        a, b = CONFUSED_PAIR
        if production and right in (a, b) and {a, b} <= set(labels) and self.rng.random() < self.pair_confusion():
            self.misread = True  # a misunderstanding of the guidelines, not a slip: a draft rarely sways it
            return b if right == a else a
        if self.rng.random() < accuracy:
            return right
        wrong = [x for x in CONFUSIONS.get(right, []) if x in labels and x != right] or [
            x for x in labels if x != right
        ]
        return self.rng.choice(wrong)

    def decide(self, shown: Shown) -> Decision:
        p, rng = self.persona, self.rng
        truth = self.key.lookup_picture(shown.picture) if shown.picture else self.key.lookup(shown.text)
        reading = 5.0 + min(len(shown.text), 2500) / 25.0  # about 250 words a minute
        if shown.picture:
            reading += 4.0  # a look at the picture
        think = reading * p.pace * rng.lognormvariate(0, 0.3)
        if shown.kind != "quiz" and not p.expert:
            unreadable = truth is not None and not shown.picture and truth.lang not in p.languages
            if (unreadable and rng.random() < 0.7) or rng.random() < p.skip_rate:
                return Decision("skip", None, think * 0.5)
            if truth is not None and truth.ambiguous and rng.random() < p.ambiguous_eye:
                return Decision("ambiguous", None, think + rng.uniform(3, 8))
            if rng.random() < p.doubt:
                return Decision("ambiguous", None, think + rng.uniform(3, 8))
        accuracy = p.accuracy
        if truth is not None and not shown.picture and truth.lang not in p.languages:
            accuracy *= 0.6  # guessing from a few words
        own = self._own_reading(truth, shown.labels, accuracy, production=shown.kind == "label")
        if shown.draft is not None and shown.has_accept:
            draft_right = truth is not None and shown.draft in (truth.label, truth.alt if truth.ambiguous else None)
            sway = p.accept_bias * (0.1 if self.misread else 0.5)
            if shown.draft == own or (not draft_right and rng.random() < p.accept_bias) or (
                draft_right and rng.random() < sway
            ):
                return Decision("accept", shown.draft, think * 0.6 + rng.uniform(1, 3))
        return Decision("choose", own, think + rng.uniform(3, 9))



class Annotator:
    """One simulated person in Slack. Use from a single thread."""

    def __init__(
        self,
        persona: Persona,
        driver: Driver,
        fake: DemoSlack,
        key: AnswerKey,
        *,
        seed: int,
        pace: Callable[[float], None],
        tally: Tally,
        now: Callable[[], datetime | None] | None = None,
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        self.persona = persona
        self.driver = driver
        self.fake = fake
        self.mind = Mind(persona, key, random.Random(f"{seed}:{persona.user_id}"))
        self.pace = pace
        self.tally = tally
        self.now: Callable[[], datetime | None] = now or (lambda: None)  # the clock, for the event log
        self.wait_seconds = wait_seconds
        self.dm = driver.dm
        self.qualified = persona.expert
        self.suspended = False
        self.last_reply = ""  # the bot's latest ephemeral answer to a command
        self.quiz_end: dict[str, Any] | None = None  # the "Quiz finished" message after a pass

    # ---- talking to Slack ----------------------------------------------------------------------

    def _newest_ts(self) -> str | None:
        return self.fake.newest_ts(self.dm)

    def _await(self, send: Callable[[], Any]) -> dict[str, Any] | None:
        """Do `send()` (a command or a click) and wait for the bot's answer: a new message in the DM
        (returned), or an ephemeral reply (None, the text kept in `last_reply`). None after a while too."""
        self.last_reply = ""
        before = self._newest_ts()
        floor = _ts(before) if before else (-1, -1)
        seen = len(self.fake.replies_to(self.persona.user_id))

        def answered() -> bool:
            ts = self._newest_ts()
            if ts is not None and _ts(ts) > floor:
                return True
            for said in self.fake.replies_to(self.persona.user_id, seen):
                if said and "in your DM" not in said:  # not the "see your DM" note: an answer in itself
                    self.last_reply = said
                    return True
            return False

        send()
        try:
            self.fake.wait_for(answered, timeout=self.wait_seconds)
        except AssertionError:
            return None
        return None if self.last_reply else self.fake.newest(self.dm)

    def command(self, text: str) -> dict[str, Any] | None:
        """Type `/label <text>` and wait for the bot's answer (see `_await`)."""
        return self._await(lambda: self.driver.command("/label", text))

    def _click(self, message: dict[str, Any], action_id: str, option: str = "") -> dict[str, Any] | None:
        if action_id == "label.select":
            return self._await(lambda: self.driver.click(message, action_id, selected_option=option))
        return self._await(lambda: self.driver.click(message, action_id))

    def _act(self, message: dict[str, Any], shown: Shown, decision: Decision) -> dict[str, Any] | None:
        self.pace(decision.seconds)
        self.tally.count(decision.action, shown.kind)
        if decision.action == "accept":
            return self._click(message, "label.accept")
        if decision.action in ("skip", "ambiguous"):
            return self._click(message, f"label.{decision.action}")
        assert decision.label is not None
        action_id, option = shown.choose[decision.label]
        return self._click(message, action_id, option)

    # ---- the flows -----------------------------------------------------------------------------

    def read_guideline_news(self) -> int | None:
        """If the bot announced new guidelines in the DM, open them (the Guidelines button) and read the
        version: this person labels under it from now on. Returns the version read, or None."""
        notices = [m for m in self.fake.messages(self.dm)
                   if any(b.get("block_id") == "gl.notice" for b in m.get("blocks") or [])]
        return self.read_guidelines(notices[-1]) if notices else None

    def read_guidelines(self, message: dict[str, Any]) -> int | None:
        """Click the Guidelines button of `message` and read the version in the modal (and the text)."""
        def opened() -> dict[str, Any] | None:
            stack = self.fake.views_open(self.persona.user_id)
            top = stack[-1] if stack else None
            return top if top is not None and top.get("callback_id") == "label.guidelines_modal" else None

        self.driver.click(message, "label.guidelines")
        try:
            view = self.fake.wait_for(opened, timeout=self.wait_seconds)
        except AssertionError:
            return None
        assert view is not None
        version = None
        for block in view.get("blocks") or []:
            text = _texts(block)
            if text.startswith("Version "):
                version = int(text.split()[1].rstrip(","))
                break
        self.fake.close_view(self.persona.user_id, view["id"])
        if version is not None and version != self.mind.guideline_version:
            self.mind.guideline_version = version
            self.tally.note(f"{self.persona.name} read the new guidelines (version {version})", self.now())
        return version

    def take_quiz(self, slug: str) -> bool | None:
        """Take the qualification quiz. True: passed, False: failed, None: not allowed now."""
        message = self.command(f"quiz {slug}")
        read = False
        while True:
            kind = classify(message)
            if message is None:
                if self.last_reply:
                    self.tally.note(f"{self.persona.name}: {self.last_reply}", self.now())
                return None
            if kind == "example":
                if not read:  # a new labeler reads the guidelines first
                    read = self.read_guidelines(message) is not None
                shown = read_example(message, self.fake)
                message = self._act(message, shown, self.mind.decide(shown))
                continue
            if kind == "quiz_end":
                passed = any(
                    e.get("action_id") == "label.start"
                    for b in message.get("blocks") or [] for e in b.get("elements") or [] if isinstance(e, dict)
                )
                self.qualified = passed
                self.suspended = self.suspended and not passed
                told = str(message.get("text", ""))
                if passed:  # the first sentence says it all
                    told = told.split(". ")[0].rstrip(".") + "."
                self.tally.note(f"{self.persona.name} (accuracy {self.persona.accuracy:.0%}) "
                                f"{'passed' if passed else 'failed'} the quiz and was told: \"{told}\"", self.now())
                self.quiz_end = message
                return passed
            return None

    def work(self, slug: str, should_stop: Callable[[], bool], *, reviews_only: bool = False) -> str:
        """Label until the queue is empty ("done"), paused ("paused") or `should_stop()` ("stopped").

        `reviews_only`: stop at the first example that is not an expert review (experts at day's end).
        """
        if self.quiz_end is not None and self.qualified:
            message = self._click(self.quiz_end, "label.start")  # the "Start labeling" button
            self.quiz_end = None
        else:
            message = self.command(slug)
        tries = 0
        while True:
            kind = classify(message)
            if kind == "example":
                assert message is not None
                shown = read_example(message, self.fake)
                if should_stop() or (reviews_only and shown.kind != "expert"):
                    return "stopped"  # the example stays open; its lease expires and it goes back
                message = self._act(message, shown, self.mind.decide(shown))
                tries = 0
                continue
            if kind == "paused" or "paused" in self.last_reply:
                self.qualified, self.suspended = False, True
                said = message.get("text", "") if kind == "paused" and message else self.last_reply
                self.tally.note(f"{self.persona.name} was paused and told: \"{said}\"", self.now())
                return "paused"
            if kind not in ("done", "other", "expired") or tries >= 1 or should_stop():
                return "done"
            # The queue looked empty (others hold the last examples) or the bot did not answer: ask again.
            tries += 1
            time.sleep(0.1)
            message = self.command(slug)
