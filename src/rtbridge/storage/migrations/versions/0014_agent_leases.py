"""SIP agents hold leases: an epoch that a peer takes over when the agent goes silent

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 19:00:00.000000

Issue 21. ``sipagent`` becomes each agent's lease: ``epoch`` (bumped by every start and
every takeover; an agent whose epoch moved on is fenced), ``holder`` (the process holding
it; NULL once released or taken over), ``beats`` (heartbeats written under this epoch: a
peer takes over only a lease it has watched stand still), ``takeover_after`` (the agent's
own patience, seconds, so that peers wait what it promised), and who took it over, when,
and how many open calls that closed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sipagent") as batch:
        batch.add_column(sa.Column("epoch", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("holder", AutoString(length=256), nullable=True))
        batch.add_column(sa.Column("beats", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("takeover_after", sa.Float(), nullable=False, server_default="6.0")
        )
        batch.add_column(sa.Column("taken_by", AutoString(length=128), nullable=True))
        batch.add_column(sa.Column("taken_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("taken_calls", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sipagent") as batch:
        for column in ("taken_calls", "taken_at", "taken_by", "takeover_after", "beats",
                       "holder", "epoch"):  # fmt: skip
            batch.drop_column(column)
