"""The queue's never-written `pending` status goes: a row is born `sending`.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not read from db/vocabulary.py: a migration keeps the schema of its own day.
STATUSES_BEFORE = "'pending', 'sending', 'sent', 'publishing'"
STATUSES_AFTER = "'sending', 'sent', 'publishing'"


def _status_check(allowed: str, default: str) -> None:
    op.drop_constraint(op.f("ck_posting_queue_status"), "posting_queue", type_="check")
    op.create_check_constraint(
        op.f("ck_posting_queue_status"), "posting_queue", f"status IN ({allowed})"
    )
    op.alter_column("posting_queue", "status", server_default=default)


def upgrade() -> None:
    _status_check(STATUSES_AFTER, "sending")


def downgrade() -> None:
    _status_check(STATUSES_BEFORE, "pending")
