"""live handoff: the handoff queue (priority, briefing, offers, timeline, wrap-up), agents' presence, callback
requests and per-persona handoff trigger policies (issue 19)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 18:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("source", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("briefing", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("offered_to", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("declined_by", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("timeline", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("notes", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("disposition", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("node", sa.String(length=200), nullable=True))
    op.create_table(
        "agent_presence",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_agent_presence_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_agent_presence")),
    )
    op.create_table(
        "callback_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("call_id", sa.String(length=36), nullable=True),
        sa.Column("handoff_id", sa.String(length=36), nullable=True),
        sa.Column("phone", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("briefing", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("ticket_delivery_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_callback_requests_call_id_calls"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["handoff_id"],
            ["handoffs.id"],
            name=op.f("fk_callback_requests_handoff_id_handoffs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_requests")),
    )
    with op.batch_alter_table("callback_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_callback_requests_call_id"), ["call_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_callback_requests_handoff_id"), ["handoff_id"], unique=False)
    op.create_table(
        "handoff_policies",
        sa.Column("persona_name", sa.String(length=100), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("persona_name", name=op.f("pk_handoff_policies")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("handoff_policies")
    with op.batch_alter_table("callback_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_callback_requests_handoff_id"))
        batch_op.drop_index(batch_op.f("ix_callback_requests_call_id"))
    op.drop_table("callback_requests")
    op.drop_table("agent_presence")
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        for column in ("node", "disposition", "notes", "timeline", "declined_by", "offered_to", "briefing"):
            batch_op.drop_column(column)
        batch_op.drop_column("source")
        batch_op.drop_column("priority")
