"""Publisher access to recordings; their retention's index

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-09 09:00:00.000000

Issue 24: a postback key's ``recordings`` (default off) lets its publisher fetch its own
calls' recordings (``GET /rtbs/<uuid>/recording?key=``). Keys from before this revision
do not. ``ix_callrecord_recording_kept``: completed recordings by their call's end, so the
retention purge (``admin/recording_purge.py``) reads its oldest batch without a table scan;
it holds only the recordings whose files are kept.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

_KEPT = sa.text("recording_status = 'completed'")

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain "0" (false on both databases), not sa.false(): see 0022.
    with op.batch_alter_table("postbackkey") as batch:
        batch.add_column(sa.Column("recordings", sa.Boolean(), nullable=False, server_default="0"))
    op.create_index(
        "ix_callrecord_recording_kept", "callrecord", ["end_at"],
        sqlite_where=_KEPT, postgresql_where=_KEPT,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_callrecord_recording_kept", table_name="callrecord")
    with op.batch_alter_table("postbackkey") as batch:
        batch.drop_column("recordings")
