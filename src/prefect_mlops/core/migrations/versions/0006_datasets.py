"""The dataset tables: datasets, their versions (one row each; the files are the version's
manifest object), parents, tags, aliases and the runs that read or produced a version.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

NAME = sa.String(250)
DIGEST = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("name", NAME, primary_key=True),
        sa.Column("created_time", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("dataset", NAME, primary_key=True),
        sa.Column("version_id", DIGEST, primary_key=True),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),
        sa.Column("file_count", sa.BigInteger, nullable=False),
        sa.Column("total_size", sa.BigInteger, nullable=False),
        sa.Column("created_time", sa.BigInteger, nullable=False),
        sa.Column("created_by_run", sa.String(32), nullable=True),
        sa.Column("splits", sa.Text, nullable=False, server_default="{}"),
        sa.Column("stats", sa.Text, nullable=False, server_default="{}"),
        sa.Column("storage", sa.String(1000), nullable=False),
        sa.Column("storage_ref", sa.String(250), nullable=True),
        sa.Column("chunk_threshold", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("dataset", "number", name="uq_dataset_versions_dataset_number"),
    )
    op.create_index("ix_dataset_versions_version_id", "dataset_versions", ["version_id"])
    op.create_table(
        "dataset_version_parents",
        sa.Column("dataset", NAME, primary_key=True),
        sa.Column("version_id", DIGEST, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("parent_id", DIGEST, nullable=False),
    )
    op.create_table(
        "dataset_version_tags",
        sa.Column("dataset", NAME, primary_key=True),
        sa.Column("version_id", DIGEST, primary_key=True),
        sa.Column("key", NAME, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "dataset_aliases",
        sa.Column("dataset", NAME, primary_key=True),
        sa.Column("alias", NAME, primary_key=True),
        sa.Column("version_id", DIGEST, nullable=False),
    )
    op.create_table(
        "dataset_run_links",
        sa.Column("dataset", NAME, primary_key=True),
        sa.Column("version_id", DIGEST, primary_key=True),
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("direction", sa.String(10), primary_key=True),
        sa.Column("created_time", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_dataset_run_links_run_id", "dataset_run_links", ["run_id"])


def downgrade() -> None:
    for table in (
        "dataset_run_links",
        "dataset_aliases",
        "dataset_version_tags",
        "dataset_version_parents",
        "dataset_versions",
        "datasets",
    ):
        op.drop_table(table)
