"""Tracking tables. Times are epoch milliseconds; ids are 32-char hex strings.

A NaN metric value is stored as NULL (SQLite turns NaN into NULL anyway); ±Inf are stored as is.
``latest_metrics`` keeps, per run and key, the latest point plus min, max and count, so that
reading a run never scans its history.
"""

from __future__ import annotations

import sqlalchemy as sa

from prefect_mlops.core.schema import metadata

ID = sa.String(32)

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("experiment_id", ID, primary_key=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    sa.Column("artifact_location", sa.String(1000), nullable=False),
    sa.Column("lifecycle_stage", sa.String(20), nullable=False, server_default="active"),
    sa.Column("creation_time", sa.BigInteger, nullable=False),
    sa.Column("last_update_time", sa.BigInteger, nullable=False),
)

experiment_tags = sa.Table(
    "experiment_tags",
    metadata,
    sa.Column("experiment_id", ID, primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", ID, primary_key=True),
    sa.Column("experiment_id", ID, nullable=False, index=True),
    sa.Column("run_name", sa.String(250), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("start_time", sa.BigInteger, nullable=False),
    sa.Column("end_time", sa.BigInteger, nullable=True),
    sa.Column("lifecycle_stage", sa.String(20), nullable=False, server_default="active"),
    sa.Column("user_id", sa.String(256), nullable=False, server_default=""),
    sa.Column("artifact_uri", sa.String(1000), nullable=False),
    sa.Column("parent_run_id", ID, nullable=True, index=True),
    sa.Column("prefect_flow_run_id", sa.String(36), nullable=True, unique=True),
    sa.Column("deleted_time", sa.BigInteger, nullable=True),
    sa.Index("ix_runs_start_time", "start_time"),
)
# Full-text documents (run name + tag values) live outside this metadata: an FTS5 table
# ``runs_fts`` keyed by the runs rowid on SQLite, a ``runs.search_doc`` tsvector on PostgreSQL.

params = sa.Table(
    "params",
    metadata,
    sa.Column("run_id", ID, primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    # The value as a number when it is one, so params.lr < 0.01 compares numerically.
    sa.Column("num_value", sa.Float(precision=53), nullable=True),
    sa.Index("ix_params_key_value", "key", "value"),
    sa.Index("ix_params_key_num_value", "key", "num_value"),
    sqlite_with_rowid=False,  # clustered on (run_id, key): migration 0003
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("run_id", ID, primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Index("ix_tags_key_value", "key", "value"),
    sqlite_with_rowid=False,
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("run_id", ID, nullable=False),
    sa.Column("key", sa.String(250), nullable=False),
    sa.Column("value", sa.Float(precision=53), nullable=True),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Index("ix_metrics_history", "run_id", "key", "step", "timestamp", "value"),
)

latest_metrics = sa.Table(
    "latest_metrics",
    metadata,
    sa.Column("run_id", ID, primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Float(precision=53), nullable=True),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("min_value", sa.Float(precision=53), nullable=True),
    sa.Column("max_value", sa.Float(precision=53), nullable=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Index("ix_latest_metrics_key_value", "key", "value"),
    sqlite_with_rowid=False,
)

histograms = sa.Table(
    "histograms",
    metadata,
    sa.Column("run_id", ID, nullable=False),
    sa.Column("key", sa.String(250), nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("edges", sa.Text, nullable=False),
    sa.Column("counts", sa.Text, nullable=False),
    sa.Index("ix_histograms_run_key_step", "run_id", "key", "step"),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("run_id", ID, primary_key=True),
    sa.Column("path", sa.String(1000), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_time", sa.BigInteger, nullable=False),
)

run_datasets = sa.Table(
    "run_datasets",
    metadata,
    sa.Column("run_id", ID, primary_key=True),
    sa.Column("name", sa.String(500), primary_key=True),
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("context", sa.String(250), primary_key=True, server_default=""),
    sa.Index("ix_run_datasets_name", "name"),
)

saved_searches = sa.Table(
    "saved_searches",
    metadata,
    sa.Column("name", sa.String(250), primary_key=True),
    sa.Column("filter_string", sa.Text, nullable=False, server_default=""),
    sa.Column("order_by", sa.Text, nullable=False, server_default="[]"),
    sa.Column("experiment_ids", sa.Text, nullable=True),
    sa.Column("query", sa.Text, nullable=True),
    sa.Column("created_time", sa.BigInteger, nullable=False),
)

# Idempotency keys of write requests the server has applied: a replayed request (a client
# resending after a lost acknowledgement, or replaying its offline spool) stores nothing twice.
request_keys = sa.Table(
    "request_keys",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("created_time", sa.BigInteger, nullable=False, index=True),
)

# Logged models (MLflow 3): a model with its own artifact folder, made by a run or not.
logged_models = sa.Table(
    "logged_models",
    metadata,
    sa.Column("model_id", sa.String(40), primary_key=True),
    sa.Column("experiment_id", ID, nullable=False, index=True),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("artifact_location", sa.String(1000), nullable=False),
    sa.Column("creation_time", sa.BigInteger, nullable=False),
    sa.Column("last_update_time", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("lifecycle_stage", sa.String(20), nullable=False, server_default="active"),
    sa.Column("model_type", sa.String(500), nullable=False, server_default=""),
    sa.Column("source_run_id", ID, nullable=True, index=True),
    sa.Column("status_message", sa.Text, nullable=False, server_default=""),
)

logged_model_tags = sa.Table(
    "logged_model_tags",
    metadata,
    sa.Column("model_id", sa.String(40), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

logged_model_params = sa.Table(
    "logged_model_params",
    metadata,
    sa.Column("model_id", sa.String(40), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

run_model_outputs = sa.Table(
    "run_model_outputs",
    metadata,
    sa.Column("run_id", ID, primary_key=True),
    sa.Column("model_id", sa.String(40), primary_key=True),
    sa.Column("step", sa.BigInteger, nullable=False),
)
