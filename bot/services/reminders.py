"""Daily reminders: a nudge in the DM of qualified annotators who have examples waiting and have not
labeled today, at the project's `reminders.time` on its `reminders.days` (in `reminders.timezone`).

Exactly once per person and day, across replicas and restarts: each person has one `reminder_prefs`
row per workspace; sending starts with a conditional UPDATE that sets `last_sent_on` to today only if
it is not today already (and reminders are on), and only the process whose UPDATE changed the row
sends. A person in several projects gets one DM listing them all. "Stop reminders" (or `/label
reminders off`) turns `enabled` off for the workspace, and it stays off until they turn it on.

The job runs every minute; a project's pass for a local day is marked done in `job_locks` once it
finished, so later minutes do nothing. A pass cut short (a crash) is finished by the next minute in any
replica; nobody is reminded twice because of the per-person claim. A reminder is sent only within
`GRACE` of its time: a process that was down all morning does not nudge people in the evening.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core.enums import AssignmentKind, ItemStatus, MemberState, Tier
from bot.core.types import Waiting
from bot.services.projects import list_projects, spec_of
from bot.spec import WEEKDAYS, RemindersSpec
from storage.db import Database
from storage.locks import once_per_period
from storage.models import Assignment, Item, JobLock, Label, Member, Project, ReminderPref

log = logging.getLogger("labelbot.reminders")

GRACE = timedelta(hours=3)
COUNT_CAP = 1000  # "1,000+ examples": counting further would cost more than it tells


# --------------------------------------------------------------------------------------------------
# On and off
# --------------------------------------------------------------------------------------------------


def _ensure_pref(session: Session, team_id: str, user_id: str, now: datetime) -> None:
    """The person's row, created if missing (another process creating it at the same time is fine)."""
    if session.scalar(select(ReminderPref.id).where(ReminderPref.team_id == team_id,
                                                    ReminderPref.user_id == user_id)) is not None:
        return
    try:
        with session.begin_nested():
            session.add(ReminderPref(team_id=team_id, user_id=user_id, enabled=True, updated_at=now))
    except IntegrityError:
        pass  # created by a concurrent call


def set_reminders(db: Database, team_id: str, user_id: str, enabled: bool, now: datetime) -> bool:
    """Turn a person's reminders on or off in a workspace (remembered); returns the new setting."""
    with db.session() as s:
        _ensure_pref(s, team_id, user_id, now)
        s.execute(update(ReminderPref).where(ReminderPref.team_id == team_id, ReminderPref.user_id == user_id)
                  .values(enabled=enabled, updated_at=now))
    return enabled


def reminders_on(db: Database, team_id: str, user_id: str) -> bool:
    with db.read() as s:
        enabled = s.scalar(select(ReminderPref.enabled).where(ReminderPref.team_id == team_id,
                                                              ReminderPref.user_id == user_id))
    return enabled is not False


def claim(db: Database, team_id: str, user_id: str, day: date, now: datetime) -> bool:
    """True for exactly one caller per person and day (and never when their reminders are off)."""
    with db.session() as s:
        _ensure_pref(s, team_id, user_id, now)
        changed = s.execute(
            update(ReminderPref)
            .where(ReminderPref.team_id == team_id, ReminderPref.user_id == user_id, ReminderPref.enabled.is_(True),
                   or_(ReminderPref.last_sent_on.is_(None), ReminderPref.last_sent_on != day))
            .values(last_sent_on=day, updated_at=now)
        ).rowcount
    return changed == 1


# --------------------------------------------------------------------------------------------------
# Who is due
# --------------------------------------------------------------------------------------------------


def due_day(reminders: RemindersSpec, now: datetime) -> date | None:
    """The local day whose reminder is due at `now` (its time passed less than GRACE ago, on one of
    its days), else None."""
    local = now.astimezone(ZoneInfo(reminders.timezone))
    if WEEKDAYS[local.weekday()] not in reminders.days:
        return None
    hour, minute = (int(x) for x in reminders.time.split(":"))
    at = datetime.combine(local.date(), time(hour, minute), tzinfo=local.tzinfo)
    return local.date() if at <= local < at + GRACE else None


def waiting_for(session: Session, project: Project, member: Member) -> tuple[int, bool]:
    """(examples this member could be served now, True when there are more than COUNT_CAP)."""
    seen = exists().where(Assignment.item_id == Item.id, Assignment.member_id == member.id)
    statuses = [ItemStatus.OPEN] + ([ItemStatus.ESCALATED] if member.tier == Tier.EXPERT else [])
    ready = or_(and_(Item.status == ItemStatus.OPEN, Item.slots > 0), Item.status == ItemStatus.ESCALATED)
    ids = (select(Item.id).where(Item.project_id == project.id, Item.status.in_(statuses), ready, ~seen)
           .limit(COUNT_CAP + 1).subquery())
    n = int(session.scalar(select(func.count()).select_from(ids)) or 0)
    return min(n, COUNT_CAP), n > COUNT_CAP


def _labeled_since(session: Session, member_id: int, since: datetime) -> bool:
    """Whether the member labeled anything (quiz answers are not labeling) since `since`."""
    return session.scalar(
        select(Label.id).where(Label.member_id == member_id, Label.created_at >= since,
                               Label.kind != AssignmentKind.QUIZ).limit(1)
    ) is not None


@dataclass
class Due:
    """One person to remind: their workspace, id, the local day, and what waits for them."""

    team_id: str
    user_id: str
    day: date
    waiting: list[Waiting] = field(default_factory=list)


@dataclass
class Pass:
    """A project whose reminders are due today, and the people it has for them."""

    project_id: int
    slug: str
    day: date
    people: list[tuple[str, str, Waiting]] = field(default_factory=list)  # (team, user, waiting)


def _lock_name(slug: str) -> str:
    return f"reminders:{slug}"


def due_passes(db: Database, now: datetime) -> list[Pass]:
    """Every project whose reminder time is now (and whose pass today is not done) with the people to
    remind: qualified, reminders on, not reminded today, nothing labeled today, something waiting."""
    out: list[Pass] = []
    with db.read() as s:
        for project in list_projects(s):
            spec = spec_of(project)
            if spec.reminders is None:
                continue
            day = due_day(spec.reminders, now)
            if day is None:
                continue
            if s.scalar(select(JobLock.id).where(JobLock.name == _lock_name(project.slug),
                                                 JobLock.period == day.isoformat())) is not None:
                continue
            midnight = datetime.combine(day, time(0), tzinfo=ZoneInfo(spec.reminders.timezone))
            pref = and_(ReminderPref.team_id == Member.team_id, ReminderPref.user_id == Member.user_id)
            members = s.scalars(
                select(Member).outerjoin(ReminderPref, pref)
                .where(Member.project_id == project.id, Member.state == MemberState.QUALIFIED,
                       or_(ReminderPref.id.is_(None),
                           and_(ReminderPref.enabled.is_(True),
                                or_(ReminderPref.last_sent_on.is_(None), ReminderPref.last_sent_on != day))))
                .order_by(Member.id)
            ).all()
            found = Pass(project.id, project.slug, day)
            for member in members:
                if _labeled_since(s, member.id, midnight):
                    continue
                count, more = waiting_for(s, project, member)
                if count:
                    found.people.append((member.team_id, member.user_id,
                                         Waiting(project.slug, project.name, count, more)))
            out.append(found)
    return out


# --------------------------------------------------------------------------------------------------
# Sending (the scheduled job)
# --------------------------------------------------------------------------------------------------


@dataclass
class Sent:
    team_id: str
    user_id: str
    waiting: list[Waiting]
    ok: bool
    error: str | None = None


def send_due_reminders(deps: Any) -> list[Sent]:
    """Remind everyone due now, once per person and day (see the module docstring); returns what was sent."""
    from bot.blocks.reminders import reminder_message

    now = deps.clock.now()
    passes = due_passes(deps.db, now)
    people: dict[tuple[str, str], Due] = {}
    for p in passes:
        for team, user, waiting in p.people:
            due = people.setdefault((team, user), Due(team, user, p.day))
            due.waiting.append(waiting)
    sent: list[Sent] = []
    for (team, user), due in people.items():
        client = deps.workspace_client(team)
        if client is None:
            log.warning("no Slack client for workspace %s: reminders not sent", team)
            continue
        if not claim(deps.db, team, user, due.day, now):
            continue  # another replica reminded them, or they turned reminders off meanwhile
        text, blocks = reminder_message(due.waiting)
        try:
            channel = client.conversations_open(users=user)["channel"]["id"]
            client.chat_postMessage(channel=channel, text=text, blocks=blocks)
            sent.append(Sent(team, user, due.waiting, True))
        except Exception as e:  # one person's DM failing must not stop the others' (best effort, logged)
            log.warning("reminder to %s in %s failed: %s", user, team, e)
            sent.append(Sent(team, user, due.waiting, False, str(e)[:300]))
    for p in passes:
        once_per_period(deps.db, _lock_name(p.slug), p.day.isoformat(), now)  # this day's pass is done
    return sent
