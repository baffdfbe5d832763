"""Rollups by day, and each ping's verdict on every buyer

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 06:00:00.000000

Issue 20. ``rollupday``: the figures of ``rollup`` summed by UTC day, moved by the same
events from now on (``storage/rollups.py``), so that a month of figures is read from 30 rows
a key rather than 720 (``storage/stats.py``). Filled here from ``rollup``, which holds every
figure there is.

``reservation.verdicts``: what the ping's selection said of each of the campaign's buyers
(``domain/selection.py``), shown in a reservation's story. NULL on rows from before it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_KEYS = ("publisher_id", "campaign_id", "buyer_id", "reason")
_COUNTS = ("pings", "reserved", "no_target", "calls", "answered", "converted")
_SUMS = ("talk_seconds", "payout", "revenue")


def upgrade() -> None:
    op.create_table(
        "rollupday",
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS),
        *(sa.Column(name, sa.Float(), nullable=False) for name in _SUMS),
        sa.Column("day", AutoString(length=10), nullable=False),
        *(sa.Column(name, AutoString(length=64), nullable=False) for name in _KEYS),
        sa.PrimaryKeyConstraint("day", *_KEYS),
    )
    keys = ", ".join(_KEYS)
    sums = ", ".join(f"sum({m})" for m in (*_COUNTS, *_SUMS))
    op.execute(
        f"INSERT INTO rollupday (day, {keys}, {', '.join((*_COUNTS, *_SUMS))}) "
        f"SELECT substr(hour, 1, 10), {keys}, {sums} FROM rollup "
        f"GROUP BY substr(hour, 1, 10), {keys}"
    )
    with op.batch_alter_table("reservation") as batch:
        batch.add_column(sa.Column("verdicts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reservation") as batch:
        batch.drop_column("verdicts")
    op.drop_table("rollupday")
