"""buyer counters; partial indexes of live reservations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 09:00:00.000000

Caps become counters (``buyerlive``, ``buyerday``), filled here from the reservations already
stored. The four reservation indexes become two partial ones holding only the rows the hot
paths look for (a caller's live reservations; a buyer's unclaimed ones by TTL), so they stay
small however long the history grows and a ping writes two index entries, not four.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LIVE_ROWS = "status IN ('reserved', 'confirmed', 'claimed', 'connected')"
UNCLAIMED_ROWS = "status IN ('reserved', 'confirmed')"
_PARTIAL = {
    "ix_reservation_live_caller": (["caller_number"], LIVE_ROWS),
    "ix_reservation_unclaimed_buyer": (["buyer_id", "expires_at"], UNCLAIMED_ROWS),
}
_FULL = {
    "ix_reservation_buyer_status_created": ["buyer_id", "status", "created_at"],
    "ix_reservation_caller_status": ["caller_number", "status"],
    "ix_reservation_status_expires": ["status", "expires_at"],
    "ix_reservation_did_caller": ["inbound_number", "caller_number"],
}


def upgrade() -> None:
    op.create_table(
        "buyerlive",
        sa.Column("buyer_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("buyer_id"),
    )
    op.create_table(
        "buyerday",
        sa.Column("buyer_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("day", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("buyer_id", "day"),
    )
    with op.batch_alter_table("reservation", schema=None) as batch_op:
        for name in _FULL:
            batch_op.drop_index(name)
        for name, (columns, where) in _PARTIAL.items():
            batch_op.create_index(
                name, columns, unique=False, sqlite_where=sa.text(where),
                postgresql_where=sa.text(where),
            )  # fmt: skip
    sqlite = op.get_bind().dialect.name == "sqlite"
    day = (
        "substr(created_at, 1, 10)"
        if sqlite
        else "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    )
    op.execute(
        "INSERT INTO buyerlive (buyer_id, units) SELECT buyer_id, count(*) FROM reservation "
        f"WHERE buyer_id IS NOT NULL AND {LIVE_ROWS} GROUP BY buyer_id"
    )
    op.execute(
        f"INSERT INTO buyerday (buyer_id, day, units) SELECT buyer_id, {day}, count(*) "
        "FROM reservation WHERE buyer_id IS NOT NULL AND status IN ('reserved', 'confirmed', "
        f"'claimed', 'connected', 'completed', 'failed') GROUP BY buyer_id, {day}"
    )


def downgrade() -> None:
    with op.batch_alter_table("reservation", schema=None) as batch_op:
        for name in _PARTIAL:
            batch_op.drop_index(name)
        for name, columns in _FULL.items():
            batch_op.create_index(name, columns, unique=False)
    op.drop_table("buyerday")
    op.drop_table("buyerlive")
