"""postback key hints of 4 characters

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 10:00:00.000000

Issue 17. A key was listed by its first 8 characters: half of a 16-character key. Hints are
now 4 characters and "…", here for the stored keys and for the audit trail's key entries
(their resource name ``key/<hint>`` and the ``hint`` in the key they record), so no copy of
the longer prefix stays. What the ids and digests are stored as changes too, but that needs
the site key, which a migration does not have: ``storage/sitekey.py`` re-keys them when a
process first opens the database with it. Downgrading cannot bring the 8 characters back.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ELLIPSIS = "…"
_KEYS = sa.table("postbackkey", sa.column("id", sa.String), sa.column("hint", sa.String))
_AUDIT = sa.table(
    "auditentry",
    sa.column("id", sa.Integer),
    sa.column("resource", sa.String),
    sa.column("old", sa.JSON),
    sa.column("new", sa.JSON),
)


def _short(hint: str) -> str:
    return hint.removesuffix(_ELLIPSIS)[:4] + _ELLIPSIS


def _view(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("hint"), str):
        return {**value, "hint": _short(value["hint"])}
    return value


def upgrade() -> None:
    conn = op.get_bind()
    for key_id, hint in conn.execute(sa.select(_KEYS.c.id, _KEYS.c.hint)).all():
        if hint != _short(hint):
            conn.execute(sa.update(_KEYS).where(_KEYS.c.id == key_id).values(hint=_short(hint)))
    entries = conn.execute(
        sa.select(_AUDIT.c.id, _AUDIT.c.resource, _AUDIT.c.old, _AUDIT.c.new)
        .where(_AUDIT.c.resource.like("key/%"))
    ).all()  # fmt: skip
    for entry_id, resource, old, new in entries:
        values: dict[str, Any] = {"resource": "key/" + _short(resource.removeprefix("key/"))}
        # only what changes: writing an absent side back would store JSON null for SQL NULL
        values |= {name: _view(v) for name, v in (("old", old), ("new", new)) if _view(v) != v}
        conn.execute(sa.update(_AUDIT).where(_AUDIT.c.id == entry_id).values(**values))


def downgrade() -> None:
    pass  # the longer hints are gone with the keys' clear text: nothing to restore
