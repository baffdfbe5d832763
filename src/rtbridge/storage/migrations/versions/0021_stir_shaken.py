"""STIR/SHAKEN attestation

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 09:10:00.000000

Issue 23 (SPEC §4.9). A campaign's ``min_attestation`` ("A", "B", "C"; NULL: any call) refuses
calls attested below it. Each reservation keeps what its INVITE was attested as
(``attestation``: A, B, C, none, failed) and, for ``failed``, why. Rows from before this
revision have neither: their INVITEs were not verified.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign") as batch:
        batch.add_column(sa.Column("min_attestation", AutoString(length=1), nullable=True))
    with op.batch_alter_table("reservation") as batch:
        batch.add_column(sa.Column("attestation", AutoString(length=8), nullable=True))
        batch.add_column(sa.Column("attestation_why", AutoString(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reservation") as batch:
        batch.drop_column("attestation_why")
        batch.drop_column("attestation")
    with op.batch_alter_table("campaign") as batch:
        batch.drop_column("min_attestation")
