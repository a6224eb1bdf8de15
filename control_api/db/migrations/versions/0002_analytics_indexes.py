"""analytics indexes: turns by speaker and time, calls by caller and time

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 04:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("call_turns", schema=None) as batch_op:
        batch_op.create_index("ix_call_turns_role_ended_at", ["role", "ended_at"], unique=False)
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index("ix_calls_caller_number_started", ["caller_number", "started_at"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_caller_number_started")
    with op.batch_alter_table("call_turns", schema=None) as batch_op:
        batch_op.drop_index("ix_call_turns_role_ended_at")
