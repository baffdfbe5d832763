"""campaigns fail calls over to the next buyer; every buyer dialled is a call attempt

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 16:00:00.000000

Issue 19. ``campaign.failover`` (the failure kinds that move a call on; existing campaigns:
all four, the documented default) and ``campaign.max_attempts`` (3); per buyer
``ring_timeout`` and ``connect_timeout`` (NULL: the agent's ring timeout, and 2 s);
``callattempt``: one row per buyer dialled for a call.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign") as batch:
        batch.add_column(sa.Column("failover", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="3")
        )
    op.execute(
        """UPDATE campaign SET failover = '["no-answer", "busy", "rejected", "unreachable"]'"""
    )
    with op.batch_alter_table("buyer") as batch:
        batch.add_column(sa.Column("ring_timeout", sa.Float(), nullable=True))
        batch.add_column(sa.Column("connect_timeout", sa.Float(), nullable=True))
    op.create_table(
        "callattempt",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "reservation_uuid",
            AutoString(length=36),
            sa.ForeignKey("reservation.uuid"),
            nullable=False,
        ),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("buyer_id", AutoString(length=64), nullable=False),
        sa.Column("destination", AutoString(length=512), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("provisional_at", UTCDateTime(), nullable=True),
        sa.Column("final_code", sa.Integer(), nullable=True),
        sa.Column("reason", AutoString(length=256), nullable=True),
        sa.Column("kind", AutoString(length=16), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("reservation_uuid", "n"),
    )
    op.create_index("ix_callattempt_reservation_uuid", "callattempt", ["reservation_uuid"])


def downgrade() -> None:
    op.drop_index("ix_callattempt_reservation_uuid", "callattempt")
    op.drop_table("callattempt")
    with op.batch_alter_table("buyer") as batch:
        batch.drop_column("connect_timeout")
        batch.drop_column("ring_timeout")
    with op.batch_alter_table("campaign") as batch:
        batch.drop_column("max_attempts")
        batch.drop_column("failover")
