"""Every Slack action_id, callback_id and block_id labelbot uses, namespaced like `label.accept`."""

from __future__ import annotations

import re
from enum import StrEnum


class Action(StrEnum):
    CHOOSE = "label.choose"  # classification label button; suffixed ":<index>"
    SELECT = "label.select"  # classification static_select (more than 15 labels)
    ACCEPT = "label.accept"
    EDIT = "label.edit"
    REJECT = "label.reject"
    SKIP = "label.skip"
    AMBIGUOUS = "label.ambiguous"
    CHECKS = "label.checks"  # multilabel checkboxes (state only)
    SUBMIT = "label.submit"  # multilabel submit of the current checks
    FULL_TEXT = "label.full_text"
    GUIDELINES = "label.guidelines"
    START = "label.start"  # "Start labeling" (Home tab, project picker, reminders)
    QUIZ_START = "quiz.start"
    REMINDERS_OFF = "reminders.off"  # "Stop reminders" in a reminder DM
    REMINDERS_ON = "reminders.on"  # "Turn reminders back on"


CHOOSE_RE = re.compile(r"^label\.choose:\d+$")


class View(StrEnum):
    EDIT = "label.edit_modal"
    FULL_TEXT = "label.full_text_modal"
    GUIDELINES = "label.guidelines_modal"


class Block(StrEnum):
    TITLE = "lb.title"
    TEXT = "lb.text"
    DRAFT = "lb.draft"
    CROWD = "lb.crowd"
    CHOICES = "lb.choices"  # the first row of label buttons; further rows are "lb.choices.2", ...
    CHECKS = "lb.checks"
    CONTROLS = "lb.controls"
    PROGRESS = "lb.progress"
    EDIT_INPUT = "lb.edit_input"
    RECORD = "lb.record"


def choose_id(index: int) -> str:
    return f"{Action.CHOOSE}:{index}"
