"""Call recording

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-08 09:00:00.000000

Issue 24 (SPEC §4.8). A campaign's ``record`` (default off) is its buyers' default; a buyer's
own (NULL: the campaign's) overrides it. Each call record keeps its recording's outcome:
``recording_status`` (recording, completed, failed, purged; NULL: not recorded), where the
file is (relative to the agent's recordings directory), why it failed, its size, length and
SHA-256. Calls from before this revision were not recorded.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_RECORDING_COLUMNS = (
    ("recording_status", AutoString(length=16)),
    ("recording_path", AutoString(length=512)),
    ("recording_error", AutoString(length=512)),
    ("recording_bytes", sa.Integer()),  # 2 GiB: 18 h of 8 kHz stereo PCM16
    ("recording_seconds", sa.Float()),
    ("recording_sha256", AutoString(length=64)),
)


def upgrade() -> None:
    # A plain "0" (false on both databases), not sa.false(): an expression default makes
    # SQLite's batch rebuild the table, which campaign's foreign keys refuse.
    with op.batch_alter_table("campaign") as batch:
        batch.add_column(sa.Column("record", sa.Boolean(), nullable=False, server_default="0"))
    with op.batch_alter_table("buyer") as batch:  # NULL: the campaign's
        batch.add_column(sa.Column("record", sa.Boolean(), nullable=True))
    with op.batch_alter_table("callrecord") as batch:
        for name, kind in _RECORDING_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("callrecord") as batch:
        for name, _ in reversed(_RECORDING_COLUMNS):
            batch.drop_column(name)
    for table in ("buyer", "campaign"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("record")
