"""Staged imports carry image items and model predictions: import_rows gains image, image_id, prediction.

Revision ID: 0007_importport
Revises: 0006_security
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_importport"
down_revision = "0006_security"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("import_rows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("image", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("image_id", ID, nullable=True))
        batch_op.add_column(sa.Column("prediction", sa.JSON(), nullable=True))
        batch_op.create_foreign_key(op.f("fk_import_rows_image_id_images"), "images", ["image_id"], ["id"],
                                    ondelete="CASCADE")


def downgrade() -> None:
    with op.batch_alter_table("import_rows", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_import_rows_image_id_images"), type_="foreignkey")
        batch_op.drop_column("prediction")
        batch_op.drop_column("image_id")
        batch_op.drop_column("image")
