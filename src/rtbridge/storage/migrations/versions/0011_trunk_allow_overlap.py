"""a trunk may be accepted although its networks overlap a publisher's allowlist

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 11:00:00.000000

Issue 17. A trunk's networks and a publisher's allowlist entries are both trusted without a
challenge, for different things (PSTN arrivals, reservation uuids): a network in both is now
refused unless one side says ``allow_overlap`` (config/overlaps.py). ``trunk.allow_overlap``
is the trunk's side; existing trunks: false (an overlap that exists already is reported by
``rtbridge check``, and refused only for networks added from now on).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trunk") as batch:
        batch.add_column(
            sa.Column("allow_overlap", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("trunk") as batch:
        batch.drop_column("allow_overlap")
