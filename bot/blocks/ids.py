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
    FULL_IMAGE = "label.full_image"  # "Show full size": the item's image in a modal
    GUIDELINES = "label.guidelines"
    START = "label.start"  # "Start labeling" (Home tab, project picker, reminders)
    QUIZ_START = "quiz.start"
    SUGGEST_REVISION = "guidelines.suggest"  # "Suggest a guideline revision" (reports, for leads)
    REVISION_TEXT = "guidelines.text"  # the modal's inputs (state only)
    REVISION_SUMMARY = "guidelines.summary"
    REVISION_PROMOTE = "guidelines.promote"
    REMINDERS_OFF = "reminders.off"  # "Stop reminders" in a reminder DM
    REMINDERS_ON = "reminders.on"  # "Turn reminders back on"


CHOOSE_RE = re.compile(r"^label\.choose:\d+$")


class View(StrEnum):
    EDIT = "label.edit_modal"
    FULL_TEXT = "label.full_text_modal"
    FULL_IMAGE = "label.full_image_modal"
    GUIDELINES = "label.guidelines_modal"
    REVISION_WAIT = "guidelines.wait_modal"  # while the suggestion is written
    REVISION = "guidelines.revision_modal"  # edit and publish
    REVISION_DONE = "guidelines.published_modal"


class Block(StrEnum):
    TITLE = "lb.title"
    TEXT = "lb.text"
    IMAGE = "lb.image"
    IMAGE_ACTIONS = "lb.image_actions"
    DRAFT = "lb.draft"
    CROWD = "lb.crowd"
    CHOICES = "lb.choices"  # the first row of label buttons; further rows are "lb.choices.2", ...
    CHECKS = "lb.checks"
    CONTROLS = "lb.controls"
    PROGRESS = "lb.progress"
    EDIT_INPUT = "lb.edit_input"
    RECORD = "lb.record"
    REVISION_PART = "gl.part"  # suffixed ":<n>" for part n of the guidelines' text
    REVISION_SUMMARY = "gl.summary"
    REVISION_PROMOTE = "gl.promote"
    SUGGEST = "gl.suggest"  # the actions block with the suggest button in a report
    NOTICE = "gl.notice"  # the DM about a new guideline version


def choose_id(index: int) -> str:
    return f"{Action.CHOOSE}:{index}"


def part_id(number: int) -> str:
    """The block id of part `number` (from 1) of the guidelines' text in the revision modal."""
    return f"{Block.REVISION_PART}:{number}"
