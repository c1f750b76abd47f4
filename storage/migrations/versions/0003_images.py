"""images: image items (stored once per content) and their uploads to Slack

Revision ID: 0003_images
Revises: 0002_webhooks
Create Date: 2026-12-06 05:28:54.771911
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_images"
down_revision = "0002_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("mime", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("sha256", name=op.f("uq_images_sha256")),
    )
    op.create_table(
        "image_uploads",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("image_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_image_uploads_image_id_images"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_uploads")),
        sa.UniqueConstraint("image_id", "team_id", name=op.f("uq_image_uploads_image_id_team_id")),
    )
    with op.batch_alter_table("image_uploads", schema=None) as batch_op:
        batch_op.create_index("ix_image_uploads_queue", ["status", "priority", "id"], unique=False)

    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("image", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("image_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))
        batch_op.add_column(sa.Column("image_error", sa.Text(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_items_image_id_images"), "images", ["image_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_items_image_id_images"), type_="foreignkey")
        batch_op.drop_column("image_error")
        batch_op.drop_column("image_id")
        batch_op.drop_column("image")

    with op.batch_alter_table("image_uploads", schema=None) as batch_op:
        batch_op.drop_index("ix_image_uploads_queue")

    op.drop_table("image_uploads")
    op.drop_table("images")
