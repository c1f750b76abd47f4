"""Scheduled jobs are one call into a service each, guarded so replicas run them once per period."""

from __future__ import annotations

from sqlalchemy import select

from bot.config import Settings
from bot.deps import Deps
from bot.jobs import escalate_low_confidence
from bot.services.labeling import next_task, record_answer
from bot.services.projects import ensure_member, get_project
from storage.locks import once_per_period
from storage.models import Item
from tests.conftest import make_spec
from tests.helpers import qualify, seed


class _Recorder:
    def __init__(self):
        self.jobs = {}

    def add_job(self, func, *args, id, **kwargs):
        self.jobs[id] = func


def test_once_per_period_has_one_winner(database, clock):
    assert once_per_period(database, "job", "2026-01-05", clock.now()) is True
    assert once_per_period(database, "job", "2026-01-05", clock.now()) is False
    assert once_per_period(database, "job", "2026-01-06", clock.now()) is True


def test_low_confidence_job_escalates_settled_items(database, clock):

    # multilabel settles by per-label majority (classification uses Dawid-Skene, which needs more data)
    spec = make_spec(task="multilabel", escalation={"min_confidence": 0.9})
    seed(database, spec, clock.now(), items=[{"id": "t1", "text": "x"}])
    answers = [("U0A", ["billing"]), ("U0B", ["billing"]), ("U0C", ["billing", "bug"])]
    for uid, _ in answers:
        qualify(database, "intents", uid, clock.now())
    with database.session() as s:
        project = get_project(s, "intents")
        for uid, choice in answers:
            member = ensure_member(s, project, uid, clock.now())
            task = next_task(s, project, member, clock.now(), database.dialect)
            record_answer(s, team_id="T0TEST", user_id=uid, assignment_id=task.assignment_id, action="choose",
                          value=choice, now=clock.now())
    with database.read() as s:
        assert s.scalar(select(Item.status)) == "complete"  # 2 of 3 agree: a majority
    deps = Deps(settings=Settings(database_url=database.url), db=database, clock=clock)
    escalate_low_confidence(deps)
    with database.read() as s:
        item = s.scalar(select(Item))
    assert item.status == "escalated" and item.escalation_reason.startswith("low confidence 0.6")
    escalate_low_confidence(deps)  # the same hour: nothing more to do, and no error

