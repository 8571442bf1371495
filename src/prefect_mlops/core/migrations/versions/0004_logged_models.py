"""Logged models (MLflow 3's ``LoggedModel``): models with their own artifact folder, their
tags and params, and the models each run produced.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.String(32)
MODEL_ID = sa.String(40)


def upgrade() -> None:
    op.create_table(
        "logged_models",
        sa.Column("model_id", MODEL_ID, nullable=False),
        sa.Column("experiment_id", ID, nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("artifact_location", sa.String(1000), nullable=False),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.Column("last_update_time", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("lifecycle_stage", sa.String(20), server_default="active", nullable=False),
        sa.Column("model_type", sa.String(500), server_default="", nullable=False),
        sa.Column("source_run_id", ID, nullable=True),
        sa.Column("status_message", sa.Text, server_default="", nullable=False),
        sa.PrimaryKeyConstraint("model_id", name="pk_logged_models"),
    )
    op.create_index("ix_logged_models_experiment_id", "logged_models", ["experiment_id"])
    op.create_index("ix_logged_models_source_run_id", "logged_models", ["source_run_id"])
    for name in ("logged_model_tags", "logged_model_params"):
        op.create_table(
            name,
            sa.Column("model_id", MODEL_ID, nullable=False),
            sa.Column("key", sa.String(250), nullable=False),
            sa.Column("value", sa.Text, nullable=False),
            sa.PrimaryKeyConstraint("model_id", "key", name=f"pk_{name}"),
        )
    op.create_table(
        "run_model_outputs",
        sa.Column("run_id", ID, nullable=False),
        sa.Column("model_id", MODEL_ID, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "model_id", name="pk_run_model_outputs"),
    )


def downgrade() -> None:
    op.drop_table("run_model_outputs")
    op.drop_table("logged_model_params")
    op.drop_table("logged_model_tags")
    op.drop_index("ix_logged_models_source_run_id", "logged_models")
    op.drop_index("ix_logged_models_experiment_id", "logged_models")
    op.drop_table("logged_models")
