"""publishers and buyers: the networks their media may move to

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 15:00:00.000000

Issue 17. A re-INVITE or UPDATE may move a party's media only to where that party is: its
signalling address, its set-up media, and these networks (a publisher's allowlist counts
too; sip/media_home.py). Existing rows: none (``[]``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_TABLES = ("publisher", "buyer")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("media_networks", sa.JSON(), nullable=True))
        op.execute(f"UPDATE {table} SET media_networks = '[]'")


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("media_networks")
