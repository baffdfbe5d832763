"""publisher TLS/SRTP requirements and buyer SRTP

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 05:00:00.000000

Per publisher: ``require_tls`` (INVITEs must come over TLS, else 403) and ``require_srtp``
(the offer must ask for SRTP, else 488). Per buyer: ``srtp`` — SDES-SRTP on the leg to it
("off", "optional", "required"). TLS to a buyer is in its destination (sips: or
;transport=tls). Existing rows keep today's behaviour: nothing required, plain RTP.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("publisher") as batch:
        batch.add_column(
            sa.Column("require_tls", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("require_srtp", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("buyer") as batch:
        batch.add_column(
            sa.Column(
                "srtp",
                sqlmodel.sql.sqltypes.AutoString(length=8),
                nullable=False,
                server_default="off",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("buyer") as batch:
        batch.drop_column("srtp")
    with op.batch_alter_table("publisher") as batch:
        batch.drop_column("require_srtp")
        batch.drop_column("require_tls")
