"""Keep grid edit history: grid_change and grid_state

Revision ID: 7c1e5b2d9a40
Revises: 0001
Create Date: 2026-11-22 03:34:44.497172
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "7c1e5b2d9a40"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # grid_change: one row per edit, with what it moved (for the list of changes and undo).
    # grid_state: a grid's earlier boundary, name and parent when an edit changed it in place.
    op.create_table(
        "grid_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("before_ids", sa.ARRAY(sa.Integer()), server_default="{}", nullable=False),
        sa.Column("after_ids", sa.ARRAY(sa.Integer()), server_default="{}", nullable=False),
        sa.Column(
            "detail", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("undoes_id", sa.Integer(), nullable=True),
        sa.Column("undone_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('create', 'update', 'delete', 'split', 'merge', 'undo')",
            name=op.f("ck_grid_change_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["grid.id"],
            name=op.f("fk_grid_change_parent_id_grid"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["undoes_id"], ["grid_change.id"], name=op.f("fk_grid_change_undoes_id_grid_change")
        ),
        sa.ForeignKeyConstraint(
            ["undone_by_id"],
            ["grid_change.id"],
            name=op.f("fk_grid_change_undone_by_id_grid_change"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grid_change")),
    )
    op.create_index(
        "ix_grid_change_after_ids",
        "grid_change",
        ["after_ids"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index("ix_grid_change_at", "grid_change", ["at"], unique=False)
    op.create_index(
        "ix_grid_change_before_ids",
        "grid_change",
        ["before_ids"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index("ix_grid_change_parent_id", "grid_change", ["parent_id"], unique=False)
    op.create_geospatial_table(
        "grid_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grid_id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("valid_to >= valid_from", name=op.f("ck_grid_state_validity_ordered")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_grid_state_geom_valid")),
        sa.ForeignKeyConstraint(
            ["change_id"],
            ["grid_change.id"],
            name=op.f("fk_grid_state_change_id_grid_change"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["grid_id"], ["grid.id"], name=op.f("fk_grid_state_grid_id_grid"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["grid.id"],
            name=op.f("fk_grid_state_parent_id_grid"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grid_state")),
    )
    op.create_index(
        "ix_grid_state_grid_id_valid_from", "grid_state", ["grid_id", "valid_from"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_grid_state_grid_id_valid_from", table_name="grid_state")
    op.drop_geospatial_table("grid_state")
    op.drop_index("ix_grid_change_parent_id", table_name="grid_change")
    op.drop_index("ix_grid_change_before_ids", table_name="grid_change", postgresql_using="gin")
    op.drop_index("ix_grid_change_at", table_name="grid_change")
    op.drop_index("ix_grid_change_after_ids", table_name="grid_change", postgresql_using="gin")
    op.drop_table("grid_change")
