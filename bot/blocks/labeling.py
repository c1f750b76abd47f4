"""PURE Block Kit builders for the labeling loop: dataclasses in, (text, blocks) or view dicts out.

Untrusted text (items, drafts, label descriptions, crowd answers) is shown as plain_text with emoji
off, or escaped mrkdwn, and cut to Slack's limits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.blocks.guidelines import version_blocks
from bot.blocks.ids import Action, Block, View, choose_id
from bot.blocks.text import (
    BUTTON_TEXT_MAX,
    SECTION_TEXT_MAX,
    VIEW_BLOCKS_MAX,
    button,
    context_md,
    cut,
    fallback_text,
    header,
    mention,
    option,
    plain,
    safe_mrkdwn,
    section_md,
    section_plain,
)
from bot.core.enums import TaskType
from bot.core.types import (
    Answer,
    ChooseProject,
    Feedback,
    ImageView,
    NotMember,
    QueueDone,
    QuizOffer,
    Suspended,
    Task,
)
from bot.core.values import display, labels_version

TEXT_PREVIEW = 2900
MAX_BUTTON_LABELS = 15  # up to this many labels show as buttons (in rows); more as a menu
BUTTONS_PER_ROW = 5
SIMULATED_NOTE = "simulated drafter (demo): not a real model"

ACTION_WORDS = {
    "accept": "accepted the draft",
    "edit": "edited the draft",
    "reject": "rejected the draft",
    "manual": "labeled from scratch",
    "skip": "skipped",
    "ambiguous": "flagged as ambiguous",
}


def _value(task: Task | Answer, value: Any) -> str:
    return display(task.task, value, task.text)


def _title_line(task: Task) -> str:
    if task.quiz_position:
        n, of = task.quiz_position
        return f"*{safe_mrkdwn(task.project_name, 200)}* · quiz question {n} of {of} · no drafts in the quiz"
    kind = " · expert review" if task.kind == "expert" else ""
    return f"*{safe_mrkdwn(task.project_name, 200)}*{kind}"


ALT_TEXT_MAX = 2000
NO_IMAGE = "The picture for this example is not available."
IMAGE_REFUSED = ":frame_with_picture: Slack could not show the picture of your next example, so it was set aside."
IMAGE_REFUSED_QUIZ = (":frame_with_picture: Slack could not show the picture of this quiz question. It is being "
                      "uploaded again: type `/label quiz` in a few minutes to carry on.")


def image_block(image: ImageView, block_id: str | None = Block.IMAGE) -> dict[str, Any]:
    """An image block: the uploaded file (`slack_file`) or a public URL (`image_url`); alt text cut to
    Slack's limit. Only for a ready image (`image.ready`)."""
    block: dict[str, Any] = {"type": "image", "alt_text": cut(image.alt or "Image", ALT_TEXT_MAX)}
    if image.file_id:
        block["slack_file"] = {"id": image.file_id}
    else:
        block["image_url"] = image.url
    if block_id:
        block["block_id"] = block_id
    return block


def _text_blocks(task: Task) -> list[dict[str, Any]]:
    """The item: its image (with "Show full size") and its text (cut, with "Show full text")."""
    long = len(task.text) > TEXT_PREVIEW
    more = button("Show full text", Action.FULL_TEXT, str(task.assignment_id))
    text = [section_plain(cut(task.text, TEXT_PREVIEW) if long else task.text, Block.TEXT)]
    if task.image is None:
        return text + ([{"type": "actions", "block_id": "lb.more", "elements": [more]}] if long else [])
    caption = text if task.text.strip() else []  # an image alone has no text block
    if not task.image.ready:
        return [context_md(f":frame_with_picture: {NO_IMAGE}"), *caption]
    elements = [button("Show full size", Action.FULL_IMAGE, str(task.assignment_id))] + ([more] if long else [])
    return [image_block(task.image), *caption,
            {"type": "actions", "block_id": Block.IMAGE_ACTIONS, "elements": elements}]


def _draft_blocks(task: Task) -> list[dict[str, Any]]:
    if task.blind:
        return [context_md(":see_no_evil: *Label from scratch*: no draft on this one (blind control).")]
    if task.quiz_position:
        return []
    if task.kind == "expert":
        return _crowd_blocks(task)
    if task.draft_value is None:
        return [context_md("No draft is available for this example: label it from scratch.")]
    who = f" ({SIMULATED_NOTE})" if task.draft_simulated else ""
    if task.draft_model:  # an imported prediction: say whose (the name is lead-supplied text)
        who = f" (model {safe_mrkdwn(task.draft_model, 80)})"
    conf = f" · confidence {task.draft_confidence:.0%}" if task.draft_confidence is not None else ""
    if task.task is TaskType.SPANS:
        from bot.core.markup import render

        try:
            marked = render(task.text, task.draft_value)
        except ValueError:
            marked = _value(task, task.draft_value)
        lines = [f"• {safe_mrkdwn(task.text[s['start']:s['end']], 200)} → *{safe_mrkdwn(s['label'], 60)}*"
                 for s in task.draft_value[:40]] or ["(the draft marks no spans)"]
        return [
            context_md(f":robot_face: Draft{who}{conf}: spans marked in brackets"),
            section_plain(marked if len(marked) <= TEXT_PREVIEW else cut(marked, TEXT_PREVIEW), Block.DRAFT),
            section_md(cut("\n".join(lines), SECTION_TEXT_MAX), "lb.draft_list"),
        ]
    if task.task is TaskType.CLASSIFICATION:
        return [section_md(f":robot_face: Draft{who}: *{safe_mrkdwn(task.draft_value, 200)}*{conf}", Block.DRAFT)]
    if task.task is TaskType.MULTILABEL:
        text = ", ".join(task.draft_value) or "(no labels)"
        return [section_md(f":robot_face: Draft{who}: *{safe_mrkdwn(text, 1500)}*{conf} (pre-checked below)",
                           Block.DRAFT)]
    return [
        context_md(f":robot_face: Draft rewrite{who}{conf}:"),
        section_plain(task.draft_value, Block.DRAFT),
    ]


def _crowd_blocks(task: Task) -> list[dict[str, Any]]:
    if not task.crowd_answers:
        return [context_md("Escalated for expert review. No crowd answers yet.")]
    lines = []
    for user, value in task.crowd_answers[:20]:
        shown = value if isinstance(value, str) and value.startswith("(") else _value(task, value)
        lines.append(f"• <@{safe_mrkdwn(user, 40)}>: {safe_mrkdwn(shown, 400)}")
    more = f"\n… and {len(task.crowd_answers) - 20} more" if len(task.crowd_answers) > 20 else ""
    return [section_md(cut("*Crowd answers* (your answer is final):\n" + "\n".join(lines) + more,
                           SECTION_TEXT_MAX), Block.CROWD)]


def label_value(assignment_id: int, index: int | None, names: list[str]) -> str:
    """A label button's (or menu option's) value: "<assignment>:<position>:<label list version>". The
    position is read against the list the message was built from, never against a newer one."""
    return f"{assignment_id}:{'' if index is None else index}:{labels_version(names)}"


def _choice_blocks(task: Task) -> list[dict[str, Any]]:
    names = [name for name, _ in task.labels]
    aid = task.assignment_id
    if task.task is TaskType.CLASSIFICATION:
        if len(names) <= MAX_BUTTON_LABELS:
            elements = []
            for i, name in enumerate(names):
                drafted = task.draft_value == name
                text = f"✓ {name}" if drafted else name
                elements.append(button(cut(text, BUTTON_TEXT_MAX), choose_id(i), label_value(aid, i, names),
                                       "primary" if drafted else None))
            return [{"type": "actions", "block_id": Block.CHOICES if r == 0 else f"{Block.CHOICES}.{r + 1}",
                     "elements": row} for r, row in enumerate(button_rows(elements))]
        select: dict[str, Any] = {
            "type": "static_select",
            "action_id": Action.SELECT,
            "placeholder": plain("Choose a label", 150),
            "options": [option(name, label_value(aid, i, names)) for i, name in enumerate(names[:100])],
        }
        if task.draft_value in names:
            i = names.index(task.draft_value)
            select["initial_option"] = option(names[i], label_value(aid, i, names))
        return [{"type": "actions", "block_id": Block.CHOICES, "elements": [select]}]
    if task.task is TaskType.MULTILABEL:
        checks: dict[str, Any] = {
            "type": "checkboxes",
            "action_id": Action.CHECKS,
            "options": [option(name, str(i)) for i, name in enumerate(names[:10])],
        }
        initial = [option(n, str(names.index(n))) for n in (task.draft_value or []) if n in names[:10]]
        if initial:
            checks["initial_options"] = initial
        return [{"type": "actions", "block_id": Block.CHECKS, "elements": [checks]}]
    return []


def button_rows(elements: list[dict[str, Any]], per_row: int = BUTTONS_PER_ROW) -> list[list[dict[str, Any]]]:
    """Buttons in rows of at most `per_row`, as even as possible (6 labels: 3 + 3, 7: 4 + 3)."""
    if not elements:
        return []
    rows = -(-len(elements) // per_row)
    size = -(-len(elements) // rows)
    return [elements[i : i + size] for i in range(0, len(elements), size)]


def _control_blocks(task: Task) -> list[dict[str, Any]]:
    aid = str(task.assignment_id)
    elements: list[dict[str, Any]] = []
    drafted = task.draft_value is not None
    if drafted:
        elements.append(button("Accept", Action.ACCEPT, aid, "primary"))
    if task.task is TaskType.MULTILABEL:
        names = [name for name, _ in task.labels]
        elements.append(button("Submit checks", Action.SUBMIT, label_value(task.assignment_id, None, names),
                               None if drafted else "primary"))
    if task.task in (TaskType.SPANS, TaskType.REWRITE):
        if drafted:
            elements.append(button("Edit", Action.EDIT, aid))
            elements.append(button("Reject", Action.REJECT, aid, "danger"))
        else:
            elements.append(button("Answer", Action.EDIT, aid, "primary"))
    if not task.quiz_position:
        elements.append(button("Skip", Action.SKIP, aid))
        elements.append(button("Ambiguous", Action.AMBIGUOUS, aid))
    elements.append(button("Guidelines", Action.GUIDELINES, task.project_slug))
    return [{"type": "actions", "block_id": Block.CONTROLS, "elements": elements}]


def example_message(task: Task) -> tuple[str, list[dict[str, Any]]]:
    """The interactive message for one example."""
    blocks: list[dict[str, Any]] = [context_md(_title_line(task))]
    blocks += _text_blocks(task)
    blocks += _draft_blocks(task)
    blocks += _choice_blocks(task)
    blocks += _control_blocks(task)
    if task.progress is not None:
        blocks.append(
            context_md(f"{task.progress.done_today} done today · {task.progress.left} left in the queue · "
                       f"item `{safe_mrkdwn(cut(task.item_external_id, 60), 200)}`")
        )
    for i, block in enumerate(blocks):
        block.setdefault("block_id", f"lb.{i}")
    prefix = "Quiz question" if task.quiz_position else "New example"
    about = task.text if task.text.strip() else ("an image" if task.image is not None else "")
    return f"{prefix}: {fallback_text(about, 150)}", blocks


def record_message(answer: Answer) -> tuple[str, list[dict[str, Any]]]:
    """The one-line record that replaces an answered example (no buttons left)."""
    what = ACTION_WORDS.get(answer.action, answer.action)
    value = "" if answer.value is None else f": *{safe_mrkdwn(cut(_value(answer, answer.value), 500), 1500)}*"
    secs = f" · {answer.seconds:.0f} s" if answer.seconds is not None else ""
    icon = ":white_check_mark:" if answer.action not in ("skip", "ambiguous") else ":fast_forward:"
    if answer.action == "ambiguous":
        icon = ":grey_question:"
    line = f"{icon} You {what}{value}{secs}"
    about = " ".join(answer.text.split()) or "(an image)"
    return (
        fallback_text(f"You {what}", 150),
        [
            section_md(line, Block.RECORD),
            context_md(safe_mrkdwn(cut(about, 150), 500)),
        ],
    )


def feedback_blocks(fb: Feedback) -> list[dict[str, Any]]:
    n, of = fb.position
    if fb.correct:
        lines = [f":white_check_mark: *Correct* ({n}/{of})."]
    else:
        lines = [f":x: *Not quite* ({n}/{of}). The gold answer is *{safe_mrkdwn(cut(fb.gold_display, 600), 1800)}*."]
    if fb.explanation:
        lines.append(f"_Why:_ {safe_mrkdwn(cut(fb.explanation, 800), 1000)}")
    return [section_md("\n".join(lines), "lb.feedback")]


def quiz_end_message(fb: Feedback, summary: list[str], slug: str) -> tuple[str, list[dict[str, Any]]]:
    emoji = ":tada:" if fb.passed else ":books:"
    blocks = [section_md(f"{emoji} *Quiz finished.* " + " ".join(summary), "lb.quiz_end")]
    if fb.passed:
        blocks.append({"type": "actions", "block_id": "lb.quiz_next",
                       "elements": [button("Start labeling", Action.START, slug, "primary")]})
    else:
        blocks.append({"type": "actions", "block_id": "lb.quiz_next",
                       "elements": [button("Guidelines", Action.GUIDELINES, slug)]})
    return " ".join(summary), blocks


def done_message(
    project_name: str, done_today: int, *, busy: bool = False, slug: str = ""
) -> tuple[str, list[dict[str, Any]]]:
    """Nothing to serve: the queue is empty, or (`busy`) its last examples are with other people."""
    name = safe_mrkdwn(project_name, 200)
    if busy:
        text = (f":hourglass_flowing_sand: The last *{name}* examples are with other annotators right now. "
                f"Type `/label` again in a few minutes. You labeled {done_today} example(s) today.")
        return "The last examples are with other annotators", [
            section_md(text, "lb.done"),
            {"type": "actions", "block_id": "lb.retry",
             "elements": [button("Try again", Action.START, slug)]},
        ]
    text = f":sparkles: Thank you! The *{name}* queue is empty for now. You labeled {done_today} example(s) today."
    return "The queue is empty. Thank you!", [section_md(text, "lb.done")]


def expired_message() -> tuple[str, list[dict[str, Any]]]:
    return "This example expired", [
        section_md(":hourglass: This example expired and went back to the queue. Type `/label` for a new one.",
                   "lb.expired")
    ]


def project_picker(projects: list[tuple[str, str]], verb: str = "label") -> list[dict[str, Any]]:
    """Buttons to choose a project: (slug, name) pairs."""
    blocks: list[dict[str, Any]] = [section_md(f"Which project do you want to {verb}?", "lb.pick")]
    elements = [button(cut(name, 60), Action.START if verb == "label" else Action.QUIZ_START, slug)
                for slug, name in projects[:25]]
    if elements:
        blocks.append({"type": "actions", "block_id": "lb.pick_buttons", "elements": elements})
    return blocks


def quiz_offer(project_slug: str, project_name: str, reason: str = "") -> list[dict[str, Any]]:
    text = (f"{reason + ' ' if reason else ''}Before your labels count on *{safe_mrkdwn(project_name, 200)}*, "
            "take a short qualification quiz on the project's gold examples (no drafts).")
    return [
        section_md(text, "lb.quiz_offer"),
        {"type": "actions", "block_id": "lb.quiz_offer_buttons",
         "elements": [button("Take quiz", Action.QUIZ_START, project_slug, "primary"),
                      button("Guidelines", Action.GUIDELINES, project_slug)]},
    ]


def paused_reason(reason: str) -> str:
    """The reason (hidden checks' numbers or a lead's typed words) as escaped mrkdwn."""
    reason = safe_mrkdwn(reason.rstrip("."), 1000)
    return f"Your labels on this project are paused: {reason}." if reason else ""


def suspended_message(result: Suspended) -> tuple[str, list[dict[str, Any]]]:
    """Paused: by a lead (only a lead lifts it: no quiz offered), or by the hidden checks (the quiz
    again, from when the cooldown allows)."""
    name = safe_mrkdwn(result.name, 200)
    if result.by_lead:
        who = ", ".join(mention(u) for u in result.leads[:10]) or "a project lead"
        why = f": {safe_mrkdwn(result.reason.rstrip('.'), 1000)}" if result.reason else ""
        text = f":no_entry: A lead paused your labels on *{name}*{why}. Only a lead can lift the pause; ask {who}."
        return "Your labels are paused by a lead", [
            section_md(text, "lb.paused"),
            {"type": "actions", "block_id": "lb.paused_buttons",
             "elements": [button("Guidelines", Action.GUIDELINES, result.slug)]},
        ]
    reason = paused_reason(result.reason)
    if result.retake_at is not None:
        reason += f" You can retake the quiz from {result.retake_at:%Y-%m-%d %H:%M} UTC."
    return "Your labels are paused", quiz_offer(result.slug, result.name, reason.strip())


def start_message(result: ChooseProject | NotMember | QuizOffer | Suspended | QueueDone
                  ) -> tuple[str, list[dict[str, Any]] | None]:
    """What to say when `/label` (or a Start button) does not lead to an example."""
    if isinstance(result, ChooseProject):
        return "Choose a project", project_picker(result.choices, verb=result.verb)
    if isinstance(result, NotMember):
        return result.message, None
    if isinstance(result, QuizOffer):
        return "Take the quiz first", quiz_offer(result.slug, result.name)
    if isinstance(result, Suspended):
        return suspended_message(result)
    return done_message(result.name, result.done_today, busy=result.busy, slug=result.slug)


def in_your_dm(task: Task) -> str:
    """The ephemeral note after a slash command put an example (or a quiz question) in the DM."""
    if task.kind == "quiz":
        return ":pencil2: Your quiz is in your DM with me."
    return ":incoming_envelope: Your next example is in your DM with me."


HELP = """*labelbot* — label examples in this DM, one at a time.
• `/label` — start or continue labeling (lists your projects if you have several)
• `/label <project>` — label a specific project
• `/label quiz [project]` — take the qualification quiz
• `/label stats` — your numbers
• `/label reminders off` (or `on`) — the daily reminder when examples are waiting
• `/label help` — this help
Leads: `/label-report [project] [days]`, `/label-export [project] [jsonl|csv|parquet|openai] [raw]`.
On each example: *Accept* the draft, correct it (*Edit*, *Reject*, or pick another label), *Skip*,
or flag it *Ambiguous*."""


def help_blocks() -> list[dict[str, Any]]:
    return [section_md(HELP, "lb.help")]


def stats_blocks(stats: list[Any]) -> list[dict[str, Any]]:
    if not stats:
        return [section_md("No projects in this workspace yet.", "lb.stats")]
    lines = []
    for s in stats[:40]:
        acc = f"{s.gold_accuracy:.0%} on {s.gold_checks} checks" if s.gold_accuracy is not None else "no checks yet"
        streak = f" · {s.streak}-day streak" if getattr(s, "streak", 0) > 1 else ""
        week = f" · {s.week} this week (team {s.team_week})" if getattr(s, "team_week", 0) else ""
        lines.append(f"*{safe_mrkdwn(s.project_name, 100)}* ({s.state}): {s.today} today · {s.total} total · "
                     f"{acc}{week}{streak}")
    return [section_md(cut("\n".join(lines), SECTION_TEXT_MAX), "lb.stats")]


# ------------------------------------------------------------------------------------------ modals


def edit_modal(task: Task, mode: str, initial: str, meta: dict[str, Any], error: str | None = None,
               note: str = "") -> dict[str, Any]:
    """Edit (pre-filled with the draft) or Reject (empty) for spans and rewrites. The pre-filled text
    is never cut (`initial` fits the box: the service makes sure)."""
    if task.task is TaskType.SPANS:
        hint = ("Mark each span as [surface text](LABEL). Keep every other character as it is. "
                "Labels: " + ", ".join(name for name, _ in task.labels))
        label = "Text with spans marked"
    else:
        hint = "Write the corrected text."
        label = "Rewrite"
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": "value",
        "multiline": True,
        "max_length": 3000,
    }
    if initial and len(initial) <= 3000:
        element["initial_value"] = initial
    blocks: list[dict[str, Any]] = []
    if note:
        blocks.append(context_md(safe_mrkdwn(note, 500)))
    if task.task is TaskType.REWRITE:
        blocks.append(context_md("*Original:*"))
        blocks.append(section_plain(cut(task.text, TEXT_PREVIEW), "lb.original"))
    blocks.append(
        {"type": "input", "block_id": Block.EDIT_INPUT, "label": plain(label, 2000), "element": element,
         "hint": plain(hint, 2000)}
    )
    title = {"edit": "Edit the draft", "reject": "Correct from scratch", "answer": "Your answer"}.get(mode, "Answer")
    return {
        "type": "modal",
        "callback_id": View.EDIT,
        "title": plain(title, 24),
        "submit": plain("Save", 24),
        "close": plain("Cancel", 24),
        "private_metadata": json.dumps(meta)[:3000],
        "blocks": blocks,
    }


def full_text_modal(text: str) -> dict[str, Any]:
    chunks = [text[i : i + SECTION_TEXT_MAX] for i in range(0, len(text), SECTION_TEXT_MAX)] or [""]
    limit = VIEW_BLOCKS_MAX - 1
    blocks = [section_plain(chunk) for chunk in chunks[:limit]]
    if len(chunks) > limit:
        blocks.append(context_md(f"… {len(text) - limit * SECTION_TEXT_MAX} more characters not shown."))
    return {"type": "modal", "callback_id": View.FULL_TEXT, "title": plain("Full text", 24),
            "close": plain("Close", 24), "blocks": blocks}


def full_image_modal(image: ImageView) -> dict[str, Any]:
    """"Show full size": the item's image alone in a modal (Slack shows it as wide as the modal)."""
    blocks: list[dict[str, Any]] = [image_block(image) if image.ready else context_md(NO_IMAGE)]
    if image.alt:
        blocks.append({"type": "context", "elements": [plain(cut(image.alt, 2000), 2000)]})
    return {"type": "modal", "callback_id": View.FULL_IMAGE, "title": plain("Image", 24),
            "close": plain("Close", 24), "blocks": blocks}


def guidelines_modal(project_name: str, instructions: str, labels: list[tuple[str, str]], *, version: int = 1,
                     published_at: datetime | None = None, changes: Sequence[str] = ()) -> dict[str, Any]:
    """The guidelines in force: the version (and what changed in it, from version 2), text, labels."""
    blocks: list[dict[str, Any]] = [header(project_name), *version_blocks(version, published_at, changes)]
    body = instructions or "No written instructions yet."
    for i in range(0, min(len(body), 20 * SECTION_TEXT_MAX), SECTION_TEXT_MAX):
        blocks.append(section_plain(body[i : i + SECTION_TEXT_MAX]))
    for name, description in labels[:60]:
        about = safe_mrkdwn(description or "(no description)", 2800)
        blocks.append(section_md(f"*{safe_mrkdwn(name, 100)}* — {about}"))
    return {"type": "modal", "callback_id": View.GUIDELINES, "title": plain("Guidelines", 24),
            "close": plain("Close", 24), "blocks": blocks[:VIEW_BLOCKS_MAX]}


def _streak(days: int) -> str:
    if days <= 0:
        return "no streak yet: label one example today to start one"
    return f":fire: {days}-day streak" if days > 1 else ":seedling: 1-day streak: come back tomorrow to keep it"


def _week(s: Any) -> str:
    """"This week: you 42 · the team 310 (6 people)"."""
    if s.week and s.team_people <= 1:
        return f"This week: you {s.week:,} (just you so far)"
    people = f" ({s.team_people} {'person' if s.team_people == 1 else 'people'})" if s.team_people else ""
    return f"This week: you {s.week:,} · the team {s.team_week:,}{people}"


def home_view(stats: list[Any]) -> dict[str, Any]:
    """The Home tab: per project, where the person stands, today, their week next to the team's, their
    streak, total and gold accuracy, and the button to go on."""
    blocks: list[dict[str, Any]] = [header("labelbot")]
    if not stats:
        blocks.append(section_md("No labeling projects in this workspace yet.", "home.empty"))
    for s in stats[:30]:
        acc = f"{s.gold_accuracy:.0%} ({s.gold_checks} checks)" if s.gold_accuracy is not None else "n/a"
        state = {"qualified": ":white_check_mark: qualified", "suspended": ":no_entry: suspended",
                 "new": ":pencil2: quiz pending", "not joined": ":wave: not joined"}.get(s.state, s.state)
        lines = [f"*{safe_mrkdwn(s.project_name, 150)}* · {state}"]
        if s.state in ("qualified", "suspended") or s.total:
            lines.append(f"Today {s.today:,} · {_week(s)}")
            lines.append(f"{_streak(s.streak)} · total {s.total:,} · gold accuracy {acc}")
        elif s.team_week:
            lines.append(f"This week the team labeled {s.team_week:,} examples; join them with the quiz.")
        blocks.append(section_md("\n".join(lines)))
        if s.state == "qualified":
            el = button("Start labeling", Action.START, s.project_slug, "primary")
        else:
            el = button("Take quiz", Action.QUIZ_START, s.project_slug, "primary")
        blocks.append({"type": "actions", "elements": [el]})
    return {"type": "home", "blocks": blocks[:VIEW_BLOCKS_MAX]}
