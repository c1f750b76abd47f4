"""The labeling loop as the handlers see it: each use case runs in its own unit of work and returns a
typed result (`bot.core.types`: ShowTask, ChooseProject, QuizOffer, Suspended, NotMember, QueueDone,
QuizFinished, Answered, Editor, Guidelines) that a pure builder turns into a message.

Refusals (a forged or stale click, an unknown project) raise `LabelbotError`s whose message is shown
to the person; nothing is written then.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot.core.enums import AssignmentKind, AssignmentStatus, MemberState, TaskType
from bot.core.errors import NotFound, Refused
from bot.core.markup import EDIT_BOX_MAX, MarkupError, parse, render_for_input
from bot.core.types import (
    Answer,
    Answered,
    ChooseProject,
    Editor,
    Guidelines,
    ImageView,
    Next,
    NotMember,
    QueueDone,
    QuizFinished,
    QuizOffer,
    ShowTask,
    Start,
    Suspended,
)
from bot.services.access import leads_of
from bot.services.guidelines.versions import current_info
from bot.services.images.serving import image_view, set_aside
from bot.services.labeling.answers import load_assignment, record_answer
from bot.services.labeling.entry import entry, resolve_project
from bot.services.labeling.leases import cancel_assignment, set_message
from bot.services.labeling.progress import progress_for
from bot.services.labeling.queue import next_task, queue_busy
from bot.services.labeling.quiz import next_quiz_question, quiz_summary_lines, retake_at, start_quiz
from bot.services.labeling.stats import MemberStats, member_stats
from bot.services.labeling.tasks import build_task
from bot.services.projects import get_member, get_project, spec_of, suspended_by_lead
from storage.db import Database
from storage.models import Assignment, Draft, Item, Member, Project


def start_labeling(db: Database, now: datetime, team_id: str, user_id: str, slug: str | None) -> Start:
    """`/label [project]`: the next example, or why there is none."""
    with db.session() as s:
        e = entry(s, team_id, user_id, slug)
        if e.kind == "choose":
            return ChooseProject([(p.slug, p.name) for p in e.choices])
        if e.kind == "not_member":
            return NotMember(e.message)
        project = e.project
        assert project is not None
        if e.kind == "quiz_offer":
            return QuizOffer(project.slug, project.name)
        if e.kind == "suspended":
            assert e.member is not None
            return _suspended(s, project, e.member)
        assert e.member is not None
        task = next_task(s, project, e.member, now, db.dialect)
        return ShowTask(task) if task is not None else _queue_done(s, project, user_id, now)


def start_quiz_for(db: Database, now: datetime, team_id: str, user_id: str,
                   slug: str | None) -> ShowTask | ChooseProject:
    """`/label quiz [project]`: the current question of a new or running attempt."""
    with db.session() as s:
        found = resolve_project(s, team_id, slug, user_id)
        if isinstance(found, list):
            return ChooseProject([(p.slug, p.name) for p in found], verb="quiz")
        return ShowTask(start_quiz(s, found, user_id, now))


def answer(db: Database, now: datetime, team_id: str, user_id: str, assignment_id: int, action: str,
           value: object = None) -> Answered:
    """Store a click and lease what comes next, in one unit of work."""
    with db.session() as s:
        recorded = record_answer(s, team_id=team_id, user_id=user_id, assignment_id=assignment_id,
                                 action=action, value=value, now=now)
        if recorded.duplicate:
            return Answered(recorded)
        return Answered(recorded, _next(s, db.dialect, recorded, user_id, now))


def open_editor(db: Database, now: datetime, team_id: str, user_id: str, assignment_id: int,
                reject: bool) -> Editor | None:
    """The modal for Edit or Reject (or for a plain answer when no draft was shown); None when the
    example was already answered."""
    with db.read() as s:
        assignment = load_assignment(s, assignment_id, team_id, user_id)
        if assignment.status != "open":
            return None
        project = s.get(Project, assignment.project_id)
        assert project is not None
        spec = spec_of(project)
        task = build_task(s, project, spec, assignment, now)
        item = s.get(Item, assignment.item_id)
        assert item is not None
        draft = s.get(Draft, assignment.draft_id) if assignment.draft_shown and assignment.draft_id else None
    mode = "answer" if draft is None else ("reject" if reject else "edit")
    initial, note = "", ""
    if spec.task is TaskType.SPANS:
        bare = render_for_input(item.text, [])
        if len(bare) > EDIT_BOX_MAX:  # imported before spans texts were limited at import
            raise Refused(f"This example is too long to mark in Slack's edit box ({len(bare):,} of "
                          f"{EDIT_BOX_MAX:,} characters), so it cannot be answered here: Skip it, and tell a lead.")
        initial = render_for_input(item.text, draft.value if (draft is not None and mode == "edit") else [])
        if len(initial) > EDIT_BOX_MAX:
            initial, note = bare, "The draft's marks do not fit Slack's edit box: mark the spans yourself."
    elif spec.task is TaskType.REWRITE and mode == "edit" and draft is not None:
        initial = str(draft.value)
        if len(initial) > EDIT_BOX_MAX:  # never a cut copy: saving it would lose the draft's end
            initial, note = "", "The draft is longer than Slack's edit box: write the rewrite here."
    return Editor(task, mode, initial, note)


def submit_editor(db: Database, now: datetime, team_id: str, user_id: str, assignment_id: int, mode: str,
                  text: str) -> Answered:
    """The modal's answer: span markup parsed against the item's text, or the rewrite. Raises
    `MarkupError` (shown next to the field) when it does not fit."""
    with db.session() as s:
        assignment = load_assignment(s, assignment_id, team_id, user_id)
        project = s.get(Project, assignment.project_id)
        item = s.get(Item, assignment.item_id)
        assert project is not None and item is not None
        spec = spec_of(project)
        value: object
        if spec.task is TaskType.SPANS:
            value = parse(text, item.text, spec.label_names)
        else:
            if not text.strip():
                raise MarkupError("Write the corrected text (it cannot be empty).")
            value = text
        action = {"edit": "edit", "reject": "reject"}.get(mode, "choose")
        recorded = record_answer(s, team_id=team_id, user_id=user_id, assignment_id=assignment_id,
                                 action=action, value=value, now=now)
        if recorded.duplicate:
            return Answered(recorded)
        return Answered(recorded, _next(s, db.dialect, recorded, user_id, now))


def item_text(db: Database, team_id: str, user_id: str, assignment_id: int) -> str:
    """The whole text of the example behind an assignment of this person's."""
    with db.read() as s:
        assignment = load_assignment(s, assignment_id, team_id, user_id)
        item = s.get(Item, assignment.item_id)
        assert item is not None
        return item.text


def item_image(db: Database, team_id: str, user_id: str, assignment_id: int) -> ImageView:
    """The image of the example behind an assignment of this person's ("Show full size")."""
    with db.read() as s:
        assignment = load_assignment(s, assignment_id, team_id, user_id)
        item = s.get(Item, assignment.item_id)
        project = s.get(Project, assignment.project_id)
        assert item is not None and project is not None
        view = image_view(s, item, project.team_id)
    if view is None:
        raise NotFound("This example has no image.")
    return view


def image_not_shown(db: Database, now: datetime, assignment_id: int, reason: str) -> str:
    """Slack refused the example's image (`reason`) when it was posted: the image is set aside (a URL)
    or uploaded again (a file), and the assignment is closed so that the example goes back to the queue
    (a quiz question stays: the person comes back to it). Returns what was done, for the log."""
    with db.session() as s:
        assignment = s.get(Assignment, assignment_id, with_for_update=True)
        if assignment is None:
            return "no assignment"
        item = s.get(Item, assignment.item_id)
        project = s.get(Project, assignment.project_id)
        assert item is not None and project is not None
        done = set_aside(s, item, project.team_id, reason, now)
        if assignment.status == AssignmentStatus.OPEN and assignment.kind != AssignmentKind.QUIZ:
            cancel_assignment(s, assignment, now)
        return done


def guidelines(db: Database, team_id: str, slug: str) -> Guidelines:
    """The guidelines in force: their text, labels, version, and (from version 2) what changed."""
    with db.read() as s:
        project = get_project(s, slug)
        if project.team_id != team_id:
            raise NotFound("No such project in this workspace.")
        spec = spec_of(project)
        info = current_info(s, project)
        return Guidelines(project.name, spec.instructions, [(lb.name, lb.description) for lb in spec.labels],
                          version=info.version, published_at=info.created_at,
                          changes=info.summary if info.version > 1 else [])


def message_posted(db: Database, assignment_id: int, channel: str, ts: str) -> None:
    """Remember where an example was posted (so it can be updated when its lease runs out)."""
    with db.session() as s:
        set_message(s, assignment_id, channel, ts)


def my_stats(db: Database, now: datetime, team_id: str, user_id: str) -> list[MemberStats]:
    with db.read() as s:
        return member_stats(s, team_id, user_id, now)


# ------------------------------------------------------------------------------------------------


def _suspended(s: Session, project: Project, member: Member) -> Suspended:
    """Why the member's labels are paused, and what lifts the pause: a lead, or a quiz retake (when)."""
    by_lead = suspended_by_lead(member)
    leads = tuple(leads_of(s, project.id)) if by_lead else ()
    return Suspended(project.slug, project.name, member.state_reason or "", by_lead=by_lead,
                     retake_at=None if by_lead else retake_at(spec_of(project), member), leads=leads)


def _queue_done(s: Session, project: Project, user_id: str, now: datetime) -> QueueDone:
    member = get_member(s, project, user_id)
    done = progress_for(s, project, member, now).done_today if member else 0
    return QueueDone(project.slug, project.name, done, queue_busy(s, project, user_id))


def _next(s: Session, dialect: str, recorded: Answer, user_id: str, now: datetime) -> Next:
    """What the person sees after an answer, chosen inside the answer's unit of work."""
    feedback = recorded.feedback
    if recorded.kind == AssignmentKind.QUIZ:
        if feedback is not None and feedback.finished:
            return QuizFinished(recorded.project_slug, feedback, quiz_summary_lines(feedback))
        question = next_quiz_question(s, recorded.assignment_id, now)
        return ShowTask(question) if question is not None else None
    assignment = s.get(Assignment, recorded.assignment_id)
    assert assignment is not None
    project = s.get(Project, assignment.project_id)
    member = s.get(Member, assignment.member_id)
    assert project is not None and member is not None
    if recorded.suspended:
        return _suspended(s, project, member)
    if member.state == MemberState.QUALIFIED:
        task = next_task(s, project, member, now, dialect, resume=False)
        if task is not None:
            return ShowTask(task)
    return _queue_done(s, project, user_id, now)
