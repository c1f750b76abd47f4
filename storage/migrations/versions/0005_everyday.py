"""everyday use: removed items kept with their answers, reminder preferences, alerts posted as they trip

Revision ID: 0005_everyday
Revises: 0004_guidelines
Create Date: 2026-12-06 05:29:59.646677
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_everyday"
down_revision = "0004_guidelines"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reminder_prefs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("last_sent_on", sa.Date(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder_prefs")),
        sa.UniqueConstraint("team_id", "user_id", name=op.f("uq_reminder_prefs_team_id_user_id")),
    )
    op.create_table(
        "posted_alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("project_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("ts", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_posted_alerts_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posted_alerts")),
        sa.UniqueConstraint("project_id", "key", name=op.f("uq_posted_alerts_project_id_key")),
    )
    op.create_table(
        "removed_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("project_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("gold", sa.JSON(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("label_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_removed_items_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_removed_items")),
    )
    with op.batch_alter_table("removed_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_removed_items_project_id"), ["project_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("removed_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_removed_items_project_id"))

    op.drop_table("removed_items")
    op.drop_table("posted_alerts")
    op.drop_table("reminder_prefs")
