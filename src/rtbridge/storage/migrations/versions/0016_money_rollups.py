"""Money and rollups: buyers' revenue beside their payout, and the business per hour

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 03:10:00.000000

Issue 20 (SPEC §3.8). ``buyer.revenue``: what the buyer pays per converted call; NULL means
"the same as its payout", so files and rows from before this revision keep a margin of 0.
``reservation.revenue`` is fixed when the reservation is made (the buyer's revenue then, or
the buyer a failover moved it to), like ``payout``; ``callrecord.revenue`` is what was
earned (the reservation's revenue on conversion, else 0), like ``callrecord.payout``.

Rows written before this revision are not rewritten (a site's reservation table may hold
millions): their NULL revenue reads as their payout (``domain/money.py``).

``rollup``: pings, reservations, calls and money per hour x publisher x campaign x buyer x
no-target reason (``storage/rollups.py``), moved by every event from now on. It starts
empty: ``rtbridge check --rollups --repair`` fills it from the rows already there.

``ix_webhookdelivery_reservation``: a reservation's webhook deliveries, for its story
(``GET /admin/rtbs/<uuid>``, ``storage/story.py``). ``sipagent.refusals``: an agent's last
refused INVITEs, written with its heartbeats (``sip/recent_refusals.py``).
``callrecord.hangup_requested_at`` and its partial index: calls an admin asked to hang up
(``POST /admin/calls/<uuid>/hangup``), which their agent reads at each heartbeat.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_TABLES = ("buyer", "reservation", "callrecord")
_COUNTS = ("pings", "reserved", "no_target", "calls", "answered", "converted")
_SUMS = ("talk_seconds", "payout", "revenue")
_HANGUPS = sa.text("hangup_requested_at IS NOT NULL AND end_at IS NULL")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("revenue", sa.Float(), nullable=True))
    op.create_table(
        "rollup",
        sa.Column("hour", AutoString(length=13), nullable=False),
        sa.Column("publisher_id", AutoString(length=64), nullable=False),
        sa.Column("campaign_id", AutoString(length=64), nullable=False),
        sa.Column("buyer_id", AutoString(length=64), nullable=False),
        sa.Column("reason", AutoString(length=64), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS),
        *(sa.Column(name, sa.Float(), nullable=False) for name in _SUMS),
        sa.PrimaryKeyConstraint("hour", "publisher_id", "campaign_id", "buyer_id", "reason"),
    )
    op.create_index("ix_webhookdelivery_reservation", "webhookdelivery", ["reservation_uuid"])
    with op.batch_alter_table("sipagent") as batch:
        batch.add_column(sa.Column("refusals", sa.JSON(), nullable=True))
    with op.batch_alter_table("callrecord") as batch:
        batch.add_column(sa.Column("hangup_requested_at", UTCDateTime(), nullable=True))
    op.create_index(
        "ix_callrecord_hangup", "callrecord", ["agent", "reservation_uuid"],
        sqlite_where=_HANGUPS, postgresql_where=_HANGUPS,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_callrecord_hangup", table_name="callrecord")
    with op.batch_alter_table("callrecord") as batch:
        batch.drop_column("hangup_requested_at")
    with op.batch_alter_table("sipagent") as batch:
        batch.drop_column("refusals")
    op.drop_index("ix_webhookdelivery_reservation", table_name="webhookdelivery")
    op.drop_table("rollup")
    for table in reversed(_TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("revenue")
