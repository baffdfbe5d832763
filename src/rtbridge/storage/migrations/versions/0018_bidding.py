"""Buyers that bid in real time

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 06:10:00.000000

Issue 25 (SPEC §3.5). A buyer with a ``bid_url`` is asked for a bid on every ping of its
campaign (``bidding/``): its destination and payout come with each bid, so both columns may
now be NULL. ``bid_headers`` are sealed under the site key (``storage/sealed.py``). The
campaign says how long a ping waits for bids, the publisher's share of the winning bid and
the least bid taken. A reservation won by a bid keeps the bid's destination and id.

``bid``: every bidder's answer to every auction, pruned after ``bid_retention_days``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("buyer") as batch:
        batch.alter_column("destination", existing_type=AutoString(length=512), nullable=True)
        batch.alter_column("payout", existing_type=sa.Float(), nullable=True)
        batch.add_column(sa.Column("bid_url", AutoString(length=512), nullable=True))
        batch.add_column(
            sa.Column("bid_format", AutoString(length=16), nullable=False,
                      server_default="rtbridge")
        )  # fmt: skip
        batch.add_column(sa.Column("bid_headers", AutoString(length=4096), nullable=True))
        batch.add_column(
            sa.Column("hide_caller", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("campaign") as batch:
        batch.add_column(
            sa.Column("bid_deadline_ms", sa.Integer(), nullable=False, server_default="250")
        )
        batch.add_column(
            sa.Column("publisher_share", sa.Float(), nullable=False, server_default="1.0")
        )
        batch.add_column(sa.Column("min_bid", sa.Float(), nullable=False, server_default="0.01"))
    with op.batch_alter_table("reservation") as batch:
        batch.add_column(sa.Column("destination", AutoString(length=512), nullable=True))
        batch.add_column(sa.Column("bid_id", AutoString(length=128), nullable=True))
    op.create_table(
        "bid",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reservation_uuid", AutoString(length=36), nullable=False),
        sa.Column("buyer_id", AutoString(length=64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("outcome", AutoString(length=16), nullable=False),
        sa.Column("reason", AutoString(length=256), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("bid_id", AutoString(length=128), nullable=True),
        sa.Column("destination", AutoString(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_bid_reservation_uuid", "bid", ["reservation_uuid"])
    op.create_index("ix_bid_at", "bid", ["at"])


def downgrade() -> None:
    op.drop_index("ix_bid_at", table_name="bid")
    op.drop_index("ix_bid_reservation_uuid", table_name="bid")
    op.drop_table("bid")
    with op.batch_alter_table("reservation") as batch:
        batch.drop_column("bid_id")
        batch.drop_column("destination")
    with op.batch_alter_table("campaign") as batch:
        batch.drop_column("min_bid")
        batch.drop_column("publisher_share")
        batch.drop_column("bid_deadline_ms")
    with op.batch_alter_table("buyer") as batch:
        batch.drop_column("hide_caller")
        batch.drop_column("bid_headers")
        batch.drop_column("bid_format")
        batch.drop_column("bid_url")
        batch.alter_column("payout", existing_type=sa.Float(), nullable=False)
        batch.alter_column("destination", existing_type=AutoString(length=512), nullable=False)
