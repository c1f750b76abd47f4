"""Project and membership use cases (plain functions over a SQLAlchemy session)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.blocks.text import safe_mrkdwn
from bot.core.enums import Action, AssignmentKind, AssignmentStatus, MemberState, Suspension, Tier
from bot.core.errors import Conflict, NotFound, Refused
from bot.core.values import member_id_problem
from bot.services.completion import rebalance
from bot.spec import ProjectSpec, parse_spec
from storage.models import Assignment, Gold, GuidelineVersion, Item, Label, Member, Project


class ProjectNotFound(NotFound):
    """No project by that slug (the CLI adds which database it looked in)."""

_spec_cache: dict[str, ProjectSpec] = {}


def spec_of(project: Project) -> ProjectSpec:
    """The project's validated spec (memoised by content: validation is not free on every click)."""
    key = json.dumps(project.spec, sort_keys=True)
    spec = _spec_cache.get(key)
    if spec is None:
        spec = parse_spec(project.spec, f"project {project.slug}")
        if len(_spec_cache) > 1000:
            _spec_cache.clear()
        _spec_cache[key] = spec
    return spec


def get_project(session: Session, slug: str) -> Project:
    project = session.scalar(select(Project).where(Project.slug == slug))
    if project is None:
        known = session.scalars(select(Project.slug).order_by(Project.slug).limit(20)).all()
        hint = f" Known projects: {', '.join(known)}." if known else " No project exists yet."
        raise ProjectNotFound(f"No project {slug!r}.{hint}")
    return project


def list_projects(session: Session, team_id: str | None = None, *, include_archived: bool = False) -> list[Project]:
    """The projects people can work on (archived ones too with `include_archived`), by slug."""
    q = select(Project).order_by(Project.slug)
    if not include_archived:
        q = q.where(Project.archived.is_(False))
    if team_id is not None:
        q = q.where(Project.team_id == team_id)
    return list(session.scalars(q))


def create_project(session: Session, spec: ProjectSpec, team_id: str, now: datetime) -> Project:
    if session.scalar(select(Project.id).where(Project.slug == spec.slug)) is not None:
        raise Conflict(f"Project {spec.slug!r} already exists; use `labelbot project update` to change it.")
    project = Project(
        team_id=team_id,
        slug=spec.slug,
        name=spec.name,
        task=spec.task.value,
        spec=spec.model_dump(mode="json"),
        created_at=now,
        updated_at=now,
    )
    session.add(project)
    session.flush()
    session.add(GuidelineVersion(project_id=project.id, version=1, text=spec.instructions, summary=[],
                                 author="project spec", source="spec", created_at=now))
    sync_members(session, project, spec, now)
    return project


def update_project(session: Session, spec: ProjectSpec, now: datetime, *,
                   rebalance_items: bool = True) -> tuple[Project, list[str]]:
    """Apply a changed spec; returns the project and a list of human-readable changes.

    A new redundancy is applied to the items in this unit of work (`rebalance_items`); the CLI passes
    False and applies it with `bot.services.completion.rebalance_in_chunks` after this commits, so a big
    project never holds the write lock for long."""
    project = get_project(session, spec.slug)
    old = spec_of(project)
    n_items = session.scalar(select(func.count()).select_from(Item).where(Item.project_id == project.id))
    if old.task != spec.task and n_items:
        raise Conflict(
            f"Project {spec.slug!r} has {n_items} items; its task cannot change from "
            f"{old.task.value} to {spec.task.value}. Create a new project instead."
        )
    removed = set(old.label_names) - set(spec.label_names)
    if removed and session.scalar(select(Label.id).where(Label.project_id == project.id).limit(1)):
        raise Conflict(
            f"Labels already use {', '.join(sorted(removed))}; they cannot be removed from the spec."
        )
    _check_instructions(session, project, old, spec)
    changes = [
        f"{key}: {old_value!r} -> {new_value!r}"
        for key, old_value in old.model_dump(mode="json").items()
        if (new_value := spec.model_dump(mode="json")[key]) != old_value
    ]
    project.spec = spec.model_dump(mode="json")
    project.name = spec.name
    project.updated_at = now
    if spec.redundancy != old.redundancy and rebalance_items:
        # Recomputed from each item's counting labels and open leases, and settled (or escalated on a
        # tie) when it has enough: never shifted by the difference and clamped.
        changes.append(f"items: {rebalance(session, project, spec, now).describe()}")
    sync_members(session, project, spec, now)
    return project, changes


def _check_instructions(session: Session, project: Project, old: ProjectSpec, spec: ProjectSpec) -> None:
    """Before anyone answered, the spec's instructions are version 1 and change in place. Once labeling
    has started they change only as a new guideline version (`labelbot guidelines SLUG set FILE`, or
    the Slack modal), so that every answer keeps the version it was given under."""
    if spec.instructions == old.instructions:
        return
    started = project.guideline_version > 1 or session.scalar(
        select(Label.id).where(Label.project_id == project.id).limit(1)
    ) is not None
    if started:
        raise Conflict(
            f"The instructions in this spec differ from the guidelines in force for {project.slug!r} (version "
            f"{project.guideline_version}), and labeling has started: publish new guidelines as a new version with "
            f"`labelbot guidelines {project.slug} set FILE` (annotators are told), or copy the current ones into "
            f"the spec (`labelbot guidelines {project.slug} show`) and run the update again."
        )
    first = session.scalar(
        select(GuidelineVersion).where(GuidelineVersion.project_id == project.id, GuidelineVersion.version == 1)
    )
    if first is not None:
        first.text = spec.instructions


def sync_members(session: Session, project: Project, spec: ProjectSpec, now: datetime) -> None:
    """Make leads and experts named in the spec members with that tier."""
    wanted = {uid: Tier.LEAD for uid in spec.members.leads}
    wanted.update({uid: Tier.EXPERT for uid in spec.members.experts})
    for uid, tier in wanted.items():
        member = session.scalar(select(Member).where(Member.project_id == project.id, Member.user_id == uid))
        if member is None:
            member = Member(
                project_id=project.id, team_id=project.team_id, user_id=uid, tier=tier,
                state=MemberState.NEW, served=0, created_at=now,
            )
            session.add(member)
        member.tier = tier
        if tier is Tier.EXPERT and member.state == MemberState.NEW:
            member.state = MemberState.QUALIFIED
            member.qualified_at = now
            member.state_reason = "expert named in the project spec"
    session.flush()


def get_member(session: Session, project: Project, user_id: str) -> Member | None:
    return session.scalar(select(Member).where(Member.project_id == project.id, Member.user_id == user_id))


def ensure_member(session: Session, project: Project, user_id: str, now: datetime) -> Member:
    """The member, created (crowd tier, new) on first use. Two first clicks at once (a double click on
    "Take quiz") both get the one row: the insert skips a row another transaction just created."""
    member = get_member(session, project, user_id)
    if member is not None:
        return member
    values = dict(project_id=project.id, team_id=project.team_id, user_id=user_id, tier=Tier.CROWD.value,
                  state=MemberState.NEW.value, served=0, created_at=now)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(pg_insert(Member).values(**values).on_conflict_do_nothing(
            index_elements=["project_id", "user_id"]))
    else:
        session.execute(sqlite_insert(Member).values(**values).on_conflict_do_nothing(
            index_elements=["project_id", "user_id"]))
    member = get_member(session, project, user_id)
    assert member is not None
    return member


def suspend_member(member: Member, now: datetime, *, source: Suspension, reason: str, by: str) -> None:
    """Pause a member's labels, recording who (`source`: the hidden checks or a lead; `by`: a name)
    and why. A lead's pause replaces one from the checks (it is the stronger one)."""
    member.state = MemberState.SUSPENDED
    member.suspended_at = now
    member.suspension = source.value
    member.suspended_by = by[:100]
    member.state_reason = reason


def lift_suspension(member: Member, now: datetime, reason: str) -> None:
    """Back to labeling: qualified again (or new, for someone paused before they ever qualified)."""
    member.state = MemberState.QUALIFIED if member.qualified_at is not None else MemberState.NEW
    if member.state == MemberState.QUALIFIED:
        member.qualified_at = now
    member.suspended_at = None
    member.suspension = None
    member.suspended_by = None
    member.state_reason = reason


def suspended_by_lead(member: Member) -> bool:
    """True when only a lead can lift the member's pause (any pause not from the hidden checks)."""
    return member.state == MemberState.SUSPENDED and member.suspension != Suspension.CHECKS


@dataclass
class MemberChange:
    member: Member
    description: str


def set_member(
    session: Session,
    project: Project,
    user_id: str,
    now: datetime,
    *,
    tier: Tier | None = None,
    suspend: bool = False,
    reinstate: bool = False,
    reason: str | None = None,
    by: str = "a lead",
) -> MemberChange:
    """Change a member's tier or state (leads' CLI). Experts count without a quiz. Callers taking ids from
    people check them first (`check_member_id`): a name or an @handle would make a member nobody can be.
    A lead's suspension (recorded with `by` and the reason) is lifted only by `reinstate`, never by a
    quiz retake; a suspended lead has no lead rights (`bot.services.access`)."""
    if suspend and reinstate:
        raise Conflict("Choose one of --suspend and --reinstate.")
    member = ensure_member(session, project, user_id, now)
    said = []
    if tier is not None and member.tier != tier:
        said.append(f"tier {member.tier} -> {tier}")
        member.tier = tier
        if tier is Tier.EXPERT and member.state == MemberState.NEW:
            member.state = MemberState.QUALIFIED
            member.qualified_at = now
            member.state_reason = "made an expert by a lead"
            said.append("qualified (experts skip the quiz)")
    if suspend and not suspended_by_lead(member):
        suspend_member(member, now, source=Suspension.LEAD, reason=reason or "suspended by a lead", by=by)
        said.append(f"suspended by {by}")
    if reinstate and member.state == MemberState.SUSPENDED:
        lift_suspension(member, now, reason or f"reinstated by {by}")
        said.append(f"reinstated by {by}")
    session.flush()
    return MemberChange(member, ", ".join(said) or "no change")


# --------------------------------------------------------------------------------------------------
# Archiving, the gold pool, the member list
# --------------------------------------------------------------------------------------------------


def set_archived(session: Session, slug: str, archived: bool, now: datetime) -> tuple[Project, int]:
    """Archive (or unarchive) a project; returns it and how many open examples were taken back.

    An archived project keeps all its data (reports and exports still work from the CLI) but serves
    nothing: it leaves `/label`, the Home tab, the daily summary, reminders and drafting, and answers
    to examples already in people's DMs are refused. Its open examples are cancelled now, so their
    slots are free again if it is unarchived."""
    project = get_project(session, slug)
    if project.archived == archived:
        return project, 0
    project.archived = archived
    project.updated_at = now
    cancelled = 0
    if archived:
        open_rows = session.scalars(
            select(Assignment).where(Assignment.project_id == project.id, Assignment.status == AssignmentStatus.OPEN)
            .with_for_update()
        ).all()
        for assignment in open_rows:
            assignment.status = AssignmentStatus.CANCELLED
            assignment.closed_at = now
            if assignment.kind == AssignmentKind.PRODUCTION:
                session.execute(update(Item).where(Item.id == assignment.item_id)
                                .values(slots=Item.slots + 1, updated_at=now))
        cancelled = len(open_rows)
    session.flush()
    return project, cancelled


def check_member_id(user_id: str) -> str:
    """`user_id` if it is a Slack member id (U… or W…); `Refused` with how to find one otherwise."""
    problem = member_id_problem(user_id)
    if problem:
        raise Refused(problem)
    return user_id


def refuse_if_archived(project: Project) -> None:
    if project.archived:
        raise Refused(f"*{safe_mrkdwn(project.name, 200)}* is archived: it takes no more answers, so nothing was "
                      "recorded.")


def gold_pool_warning(session: Session, project: Project, spec: ProjectSpec) -> str | None:
    """A sentence when the gold pool is too small for anyone to start the quiz (None when it is fine)."""
    n_gold = session.scalar(select(func.count()).select_from(Gold).where(Gold.project_id == project.id)) or 0
    size = spec.quiz.size
    if n_gold >= size or (spec.quiz.allow_short and n_gold > 0):
        return None
    have = "no gold items yet" if not n_gold else f"only {n_gold} gold item(s)"
    return (f"{project.slug} has {have} and quiz.size is {size}: nobody can take the quiz, so nobody can start "
            f"labeling, until you import at least {size} with `labelbot gold {project.slug} FILE`"
            + ("." if spec.quiz.allow_short else " (or set quiz.allow_short: true for shorter quizzes).")
            + " Experts skip the quiz.")


@dataclass(frozen=True)
class MemberRow:
    user_id: str
    tier: str
    state: str
    reason: str | None
    answers: int  # production answers and expert decisions (skips and ambiguous flags not included)
    gold_accuracy: float | None  # mean score on hidden gold checks
    gold_checks: int
    last_active: datetime | None  # their latest label of any kind


def member_rows(session: Session, project: Project) -> list[MemberRow]:
    """Every member of a project with their numbers: one GROUP BY over their labels."""
    answer = and_(Label.kind.in_([AssignmentKind.PRODUCTION, AssignmentKind.EXPERT]),
                  Label.action.notin_([Action.SKIP, Action.AMBIGUOUS]))
    check = and_(Label.kind == AssignmentKind.HONEYPOT, Label.correct.is_not(None))
    numbers = {
        member_id: (answers, checks, score, last)
        for member_id, answers, checks, score, last in session.execute(
            select(
                Label.member_id,
                func.sum(case((answer, 1), else_=0)),
                func.sum(case((check, 1), else_=0)),
                func.sum(case((check, Label.correct), else_=0.0)),
                func.max(Label.created_at),
            ).where(Label.project_id == project.id).group_by(Label.member_id)
        ).all()
    }
    rows = []
    for m in session.scalars(select(Member).where(Member.project_id == project.id)):
        answers, checks, score, last = numbers.get(m.id, (0, 0, 0.0, None))
        checks = int(checks or 0)
        if isinstance(last, str):  # SQLite hands an aggregate's datetime back as text
            last = datetime.fromisoformat(last)
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        rows.append(MemberRow(m.user_id, m.tier, m.state, m.state_reason, int(answers or 0),
                              float(score) / checks if checks else None, checks, last))
    tier_order = {Tier.LEAD.value: 0, Tier.EXPERT.value: 1, Tier.CROWD.value: 2}
    return sorted(rows, key=lambda r: (tier_order.get(r.tier, 3), -r.answers, r.user_id))
