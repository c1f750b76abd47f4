"""Work selection: the claim serves past a member's own history and hides nothing at the queue's end."""

from __future__ import annotations

from bot.services.labeling import next_task, record_answer
from bot.services.projects import ensure_member, get_project
from tests.conftest import make_spec
from tests.helpers import qualify, seed


def test_claim_tiers_serve_past_a_members_own_history(database, clock, monkeypatch):
    """A member far ahead of the others is served without walking their own history, and nothing open
    is hidden from anyone at the end of the queue."""
    from bot.services.labeling import queue as labeling

    monkeypatch.setattr(labeling, "CLAIM_WINDOW", 2)
    items = [{"id": f"i{n}", "text": f"text {n}"} for n in range(1, 7)]
    seed(database, make_spec(redundancy=3), clock.now(), items=items)
    for uid in ("U0FAST", "U0SLOW"):
        qualify(database, "intents", uid, clock.now())

    def serve_and_answer(uid: str) -> str:
        with database.session() as s:
            project = get_project(s, "intents")
            member = ensure_member(s, project, uid, clock.now())
            task = next_task(s, project, member, clock.now(), database.dialect)
            record_answer(s, team_id="T0TEST", user_id=uid, assignment_id=task.assignment_id, action="choose",
                          value="billing", now=clock.now())
            return task.item_external_id

    fast = [serve_and_answer("U0FAST") for _ in range(6)]
    assert fast == ["i1", "i2", "i3", "i4", "i5", "i6"]  # fresh items once its window is its own history
    slow = [serve_and_answer("U0SLOW") for _ in range(6)]
    assert sorted(slow) == ["i1", "i2", "i3", "i4", "i5", "i6"]  # the end of the queue: every item, once
