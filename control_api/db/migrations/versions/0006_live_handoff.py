"""live handoff: reserved for issue 19 (warm handoff, agents' presence); no schema change yet

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 18:10:00
"""

from collections.abc import Sequence

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""


def downgrade() -> None:
    """Revert this revision."""
