"""Recording notices

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-10 09:00:00.000000

Issue 24: a campaign's ``record_announcement`` (NULL: none) is the notice its recorded calls
play to both parties from the answer before they are bridged, an absolute path to a mono
PCM16 WAV file (``sip/announcements.py``); a buyer's own (NULL: the campaign's) overrides
it. Campaigns and buyers from before this revision play none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable without a default: a plain ADD COLUMN on SQLite too (no table rebuild, which
    # campaign's foreign keys would refuse: see 0022).
    for table in ("campaign", "buyer"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("record_announcement", AutoString(length=1024), nullable=True)
            )


def downgrade() -> None:
    for table in ("buyer", "campaign"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("record_announcement")
