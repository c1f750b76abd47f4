"""The Alembic migrations produce exactly the schema of storage/models.py, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from storage.models import Base


def test_migrations_match_the_models(database):
    with database.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_hot_lookups_are_indexed(database):
    insp = inspect(database.engine)

    def indexed(table: str) -> set[tuple[str, ...]]:
        found = {tuple(ix["column_names"]) for ix in insp.get_indexes(table)}
        found |= {tuple(uq["column_names"]) for uq in insp.get_unique_constraints(table)}
        return found

    assert ("project_id", "status", "slots", "id") in indexed("items")  # work selection
    assert ("item_id", "member_id", "kind", "round") in indexed("assignments")  # one per item and kind
    assert ("status", "expires_at") in indexed("assignments")  # lease expiry
    assert ("assignment_id",) in indexed("labels")  # a label per assignment
    assert ("project_id", "day") in indexed("report_runs")  # one report per project and day
    assert ("item_id", "model", "prompt_version") in indexed("drafts")
    assert ("member_id", "created_at") in indexed("labels")
