"""Plain result types shared by the services and the pure Block Kit builders (no Slack, no SQL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.core.enums import TaskType


@dataclass(frozen=True)
class LabelChoice:
    """Labels picked by their positions in the label list a message was built from; `version`
    (`bot.core.values.labels_version`) names that list, so a stale click can be told from a fresh one."""

    indices: tuple[int, ...]
    version: str | None
    many: bool = False  # a multi-label set (a list) rather than one label


@dataclass
class Progress:
    done_today: int
    left: int


@dataclass(frozen=True)
class ImageView:
    """An item's image as Slack shows it: an uploaded file (`file_id`, shown with `slack_file`) or a
    public URL Slack fetches (`url`, shown with `image_url`). Neither: not uploaded (yet)."""

    alt: str
    file_id: str | None = None
    url: str | None = None

    @property
    def ready(self) -> bool:
        return bool(self.file_id or self.url)


@dataclass
class Task:
    """One example to show: everything the blocks builder needs, no ORM objects."""

    assignment_id: int
    project_slug: str
    project_name: str
    task: TaskType
    labels: list[tuple[str, str]]  # (name, description)
    item_external_id: str
    text: str
    kind: str
    draft_value: Any = None  # shown draft value, None when blind or no draft
    draft_confidence: float | None = None
    draft_simulated: bool = False
    draft_model: str | None = None  # the model name of an imported prediction (None: the project's LLM)
    blind: bool = False
    no_draft: bool = False
    crowd_answers: list[tuple[str, Any]] = field(default_factory=list)  # for experts
    progress: Progress | None = None
    quiz_position: tuple[int, int] | None = None  # (question number, of)
    image: ImageView | None = None  # image items: the picture (the text, if any, is its caption)


@dataclass
class Answer:
    """What happened to a click."""

    assignment_id: int
    project_slug: str
    task: TaskType
    action: str
    value: Any
    text: str
    kind: str
    duplicate: bool = False
    counts: bool = False
    seconds: float | None = None
    escalated: bool = False
    suspended: bool = False
    suspension_reason: str | None = None
    feedback: Any = None  # bot.quiz.Feedback for quiz questions
    channel: str | None = None
    ts: str | None = None



@dataclass
class Feedback:
    correct: bool
    score: float
    gold_display: str
    explanation: str | None
    position: tuple[int, int]
    finished: bool = False
    passed: bool | None = None
    final_score: float | None = None
    pass_mark: float | None = None
    retake_at: datetime | None = None


# ------------------------------------------------------------------------------------------------
# What a labeling request leads to: each service of the loop returns one of these, and the
# handlers turn it into a message with a pure builder.
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShowTask:
    """Post this example (or quiz question) in the person's DM."""

    task: Task


@dataclass(frozen=True)
class ChooseProject:
    """Several projects could be meant: offer a picker. `verb` is "label" or "quiz"."""

    choices: list[tuple[str, str]]  # (slug, name)
    verb: str = "label"


@dataclass(frozen=True)
class QuizOffer:
    """The person must pass the project's quiz before labeling."""

    slug: str
    name: str


@dataclass(frozen=True)
class Suspended:
    """The person's labels on this project are paused; `reason` says why. A pause from the hidden
    checks is lifted by passing the quiz again (from `retake_at`, None: now); a lead's pause only by a
    lead (`by_lead`, who are `leads`)."""

    slug: str
    name: str
    reason: str
    by_lead: bool = False
    retake_at: datetime | None = None
    leads: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotMember:
    """An invite-only project the person is not in; `message` says whom to ask."""

    message: str


@dataclass(frozen=True)
class QueueDone:
    """Nothing to serve right now: all done, or the last examples are with other people (`busy`)."""

    slug: str
    name: str
    done_today: int
    busy: bool


@dataclass(frozen=True)
class QuizFinished:
    """The quiz is over: the verdict and what to do next."""

    slug: str
    feedback: Feedback
    summary: list[str]


Start = ShowTask | ChooseProject | QuizOffer | Suspended | NotMember | QueueDone
Next = ShowTask | QuizFinished | Suspended | QueueDone | None


@dataclass(frozen=True)
class Answered:
    """A click was recorded (or was a duplicate); `next` is what the person sees after it."""

    answer: Answer
    next: Next = None


@dataclass(frozen=True)
class Editor:
    """The Edit / Reject / answer modal to open: the task, the mode and the text to pre-fill."""

    task: Task
    mode: str  # "edit" | "reject" | "answer"
    initial: str
    note: str = ""  # why the box is not pre-filled as usual (a draft too long for it)


@dataclass(frozen=True)
class Guidelines:
    name: str
    instructions: str
    labels: list[tuple[str, str]]
    version: int = 1  # the guideline version in force
    published_at: datetime | None = None
    changes: list[str] = field(default_factory=list)  # what changed in this version (version 2 on)


# ------------------------------------------------------------------------------------------------
# Lead-only commands (reports, exports): the project, or why not (`bot.services.access`)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadOf:
    """The project the lead asked about (or the one they lead)."""

    slug: str
    name: str
    task: TaskType


@dataclass(frozen=True)
class UnknownProject:
    slug: str
    known: list[str]


@dataclass(frozen=True)
class NotALead:
    name: str
    leads: list[str]


@dataclass(frozen=True)
class LeadsNothing:
    pass


@dataclass(frozen=True)
class ChooseOne:
    slugs: list[str]


Denied = UnknownProject | NotALead | LeadsNothing | ChooseOne


# ------------------------------------------------------------------------------------------------
# Reminders and the Home tab
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    """Examples waiting for one person in one project (`more`: there are more than `count`)."""

    slug: str
    name: str
    count: int
    more: bool = False
