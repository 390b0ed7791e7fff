"""audit trail: Merkle tree nodes, checkpoints and cosignatures

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

Existing ledger entries are hashed into the tree here, so the tree always covers the ledger.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("level", "index", name=op.f("pk_audit_nodes")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("origin", sa.String(128), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.String(4096), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "audit_cosignatures",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("key_name", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(8), nullable=False),
        sa.Column("line", sa.String(512), nullable=False),
        sa.Column("cosigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size", "key_name", "key_id", name=op.f("pk_audit_cosignatures")),
    )
    _backfill()


def _backfill() -> None:
    from datetime import UTC
    from types import SimpleNamespace

    from eri.audit import leaf, merkle

    bind = op.get_bind()
    entries = sa.table(
        "ledger_entries",
        *(
            sa.column(name, sa.DateTime(timezone=True) if name == "recorded_at" else None)
            for name in leaf.FIELDS
        ),
    )
    rows = bind.execute(sa.select(entries).order_by(entries.c.seq)).mappings()
    frontier = merkle.Frontier()
    nodes = sa.table(
        "audit_nodes", sa.column("level"), sa.column("index"), sa.column("hash", sa.LargeBinary)
    )
    batch: list[dict[str, object]] = []
    for row in rows:
        values = dict(row)
        at = values["recorded_at"]
        values["recorded_at"] = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        for (level, index), digest in frontier.append(
            merkle.leaf_hash(leaf.encode(SimpleNamespace(**values)))
        ):
            batch.append({"level": level, "index": index, "hash": digest})
    if batch:
        op.bulk_insert(nodes, batch)


def downgrade() -> None:
    op.drop_table("audit_cosignatures")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_nodes")
