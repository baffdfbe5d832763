"""Buyers' revenue beside their payout: what the buyer pays, against what the publisher is paid

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-07 03:10:00.000000

Issue 20 (SPEC §3.8). ``buyer.revenue``: what the buyer pays per converted call; NULL means
"the same as its payout", so files and rows from before this revision keep a margin of 0.
``reservation.revenue`` is fixed when the reservation is made (the buyer's revenue then, or
the buyer a failover moved it to), like ``payout``; ``callrecord.revenue`` is what was
earned (the reservation's revenue on conversion, else 0), like ``callrecord.payout``.

Rows written before this revision are not rewritten (a site's reservation table may hold
millions): their NULL revenue reads as their payout (``domain/money.py``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None

_TABLES = ("buyer", "reservation", "callrecord")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("revenue", sa.Float(), nullable=True))


def downgrade() -> None:
    for table in reversed(_TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("revenue")
