"""who manages a campaign, buyer, DID or trunk

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 09:00:00.000000

Issue "Operators see the business", item 6: ``managed_by`` as publishers have it (0007),
so ``rtbridge apply`` keeps the campaigns, buyers, DIDs and trunks an admin made (API, CLI,
console) unless ``--prune``, instead of removing them as rows the file dropped. Existing
rows take 0007's rule: "file" when the audit trail's most recent ``create`` of that resource
was by ``apply``, else "admin". An unknown origin (no audit row) is kept rather than removed
silently: a wrong "admin" costs one ``--prune``, a wrong "file" deletes an operator's buyer.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# table -> the audit trail's resource name of one of its rows, as SQL (same on both databases);
# apply and the admin API name them alike (admin/apply.py _resource)
_RESOURCE = {
    "campaign": "'campaign/' || campaign.id",
    "buyer": "'buyer/' || buyer.id",
    "didnumber": "'did/' || didnumber.number",
    "trunk": "'trunk/' || trunk.id",
}


def _managed_by() -> sa.Column[str]:
    return sa.Column(
        "managed_by", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False,
        server_default="admin",
    )  # fmt: skip


def upgrade() -> None:
    for table in _RESOURCE:
        with op.batch_alter_table(table) as batch:
            batch.add_column(_managed_by())
    for table, resource in _RESOURCE.items():
        op.execute(
            f"UPDATE {table} SET managed_by = 'file' WHERE ("
            f"SELECT a.actor FROM auditentry a WHERE a.resource = {resource} "
            "AND a.action = 'create' ORDER BY a.id DESC LIMIT 1) = 'apply'"
        )


def downgrade() -> None:
    for table in reversed(list(_RESOURCE)):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("managed_by")
