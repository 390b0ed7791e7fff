"""vault: encrypted, versioned victim data per case and field

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vault_records",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("field", sa.String(96), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_records")),
        sa.UniqueConstraint("case_id", "field", "version", name="uq_vault_records_version"),
    )
    op.create_index(op.f("ix_vault_records_case_id"), "vault_records", ["case_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_vault_records_case_id"), table_name="vault_records")
    op.drop_table("vault_records")
