"""Migration 0002 on existing data (SQLite and PostgreSQL): who paused each suspended member is
backfilled (fail closed: anything not from the hidden checks needs a lead), duplicate running quiz
attempts (a double click before the fix) are abandoned but one, and the downgrade works."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from storage.db import alembic_config


def downgrade(database, revision: str) -> None:
    with database.engine.begin() as conn:
        cfg = alembic_config(database.url)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_0002_backfills_suspensions_and_dedupes_running_attempts(database):
    downgrade(database, "0005_everyday")
    now = "2026-01-05 10:00:00"
    with database.engine.begin() as conn:
        conn.execute(text("INSERT INTO projects (id, team_id, slug, name, task, spec, archived, created_at, "
                          "updated_at) VALUES (1, 'T', 'p', 'P', 'classification', '{}', false, :n, :n)"), {"n": now})
        for mid, state, reason in [(1, "suspended", "accuracy on the last 5 check items was 40%, below the 80% floor"),
                                   (2, "suspended", "spam"), (3, "qualified", "passed the quiz with 100%")]:
            conn.execute(text("INSERT INTO members (id, project_id, team_id, user_id, tier, state, served, "
                              "state_reason, created_at) VALUES (:i, 1, 'T', :u, 'crowd', :s, 0, :r, :n)"),
                         {"i": mid, "u": f"U{mid}", "s": state, "r": reason, "n": now})
        for aid in (1, 2, 3):
            conn.execute(text("INSERT INTO quiz_attempts (id, project_id, member_id, status, round, size, item_ids, "
                              "answered, score_sum, started_at) VALUES (:i, 1, 3, 'running', :i, 4, '[]', 0, 0, :n)"),
                         {"i": aid, "n": now})
    database.upgrade()
    with database.engine.connect() as conn:
        members = conn.execute(text("SELECT id, suspension, suspended_by FROM members ORDER BY id")).all()
        running = conn.execute(text("SELECT id, status FROM quiz_attempts ORDER BY id")).all()
    assert [tuple(m) for m in members] == [(1, "checks", "hidden checks"), (2, "lead", "a lead (before 0002)"),
                                           (3, None, None)]
    assert [tuple(r) for r in running] == [(1, "abandoned"), (2, "abandoned"), (3, "running")]
    downgrade(database, "0005_everyday")  # the downgrade runs
    database.upgrade()
