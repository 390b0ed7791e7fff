"""case read model: cases, the task projection and its candidate groups

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("protocol_id", sa.String(32), nullable=False),
        sa.Column("protocol_version", sa.String(32), nullable=False),
        sa.Column("protocol_hash", sa.String(64), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_by_institution", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_cases")),
    )
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.String(160), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("protocol_id", sa.String(32), nullable=False),
        sa.Column("protocol_version", sa.String(32), nullable=False),
        sa.Column("step_id", sa.String(96), nullable=False),
        sa.Column("occurrence", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(64), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline_missed", sa.Boolean(), nullable=False),
        sa.Column("rungs_fired", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_tasks")),
    )
    op.create_index(op.f("ix_tasks_case_id"), "tasks", ["case_id"])
    op.create_index("ix_tasks_status_due", "tasks", ["status", "due_at"])
    op.create_index("ix_tasks_assignee_status", "tasks", ["assignee", "status"])
    op.create_table(
        "task_groups",
        sa.Column("task_id", sa.String(160), nullable=False),
        sa.Column("group_name", sa.String(96), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "group_name", name=op.f("pk_task_groups")),
    )
    op.create_index("ix_task_groups_group", "task_groups", ["group_name", "task_id"])


def downgrade() -> None:
    op.drop_index("ix_task_groups_group", table_name="task_groups")
    op.drop_table("task_groups")
    op.drop_index("ix_tasks_assignee_status", table_name="tasks")
    op.drop_index("ix_tasks_status_due", table_name="tasks")
    op.drop_index(op.f("ix_tasks_case_id"), table_name="tasks")
    op.drop_table("tasks")
    op.drop_table("cases")
