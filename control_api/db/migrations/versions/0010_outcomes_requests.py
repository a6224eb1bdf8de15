"""call outcomes: read again the calls where the agent ran a transfer or ticket tool (a request, not a question)

``call_outcomes`` rows written before a caller's request (the ``transfer_to_human``/``create_ticket`` tools, or
a request for a person in words that handed the call over: a ``phrase`` handoff) was told apart from a knowledge question counted that request as an unanswered question. Those rows are marked
unsettled, so the start-up catch-up (``services.analytics.catch_up_outcomes``) and the reports compute them again
by the current rule. No schema change.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 00:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.execute(
        "UPDATE call_outcomes SET settled = false WHERE call_id IN ("
        "SELECT call_id FROM call_events WHERE kind = 'tool_call' AND ("
        "CAST(data AS TEXT) LIKE '%transfer_to_human%' OR CAST(data AS TEXT) LIKE '%create_ticket%'))"
    )
    # A caller who asked for a person in words (the handoff's phrase trigger): that turn is a request too.
    op.execute(
        "UPDATE call_outcomes SET settled = false WHERE call_id IN (SELECT call_id FROM handoffs WHERE source = 'phrase')"
    )


def downgrade() -> None:
    """Revert this revision (nothing to undo: the rows are computed again either way)."""
