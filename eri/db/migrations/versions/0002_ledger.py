"""ledger: append-only, PII-free case events with dense global and per-case sequences

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_head")),
    )
    op.execute("INSERT INTO ledger_head (id, size) VALUES (1, 0)")
    op.create_table(
        "ledger_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("idempotency_key", sa.String(160), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=True),
        sa.Column("case_seq", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("protocol_id", sa.String(32), nullable=True),
        sa.Column("protocol_version", sa.String(32), nullable=True),
        sa.Column("step_id", sa.String(96), nullable=True),
        sa.Column("actor_id", sa.String(64), nullable=True),
        sa.Column("actor_role", sa.String(32), nullable=True),
        sa.Column("actor_institution", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("deadline_status", sa.String(16), nullable=True),
        sa.Column("detail_hash", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("idempotency_key", name="uq_ledger_entries_idempotency_key"),
        sa.UniqueConstraint("case_id", "case_seq", name="uq_ledger_entries_case_seq"),
    )
    op.create_index("ix_ledger_entries_recorded_at", "ledger_entries", ["recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_recorded_at", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_table("ledger_head")
