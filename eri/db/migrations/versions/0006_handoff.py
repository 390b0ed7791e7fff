"""handoffs: evidence attachments, packages, custody, recipients

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "evidence",
        sa.Column("evidence_id", sa.String(64), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(128), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("meta", sa.LargeBinary(), nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("received_by", sa.String(64), nullable=False),
        sa.Column("received_by_role", sa.String(32), nullable=False),
        sa.Column("received_by_institution", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("evidence_id", name=op.f("pk_evidence")),
    )
    op.create_index(op.f("ix_evidence_case_id"), "evidence", ["case_id"])
    op.create_table(
        "evidence_chunks",
        sa.Column("evidence_id", sa.String(64), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("evidence_id", "idx", name=op.f("pk_evidence_chunks")),
    )
    op.create_table(
        "handoff_parties",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("institution", sa.String(64), nullable=False),
        sa.Column("public_key", sa.String(8192), nullable=False),
        sa.Column("endpoint", sa.String(512), nullable=True),
        sa.Column("registered_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_handoff_parties")),
    )
    op.create_index(op.f("ix_handoff_parties_institution"), "handoff_parties", ["institution"])
    op.create_table(
        "handoffs",
        sa.Column("handoff_id", sa.String(64), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("recipient_institution", sa.String(64), nullable=False),
        sa.Column("recipient_key_id", sa.String(64), nullable=False),
        sa.Column("legal_basis", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("package", sa.LargeBinary(), nullable=True),
        sa.Column("package_sha256", sa.String(64), nullable=True),
        sa.Column("header_sha256", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("ack_due_at", TS, nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("recalled_at", TS, nullable=True),
        sa.Column("notice", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("handoff_id", name=op.f("pk_handoffs")),
    )
    op.create_index(op.f("ix_handoffs_case_id"), "handoffs", ["case_id"])
    op.create_table(
        "handoff_inbox",
        sa.Column("handoff_id", sa.String(64), nullable=False),
        sa.Column("recipient_institution", sa.String(64), nullable=False),
        sa.Column("recipient_key_id", sa.String(64), nullable=False),
        sa.Column("sender_institution", sa.String(64), nullable=False),
        sa.Column("sender_key_id", sa.String(64), nullable=False),
        sa.Column("package", sa.LargeBinary(), nullable=False),
        sa.Column("package_sha256", sa.String(64), nullable=False),
        sa.Column("header_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("reply_to", sa.String(512), nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("downloaded_at", TS, nullable=True),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("recalled_at", TS, nullable=True),
        sa.Column("local_case_id", sa.String(64), nullable=True),
        sa.Column("notice", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("handoff_id", name=op.f("pk_handoff_inbox")),
    )
    op.create_index(
        op.f("ix_handoff_inbox_recipient_institution"), "handoff_inbox", ["recipient_institution"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_handoff_inbox_recipient_institution"), table_name="handoff_inbox")
    op.drop_table("handoff_inbox")
    op.drop_index(op.f("ix_handoffs_case_id"), table_name="handoffs")
    op.drop_table("handoffs")
    op.drop_index(op.f("ix_handoff_parties_institution"), table_name="handoff_parties")
    op.drop_table("handoff_parties")
    op.drop_table("evidence_chunks")
    op.drop_index(op.f("ix_evidence_case_id"), table_name="evidence")
    op.drop_table("evidence")
