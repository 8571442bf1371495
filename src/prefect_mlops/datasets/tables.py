"""Dataset tables. A version's files are not rows: they are its manifest, a content-addressed
object in the dataset store, so reading or listing versions costs the same at 10 files or
10 million. Times are epoch milliseconds."""

from __future__ import annotations

import sqlalchemy as sa

from prefect_mlops.core.schema import metadata

DIGEST = sa.String(64)
NAME = sa.String(250)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("created_time", sa.BigInteger, nullable=False),
)

dataset_versions = sa.Table(
    "dataset_versions",
    metadata,
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
    sa.UniqueConstraint("dataset", "number"),
    sa.Index("ix_dataset_versions_version_id", "version_id"),
)

dataset_version_parents = sa.Table(
    "dataset_version_parents",
    metadata,
    sa.Column("dataset", NAME, primary_key=True),
    sa.Column("version_id", DIGEST, primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("parent_id", DIGEST, nullable=False),
)

dataset_version_tags = sa.Table(
    "dataset_version_tags",
    metadata,
    sa.Column("dataset", NAME, primary_key=True),
    sa.Column("version_id", DIGEST, primary_key=True),
    sa.Column("key", NAME, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

dataset_aliases = sa.Table(
    "dataset_aliases",
    metadata,
    sa.Column("dataset", NAME, primary_key=True),
    sa.Column("alias", NAME, primary_key=True),
    sa.Column("version_id", DIGEST, nullable=False),
)

dataset_run_links = sa.Table(
    "dataset_run_links",
    metadata,
    sa.Column("dataset", NAME, primary_key=True),
    sa.Column("version_id", DIGEST, primary_key=True),
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("direction", sa.String(10), primary_key=True),
    sa.Column("created_time", sa.BigInteger, nullable=False),
    sa.Index("ix_dataset_run_links_run_id", "run_id"),
)
