"""Duplicate callers

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 06:45:00.000000

Issue 23 (SPEC §3.5). A campaign's ``duplicate_window`` and ``duplicate_after`` are its
buyers' default; a buyer's own override them. ``callerseen``: when each caller last reached
each buyer — pinged, connected, converted (``storage/callers.py``). It starts empty: calls
from before this revision are not duplicates of anything.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign") as batch:
        batch.add_column(
            sa.Column("duplicate_window", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("duplicate_after", AutoString(length=16), nullable=False,
                      server_default="connected")
        )  # fmt: skip
    with op.batch_alter_table("buyer") as batch:  # NULL: the campaign's
        batch.add_column(sa.Column("duplicate_window", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("duplicate_after", AutoString(length=16), nullable=True))
    op.create_table(
        "callerseen",
        sa.Column("caller_number", AutoString(length=16), nullable=False),
        sa.Column("buyer_id", AutoString(length=64), nullable=False),
        sa.Column("pinged_at", UTCDateTime(), nullable=True),
        sa.Column("connected_at", UTCDateTime(), nullable=True),
        sa.Column("converted_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("caller_number", "buyer_id"),
    )


def downgrade() -> None:
    op.drop_table("callerseen")
    for table in ("buyer", "campaign"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("duplicate_after")
            batch.drop_column("duplicate_window")
