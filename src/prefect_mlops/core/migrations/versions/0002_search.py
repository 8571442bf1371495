"""Search: indexes for filters and sorting, numeric param values, full-text documents,
dataset inputs of runs, saved searches.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("params") as batch:
        batch.add_column(sa.Column("num_value", sa.Float(precision=53), nullable=True))
    op.create_index("ix_params_key_value", "params", ["key", "value"])
    op.create_index("ix_params_key_num_value", "params", ["key", "num_value"])
    op.create_index("ix_tags_key_value", "tags", ["key", "value"])
    op.create_index("ix_latest_metrics_key_value", "latest_metrics", ["key", "value"])
    op.create_index("ix_runs_start_time", "runs", ["start_time"])
    op.create_table(
        "run_datasets",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("context", sa.String(250), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("run_id", "name", "digest", "context", name="pk_run_datasets"),
    )
    op.create_index("ix_run_datasets_name", "run_datasets", ["name"])
    op.create_table(
        "saved_searches",
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("filter_string", sa.Text, nullable=False, server_default=""),
        sa.Column("order_by", sa.Text, nullable=False, server_default="[]"),
        sa.Column("experiment_ids", sa.Text, nullable=True),
        sa.Column("query", sa.Text, nullable=True),
        sa.Column("created_time", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_saved_searches"),
    )
    # Numeric view of existing params, for comparisons like params.lr < 0.01.
    params = sa.table("params", sa.column("value", sa.Text), sa.column("num_value", sa.Float))
    rows = bind.execute(sa.select(params.c.value).distinct()).scalars().all()
    for value in rows:
        number = numeric(value)
        if number is not None:
            bind.execute(params.update().where(params.c.value == value).values(num_value=number))
    # Full-text documents: run name and tag values.
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE runs ADD COLUMN search_doc tsvector")
        op.execute("CREATE INDEX ix_runs_search_doc ON runs USING GIN (search_doc)")
        op.execute(
            "UPDATE runs SET search_doc = to_tsvector('simple', run_name || ' ' || COALESCE("
            "(SELECT string_agg(value, ' ') FROM tags WHERE tags.run_id = runs.run_id), ''))"
        )
    else:
        op.execute("CREATE VIRTUAL TABLE runs_fts USING fts5(doc)")
        op.execute(
            "INSERT INTO runs_fts(rowid, doc) SELECT rowid, run_name || ' ' || COALESCE("
            "(SELECT group_concat(value, ' ') FROM tags WHERE tags.run_id = runs.run_id), '') "
            "FROM runs"
        )


def numeric(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP INDEX ix_runs_search_doc")
        op.execute("ALTER TABLE runs DROP COLUMN search_doc")
    else:
        op.execute("DROP TABLE runs_fts")
    op.drop_table("saved_searches")
    op.drop_index("ix_run_datasets_name", "run_datasets")
    op.drop_table("run_datasets")
    op.drop_index("ix_runs_start_time", "runs")
    op.drop_index("ix_latest_metrics_key_value", "latest_metrics")
    op.drop_index("ix_tags_key_value", "tags")
    op.drop_index("ix_params_key_num_value", "params")
    op.drop_index("ix_params_key_value", "params")
    with op.batch_alter_table("params") as batch:
        batch.drop_column("num_value")
