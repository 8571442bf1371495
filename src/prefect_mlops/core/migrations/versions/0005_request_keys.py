"""The ``request_keys`` table: idempotency keys of applied write requests.

The remote store sends every write with a key; the server claims the key in the same
transaction as the write, so a request sent twice (a lost acknowledgement, an offline spool
replayed) is applied once.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_keys",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("created_time", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_request_keys_created_time", "request_keys", ["created_time"])


def downgrade() -> None:
    op.drop_index("ix_request_keys_created_time", table_name="request_keys")
    op.drop_table("request_keys")
