"""callback queue: who claimed a callback request and when, who completed it, with what outcome and note

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("callback_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("completed_by", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f("ix_callback_requests_claimed_by"), ["claimed_by"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_callback_requests_claimed_by_users"), "users", ["claimed_by"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_callback_requests_completed_by_users"),
            "users",
            ["completed_by"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("callback_requests", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_callback_requests_completed_by_users"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_callback_requests_claimed_by_users"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_callback_requests_claimed_by"))
        for column in ("note", "outcome", "completed_at", "completed_by", "claimed_at", "claimed_by"):
            batch_op.drop_column(column)
