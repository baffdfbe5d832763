"""who manages a publisher, allowlist entry, credential or key; accepted overlaps

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 07:00:00.000000

Issue 12. ``managed_by`` is "file" for rows ``rtbridge apply`` made (a later apply may remove
them when the file drops them) and "admin" for rows the admin API, CLI or console made (apply
keeps them unless run with ``--prune``). Existing rows are "file" when the audit trail's most
recent ``create`` of that resource was by ``apply``, else "admin": an unknown origin is kept,
never removed silently. ``allowlistentry.allow_overlap`` marks an entry accepted although it
overlaps another publisher's (existing rows: false).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# table -> the audit trail's resource name of one of its rows, as SQL (same on both databases)
_RESOURCE = {
    "publisher": "'publisher/' || publisher.id",
    "allowlistentry": "'ip/' || allowlistentry.publisher_id || '/' || allowlistentry.cidr",
    "sipcredential": "'credential/' || sipcredential.username",
    "postbackkey": "'key/' || postbackkey.hint",
}


def _managed_by() -> sa.Column[str]:
    return sa.Column(
        "managed_by", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False,
        server_default="admin",
    )  # fmt: skip


def upgrade() -> None:
    for table in _RESOURCE:
        with op.batch_alter_table(table) as batch:
            batch.add_column(_managed_by())
    with op.batch_alter_table("allowlistentry") as batch:
        batch.add_column(
            sa.Column("allow_overlap", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    for table, resource in _RESOURCE.items():
        op.execute(
            f"UPDATE {table} SET managed_by = 'file' WHERE ("
            f"SELECT a.actor FROM auditentry a WHERE a.resource = {resource} "
            "AND a.action = 'create' ORDER BY a.id DESC LIMIT 1) = 'apply'"
        )


def downgrade() -> None:
    with op.batch_alter_table("allowlistentry") as batch:
        batch.drop_column("allow_overlap")
    for table in reversed(list(_RESOURCE)):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("managed_by")
