"""Caller lists

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-14 09:00:00.000000

Issue 23 (SPEC §3.10): block and allow lists of callers, global or of a campaign or a buyer
(``callerlist``), and their entries (``callerlistentry``: a number, a prefix ``+1900*`` or
``anonymous``, an optional expiry and note, and who added it), looked up by value.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None
PREFIX_ROWS = "value LIKE '%*'"  # as storage/models.py


def upgrade() -> None:
    op.create_table(
        "callerlist",
        sa.Column("id", AutoString(length=64), nullable=False),
        sa.Column("kind", AutoString(length=8), nullable=False),
        sa.Column("campaign_id", AutoString(length=64), nullable=True),
        sa.Column("buyer_id", AutoString(length=64), nullable=True),
        sa.Column("note", AutoString(length=256), nullable=True),
        sa.Column("auto_block_converted", sa.Integer(), nullable=True),
        sa.Column("managed_by", AutoString(length=8), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "callerlistentry",
        sa.Column("list_id", AutoString(length=64), nullable=False),
        sa.Column("value", AutoString(length=16), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("note", AutoString(length=256), nullable=True),
        sa.Column("source", AutoString(length=8), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["callerlist.id"]),
        sa.PrimaryKeyConstraint("list_id", "value"),
    )
    op.create_index("ix_callerlistentry_value", "callerlistentry", ["value"])
    op.create_index(  # the prefixes alone: which lengths a caller's lookup must try
        "ix_callerlistentry_prefix", "callerlistentry", ["value"],
        sqlite_where=sa.text(PREFIX_ROWS), postgresql_where=sa.text(PREFIX_ROWS),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_callerlistentry_prefix", table_name="callerlistentry")
    op.drop_index("ix_callerlistentry_value", table_name="callerlistentry")
    op.drop_table("callerlistentry")
    op.drop_table("callerlist")
