"""post-call analysis (the row is its durable job), operator-defined fields, knowledge gaps and SOPs (issue 20)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 18:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "call_analyses",
        sa.Column("call_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _when("due_at"),
        _when("requested_at"),
        _when("analysed_at", nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("generator", sa.String(length=20), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=30), nullable=True),
        sa.Column("exchanges", sa.JSON(), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("unanswered", sa.JSON(), nullable=False),
        sa.Column("sentiment", sa.JSON(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_call_analyses_call_id_calls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_call_analyses")),
    )
    with op.batch_alter_table("call_analyses", schema=None) as batch_op:
        batch_op.create_index("ix_call_analyses_status_due_at", ["status", "due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_call_analyses_outcome"), ["outcome"], unique=False)

    op.create_table(
        "analysis_fields",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("persona_name", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("patterns", sa.JSON(), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_fields")),
        sa.UniqueConstraint("persona_name", "name", name="uq_analysis_fields_persona_name"),
    )
    with op.batch_alter_table("analysis_fields", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_analysis_fields_persona_name"), ["persona_name"], unique=False)

    op.create_table(
        "knowledge_gaps",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("centroid", sa.LargeBinary(), nullable=False),
        sa.Column("draft_answer", sa.Text(), nullable=True),
        sa.Column("draft_sources", sa.JSON(), nullable=False),
        sa.Column("final_question", sa.Text(), nullable=True),
        sa.Column("final_answer", sa.Text(), nullable=True),
        sa.Column("document_id", sa.String(length=36), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("decided_by", sa.String(length=36), nullable=True),
        _when("decided_at", nullable=True),
        sa.Column("coverage", sa.JSON(), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["knowledge_documents.id"],
            name=op.f("fk_knowledge_gaps_document_id_knowledge_documents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["users.id"], name=op.f("fk_knowledge_gaps_decided_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_gaps")),
    )
    with op.batch_alter_table("knowledge_gaps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_knowledge_gaps_status"), ["status"], unique=False)

    op.create_table(
        "gap_questions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("gap_id", sa.String(length=36), nullable=False),
        sa.Column("call_id", sa.String(length=36), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        _when("asked_at"),
        sa.ForeignKeyConstraint(
            ["gap_id"], ["knowledge_gaps.id"], name=op.f("fk_gap_questions_gap_id_knowledge_gaps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_gap_questions_call_id_calls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gap_questions")),
    )
    with op.batch_alter_table("gap_questions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gap_questions_gap_id"), ["gap_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_gap_questions_call_id"), ["call_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_gap_questions_asked_at"), ["asked_at"], unique=False)

    op.create_table(
        "sops",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("gap_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("generator", sa.String(length=20), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("passages", sa.JSON(), nullable=False),
        sa.Column("tools", sa.JSON(), nullable=False),
        sa.Column("escalations", sa.JSON(), nullable=False),
        sa.Column("call_ids", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.String(length=36), nullable=True),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("approved_by", sa.String(length=36), nullable=True),
        _when("approved_at", nullable=True),
        _when("created_at"),
        _when("updated_at"),
        sa.ForeignKeyConstraint(
            ["gap_id"], ["knowledge_gaps.id"], name=op.f("fk_sops_gap_id_knowledge_gaps"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["knowledge_documents.id"],
            name=op.f("fk_sops_document_id_knowledge_documents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_sops_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["approved_by"], ["users.id"], name=op.f("fk_sops_approved_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sops")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("sops")
    op.drop_table("gap_questions")
    op.drop_table("knowledge_gaps")
    op.drop_table("analysis_fields")
    op.drop_table("call_analyses")
