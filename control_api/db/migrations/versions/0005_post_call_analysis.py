"""post call analysis: reserved for issue 20 (post-call analysis, learning, SOPs); no schema change yet

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 18:10:00
"""

from collections.abc import Sequence

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""


def downgrade() -> None:
    """Revert this revision."""
