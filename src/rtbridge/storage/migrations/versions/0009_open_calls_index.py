"""an index of each agent's open calls

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 09:30:00.000000

``ix_callrecord_open``: call records not ended yet (``end_at IS NULL``), by agent and INVITE
time, the reservation uuid included. The running SIP agent reads it every heartbeat to find
its orphaned claims (``storage.calls.close_orphans``), and crash recovery reads it on start;
it holds only the calls in progress, so it stays small however long the history grows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_WHERE = sa.text("end_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_callrecord_open", "callrecord", ["agent", "invite_at", "reservation_uuid", "end_at"],
        sqlite_where=_WHERE, postgresql_where=_WHERE,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_callrecord_open", table_name="callrecord")
