"""Plain result types shared by the services and the pure Block Kit builders (no Slack, no SQL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.core.enums import TaskType


@dataclass
class Progress:
    done_today: int
    left: int


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
