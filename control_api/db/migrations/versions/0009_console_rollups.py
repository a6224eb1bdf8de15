"""console: an empty revision (databases are stamped at it, so it stays); the analytics precompute needed no table

Each ended call's outcome is cached in ``call_outcomes`` (0008), written by its post-call analysis; there are no per-day rollups.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 21:30:00
"""

from collections.abc import Sequence

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""


def downgrade() -> None:
    """Revert this revision."""
