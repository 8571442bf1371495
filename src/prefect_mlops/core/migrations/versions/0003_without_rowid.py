"""SQLite: params, tags and latest_metrics become WITHOUT ROWID tables.

Their rows are found by (run_id, key), which was an index beside a rowid table: each lookup
searched the index, then the table. Clustered on the primary key, a lookup is one search, a
(key, value) index carries the run id (so filters are answered from the index alone), and
inserting writes one B-tree less. PostgreSQL is unchanged.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import re

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("params", "tags", "latest_metrics")
_WITHOUT_ROWID = re.compile(r"\s*WITHOUT\s+ROWID\s*$", re.IGNORECASE)


def _rebuild(without_rowid: bool) -> None:
    """Recreate each table from its own CREATE statement, keeping its rows and indexes."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for name in TABLES:
        create = bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).scalar_one()
        indexes = (
            bind.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                "AND sql IS NOT NULL",
                (name,),
            )
            .scalars()
            .all()
        )
        create = _WITHOUT_ROWID.sub("", create.strip())
        if without_rowid:
            create += " WITHOUT ROWID"
        op.execute(f'ALTER TABLE "{name}" RENAME TO "_old_{name}"')
        op.execute(create)
        op.execute(f'INSERT INTO "{name}" SELECT * FROM "_old_{name}" ORDER BY run_id, "key"')
        op.execute(f'DROP TABLE "_old_{name}"')  # and its indexes, recreated next
        for index in indexes:
            op.execute(index)


def upgrade() -> None:
    _rebuild(without_rowid=True)


def downgrade() -> None:
    _rebuild(without_rowid=False)
