"""guidelines: versions, suggestions, notices; the guideline version of each answer

Revision ID: 0004_guidelines
Revises: 0003_images
Create Date: 2026-12-06

Every project gets its version 1 (the instructions of its spec); answers given before this migration
keep a NULL guideline_version, which means version 1.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004_guidelines"
down_revision = "0003_images"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "guideline_suggestions",
        sa.Column("id", ID, nullable=False),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("based_on", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("error_kind", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_guideline_suggestions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guideline_suggestions")),
    )
    with op.batch_alter_table("guideline_suggestions", schema=None) as batch_op:
        batch_op.create_index("ix_guideline_suggestions_project", ["project_id", "id"], unique=False)

    op.create_table(
        "guideline_versions",
        sa.Column("id", ID, nullable=False),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("suggestion_id", ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_guideline_versions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["suggestion_id"], ["guideline_suggestions.id"],
            name=op.f("fk_guideline_versions_suggestion_id_guideline_suggestions"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guideline_versions")),
        sa.UniqueConstraint("project_id", "version", name=op.f("uq_guideline_versions_project_id_version")),
    )
    op.create_table(
        "guideline_notices",
        sa.Column("id", ID, nullable=False),
        sa.Column("version_id", ID, nullable=False),
        sa.Column("member_id", ID, nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("ts", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_guideline_notices_member_id_members"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["guideline_versions.id"],
            name=op.f("fk_guideline_notices_version_id_guideline_versions"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guideline_notices")),
        sa.UniqueConstraint("version_id", "member_id", name=op.f("uq_guideline_notices_version_id_member_id")),
    )
    with op.batch_alter_table("guideline_notices", schema=None) as batch_op:
        batch_op.create_index("ix_guideline_notices_status", ["status", "id"], unique=False)

    # ADD COLUMN only (no table rebuild on SQLite): the labels table may be large.
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("guideline_version", sa.Integer(), nullable=True))
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("guideline_version", sa.Integer(), server_default=sa.text("1"), nullable=False))

    _version_one_for_every_project()


def _version_one_for_every_project() -> None:
    """Version 1 of each existing project: the instructions of its spec, as it was created."""
    projects = sa.table(
        "projects", sa.column("id", ID), sa.column("spec", sa.JSON()), sa.column("created_at", sa.DateTime(True))
    )
    versions = sa.table(
        "guideline_versions", sa.column("project_id", ID), sa.column("version", sa.Integer()),
        sa.column("text", sa.Text()), sa.column("summary", sa.JSON()), sa.column("author", sa.String()),
        sa.column("source", sa.String()), sa.column("created_at", sa.DateTime(True)),
    )
    bind = op.get_bind()
    rows = [
        {
            "project_id": pid, "version": 1, "text": str((spec or {}).get("instructions") or ""), "summary": [],
            "author": "project spec", "source": "spec", "created_at": created or datetime.now(UTC),
        }
        for pid, spec, created in bind.execute(sa.select(projects.c.id, projects.c.spec, projects.c.created_at))
    ]
    if rows:
        bind.execute(versions.insert(), rows)


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("guideline_version")
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.drop_column("guideline_version")
    with op.batch_alter_table("guideline_notices", schema=None) as batch_op:
        batch_op.drop_index("ix_guideline_notices_status")
    op.drop_table("guideline_notices")
    op.drop_table("guideline_versions")
    with op.batch_alter_table("guideline_suggestions", schema=None) as batch_op:
        batch_op.drop_index("ix_guideline_suggestions_project")
    op.drop_table("guideline_suggestions")
