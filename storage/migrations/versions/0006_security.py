"""security and integrity: who suspended a member, one running quiz attempt per member, staged imports,
event claims, pruning indexes

Revision ID: 0006_security
Revises: 0005_everyday
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_security"
down_revision = "0005_everyday"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
RUNNING = sa.text("status = 'running'")
ACTIVE_IMPORT = sa.text("state IN ('staging', 'publishing')")


def upgrade() -> None:
    # Who paused a member. Existing pauses: the hidden checks wrote "accuracy on the last ..."; any other
    # pause is treated as a lead's (fail closed: only a lead lifts it).
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suspension", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("suspended_by", sa.String(length=100), nullable=True))
    op.execute(
        "UPDATE members SET suspension = CASE WHEN state_reason LIKE 'accuracy on the last %' THEN 'checks' "
        "ELSE 'lead' END, suspended_by = CASE WHEN state_reason LIKE 'accuracy on the last %' "
        "THEN 'hidden checks' ELSE 'a lead (before 0002)' END WHERE state = 'suspended'"
    )

    # One running quiz attempt per member: older duplicates (a double click) are abandoned first.
    op.execute(
        "UPDATE quiz_attempts SET status = 'abandoned' WHERE status = 'running' AND id NOT IN "
        "(SELECT max(id) FROM quiz_attempts WHERE status = 'running' GROUP BY member_id)"
    )
    with op.batch_alter_table("quiz_attempts", schema=None) as batch_op:
        batch_op.create_index("uq_quiz_attempts_running", ["member_id"], unique=True, sqlite_where=RUNNING,
                              postgresql_where=RUNNING)

    # Staged imports.
    op.create_table(
        "import_runs",
        sa.Column("id", ID, nullable=False),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_import_runs_project_id_projects"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_runs")),
    )
    with op.batch_alter_table("import_runs", schema=None) as batch_op:
        batch_op.create_index("uq_import_runs_active", ["project_id"], unique=True, sqlite_where=ACTIVE_IMPORT,
                              postgresql_where=ACTIVE_IMPORT)
    op.create_table(
        "import_rows",
        sa.Column("id", ID, nullable=False),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("item_id", ID, nullable=True),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_import_rows_item_id_items"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["import_runs.id"], name=op.f("fk_import_rows_run_id_import_runs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_rows")),
    )
    with op.batch_alter_table("import_rows", schema=None) as batch_op:
        batch_op.create_index("ix_import_rows_run", ["run_id", "id"], unique=False)

    # Event claims (existing rows were handled: "done") and pruning by age.
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state", sa.String(length=16), server_default=sa.text("'done'"),
                                      nullable=False))
        batch_op.create_index("ix_processed_events_created", ["created_at"], unique=False)
    with op.batch_alter_table("job_locks", schema=None) as batch_op:
        batch_op.create_index("ix_job_locks_created", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_locks", schema=None) as batch_op:
        batch_op.drop_index("ix_job_locks_created")
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_index("ix_processed_events_created")
        batch_op.drop_column("state")
    with op.batch_alter_table("import_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_import_rows_run")
    op.drop_table("import_rows")
    with op.batch_alter_table("import_runs", schema=None) as batch_op:
        batch_op.drop_index("uq_import_runs_active", sqlite_where=ACTIVE_IMPORT, postgresql_where=ACTIVE_IMPORT)
    op.drop_table("import_runs")
    with op.batch_alter_table("quiz_attempts", schema=None) as batch_op:
        batch_op.drop_index("uq_quiz_attempts_running", sqlite_where=RUNNING, postgresql_where=RUNNING)
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_column("suspended_by")
        batch_op.drop_column("suspension")
