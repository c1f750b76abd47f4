"""Qualification quizzes against the gold set, and gold promotion.

A quiz draws `quiz.size` gold items (balanced across labels, unseen ones first), shows them one at a
time without drafts, gives feedback after each answer, and qualifies the member at the pass mark.
A failed attempt can be retaken after `quiz.cooldown_hours`.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.blocks.text import mention, safe_mrkdwn
from bot.core.enums import (
    AssignmentKind,
    AssignmentStatus,
    ItemStatus,
    MemberState,
    QuizStatus,
    Suspension,
    TaskType,
    Tier,
)
from bot.core.errors import Refused
from bot.core.types import Feedback, Task
from bot.core.values import canonical_key, display
from bot.services.access import leads_of
from bot.services.images.serving import servable
from bot.services.labeling.tasks import build_task
from bot.services.projects import ensure_member, lift_suspension, spec_of, suspended_by_lead
from bot.spec import ProjectSpec
from storage.models import Assignment, Gold, Item, Label, Member, Project, QuizAttempt

QUIZ_LEASE = timedelta(days=2)


def _running(session: Session, member: Member) -> QuizAttempt | None:
    return session.scalar(
        select(QuizAttempt)
        .where(QuizAttempt.member_id == member.id, QuizAttempt.status == QuizStatus.RUNNING)
        .order_by(QuizAttempt.id.desc())
        .limit(1)
    )


def _draw(session: Session, project: Project, spec: ProjectSpec, member: Member, size: int, seed: int) -> list[int]:
    """Gold items balanced across answers (round-robin by gold label), unseen before seen."""
    rows = session.execute(
        select(Gold.item_id, Gold.value_key)
        .join(Item, Item.id == Gold.item_id)
        .where(Gold.project_id == project.id, servable(project.team_id))
        .order_by(Gold.item_id)
    ).all()
    seen = set(
        session.scalars(
            select(Assignment.item_id).where(
                Assignment.member_id == member.id, Assignment.kind == AssignmentKind.QUIZ
            )
        )
    )
    rng = random.Random(seed)
    buckets: dict[str, list[int]] = defaultdict(list)
    for item_id, key in rows:
        group = key if spec.task in (TaskType.CLASSIFICATION, TaskType.MULTILABEL) else "all"
        buckets[group].append(item_id)
    for ids in buckets.values():
        rng.shuffle(ids)
        ids.sort(key=lambda i: i in seen)  # stable: unseen first, shuffled within
    chosen: list[int] = []
    groups = sorted(buckets)
    rng.shuffle(groups)
    while len(chosen) < size and any(buckets.values()):
        for g in groups:
            if buckets[g] and len(chosen) < size:
                chosen.append(buckets[g].pop(0))
    rng.shuffle(chosen)
    return chosen


def retake_at(spec: ProjectSpec, member: Member) -> datetime | None:
    """When a member paused by the hidden checks may retake the quiz (None: not such a pause)."""
    if member.state != MemberState.SUSPENDED or member.suspension != Suspension.CHECKS:
        return None
    since = member.suspended_at or datetime.min.replace(tzinfo=UTC)
    return since + timedelta(hours=spec.quiz.cooldown_hours)


def _wait(project: Project, until: datetime, now: datetime) -> Refused:
    wait = until - now
    hours, minutes = int(wait.total_seconds() // 3600), int(wait.total_seconds() % 3600 // 60)
    return Refused(
        f"You can retake the *{safe_mrkdwn(project.name, 200)}* quiz in {hours} h {minutes} min "
        f"(at {until:%Y-%m-%d %H:%M} UTC). Meanwhile, re-read the guidelines."
    )


def start_quiz(session: Session, project: Project, user_id: str, now: datetime, *, seed: int | None = None) -> Task:
    """Start (or continue) a quiz and return its current question. Raises Refused with the reason.

    Serialized per member (a row lock on PostgreSQL; SQLite writers are serialized already), so a
    double click on "Take quiz" continues the attempt the first click started; the database holds at
    most one running attempt per member."""
    spec = spec_of(project)
    name = safe_mrkdwn(project.name, 200)
    member = session.scalar(select(Member).where(Member.project_id == project.id, Member.user_id == user_id))
    if member is None:
        if not spec.members.open_enrollment:
            leads = ", ".join(mention(u) for u in leads_of(session, project.id)) or "a project lead"
            raise Refused(f"*{name}* is invite-only. Ask {leads} to invite you.")
        member = ensure_member(session, project, user_id, now)
    session.refresh(member, with_for_update=True)  # one quiz start per member at a time
    if member.tier == Tier.EXPERT and member.state == MemberState.QUALIFIED:
        raise Refused(f"Experts skip the quiz: you can label *{name}* right away with `/label {project.slug}`.")
    if member.state == MemberState.QUALIFIED:
        raise Refused(f"You are already qualified for *{name}*. Type `/label {project.slug}` to label.")
    if suspended_by_lead(member):
        leads = ", ".join(mention(u) for u in leads_of(session, project.id)) or "a project lead"
        raise Refused(f"A lead paused your labels on *{name}*; a quiz cannot lift that. Ask {leads}.")
    until = retake_at(spec, member)
    if until is not None and now < until:
        raise _wait(project, until, now)
    running = _running(session, member)
    if running is not None:
        task = current_question(session, project, spec, running, member, now)
        if task is not None:
            return task
        running.status = QuizStatus.ABANDONED  # every question answered but never settled: start afresh
        session.flush()
    last = session.scalar(
        select(QuizAttempt)
        .where(QuizAttempt.member_id == member.id, QuizAttempt.status == QuizStatus.FAILED)
        .order_by(QuizAttempt.finished_at.desc())
        .limit(1)
    )
    if last is not None and last.finished_at is not None:
        until = last.finished_at + timedelta(hours=spec.quiz.cooldown_hours)
        if now < until:
            raise _wait(project, until, now)
    n_gold = session.scalar(select(func.count()).select_from(Gold).where(Gold.project_id == project.id)) or 0
    size = spec.quiz.size
    if n_gold < size:
        if not spec.quiz.allow_short or n_gold == 0:
            raise Refused(
                f"The *{name}* quiz needs {size} gold items but the project has {n_gold}; "
                "a lead needs to import more gold (`labelbot gold`)."
            )
        size = n_gold
    shown = session.scalar(
        select(func.count()).select_from(Gold).join(Item, Item.id == Gold.item_id)
        .where(Gold.project_id == project.id, servable(project.team_id))
    ) or 0
    if shown < size:  # gold pictures still on their way to Slack
        raise Refused(
            f"The *{project.name}* quiz is not ready yet: {n_gold - shown} of its gold pictures are still being "
            "uploaded to Slack. Try `/label quiz` again in a few minutes."
        )
    rounds = session.scalar(select(func.count()).select_from(QuizAttempt).where(QuizAttempt.member_id == member.id))
    seed = seed if seed is not None else int(now.timestamp()) ^ member.id
    item_ids = _draw(session, project, spec, member, size, seed)
    attempt = QuizAttempt(
        project_id=project.id, member_id=member.id, status=QuizStatus.RUNNING, round=int(rounds or 0) + 1,
        size=len(item_ids), item_ids=item_ids, answered=0, score_sum=0.0, started_at=now,
    )
    session.add(attempt)
    session.flush()
    task = current_question(session, project, spec, attempt, member, now)
    assert task is not None
    return task


def current_question(
    session: Session, project: Project, spec: ProjectSpec, attempt: QuizAttempt, member: Member, now: datetime
) -> Task | None:
    if attempt.answered >= attempt.size:
        return None
    item_id = attempt.item_ids[attempt.answered]
    assignment = session.scalar(
        select(Assignment).where(
            Assignment.quiz_attempt_id == attempt.id,
            Assignment.item_id == item_id,
        )
    )
    if assignment is None:
        assignment = Assignment(
            project_id=project.id, item_id=item_id, member_id=member.id, team_id=member.team_id,
            user_id=member.user_id, kind=AssignmentKind.QUIZ, round=attempt.round, status=AssignmentStatus.OPEN,
            draft_id=None, draft_shown=False, blind=False, quiz_attempt_id=attempt.id, seq=attempt.answered + 1,
            leased_at=now, expires_at=now + QUIZ_LEASE, shown_at=now,
        )
        session.add(assignment)
        session.flush()
    elif assignment.status != AssignmentStatus.OPEN:
        return None
    else:
        assignment.shown_at = now
        assignment.expires_at = now + QUIZ_LEASE
    task = build_task(session, project, spec, assignment, now)
    task.quiz_position = (attempt.answered + 1, attempt.size)
    return task


def next_quiz_question(session: Session, assignment_id: int, now: datetime) -> Task | None:
    """The question after the one just answered (None when the attempt is over)."""
    assignment = session.get(Assignment, assignment_id)
    if assignment is None or assignment.quiz_attempt_id is None:
        return None
    attempt = session.get(QuizAttempt, assignment.quiz_attempt_id)
    project = session.get(Project, assignment.project_id)
    member = session.get(Member, assignment.member_id)
    assert attempt is not None and project is not None and member is not None
    if attempt.status != QuizStatus.RUNNING:
        return None
    return current_question(session, project, spec_of(project), attempt, member, now)


def after_quiz_answer(
    session: Session,
    project: Project,
    spec: ProjectSpec,
    member: Member,
    assignment: Assignment,
    label: Label,
    now: datetime,
) -> Feedback:
    attempt = session.get(QuizAttempt, assignment.quiz_attempt_id)
    gold = session.scalar(select(Gold).where(Gold.item_id == assignment.item_id))
    assert attempt is not None and gold is not None
    item = session.get(Item, assignment.item_id)
    score = float(label.correct or 0.0)
    threshold = 1.0
    if spec.task is TaskType.REWRITE:
        threshold = spec.quiz.rewrite_threshold
    elif spec.task is TaskType.MULTILABEL and spec.quiz.jaccard_threshold:
        threshold = spec.quiz.jaccard_threshold
    correct = score >= threshold - 1e-9
    attempt.answered += 1
    attempt.score_sum += score
    fb = Feedback(
        correct=correct,
        score=score,
        gold_display=display(spec.task, gold.value, item.text if item else None),
        explanation=gold.explanation,
        position=(attempt.answered, attempt.size),
    )
    if attempt.answered >= attempt.size:
        final = attempt.score_sum / attempt.size if attempt.size else 0.0
        attempt.score = final
        attempt.finished_at = now
        passed = final >= spec.quiz.pass_mark - 1e-9
        attempt.status = QuizStatus.PASSED if passed else QuizStatus.FAILED
        fb.finished, fb.passed, fb.final_score, fb.pass_mark = True, passed, final, spec.quiz.pass_mark
        if passed:
            if not suspended_by_lead(member):  # a lead's pause is a lead's to lift (record_answer refuses)
                member.qualified_at = member.qualified_at or now
                lift_suspension(member, now, f"passed the quiz with {final:.0%}")
        else:
            fb.retake_at = now + timedelta(hours=spec.quiz.cooldown_hours)
            if member.state != MemberState.SUSPENDED:
                member.state_reason = f"quiz score {final:.0%}, pass mark {spec.quiz.pass_mark:.0%}"
    return fb


def promote_from_experts(session: Session, project: Project, now: datetime,
                         item_ids: Collection[int] | None = None) -> int:
    """Add expert-adjudicated items to the gold pool (only `item_ids` when given); returns how many
    were added (idempotent)."""
    has_gold = select(Gold.id).where(Gold.item_id == Item.id).exists()
    q = (
        select(Item, Label)
        .join(Label, Label.item_id == Item.id)
        .where(
            Item.project_id == project.id,
            Item.status == ItemStatus.RESOLVED,
            Label.kind == AssignmentKind.EXPERT,
            Label.value.is_not(None),
            ~has_gold,
        )
        .order_by(Item.id, Label.id.desc())
    )
    if item_ids is not None:
        if not item_ids:
            return 0
        q = q.where(Item.id.in_(list(item_ids)))
    rows = session.execute(q).all()
    added = 0
    done: set[int] = set()
    for item, label in rows:
        if item.id in done:
            continue
        done.add(item.id)
        session.add(
            Gold(
                project_id=project.id, item_id=item.id, value=label.value, value_key=canonical_key(label.value),
                explanation=f"Adjudicated by expert {label.user_id} on {label.created_at:%Y-%m-%d}.",
                source="promoted", created_at=now,
            )
        )
        item.is_gold = True
        added += 1
    session.flush()
    return added


def quiz_summary_lines(fb: Feedback) -> list[str]:
    """Human sentences for the end of a quiz."""
    assert fb.finished and fb.final_score is not None and fb.pass_mark is not None
    if fb.passed:
        return [
            f"You scored {fb.final_score:.0%} (pass mark {fb.pass_mark:.0%}): you are qualified.",
            "Your labels now count. Type `/label` to start labeling.",
        ]
    when = f" after {fb.retake_at:%Y-%m-%d %H:%M} UTC" if fb.retake_at else ""
    return [
        f"You scored {fb.final_score:.0%}; the pass mark is {fb.pass_mark:.0%}.",
        f"Read the guidelines again, then retake the quiz{when} with `/label quiz`.",
    ]
