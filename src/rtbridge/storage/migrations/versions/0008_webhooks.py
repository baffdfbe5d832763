"""webhooks: subscriptions, deliveries, and the outbox flags

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 08:45:00.000000

``reservation.webhook_pending`` and ``reservationevent.webhook_pending`` mark rows the
webhook dispatcher has not seen (server default true; a ping writes its row's value, true
only when a webhook wants it). Rows from before this revision are set seen, so
subscriptions start with the events that follow them.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TABLES = ("reservation", "reservationevent")
_KEYS = {"reservation": "uuid", "reservationevent": "id"}


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("webhook_pending", sa.Boolean(), nullable=False, server_default=sa.true())
            )
        op.execute(f"UPDATE {table} SET webhook_pending = false")
        op.create_index(
            f"ix_{table}_webhook_pending", table, [_KEYS[table]],
            sqlite_where=sa.text("webhook_pending"), postgresql_where=sa.text("webhook_pending"),
        )  # fmt: skip
    op.create_table(
        "webhook",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_kind", text(length=16), nullable=False),
        sa.Column("owner_id", text(length=64), nullable=False),
        sa.Column("url", text(length=2048), nullable=False),
        sa.Column("events", sa.JSON(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("salt", text(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "webhookdelivery",
        sa.Column("id", text(length=36), nullable=False),
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("event_type", text(length=32), nullable=False),
        sa.Column("reservation_uuid", text(length=36), nullable=False),
        sa.Column("body", text(), nullable=False),
        sa.Column("status", text(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("delivered_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_code", sa.Integer(), nullable=True),
        sa.Column("last_error", text(length=256), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_webhookdelivery_due", "webhookdelivery", ["next_at"],
        sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"),
    )  # fmt: skip
    op.create_index("ix_webhookdelivery_webhook", "webhookdelivery", ["webhook_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_webhookdelivery_webhook", table_name="webhookdelivery")
    op.drop_index("ix_webhookdelivery_due", table_name="webhookdelivery")
    op.drop_table("webhookdelivery")
    op.drop_table("webhook")
    for table in reversed(_TABLES):
        op.drop_index(f"ix_{table}_webhook_pending", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("webhook_pending")
