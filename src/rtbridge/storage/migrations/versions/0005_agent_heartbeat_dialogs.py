"""SIP agent heartbeats and the dialogs of answered calls

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 06:00:00.000000

``sipagent``: one row per agent name with the last time its pjsua2 thread was seen working
(``seen_at``, written every few seconds). After a crash, the restarted agent ends the calls
it had up at that time instead of at its restart, so a call loses at most one heartbeat of
its duration. ``callrecord.dialogs``: the SIP dialog of each leg of an answered call
(Call-ID, tags, remote target, route set), so the restarted agent can send each far end the
BYE the dead process never sent. ``NULL`` for calls from before this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sipagent",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("seen_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("callrecord") as batch:
        batch.add_column(sa.Column("dialogs", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("callrecord") as batch:
        batch.drop_column("dialogs")
    op.drop_table("sipagent")
