"""Server-side session defaults so a vanished client never holds locks for long.

Set per role and database (ALTER ROLE current_user IN DATABASE current_database()),
so they also hold behind a transaction-mode pooler, where session settings sent
by the client don't stick, and they need no superuser (a role may set its own
defaults; Neon's owner role can). Works on PostgreSQL 13 and later.

- idle_in_transaction_session_timeout: a session idle inside a transaction (its
  client went silent between statements) is ended after 5 s, releasing its locks.
- statement_timeout: a backstop for a statement still running when its client
  vanished; our statements take milliseconds. Migrations lift it for their own
  transaction.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SESSION_DEFAULTS = {
    "idle_in_transaction_session_timeout": "5s",
    "statement_timeout": "30s",
}


def _for_this_role_and_database(action: str) -> str:
    # Without the privilege (an unusual managed setup) the app still works with
    # the client-side timeouts; the migration must not fail over it.
    return f"""
DO $$
BEGIN
    EXECUTE format('ALTER ROLE %I IN DATABASE %I {action}', current_user, current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'storyqueue: cannot set session defaults for %: %', current_user, SQLERRM;
END
$$"""


def upgrade() -> None:
    for name, value in SESSION_DEFAULTS.items():
        op.execute(_for_this_role_and_database(f"SET {name} = ''{value}''"))


def downgrade() -> None:
    for name in SESSION_DEFAULTS:
        op.execute(_for_this_role_and_database(f"RESET {name}"))
