"""The labeling loop's use cases: serve the next example, record an answer, expire leases, escalate.

Plain functions over a SQLAlchemy session (the caller owns the unit of work) and an injected `now`.
Nothing here knows Slack: handlers turn the results into Block Kit.

Serving order for a member: their open assignment (continue) -> escalated items (experts) ->
a hidden gold check (at `gold_rate`) -> production work, items nearest completion first.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.orm import Session, load_only

from bot.core.enums import (
    Action,
    AssignmentKind,
    AssignmentStatus,
    DraftStatus,
    ItemStatus,
    MemberState,
    TaskType,
    Tier,
)
from bot.core.errors import NotFound, Refused
from bot.core.types import Answer, Progress, Task
from bot.core.values import ValueProblem, canonical_key, normalize
from bot.quality.scoring import score as score_answer
from bot.services.projects import get_member, list_projects, spec_of
from bot.spec import ProjectSpec
from storage.models import Assignment, Draft, Gold, Item, Label, Member, Project

# ------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def _fraction(*parts: object) -> float:
    """A deterministic pseudo-random number in [0, 1) (unpredictable to annotators)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def usable_draft(session: Session, item_id: int) -> Draft | None:
    """The newest successful draft of an item, whatever model or prompt version made it: a fresher
    one replaces it as soon as the prefetch worker has drafted the item again (item_id index)."""
    return session.scalar(
        select(Draft)
        .options(load_only(Draft.id, Draft.status, Draft.value, Draft.value_key, Draft.confidence, Draft.simulated))
        .where(Draft.item_id == item_id, Draft.status == DraftStatus.OK)
        .order_by(Draft.id.desc())
        .limit(1)
    )


def _usable(draft: Draft | None) -> bool:
    return draft is not None and draft.status == DraftStatus.OK and draft.value is not None


def start_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


_DONE_TTL = 120.0
_done_cache: dict[tuple[str, int, str], tuple[float, int]] = {}
_PROGRESS_KINDS = (AssignmentKind.PRODUCTION, AssignmentKind.HONEYPOT, AssignmentKind.EXPERT)


def _done_key(session: Session, member_id: int, now: datetime) -> tuple[str, int, str]:
    return (str(session.get_bind().url), member_id, start_of_day(now).date().isoformat())


def _count_done(session: Session, member_id: int, now: datetime) -> None:
    """Keep the cached "done today" in step with an answer just stored (this process's view)."""
    key = _done_key(session, member_id, now)
    cached = _done_cache.get(key)
    if cached is not None:
        _done_cache[key] = (cached[0], cached[1] + 1)


def progress_for(session: Session, project: Project, member: Member, now: datetime) -> Progress:
    """Done today and left in the queue, for the progress line (both cached briefly: a guide, not a
    ledger, and a click should not pay for two aggregate queries)."""
    key = _done_key(session, member.id, now)
    cached = _done_cache.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return Progress(cached[1], _queue_left(session, project.id))
    done_today = session.scalar(
        select(func.count())
        .select_from(Label)
        .where(
            Label.member_id == member.id,
            Label.kind.in_(_PROGRESS_KINDS),
            Label.created_at >= start_of_day(now),
            Label.action.notin_([Action.SKIP]),
        )
    )
    if len(_done_cache) > 10_000:
        _done_cache.clear()
    _done_cache[key] = (time.monotonic() + _DONE_TTL, int(done_today or 0))
    return Progress(int(done_today or 0), _queue_left(session, project.id))


_LEFT_TTL = 30.0
_left_cache: dict[tuple[str, int], tuple[float, int]] = {}


def _queue_left(session: Session, project_id: int) -> int:
    """Labels still to collect in a project. Summing is O(open items), so it is cached for 30 s:
    the progress line is a guide, and a click must not cost more as the project grows."""
    key = (str(session.get_bind().url), project_id)
    cached = _left_cache.get(key)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    left = session.scalar(
        select(func.coalesce(func.sum(Item.slots), 0)).where(
            Item.project_id == project_id, Item.status == ItemStatus.OPEN
        )
    )
    _left_cache[key] = (now + _LEFT_TTL, int(left or 0))
    return int(left or 0)


def _lock_member(session: Session, member: Member, dialect: str) -> None:
    """Serialize serving for one member (PostgreSQL row lock; SQLite writers are already serialized)."""
    if dialect != "sqlite":
        session.execute(select(Member.id).where(Member.id == member.id).with_for_update())


# ------------------------------------------------------------------------------------------
# Project resolution and membership
# ------------------------------------------------------------------------------------------


@dataclass
class Entry:
    """Outcome of `/label [project]` before any example is chosen."""

    kind: str  # "task" | "choose" | "not_member" | "quiz_offer" | "suspended" | "empty" | "quiz_running"
    project: Project | None = None
    member: Member | None = None
    choices: list[Project] = field(default_factory=list)
    message: str = ""


def resolve_project(session: Session, team_id: str, slug: str | None, user_id: str) -> Project | list[Project]:
    projects = list_projects(session, team_id)
    if slug:
        for p in projects:
            if p.slug == slug:
                return p
        known = ", ".join(p.slug for p in projects) or "none yet"
        raise NotFound(f"No project `{slug}` in this workspace. Projects: {known}.")
    if len(projects) == 1:
        return projects[0]
    if not projects:
        raise NotFound("There are no labeling projects in this workspace yet. A lead creates one with the CLI.")
    mine = [
        p for p in projects
        if (m := get_member(session, p, user_id)) is not None and m.state == MemberState.QUALIFIED
    ]
    return mine[0] if len(mine) == 1 else projects


def entry(session: Session, team_id: str, user_id: str, slug: str | None) -> Entry:
    found = resolve_project(session, team_id, slug, user_id)
    if isinstance(found, list):
        return Entry("choose", choices=found)
    project = found
    spec = spec_of(project)
    member = get_member(session, project, user_id)
    if member is None or member.state == MemberState.NEW:
        if member is None and not spec.members.open_enrollment:
            leads = ", ".join(f"<@{u}>" for u in spec.members.leads) or "a project lead"
            return Entry("not_member", project, None, message=f"Ask {leads} to invite you to *{project.name}*.")
        return Entry("quiz_offer", project, member)
    if member.state == MemberState.SUSPENDED:
        return Entry("suspended", project, member, message=member.state_reason or "")
    return Entry("task", project, member)


# ------------------------------------------------------------------------------------------
# Serving
# ------------------------------------------------------------------------------------------


def _open_assignment(session: Session, member: Member, now: datetime) -> Assignment | None:
    return session.scalar(
        select(Assignment)
        .where(
            Assignment.member_id == member.id,
            Assignment.status == AssignmentStatus.OPEN,
            Assignment.expires_at > now,
            Assignment.kind != AssignmentKind.QUIZ,
        )
        .order_by(Assignment.id)
        .limit(1)
    )


CLAIM_WINDOW = 64  # partly labeled candidates looked at before moving on to fresh items


def _claim_production(
    session: Session, project: Project, member: Member, dialect: str, redundancy: int
) -> Item | None:
    """Lease an open item this member has not had, nearest completion first.

    Three tiers keep the cost flat however many items the member has already labeled:
    1. the first CLAIM_WINDOW partly labeled items in serving order (a member far ahead of the others
       would otherwise skip their own history one row at a time);
    2. fresh items (no label yet): a member has history there only through skips and expired leases;
    3. every partly labeled item, only when the first two find nothing (the end of the queue).
    """
    seen = exists().where(Assignment.item_id == Item.id, Assignment.member_id == member.id)
    open_ = (Item.project_id == project.id, Item.status == ItemStatus.OPEN, Item.slots > 0)
    window = (
        select(Item.id).where(*open_, Item.slots < redundancy).order_by(Item.slots, Item.id).limit(CLAIM_WINDOW)
    )
    tiers = [
        # The outer query repeats the open-item conditions: PostgreSQL re-checks them on the row's newest
        # version after locking it, so an item another annotator just took the last slot of is skipped.
        select(Item).where(Item.id.in_(window.scalar_subquery()), *open_, ~seen),
        select(Item).where(*open_, Item.slots >= redundancy, ~seen),
        select(Item).where(*open_, Item.slots < redundancy, ~seen),
    ]
    for q in tiers:
        q = q.order_by(Item.slots, Item.id).limit(1)
        if dialect == "postgresql":
            # SKIP LOCKED: never wait on another annotator's claim. (Waiting instead deadlocks against a
            # transaction that holds its answered item's row; a queue whose last items are locked for an
            # instant reads as busy, and the person is told to try again.)
            q = q.with_for_update(skip_locked=True, of=Item)
        item = session.scalar(q)
        if item is not None:
            item.slots -= 1
            return item
    return None


def queue_busy(session: Session, project: Project, user_id: str) -> bool:
    """True when nothing could be served to this user but open work remains that they have not seen:
    other annotators hold it (leases, or rows locked for an instant). Run only when serving came back
    empty, so it costs nothing on the hot path."""
    member = get_member(session, project, user_id)
    if member is None:
        return False
    seen = exists().where(Assignment.item_id == Item.id, Assignment.member_id == member.id)
    waiting = select(Item.id).where(Item.project_id == project.id, Item.status == ItemStatus.OPEN, ~seen).limit(1)
    return session.scalar(waiting) is not None


def _claim_escalated(session: Session, project: Project, member: Member, dialect: str) -> Item | None:
    taken = exists().where(
        Assignment.item_id == Item.id,
        Assignment.kind == AssignmentKind.EXPERT,
        Assignment.status.in_([AssignmentStatus.OPEN, AssignmentStatus.DONE]),
    )
    q = (
        select(Item)
        .where(Item.project_id == project.id, Item.status == ItemStatus.ESCALATED, ~taken)
        .order_by(Item.updated_at, Item.id)
        .limit(1)
    )
    if dialect == "postgresql":
        q = q.with_for_update(skip_locked=True, of=Item)
    return session.scalar(q)


def _few_shot_gold_ids(session: Session, project: Project, spec: ProjectSpec) -> list[int]:
    """Gold items shown to the LLM as examples: their drafts would give the answer away, so they are
    never used as hidden checks (the same deterministic choice the drafting prompt makes)."""
    if spec.llm.few_shot <= 0:
        return []
    from bot.services.drafting.prompt import MAX_EXAMPLE_CHARS, Example, choose_examples

    rows = session.execute(
        select(Gold.id, Gold.value)
        .join(Item, Item.id == Gold.item_id)
        .where(Gold.project_id == project.id, func.length(Item.text) <= MAX_EXAMPLE_CHARS)
        .order_by(Gold.id)
    ).all()
    return [ex.gold_id for ex in choose_examples(spec, [Example(gid, "", value) for gid, value in rows])]


def _pick_honeypot(session: Session, project: Project, spec: ProjectSpec, member: Member) -> Item | None:
    seen = exists().where(
        Assignment.item_id == Item.id,
        Assignment.member_id == member.id,
        Assignment.kind == AssignmentKind.HONEYPOT,
    )
    conditions = [Gold.project_id == project.id, ~seen]
    examples = _few_shot_gold_ids(session, project, spec)
    if examples:
        conditions.append(Gold.id.notin_(examples))
    n = session.scalar(select(func.count()).select_from(Gold).where(Gold.project_id == project.id)) or 0
    if not n:
        return None
    # Start at a pseudo-random gold id so members do not all see the same checks in order.
    pivot = int(_fraction(member.id, member.served, "pivot") * n)
    base = select(Item).join(Gold, Gold.item_id == Item.id).where(*conditions).order_by(Item.id)
    return session.scalar(base.offset(pivot).limit(1)) or session.scalar(base.limit(1))


def next_task(
    session: Session, project: Project, member: Member, now: datetime, dialect: str, *, resume: bool = True
) -> Task | None:
    """Continue the member's open example or lease a new one. None when there is nothing to do.

    `resume=False` right after an answer: the member's one open example was just closed (serving is
    serialized per member), so there is nothing to continue."""
    spec = spec_of(project)
    _lock_member(session, member, dialect)
    current = _open_assignment(session, member, now) if resume else None
    if current is not None:
        return build_task(session, project, spec, current, now)

    item: Item | None = None
    kind = AssignmentKind.PRODUCTION
    if member.tier == Tier.EXPERT:
        item = _claim_escalated(session, project, member, dialect)
        kind = AssignmentKind.EXPERT
    if item is None and spec.gold_rate > 0 and _fraction(member.id, member.served, "gold") < spec.gold_rate:
        item = _pick_honeypot(session, project, spec, member)
        kind = AssignmentKind.HONEYPOT
    if item is None:
        item = _claim_production(session, project, member, dialect, spec.redundancy)
        kind = AssignmentKind.PRODUCTION
    if item is None:
        return None

    blind = False
    if kind in (AssignmentKind.PRODUCTION, AssignmentKind.HONEYPOT):
        member.served += 1
        blind = spec.blind_every > 0 and member.served % spec.blind_every == 0
    draft = usable_draft(session, item.id) if spec.llm.enabled else None
    shown = _usable(draft) and not blind and kind != AssignmentKind.EXPERT
    assignment = Assignment(
        project_id=project.id, item_id=item.id, member_id=member.id, team_id=member.team_id,
        user_id=member.user_id, kind=kind, round=0, status=AssignmentStatus.OPEN,
        draft_id=draft.id if _usable(draft) else None, draft_shown=bool(shown), blind=blind,
        seq=member.served, leased_at=now, expires_at=now + timedelta(minutes=spec.lease_minutes), shown_at=now,
    )
    session.add(assignment)
    session.flush()
    return build_task(session, project, spec, assignment, now, item=item, draft=draft)


def build_task(
    session: Session,
    project: Project,
    spec: ProjectSpec,
    assignment: Assignment,
    now: datetime,
    *,
    item: Item | None = None,
    draft: Draft | None = None,
) -> Task:
    item = item or session.get(Item, assignment.item_id)
    assert item is not None
    if draft is None and assignment.draft_id is not None:
        draft = session.get(Draft, assignment.draft_id)
    member = session.get(Member, assignment.member_id)
    assert member is not None
    task = Task(
        assignment_id=assignment.id,
        project_slug=project.slug,
        project_name=project.name,
        task=spec.task,
        labels=[(label.name, label.description) for label in spec.labels],
        item_external_id=item.external_id,
        text=item.text,
        kind=assignment.kind,
        blind=assignment.blind,
    )
    if assignment.draft_shown and _usable(draft):
        task.draft_value = draft.value
        task.draft_confidence = draft.confidence
        task.draft_simulated = draft.simulated
    elif not assignment.blind and assignment.kind != AssignmentKind.QUIZ:
        task.no_draft = assignment.kind != AssignmentKind.EXPERT
    if assignment.kind == AssignmentKind.EXPERT:
        rows = session.execute(
            select(Label.user_id, Label.value, Label.action)
            .where(Label.item_id == item.id, Label.kind == AssignmentKind.PRODUCTION)
            .order_by(Label.id)
        ).all()
        task.crowd_answers = [
            (uid, value if action != Action.AMBIGUOUS else "(flagged ambiguous)")
            for uid, value, action in rows
            if action != Action.SKIP
        ]
    if assignment.kind != AssignmentKind.QUIZ:
        task.progress = progress_for(session, project, member, now)
    return task


# ------------------------------------------------------------------------------------------
# Answers
# ------------------------------------------------------------------------------------------


def _check_owner(assignment: Assignment | None, team_id: str, user_id: str) -> Assignment:
    """Never trust a payload: the assignment must be the clicking user's, in the clicking workspace."""
    if assignment is None or assignment.user_id != user_id or assignment.team_id != team_id:
        raise Refused("That example is not yours, so nothing was recorded.")
    return assignment


def load_assignment(session: Session, assignment_id: int, team_id: str, user_id: str) -> Assignment:
    """The assignment a click refers to, checked against the clicking user and workspace."""
    q = select(Assignment).where(Assignment.id == assignment_id).with_for_update()
    return _check_owner(session.scalar(q), team_id, user_id)


def _value_for(
    task: TaskType, spec: ProjectSpec, action: str, raw: Any, draft: Draft | None, text: str
) -> tuple[str, Any]:
    """Work out the stored action and value from a click, trusting only the server's draft."""
    if action in (Action.SKIP, Action.AMBIGUOUS):
        return action, None
    if action == Action.ACCEPT:
        if not _usable(draft):
            raise Refused("There is no draft to accept on this example; choose an answer instead.")
        return Action.ACCEPT, draft.value
    try:
        value = normalize(task, raw, spec, text)
    except ValueProblem as e:
        raise Refused(f"That answer is not valid: {e}.") from None
    if draft is None or not _usable(draft):
        return Action.MANUAL, value
    if canonical_key(value) == draft.value_key:
        return Action.ACCEPT, value
    if action == "choose":  # a different label than the drafted one
        return Action.REJECT, value
    return (Action.REJECT if action == Action.REJECT else Action.EDIT), value


def _resolve_indices(spec: ProjectSpec, value: Any) -> Any:
    """Buttons carry label indices (never names): map them through the server's spec."""
    names = spec.label_names
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(names):
            raise Refused("That label is not part of this project, so nothing was recorded.")
        return names[value]
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "indices":
        if any(not 0 <= i < len(names) for i in value[1]):
            raise Refused("That label is not part of this project, so nothing was recorded.")
        return [names[i] for i in value[1]]
    return value


def record_answer(
    session: Session,
    *,
    team_id: str,
    user_id: str,
    assignment_id: int,
    action: str,
    value: Any = None,
    now: datetime,
) -> Answer:
    """Store one reply. A repeated click on a closed assignment is a no-op (`duplicate=True`).

    `action` is one of: choose (a label / a submitted value), accept, edit, reject, skip, ambiguous.
    """
    # One statement for the assignment, its item, project and member; the assignment and the item are
    # locked (the item's counters change below: no lost updates between concurrent answers).
    row = session.execute(
        select(Assignment, Item, Project, Member)
        .join(Item, Item.id == Assignment.item_id)
        .join(Project, Project.id == Assignment.project_id)
        .join(Member, Member.id == Assignment.member_id)
        .where(Assignment.id == assignment_id)
        .with_for_update(of=[Assignment, Item])
    ).one_or_none()
    _check_owner(row[0] if row is not None else None, team_id, user_id)
    assignment, item, project, member = row
    spec = spec_of(project)
    base = dict(
        assignment_id=assignment.id, project_slug=project.slug, task=spec.task, text=item.text,
        kind=assignment.kind, channel=assignment.channel, ts=assignment.ts,
    )
    if assignment.status != AssignmentStatus.OPEN:
        label = session.scalar(select(Label).where(Label.assignment_id == assignment.id))
        if label is not None:
            return Answer(action=label.action, value=label.value, duplicate=True, **base)
        if assignment.status == AssignmentStatus.EXPIRED:
            raise Refused("This example expired and went back to the queue, so nothing was recorded. "
                          "Type `/label` for a new one.")
        raise Refused("This example is closed, so nothing was recorded. Type `/label` for a new one.")
    if assignment.expires_at <= now:
        _expire(session, assignment, now)
        raise Refused("This example expired and went back to the queue, so nothing was recorded. "
                      "Type `/label` for a new one.")

    draft = session.get(Draft, assignment.draft_id) if assignment.draft_id else None
    if draft is None and spec.llm.enabled:
        # A blind item's draft may have been made after it was served: link it for drift analysis.
        draft = usable_draft(session, item.id)
        if _usable(draft):
            assignment.draft_id = draft.id
    shown_draft = draft if assignment.draft_shown else None
    if assignment.kind == AssignmentKind.QUIZ and action == Action.SKIP:
        raise Refused("Quiz questions cannot be skipped; choose your best answer.")
    value = _resolve_indices(spec, value)
    stored_action, stored_value = _value_for(spec.task, spec, action, value, shown_draft, item.text)
    if stored_action == Action.AMBIGUOUS and assignment.kind == AssignmentKind.QUIZ:
        raise Refused("Quiz questions need an answer; choose the closest one.")

    seconds = (now - assignment.shown_at).total_seconds() if assignment.shown_at else None
    counts = (
        member.counts
        and assignment.kind in (AssignmentKind.PRODUCTION, AssignmentKind.EXPERT)
        and stored_action not in (Action.SKIP, Action.AMBIGUOUS)
    )
    label = Label(
        assignment_id=assignment.id, project_id=project.id, item_id=item.id, member_id=member.id,
        user_id=member.user_id, kind=assignment.kind, action=stored_action, value=stored_value,
        value_key=canonical_key(stored_value) if stored_value is not None else None,
        draft_id=assignment.draft_id, draft_shown=assignment.draft_shown, seconds=seconds, counts=counts,
        created_at=now,
    )
    answer = Answer(action=stored_action, value=stored_value, counts=counts, seconds=seconds, **base)

    if assignment.kind in (AssignmentKind.QUIZ, AssignmentKind.HONEYPOT) and stored_value is not None:
        gold = session.scalar(select(Gold).where(Gold.item_id == item.id))
        if gold is not None:
            label.correct = score_answer(
                spec.task.value, stored_value, gold.value,
                jaccard_threshold=spec.quiz.jaccard_threshold, rewrite_threshold=spec.quiz.rewrite_threshold,
            )
    session.add(label)
    if assignment.kind in _PROGRESS_KINDS and stored_action != Action.SKIP:
        _count_done(session, member.id, now)
    assignment.status = AssignmentStatus.SKIPPED if stored_action == Action.SKIP else AssignmentStatus.DONE
    assignment.closed_at = now
    session.flush()

    if assignment.kind == AssignmentKind.PRODUCTION:
        answer.escalated = _after_production_label(session, spec, item, label, now)
    elif assignment.kind == AssignmentKind.EXPERT:
        if stored_action == Action.SKIP:
            item.updated_at = now  # back to the expert queue for another expert
        else:
            item.status = ItemStatus.RESOLVED
            item.updated_at = now
    elif assignment.kind == AssignmentKind.HONEYPOT:
        reason = check_honeypots(session, spec, member, now)
        if reason:
            answer.suspended, answer.suspension_reason = True, reason
    elif assignment.kind == AssignmentKind.QUIZ:
        from bot.services.quiz import after_quiz_answer

        answer.feedback = after_quiz_answer(session, project, spec, member, assignment, label, now)
    return answer


def _after_production_label(session: Session, spec: ProjectSpec, item: Item, label: Label, now: datetime) -> bool:
    """Update the item's counters and status; True when the item went to the expert queue."""
    item.updated_at = now
    if not label.counts:
        item.slots += 1  # this answer does not count: the item needs another one
        if label.action == Action.AMBIGUOUS and spec.escalation.on_ambiguous and item.status == ItemStatus.OPEN:
            item.status = ItemStatus.ESCALATED
            item.escalation_reason = f"flagged ambiguous by {label.user_id}"
            return True
        return False
    item.labels_done += 1
    if item.status != ItemStatus.OPEN or item.labels_done < spec.redundancy:
        return False
    values = session.scalars(
        select(Label.value_key).where(Label.item_id == item.id, Label.counts.is_(True), Label.kind == "production")
    ).all()
    if spec.escalation.on_no_majority and not has_majority(spec.task, values):
        item.status = ItemStatus.ESCALATED
        item.escalation_reason = "no majority among the crowd's labels"
        return True
    item.status = ItemStatus.COMPLETE
    return False


def has_majority(task: TaskType, value_keys: list[str | None]) -> bool:
    """More than half of the answers agree (per label for multilabel, per span for spans)."""
    import json

    keys = [k for k in value_keys if k is not None]
    if not keys:
        return False
    n = len(keys)
    if task in (TaskType.CLASSIFICATION, TaskType.REWRITE):
        return Counter(keys).most_common(1)[0][1] * 2 > n
    # Multilabel and spans: every element chosen by anyone must be clearly in or clearly out.
    votes: Counter[str] = Counter()
    for k in keys:
        for element in json.loads(k):
            votes[json.dumps(element, sort_keys=True)] += 1
    return all(v * 2 != n for v in votes.values())


def check_honeypots(session: Session, spec: ProjectSpec, member: Member, now: datetime) -> str | None:
    """Suspend a qualified member whose recent hidden-check accuracy fell below the floor."""
    if member.state != MemberState.QUALIFIED or member.tier == Tier.EXPERT:
        return None
    recent = session.scalars(
        select(Label.correct)
        .where(Label.member_id == member.id, Label.kind == AssignmentKind.HONEYPOT, Label.correct.is_not(None))
        .order_by(Label.id.desc())
        .limit(spec.honeypot.window)
    ).all()
    if len(recent) < spec.honeypot.min_checks:
        return None
    threshold = spec.quiz.rewrite_threshold if spec.task is TaskType.REWRITE else 1.0
    if spec.task is TaskType.MULTILABEL and spec.quiz.jaccard_threshold:
        threshold = spec.quiz.jaccard_threshold
    accuracy = sum(1 for c in recent if c >= threshold - 1e-9) / len(recent)
    if accuracy >= spec.honeypot.floor:
        return None
    member.state = MemberState.SUSPENDED
    member.suspended_at = now
    member.state_reason = (
        f"accuracy on the last {len(recent)} check items was {accuracy:.0%}, below the "
        f"{spec.honeypot.floor:.0%} floor"
    )
    return member.state_reason


# ------------------------------------------------------------------------------------------
# Leases
# ------------------------------------------------------------------------------------------


def _expire(session: Session, assignment: Assignment, now: datetime) -> None:
    assignment.status = AssignmentStatus.EXPIRED
    assignment.closed_at = now
    if assignment.kind == AssignmentKind.PRODUCTION:
        session.execute(
            update(Item).where(Item.id == assignment.item_id).values(slots=Item.slots + 1, updated_at=now)
        )


def expire_leases(session: Session, now: datetime, limit: int = 500) -> list[tuple[str | None, str | None]]:
    """Return expired production leases to the queue. Returns (channel, ts) of their messages."""
    rows = session.scalars(
        select(Assignment)
        .where(
            Assignment.status == AssignmentStatus.OPEN,
            Assignment.expires_at <= now,
            Assignment.kind != AssignmentKind.QUIZ,
        )
        .order_by(Assignment.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for a in rows:
        _expire(session, a, now)
    return [(a.channel, a.ts) for a in rows]


def set_message(session: Session, assignment_id: int, channel: str, ts: str) -> None:
    session.execute(update(Assignment).where(Assignment.id == assignment_id).values(channel=channel, ts=ts))


# ------------------------------------------------------------------------------------------
# Stats for /label stats and the Home tab
# ------------------------------------------------------------------------------------------


@dataclass
class MemberStats:
    project_slug: str
    project_name: str
    state: str
    tier: str
    today: int
    total: int
    gold_accuracy: float | None
    gold_checks: int
    reason: str | None


def member_stats(session: Session, team_id: str, user_id: str, now: datetime) -> list[MemberStats]:
    out = []
    for project in list_projects(session, team_id):
        member = get_member(session, project, user_id)
        if member is None:
            out.append(MemberStats(project.slug, project.name, "not joined", "-", 0, 0, None, 0, None))
            continue
        real = and_(Label.member_id == member.id, Label.kind.in_(["production", "expert", "honeypot"]),
                    Label.action != Action.SKIP)
        total = session.scalar(select(func.count()).select_from(Label).where(real)) or 0
        today = session.scalar(
            select(func.count()).select_from(Label).where(real, Label.created_at >= start_of_day(now))
        ) or 0
        checks = session.execute(
            select(func.count(Label.correct), func.avg(Label.correct)).where(
                Label.member_id == member.id, Label.kind == AssignmentKind.HONEYPOT, Label.correct.is_not(None)
            )
        ).one()
        out.append(
            MemberStats(
                project.slug, project.name, member.state, member.tier, int(today), int(total),
                float(checks[1]) if checks[0] else None, int(checks[0] or 0), member.state_reason,
            )
        )
    return out
